"""The language-model family through the runner: perplexity rows carry their protocol."""

import json

import pandas as pd
import pytest

from bench.cli import main

PTB_MATRIX = """
models = ["kn3", "kn5", "lstm", "nnlm-mix"]
corpora = ["ptb-sample"]
seeds = 1
[tokenizer]
lowercase = false
pattern = '\\S+'
[vocab]
min_count = 1
unk = "<unk>"
eos = "</s>"
[train]
epochs = 1
max_minutes = 0.5
[model.lstm]
emb = 32
hidden = 32
layers = 1
dropout = 0.0
batch_size = 16
lr = 3e-3
eval_batch_size = 4
[model.nnlm-mix]
n = 3
m = 16
h = 16
batch_size = 256
lr = 3e-3
"""


@pytest.mark.slow
def test_ptb_sample_kn3_and_lstm_report_perplexity_with_protocol(tmp_path, data_root):
    matrix = tmp_path / "ptb.toml"
    matrix.write_text(PTB_MATRIX)
    out = tmp_path / "run"
    assert main(["run", "--matrix", str(matrix), "--out", str(out), "--data-dir", str(data_root),
                 "--no-progress"]) == 0
    table = pd.read_csv(out / "perplexity.csv")
    assert set(table["split"]) == {"validation", "test"}
    assert set(table["model"]) == {"kn3", "kn5", "lstm", "nnlm-mix"}
    vocab_size = table["vocab_size"].iloc[0]
    assert 9000 < vocab_size < 9100  # ptb-sample train types + <unk> + </s>
    # Both beat the uniform model, whose perplexity is the vocabulary size.
    assert (table["perplexity"] < vocab_size / 5).all()
    assert table["sentence_ends_scored"].all()
    assert (table["unk_rate"] > 0).all() and (table["unk_rate"] < 0.1).all()
    assert table[table["model"] == "lstm"]["context"].str.contains("bptt=35").all()
    result = json.loads((out / "cells" / "lstm__ptb-sample__seed0.json").read_text())
    assert result["config"]["train"]["epochs"] == 1 and result["training"]["history"]
    assert result["timings"]["eval_test"]["tokens_per_s"] > 0
    assert "## Perplexity" in (out / "report.md").read_text()
    # The mixture weight is chosen on validation over a grid that includes 0 (kn5 alone),
    # so the mix can never be worse than kn5 there.
    valid = table[table["split"] == "validation"].set_index("model")["perplexity"]
    assert valid["nnlm-mix"] <= valid["kn5"] + 1e-9
    mix = json.loads((out / "cells" / "nnlm-mix__ptb-sample__seed0.json").read_text())
    assert 0.0 <= mix["training"]["mixture_weight_nnlm"] <= 1.0


def test_lm_without_unknown_symbol_is_refused(tmp_path, capsys):
    matrix = tmp_path / "bad.toml"
    matrix.write_text(PTB_MATRIX.replace('unk = "<unk>"\n', ""))
    out = tmp_path / "run"
    assert main(["run", "--matrix", str(matrix), "--out", str(out), "--no-progress"]) == 2
    assert "vocab.unk" in capsys.readouterr().err
    assert not out.exists()

"""The language-model family through the runner: perplexity rows carry their protocol."""

import json

import pandas as pd
import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.run.config import load_matrix
from tests.conftest import write_corpus

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
# One epoch each, cut by a token budget to part of ptb-sample's 69k train tokens, so that the
# models read the same text however loaded the machine is; the minutes are only a safety cap.
epochs = 1
max_minutes = 5.0
[model.lstm]
emb = 32
hidden = 32
layers = 1
dropout = 0.0
batch_size = 16
lr = 3e-3
eval_batch_size = 4
# 28k tokens: validation 1038, test 1304 (seed 0), well under the vocab_size / 5 ~ 1807 bound below.
max_tokens = 28_000
[model.nnlm-mix]
n = 3
m = 16
h = 16
batch_size = 256
lr = 3e-3
# The mixture weight is chosen on validation, so the mix's bounds below hold whatever the NNLM learnt
# (12k tokens: NNLM validation 5291, weight 0.04; 24k: 2151, weight 0.0 -- the test is of the mixture).
max_tokens = 12_000
"""


@pytest.mark.slow
@pytest.mark.data
def test_ptb_sample_kn3_and_lstm_report_perplexity_with_protocol(tmp_path, data_root):
    matrix = tmp_path / "ptb.toml"
    matrix.write_text(PTB_MATRIX)
    out = tmp_path / "run"
    assert main(["run", "--matrix", str(matrix), "--out", str(out), "--data-dir", str(data_root),
                 "--no-progress", "--in-process"]) == 0
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


def test_sentence_cut_by_the_tokenizer_is_refused_when_sentence_ends_are_scored(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "tiny", "a b c d e\nb c d\n")
    matrix = tmp_path / "sentences.toml"
    matrix.write_text(f'models = ["kn3"]\ncorpora = ["{corpus}"]\n[vocab]\nmin_count = 1\nunk = "<unk>"\neos = "</s>"\n')
    out = tmp_path / "run"
    # "a b c d e" has 5 tokens: a cap of 3 would cut it and score a false sentence end after "c".
    assert main(["run", "--matrix", str(matrix), "--out", str(out), "--no-progress",
                 "--set", "tokenizer.max_sentence_len=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "tokenizer.max_sentence_len=3: a line of split 'train' reaches it" in err
    assert "expected max_sentence_len above the longest line" in err
    assert not out.exists()


def test_sentence_matrix_scores_sentence_ends_with_the_brown_lm_settings():
    sentences, stream = load_matrix("brown-lm-sentences"), load_matrix("brown-lm")
    assert sentences.vocab.eos == "</s>" and stream.vocab.eos is None
    assert (sentences.tokenizer, sentences.vocab.min_count, sentences.vocab.unk) == \
        (stream.tokenizer, stream.vocab.min_count, stream.vocab.unk)
    assert set(stream.models) <= set(sentences.models)
    for model in stream.models:
        assert sentences.model_config(model) == stream.model_config(model)
        assert sentences.train_config(model) == stream.train_config(model)


def test_a_matrix_narrowed_to_some_of_its_models_keeps_its_train_section_valid():
    narrowed = load_matrix("brown-lm", models=["kn3"])
    assert narrowed.models == ["kn3"] and narrowed.model_config("kn3").order == 3
    # A key that fits none of the file's own models is still refused.
    with pytest.raises(BenchError, match=r"--set train.bogus=1: train.bogus applies to none of the models"):
        load_matrix("brown-lm", assignments=["train.bogus=1"], models=["kn3"])


@pytest.mark.data
def test_kn3_on_the_brown_sentence_protocol_scores_every_sentence_end(tmp_path, data_root):
    # The shipped protocol narrowed to kn3: its [train] keys belong to the neural models the
    # file lists, so narrowing with --models keeps the file valid.
    out = tmp_path / "run"
    assert main(["run", "--matrix", "brown-lm-sentences", "--models", "kn3", "--out", str(out),
                 "--data-dir", str(data_root), "--no-progress", "--in-process"]) == 0
    test = pd.read_csv(out / "perplexity.csv").set_index("split").loc["test"]
    assert bool(test["sentence_ends_scored"])
    assert test["scored_tokens"] == 161_170 + 10_127  # Brown's test words and its sentences (lines)
    assert test["vocab_size"] == 14_114 + 1  # brown-lm's vocabulary (with <unk>) and </s>
    assert 50 < test["perplexity"] < 400

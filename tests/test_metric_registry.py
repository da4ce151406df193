"""Metrics as registered units (bench.eval.metrics): a new metric is one module declaring its
`Metric`, its row type and its `RowTable`; the result schema, the report's table and CSV, its
heading's direction and the cell's metric definitions all follow from that declaration.

The toy metric here is what such a module would hold, produced by a toy probe task (what a
module in bench/eval/tasks/ would hold): it runs through a real cell and report without any
other file knowing its name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from bench.cli import main
from bench.errors import BenchError
from bench.eval import metrics
from bench.eval.metrics import METRICS, TABLES, Metric, RowTable, measured, renamed, stored
from bench.eval.probe import mix_fields
from bench.eval.tasks import PROBE_TASKS, ProbeRun, ProbeTask
from bench.run.results import read_result
from tests.conftest import write_corpus

# --- a new metric, whole: what a module in bench/eval/metrics/ would hold -----------------------

NORM = Metric("norm", "lower", "L2 norm", "mean length of the probe words' vectors", aggregation="median")


@dataclass(kw_only=True)
class NormRow:
    """One vector set's mean norm over the probe words it covers."""

    model: str
    layer: str
    words: int  # probe words the vectors cover
    norm: float = measured(NORM)
    missing: list | None = stored()  # probe words the vectors lack: kept in the result, not a column


TABLE = RowTable("norm_probe", NormRow, title="Vector norm", score="mean L2 norm of the probe words")


# --- and the probe task that makes its rows --------------------------------------------------


@dataclass
class NormSettings:
    corpus: str = ""  # a file of probe words, one a line


@dataclass
class WordList:
    name: str
    words: list[str]
    fingerprint: dict


class NormTask(ProbeTask):
    name = "norm"
    description = "mean vector norm of a list of words"
    metric = NORM
    settings_cls = NormSettings

    def load(self, settings: NormSettings, data_root: Path | None) -> WordList:
        text = Path(settings.corpus).read_text()
        return WordList("norm-words", text.split(), {"name": "norm-words",
                                                     "sha256": hashlib.sha256(text.encode()).hexdigest()})

    def static(self, vectors, model, corpus, settings, *, seed, device) -> ProbeRun:
        covered = [word for word in corpus.words if word in vectors.key_to_index]
        norm = float(np.mean([np.linalg.norm(vectors[word]) for word in covered]))
        return ProbeRun([{"model": model, "layer": "static", "words": len(covered), "norm": norm,
                          "missing": [word for word in corpus.words if word not in covered]}])

    def layers(self, model, featurize, n_layers, corpus, settings, *, seed, device) -> ProbeRun:
        raise NotImplementedError("the toy task probes static vectors only")


@pytest.fixture
def norm_metric(monkeypatch):
    """The toy metric and its task registered for one test, the registries restored after."""
    tables, known = dict(TABLES), dict(METRICS)
    metrics.register(TABLE)
    monkeypatch.setitem(PROBE_TASKS, NormTask.name, NormTask())
    yield
    for registry, before in ((TABLES, tables), (METRICS, known)):
        registry.clear()
        registry.update(before)


def test_a_registered_metric_flows_into_rows_table_csv_and_headings(tmp_path, norm_metric, monkeypatch, capsys):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)  # gensim's similarity sets: no data root needed
    train = write_corpus(tmp_path / "train", "the cat saw the dog and the dog saw a bird\n" * 20)
    words = tmp_path / "words.txt"
    words.write_text("cat dog bird zebra\n")
    matrix = tmp_path / "norm.toml"
    matrix.write_text(f'description = "t"\nmodels = ["gensim-cbow"]\ncorpora = ["{train}"]\nseeds = 2\n'
                      f'[vocab]\nmin_count = 1\nunk = "<unk>"\n[train]\nvector_size = 8\nepochs = 1\n'
                      f'[eval]\ntasks = ["similarity"]\n[probe]\ntasks = ["norm"]\n[probe.norm]\ncorpus = "{words}"\n')
    out = tmp_path / "out"
    assert main(["run", "--matrix", str(matrix), "--out", str(out), "--no-progress", "--in-process"]) == 0, \
        capsys.readouterr().err

    # A row: stored under the table's name, with what the metric means beside it.
    cells = [json.loads(path.read_text()) for path in sorted((out / "cells").glob("*.json"))]
    assert [cell["status"] for cell in cells] == ["ok", "ok"]
    for cell in cells:
        (row,) = cell["metrics"]["norm_probe"]
        assert row["words"] == 3 and row["missing"] == ["zebra"] and row["norm"] > 0
        assert cell["metric_defs"]["norm"] == dataclasses.asdict(NORM)
        assert "wsd_accuracy" not in cell["metric_defs"]  # a metric without rows in the cell is not defined

    # A table and its CSV: the cell's identity around the row's declared columns, `stored` ones left out.
    csv = pd.read_csv(out / "norm_probe.csv")
    assert list(csv.columns) == ["model", "corpus", "seed", "layer", "words", "norm", "matrix"] == TABLE.columns
    assert sorted(csv["seed"]) == [0, 1] and set(csv["words"]) == {3}

    # The heading states the declared direction and aggregation; the value is the seeds' median.
    report = (out / "report.md").read_text()
    heading = "## Vector norm (mean L2 norm of the probe words, lower is better; median over seeds)"
    assert heading in report
    section = report.split(heading)[1].split("\n## ")[0]
    assert f"{np.median(csv['norm']):.3f}" in section and "| static " in section

    # The schema: a stored row without a declared field is refused on reading, naming it.
    path = sorted((out / "cells").glob("*.json"))[0]
    broken = json.loads(path.read_text())
    del broken["metrics"]["norm_probe"][0]["words"]
    path.write_text(json.dumps(broken))
    with pytest.raises(BenchError, match=r"metrics.norm_probe\[0\] lacks 'words'"):
        read_result(path)

    # And `lm-lineage list` names it with its direction.
    assert main(["list"]) == 0
    assert "norm               lower is better, unit: L2 norm" in capsys.readouterr().out


def test_the_built_in_row_types_keep_the_keys_results_were_written_with():
    # What committed results carry and readers index (before rows were declared as types).
    assert {name: table.required for name, table in TABLES.items()} == {
        "wordsim": ("benchmark", "pairs", "oov_pairs", "spearman", "pearson"),
        "analogy": ("method", "section", "questions", "oov_questions", "accuracy"),
        "perplexity": ("split", "perplexity", "scored_tokens", "vocab_size", "unk_rate", "sentence_ends_scored",
                       "context"),
        "pos_probe": ("model", "probe_corpus", "layer", "accuracy", "train_tokens", "eval_tokens"),
        "wsd_probe": ("model", "probe_corpus", "layer", "word", "method", "accuracy", "instances",
                      "train_instances", "eval_instances"),
    }
    assert TABLES["pos_probe"].columns == ["model", "corpus", "seed", "layer", "accuracy", "probe_train",
                                           "probe_eval", "train_corpus", "matrix"]
    assert TABLES["perplexity"].heading == "Perplexity (per word, lower is better; mean ± sd over seeds)"
    assert {metric.name for table in TABLES.values() for metric in table.metrics} | {"tokens_per_s", "wall_s",
                                                                                      "peak_mem_mb"} == set(METRICS)


def test_a_probe_row_shows_its_own_corpus_and_the_cell_s_as_train_corpus():
    cell = {"model": "elmo", "corpus": "brown", "seed": 1, "matrix": "m"}
    row = {"model": "most-frequent-tag", "probe_corpus": "brown-pos", "layer": "per-word", "accuracy": 0.9,
           "train_tokens": 10, "eval_tokens": 5, "n_tags": 12}
    assert TABLES["pos_probe"].table_row(row, cell) == {
        "model": "most-frequent-tag", "corpus": "brown-pos", "seed": 1, "matrix": "m", "train_corpus": "brown",
        "layer": "per-word", "accuracy": 0.9, "probe_train": 10, "probe_eval": 5}


@dataclass(kw_only=True)
class _Unmeasured:
    model: str


@dataclass(kw_only=True)
class _OwnCorpus:
    corpus: str = renamed("corpus")
    score: float = measured(NORM)


@pytest.mark.parametrize("declare, message", [
    (lambda: Metric("m", "sideways", "x", "d"), "direction must be 'higher' or 'lower', not 'sideways'"),
    (lambda: Metric("m", "higher", "x", "d", aggregation="max"), "aggregation must be one of mean, median"),
    (lambda: RowTable("t", dict, title="T", score="s"), "row must be a dataclass"),
    (lambda: RowTable("t", _Unmeasured, title="T", score="s"), "_Unmeasured has no `measured(...)` field"),
    (lambda: RowTable("t", _OwnCorpus, title="T", score="s"), "needs another cell_corpus column"),
])
def test_a_malformed_declaration_is_refused_when_declared(declare, message):
    with pytest.raises((TypeError, ValueError), match=re.escape(message)):
        declare()


def test_a_table_or_metric_registered_twice_is_refused():
    with pytest.raises(ValueError, match="row table 'wordsim' is registered twice"):
        metrics.register(TABLES["wordsim"])
    clash = Metric("spearman", "lower", "rho", "a second, different spearman")
    table = RowTable("other", dataclasses.make_dataclass("Other", [("spearman", float, measured(clash))]),
                     title="Other", score="s")
    with pytest.raises(ValueError, match=re.escape("metric(s) spearman declared differently before")):
        metrics.register(table)
    assert "other" not in TABLES and METRICS["spearman"].direction == "higher"


def test_evaluators_store_their_declared_row_types_in_the_layout_results_were_written_with():
    kv = KeyedVectors(vector_size=2)
    kv.add_vectors(["a", "b", "c"], np.array([[1, 0], [1, 1], [1, 3]], dtype=np.float32))
    sim_set = metrics.SimilaritySet("TOY", "toy", [("a", "b", 1.0), ("b", "c", 2.0), ("a", "c", 3.0),
                                                   ("a", "zebra", 4.0)])
    # Optional fields left unset (the row's own model) are not stored; `stored` ones are.
    assert list(metrics.evaluate_similarity(kv, sim_set)) == ["benchmark", "pairs", "oov_pairs", "spearman",
                                                              "pearson", "pair_scores"]
    rows = metrics.evaluate_analogies(kv, datapath("questions-words.txt"), methods=("3cosadd",))
    assert [list(row) for row in rows] == [["method", "section", "questions", "oov_questions", "correct",
                                            "accuracy"]] * 3


@pytest.mark.parametrize("name", ["pos_probe", "wsd_probe"])
def test_a_probe_row_holds_its_scalar_mix_fields_whole_or_not_at_all(name):
    table = TABLES[name]
    assert table.keys_of({"layer": "0"}) == table.required
    mix = tuple(mix_fields([0.4, 0.6], 1.0, [1, 2]))  # what a mix's row stores (bench.eval.probe)
    assert table.keys_of({"layer": "mix", "mix_weights": [0.4, 0.6]}) == (*table.required, *mix)

"""Probe tasks as registered units (bench.eval.tasks): a new task is one module, run by the cell
through the same path as POS and WSD; `[probe]` names tasks with a table per task; the flat
layout of older matrix files reads as before and keys the same cells."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from bench.cli import main
from bench.errors import BenchError
from bench.eval.metrics import Metric
from bench.eval.probe import extract_features, static_featurizer, train_linear_probe
from bench.eval.probe_config import ProbeConfig
from bench.eval.tasks import PROBE_TASKS, ProbeRun, ProbeTask
from bench.run.config import load_matrix
from tests.conftest import write_corpus

CPU = torch.device("cpu")
TINY_ELMO = ('[model.elmo]\nchar_dim = 4\nmax_chars = 8\nfilters = [[1, 8], [2, 8]]\nhighway_layers = 1\n'
             'projection_dim = 8\nhidden = 16\ndropout = 0.0\nepochs = 1\nbatch_size = 4\n')
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")


# --- a new probe task, whole: what a module in bench/eval/tasks/ would hold -------------------


@dataclass
class CapitalSettings:
    corpus: str = ""  # a folder holding sentences.txt, one sentence a line
    epochs: int = 30
    lr: float = 0.05  # filled from [probe] lr, as every task's field of that name


@dataclass
class CapitalCorpus:
    name: str
    sentences: list[list[str]]
    fingerprint: dict


class CapitalTask(ProbeTask):
    """Does a token's representation say whether it is capitalised? A linear probe per token,
    trained on the first half of the sentences and scored on the rest."""

    name = "capital"
    description = "linear probe: is the token capitalised?"
    metric = Metric("capital_accuracy", "higher", "fraction", "tokens whose capitalisation a linear probe gets right")
    settings_cls = CapitalSettings

    def load(self, settings: CapitalSettings, data_root: Path | None) -> CapitalCorpus:
        path = Path(settings.corpus) / "sentences.txt"
        if not path.is_file():
            raise BenchError(f"probe.capital.corpus: no {path}")
        text = path.read_text()
        return CapitalCorpus("capital-toy", [line.split() for line in text.splitlines()],
                             {"name": "capital-toy", "sha256": hashlib.sha256(text.encode()).hexdigest()})

    def _accuracies(self, features: torch.Tensor, corpus: CapitalCorpus, settings: CapitalSettings) -> list[float]:
        """Accuracy per layer of features (N, L, D)."""
        labels = torch.tensor([word[0].isupper() for words in corpus.sentences for word in words], dtype=torch.long)
        half = sum(len(words) for words in corpus.sentences[:len(corpus.sentences) // 2])
        return [train_linear_probe(features[:half, layer], labels[:half], features[half:, layer], labels[half:],
                                   epochs=settings.epochs, lr=settings.lr, seed=0, device=CPU)
                for layer in range(features.shape[1])]

    def static(self, vectors, model, corpus, settings, *, seed, device) -> ProbeRun:
        features = extract_features(static_featurizer(vectors), corpus.sentences).unsqueeze(1)  # (N, 1, D)
        (accuracy,) = self._accuracies(features, corpus, settings)
        return ProbeRun([{"model": model, "layer": "static", "accuracy": accuracy}], tokens=len(features))

    def layers(self, model, featurize, n_layers, corpus, settings, *, seed, device) -> ProbeRun:
        features = extract_features(featurize, corpus.sentences)  # (N, n_layers * D)
        accuracies = self._accuracies(features.view(len(features), n_layers, -1), corpus, settings)
        return ProbeRun([{"model": model, "layer": str(layer), "accuracy": accuracy}
                         for layer, accuracy in enumerate(accuracies)], tokens=len(features))


@pytest.fixture
def capital_task(monkeypatch):
    """CapitalTask registered for one test (a module under bench/eval/tasks/ is registered on import)."""
    monkeypatch.setitem(PROBE_TASKS, CapitalTask.name, CapitalTask())


def test_a_new_task_runs_through_the_cell_on_static_vectors_and_layers(tmp_path, capital_task, monkeypatch, capsys):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)  # the gensim similarity sets: no data root needed
    train = write_corpus(tmp_path / "train", "Alice saw the cat and Bob saw the dog in Paris\n" * 20)
    sentences = tmp_path / "capital"
    sentences.mkdir()
    (sentences / "sentences.txt").write_text("Alice met Bob in Paris\nthe cat sat on the mat\n" * 6)
    matrix = tmp_path / "capital.toml"
    matrix.write_text(f'description = "t"\nmodels = ["gensim-cbow", "elmo"]\ncorpora = ["{train}"]\nseeds = 1\n'
                      f'[vocab]\nmin_count = 1\nunk = "<unk>"\n[train]\nvector_size = 8\n'
                      f'[probe]\ntasks = ["capital"]\nlr = 0.1\n[probe.capital]\ncorpus = "{sentences}"\n{TINY_ELMO}')
    out = tmp_path / "out"
    assert main(["run", "--matrix", str(matrix), "--out", str(out), "--no-progress", "--in-process"]) == 0, \
        capsys.readouterr().err
    cells = {path.name.split("__")[0]: json.loads(path.read_text()) for path in (out / "cells").glob("*.json")}
    assert {name: cell["status"] for name, cell in cells.items()} == {"gensim-cbow": "ok", "elmo": "ok"}
    static, layered = cells["gensim-cbow"], cells["elmo"]
    assert [row["layer"] for row in static["metrics"]["capital_probe"]] == ["static"]
    assert [row["layer"] for row in layered["metrics"]["capital_probe"]] == ["0", "1", "2"]
    for cell in (static, layered):
        assert all(0.0 <= row["accuracy"] <= 1.0 for row in cell["metrics"]["capital_probe"])
        assert "capital_probe" in cell["timings"] and "pos_probe" not in cell["metrics"]
        assert cell["metric_defs"]["capital_accuracy"]["direction"] == "higher"
        # Its own settings are in the key as capital_FIELD; the shared lr once, as [probe] lr.
        probe = cell["config"]["probe"]
        assert probe["task"] == "capital" and probe["capital_corpus"] == str(sentences)
        assert probe["capital_epochs"] == 30 and probe["lr"] == 0.1 and "capital_lr" not in probe
    assert load_matrix(str(matrix)).probe.settings["capital"].lr == 0.1  # what the task's probes trained with
    assert layered["timings"]["capital_probe"]["tokens"] == 6 * (5 + 6)  # every token featurized once

    # The same settings again: every cell keeps its key, nothing is redone; another epoch count is another cell.
    assert main(["run", "--matrix", str(matrix), "--out", str(out), "--no-progress", "--in-process"]) == 0
    capsys.readouterr()
    assert main(["run", "--matrix", str(matrix), "--out", str(out), "--no-progress", "--in-process",
                 "--set", "probe.capital.epochs=5"]) == 2
    assert "probe.capital_epochs 30 -> 5" in capsys.readouterr().err


def test_registering_a_task_leaves_the_keys_of_cells_that_do_not_run_it():
    before = [ProbeConfig(tasks=tasks).flat() for tasks in ((), ("pos",), ("wsd",), ("pos", "wsd"))]
    PROBE_TASKS["capital"] = CapitalTask()
    try:
        after = [ProbeConfig(tasks=tasks).flat() for tasks in ((), ("pos",), ("wsd",), ("pos", "wsd"))]
        assert "capital_corpus" in ProbeConfig(tasks=("capital",)).flat()
    finally:
        del PROBE_TASKS["capital"]
    assert after == before


# --- [probe] tables, and the flat layout of older matrix files ------------------------------------


def _matrix(tmp_path: Path, probe: str) -> str:
    path = tmp_path / "m.toml"
    path.write_text(f'description = "t"\nmodels = ["gensim-cbow"]\ncorpora = ["lee"]\n{probe}')
    return str(path)


def test_the_flat_layout_and_task_tables_make_the_same_cells(tmp_path):
    flat = load_matrix(_matrix(tmp_path, '[probe]\ntask = "pos+wsd"\ncorpus = "brown-pos"\nepochs = 3\n'
                                         'wsd_max_train_per_word = 500\nlr = 0.05\nlayers = [1]\n'))
    tables = load_matrix(_matrix(tmp_path, '[probe]\ntasks = ["wsd", "pos"]\nlr = 0.05\nlayers = [1]\n'
                                           '[probe.pos]\nepochs = 3\n[probe.wsd]\nmax_train_per_word = 500\n'))
    assert flat.probe == tables.probe and flat.probe.tasks == ("pos", "wsd")
    assert flat.probe.settings["wsd"].max_train_per_word == 500 and flat.probe.settings["wsd"].lr == 0.05
    assert flat.probe.flat() == tables.probe.flat()
    assert tables.probe.flat()["task"] == "pos+wsd" and tables.probe.flat()["wsd_max_train_per_word"] == 500
    # The shipped matrices still read: elmo-seeds is written in the flat layout.
    assert load_matrix("elmo-seeds").probe.tasks == ("pos", "wsd")


def test_set_reaches_a_task_table_in_either_layout():
    assert load_matrix("elmo-seeds", ["probe.wsd.max_train_per_word=7"]).probe.settings["wsd"].max_train_per_word == 7
    assert load_matrix("elmo-seeds", ["probe.wsd_window=3"]).probe.settings["wsd"].window == 3
    assert load_matrix("quick", ["probe.tasks=['wsd']"]).probe.tasks == ("wsd",)


@pytest.mark.parametrize("probe, expected", [
    ('[probe]\ntasks = ["ner"]\n', "tasks=('ner',): expected a list of distinct probe tasks among pos, wsd"),
    ('[probe.ner]\ncorpus = "x"\n', "probe.ner: unknown probe task 'ner'; expected one of pos, wsd"),
    ('[probe]\ntasks = ["wsd"]\n[probe.wsd]\nlr = 0.1\n', "probe.wsd: lr is shared by every task; expected it in "
                                                            "[probe]"),
    ('[probe]\ntasks = ["wsd"]\n[probe.wsd]\nwindw = 3\n', "unknown key(s) windw in [probe.wsd]"),
    ('[probe]\ntask = "wsd"\nwsd_window = 4\n[probe.wsd]\nwindow = 3\n', "sets wsd_window and wsd.window, the same "
                                                                     "setting"),
    ('[probe]\ntask = "wsd"\ntasks = ["wsd"]\n', "sets both tasks and the old flat keys (task)"),
    ('[probe]\ntask = "ner"\n', "probe.task: expected one of 'pos', 'wsd', 'pos+wsd', got 'ner'"),
])
def test_a_bad_probe_table_is_one_line_naming_it(tmp_path, capsys, probe, expected):
    out = tmp_path / "out"
    assert main(["run", "--matrix", _matrix(tmp_path, probe), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err and not out.exists()


@pytest.mark.parametrize("assignment, expected", [
    ("probe.wsd.windw=3", "unknown key(s) windw in [probe.wsd]"),
    ("probe.ner.corpus=x", "unknown probe task 'ner'"),
    ("probe.wsd.lr=0.1", "lr is shared by every task; expected it in [probe]"),
    ("probe.wsd.window=wide", "expected int, got 'wide'"),
])
def test_a_bad_set_of_a_task_setting_is_blamed_on_set(tmp_path, capsys, assignment, expected):
    out = tmp_path / "out"
    assert main(["run", "--matrix", "quick", "--set", assignment, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--set {assignment}" in err and expected in err


def test_list_shows_the_probe_tasks_and_the_word_sense_corpus(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "senseval2" in out.split("corpora:")[1].split("matrices:")[0]
    tasks = out.split("probe tasks")[1].split("matrices:")[0]
    assert "pos" in tasks and "wsd" in tasks

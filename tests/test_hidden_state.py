"""State a command or a model leaves behind: each of these failed before issue 26.

- `render()` read an old pos_probe.csv back when no cell held POS rows, so a re-render after
  removing every POS row still showed the full POS table.
- `fit_glove` set torch's thread count for its training and never put it back.
- Importing `bench.cli` changed os.environ (the hub's offline switches) for the whole process.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from bench import cli
from bench.report.render import render
from impl.glove import GloVeConfig, fit_glove

ROOT = Path(__file__).resolve().parents[1]
REAL_CELL = ROOT / "results" / "standard-vectors" / "cells" / "word2vec-sg__offline-mix__seed0.json"


def _probing_cell(folder: Path, pos_rows: bool) -> Path:
    """A committed cell, rewritten with (or without) three POS probe rows."""
    cell = json.loads(REAL_CELL.read_text())
    cell["metrics"]["pos_probe"] = [
        {"model": "word2vec-sg", "probe_corpus": "brown-pos", "layer": str(layer), "accuracy": 0.8 + 0.05 * layer,
         "train_tokens": 800, "eval_tokens": 200} for layer in (0, 1, 2)] if pos_rows else []
    path = folder / "cells" / REAL_CELL.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cell))
    return path


def test_a_rerender_without_pos_rows_shows_no_pos_table(tmp_path):
    _probing_cell(tmp_path, pos_rows=True)
    render(tmp_path)
    assert len(pd.read_csv(tmp_path / "pos_probe.csv")) == 3
    assert "<th>layer 2</th>" in (tmp_path / "report.html").read_text()

    _probing_cell(tmp_path, pos_rows=False)  # the cell re-run without its probe
    report = render(tmp_path).read_text()
    assert "<th>layer 2</th>" not in (tmp_path / "report.html").read_text()
    assert "| layer 2 |" not in report and "No POS probe rows in this folder" in report
    assert not (tmp_path / "pos_probe.csv").exists()  # the stale table went with its rows


def test_a_pos_probe_csv_in_the_results_folder_is_never_read_back(tmp_path):
    _probing_cell(tmp_path, pos_rows=False)
    stale = [{"model": "elmo", "corpus": "brown-pos", "seed": 0, "layer": layer, "accuracy": 0.9} for layer in (0, 1)]
    pd.DataFrame(stale).to_csv(tmp_path / "pos_probe.csv", index=False)
    report = render(tmp_path, tmp_path / "out").read_text()
    assert "`elmo`" not in report and "| layer 1 |" not in report
    assert "No POS probe rows in this folder" in report


def test_fit_glove_restores_torchs_thread_count():
    before = torch.get_num_threads()
    config = GloVeConfig(vector_size=4, epochs=1, threads=before + 1)
    X = sp.csr_matrix(np.array([[0.0, 2.0, 1.0], [2.0, 0.0, 0.5], [1.0, 0.5, 0.0]]))
    try:
        vectors, losses = fit_glove(X, config, seed=0)
        assert vectors.shape == (3, 4) and len(losses) == 1
        assert torch.get_num_threads() == before
    finally:
        torch.set_num_threads(before)  # whatever happened, the next test runs with the usual count


def test_importing_the_cli_leaves_os_environ_alone():
    env = {k: v for k, v in os.environ.items() if k not in cli.HUB_OFFLINE_VARIABLES}
    code = ("import os; before = dict(os.environ); import bench.cli; "
            "changed = sorted(set(os.environ.items()) ^ set(before.items())); print(changed); assert not changed")
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_main_scopes_the_hub_switches_to_its_command(monkeypatch, capsys):
    for name in cli.HUB_OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")  # the caller's own choice is kept
    seen = {}
    monkeypatch.setattr(cli, "list_command",
                        lambda args: seen.update({n: os.environ.get(n) for n in cli.HUB_OFFLINE_VARIABLES}) or 0)
    assert cli.main(["list"]) == 0
    assert seen == {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1"}
    assert "HF_HUB_OFFLINE" not in os.environ and "TRANSFORMERS_OFFLINE" not in os.environ
    assert os.environ["HF_DATASETS_OFFLINE"] == "0"

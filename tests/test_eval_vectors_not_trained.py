"""eval-vectors' rows claim no training corpus and no seed: in the cells, the CSVs and the report."""

import json

import pandas as pd

from bench.cli import main
from bench.run.not_trained import NOT_TRAINED_HERE, row_key

VECTORS = "3 2\nking 1 0\nqueen 0.9 0.1\ncar 0 1\n"


def test_rows_of_scored_files_name_no_corpus_and_no_seed_and_a_rerun_keeps_them(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)  # gensim's two similarity sets
    (tmp_path / "mine.txt").write_text(VECTORS)
    out = tmp_path / "out"
    command = ["eval-vectors", str(tmp_path / "mine.txt"), "--tasks", "similarity", "--no-reference",
               "--out", str(out), "--no-progress", "--quiet"]
    assert main(command) == 0, capsys.readouterr().err
    cell_file = out / "cells" / "mine__lee__seed0.json"  # the runner's label names the file
    cell = json.loads(cell_file.read_text())
    assert cell["trained_here"] is False and cell["seed"] is None
    assert list(cell["dataset"]) == ["model_files"]
    assert cell["dataset"]["model_files"]["vectors"]["path"] == str(tmp_path / "mine.txt")
    for table in ("wordsim", "throughput"):
        rows = pd.read_csv(out / f"{table}.csv")
        assert set(rows["corpus"]) == {NOT_TRAINED_HERE} and rows["seed"].isna().all(), table
    report = (out / "report.md").read_text()
    assert f"### corpus `{NOT_TRAINED_HERE}`" in report and "`lee`" not in report
    assert "| mine | – |" in report  # the seeds column of the similarity tables
    # The label still identifies the cell: a second run finds it done and leaves it as it was.
    before = cell_file.read_text()
    assert main(command) == 0, capsys.readouterr().err
    assert cell_file.read_text() == before


def test_a_trained_cell_keeps_its_corpus_and_seed():
    result = {"cell": {"model": "word2vec-sg", "corpus": "lee", "seed": 2, "matrix": "quick"}, "seed": 2}
    assert row_key(result) == {"model": "word2vec-sg", "corpus": "lee", "seed": 2, "matrix": "quick"}
    assert row_key({**result, "trained_here": False})["corpus"] == NOT_TRAINED_HERE

"""Rows of vectors that were scored here but not trained here (`eval-vectors`): no corpus, no seed.

`eval-vectors` runs a matrix of its own, and the runner names every cell by model, corpus
and seed (its file, its key, whether it is done), so those cells carry the embedded Lee
corpus and seed 0 as a label. Read as rows, that label would claim the vectors were trained
on Lee with seed 0. `mark` records in each such result that nothing was trained here, keeps
the files the vectors came from as its only data, and leaves the seed empty; the tables then
show NOT_TRAINED_HERE for the corpus and no seed (`row_key`). The cell block itself keeps
the runner's label: a later run still finds and skips the cell by it.
"""

from __future__ import annotations

from pathlib import Path

from bench.run.results import read_result, write_json_atomic

NOT_TRAINED_HERE = "not trained here"  # the corpus column of such a row


def mark(cells_dir: Path) -> None:
    """Mark every result under `cells_dir` as scored, not trained, here (idempotent)."""
    for path in sorted(cells_dir.glob("*.json")):
        result = read_result(path)
        marked = {**result, "trained_here": False, "seed": None,
                  "dataset": {key: value for key, value in result.get("dataset", {}).items() if key == "model_files"}}
        if marked != result:
            write_json_atomic(path, marked)


def row_key(result: dict) -> dict:
    """The model, corpus, seed and matrix a result's rows carry: for a result that trained
    nothing here (`mark`), corpus NOT_TRAINED_HERE and seed None, whatever its cell's label."""
    cell = result["cell"]
    if result.get("trained_here") is False:
        return {"model": cell["model"], "corpus": NOT_TRAINED_HERE, "seed": None, "matrix": cell["matrix"]}
    return {"model": cell["model"], "corpus": cell["corpus"], "seed": cell["seed"], "matrix": cell["matrix"]}

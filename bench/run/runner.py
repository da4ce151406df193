"""The matrix runner: models x corpora x seeds, one JSON result per cell.

Device, config and data are passed explicitly. A cell whose result file already exists with
status ok is skipped (use `force` to redo it); a cell that raises is recorded as failed with
its reason and the matrix goes on. The cells run on an executor (`bench.run.executors`);
this process writes every result, so the files, resuming and `force` do not depend on it.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from bench.data.datasets import resolve_data_dir
from bench.data.prepared import prepare_corpus
from bench.errors import BenchError
from bench.eval import metrics
from bench.models.registry import MODELS
from bench.run.cell import CellJob, probe_corpus_of
from bench.run.config import Matrix
from bench.run.executors import LocalExecutor, RayExecutor
from bench.run.results import check_run_folder, command_line, load_json, remove_stale_temp_files, write_json_atomic
from bench.train import lm


def resolve_precision(name: str, device: torch.device) -> str:
    """The run's --precision: fp32, or bf16 autocast, which only a CUDA device gets."""
    if name not in lm.PRECISIONS:
        raise BenchError(f"--precision {name!r}: expected {' or '.join(lm.PRECISIONS)}")
    if name == "bf16" and device.type != "cuda":
        raise BenchError(f"--precision bf16: bfloat16 autocast is for CUDA devices and this run's device is "
                         f"{device}; use --device cuda or --precision fp32")
    return name


def cell_path(out_dir: Path, model: str, corpus: str, seed: int) -> Path:
    safe_corpus = corpus.strip("/").replace("/", "_")
    return out_dir / "cells" / f"{model}__{safe_corpus}__seed{seed}.json"


def run_matrix(matrix: Matrix, out_dir: Path, data_dir: str | None, device: torch.device,
               force: bool = False, progress: bool = True, executor: LocalExecutor | RayExecutor | None = None,
               precision: str = "fp32") -> list[Path]:
    """Run every cell with `executor` (default: a LocalExecutor); returns the result paths
    of cells that failed. `precision` is the run's, checked by `resolve_precision`."""
    check_run_folder(out_dir)  # results of another schema are neither resumed nor overwritten
    executor = executor if executor is not None else LocalExecutor()
    data_root = resolve_data_dir(data_dir)
    metrics.similarity_sets(data_root)  # bad similarity files stop the run before anything is written
    # Seed-major: a long run has every model's first seed before any second seed.
    cells = [(model, corpus, seed) for seed in matrix.seeds for corpus in matrix.corpora for model in matrix.models
             if MODELS[model].trains or seed == matrix.seeds[0]]
    # Every corpus is loaded (and its tokenization cached) before anything is written:
    # bad data stops the run with one line and no partial results.
    for corpus in matrix.corpora:
        prepare_corpus(corpus, data_root, matrix.tokenizer, matrix.vocab)
    probe_corpus_of(matrix, data_root)  # so is the probe's tagged corpus: a corpus without tags is refused here
    for model in matrix.models:  # so are pretrained weights (their config is read, not the weights)
        if MODELS[model].check is not None:
            MODELS[model].check(matrix.model_config(model), f"model.{model}")
    remove_stale_temp_files(out_dir)
    remove_stale_temp_files(out_dir / "cells")
    write_json_atomic(out_dir / "matrix.json", {"matrix": matrix.to_dict(), "command": command_line()})
    jobs = {}
    for model, corpus, seed in cells:
        path = cell_path(out_dir, model, corpus, seed)
        if not force and path.exists() and load_json(path).get("status") == "ok":
            continue
        jobs[path] = CellJob(matrix, model, corpus, seed, data_root, device, progress, command_line(), precision)
    failed = []
    for path, result in tqdm(executor.run(jobs), total=len(cells), initial=len(cells) - len(jobs),
                             desc=f"matrix {matrix.name}", unit="cell", disable=not progress):
        if result["status"] != "ok":
            failed.append(path)
        write_json_atomic(path, result)
    return failed

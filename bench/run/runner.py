"""The matrix runner: models x corpora x seeds, one JSON result per cell.

Device, config and data are passed explicitly. A cell whose result file already exists with
status ok is skipped (use `force` to redo it); a cell that raises is recorded as failed with
its reason and the matrix goes on. The cells run on an executor (`bench.run.executors`);
this process writes every result, so the files, resuming and `force` do not depend on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from bench.data.datasets import resolve_data_dir
from bench.data.prepared import PreparedCorpus, prepare_corpus
from bench.errors import BenchError
from bench.eval import metrics
from bench.models import checkpoints
from bench.run import finetune, reference
from bench.run.cell import CellJob, EvalData
from bench.run.config import Matrix
from bench.run.executors import LocalExecutor, RayExecutor
from bench.run.keys import cell_file_name, cell_path, config_block, describe_difference, expected_key
from bench.run.outdir import check_folder
from bench.run.probes import check_probe_layers, probe_corpora
from bench.run.results import command_line, read_result, remove_stale_temp_files, write_json_atomic
from bench.train import lm


def resolve_precision(name: str, device: torch.device) -> str:
    """The run's --precision: fp32, or bf16 autocast, which only a CUDA device gets."""
    if name not in lm.PRECISIONS:
        raise BenchError(f"--precision {name!r}: expected {' or '.join(lm.PRECISIONS)}")
    if name == "bf16" and device.type != "cuda":
        raise BenchError(f"--precision bf16: bfloat16 autocast is for CUDA devices and this run's device is "
                         f"{device}; use --device cuda or --precision fp32")
    return name


def model_dir(out_dir: Path, model: str, corpus: str, seed: int) -> Path:
    """Where `run --save-models` puts what a cell trained: OUT/models/<the cell file's stem>/."""
    return out_dir / "models" / cell_path(out_dir, model, corpus, seed).stem


def run_matrix(matrix: Matrix, out_dir: Path, data_dir: str | None, device: torch.device,
               force: bool = False, progress: bool = True, executor: LocalExecutor | RayExecutor | None = None,
               precision: str = "fp32", save_models: bool = False,
               cached_cells: dict[Path, Path] | None = None) -> list[Path]:
    """Run every cell with `executor` (default: a LocalExecutor); returns the result paths
    of cells that failed. `precision` is the run's, checked by `resolve_precision`.
    `cached_cells`: cell file -> a copy scored before elsewhere (eval-vectors' reference row),
    put in place when the cell is absent, then planned like any cell (skipped when its key fits).

    A finished cell is skipped only when its key (bench.run.keys) equals the one these
    settings and this data give. Cells made otherwise, here or under the same model and
    corpus with another seed, are refused with what differs, unless `force`: then they are
    redone (or, for seeds this run does not make, moved aside as `cells/*.stale`), and
    unreadable cell files are moved aside as `cells/*.corrupt` and redone.
    """
    check_folder(out_dir, "--out")  # only a new or empty folder, or one of ours
    executor = executor if executor is not None else LocalExecutor()
    data_root = resolve_data_dir(data_dir)
    cells = matrix.cells()
    # Every corpus, the similarity sets, the probe's tagged corpus and pretrained configs are
    # read before anything is written: bad data stops the run with one line and no partial results.
    fingerprints = {}
    for corpus in matrix.corpora:
        prepared = prepare_corpus(corpus, data_root, matrix.tokenizer, matrix.vocab)
        check_lm_splits(matrix, prepared)
        check_checkpoints(matrix, prepared)
        check_softmax_cutoffs(matrix, prepared)
        fingerprints[corpus] = prepared.fingerprint
    eval_data = EvalData(metrics.similarity_sets(data_root), probe_corpora(matrix, data_root))
    for model in matrix.models:
        check = matrix.spec(model).check
        if check is not None:
            check(matrix.model_config(model), f"model.{model}")
    check_probe_layers(matrix)
    finetune.check_starting_points(matrix, data_root)  # init_from: each seed's saved biLM and its vocabulary
    read_by = {model: eval_data.select(matrix.spec(model)) for model in matrix.models}
    expected = {(model, corpus): Expected(config_block(matrix, model, precision),
                                          expected_key(matrix, model, precision, fingerprints[corpus],
                                                       read_by[model].probe_fingerprint,
                                                       read_by[model].similarity_sets))
                for model in matrix.models for corpus in matrix.corpora}
    for path, cached in (cached_cells or {}).items():
        reference.restore(cached, path)
    plan = plan_cells(out_dir, cells, expected, force)
    plan.move_aside()
    remove_stale_temp_files(out_dir)
    remove_stale_temp_files(out_dir / "cells")
    write_json_atomic(out_dir / "matrix.json", {"matrix": matrix.to_dict(), "command": command_line()})
    jobs = {cell_path(out_dir, *cell): CellJob(matrix, *cell, data_root, device, progress, command_line(), precision,
                                               model_dir(out_dir, *cell) if save_models else None)
            for cell in plan.to_run}
    failed = []
    for path, result in tqdm(executor.run(jobs), total=len(cells), initial=len(cells) - len(jobs),
                             desc=f"matrix {matrix.name}", unit="cell", disable=not progress):
        if result["status"] != "ok":
            failed.append(path)
        write_json_atomic(path, result)
    return failed


# A language model trains on train, is guided by validation and scored on validation and test.
LM_SPLITS = ("train", "validation", "test")


def check_lm_splits(matrix: Matrix, prepared: PreparedCorpus) -> None:
    """Refuse, before anything runs, a corpus that lacks a split the matrix's language models
    need: their cells would otherwise score fewer splits than they report, or fail."""
    language_models = [m for m in matrix.models if matrix.spec(m).family in ("lm", "bilm")]
    missing = [split for split in LM_SPLITS if split not in prepared.streams]
    if language_models and missing:
        source = prepared.fingerprint.get("source")
        where = f"corpus '{prepared.name}'" + (f" ({source})" if source and source != prepared.name else "")
        raise BenchError(f"{where} has no {' and no '.join(missing)} split, which the language models "
                         f"{', '.join(language_models)} need: expected train, validation and test "
                         f"({', '.join(f'{split}.txt' for split in LM_SPLITS)} in a corpus folder)")


def check_softmax_cutoffs(matrix: Matrix, prepared: PreparedCorpus) -> None:
    """Refuse, before anything runs, a biLM's adaptive softmax cut beyond this corpus's
    vocabulary (a biLM with init_from reads the saved one, which its config was trained on)."""
    for model in matrix.models:
        cutoffs = getattr(matrix.model_config(model), "softmax_cutoffs", ())
        if cutoffs and not finetune.starts_from_saved(matrix, model) and cutoffs[-1] >= len(prepared.vocab):
            raise BenchError(f"model.{model}.softmax_cutoffs {list(cutoffs)}: expected every cutoff < "
                             f"{len(prepared.vocab)} (the words in the vocabulary of corpus '{prepared.name}')")


def check_checkpoints(matrix: Matrix, prepared: PreparedCorpus) -> None:
    """Refuse, before anything runs, a `checkpoint =` that is missing, was saved by another model
    or config, or was trained on another vocabulary than this corpus gives."""
    for model in matrix.models:
        checkpoint = matrix.checkpoint(model)
        if checkpoint is not None:
            checkpoints.check_matches(checkpoint, model, matrix.model_config(model), prepared, f"model.{model}")


@dataclass
class CellPlan:
    """What a run does with the cells of its folder: run these, move those aside first."""

    to_run: list[tuple[str, str, int]] = field(default_factory=list)
    aside: dict[Path, str] = field(default_factory=dict)  # cell file -> suffix (.corrupt | .stale)

    def move_aside(self) -> None:
        for path, suffix in self.aside.items():
            os.replace(path, path.with_name(path.name + suffix))


class Expected(NamedTuple):
    """The config block and key (bench.run.keys) a cell of this run gets."""

    config: dict
    key: dict


def plan_cells(out_dir: Path, cells: list[tuple[str, str, int]], expected: dict[tuple[str, str], Expected],
               force: bool) -> CellPlan:
    """Compare every result in `out_dir/cells` that shares a model and corpus with this run
    against the key this run would give it; refuse (BenchError) on any difference unless `force`.
    A file not named as its stored cell (bench.run.keys.cell_file_name) is refused even with
    `force`: it would be a second copy of its cell, or another cell's file replaced."""
    plan, refused = CellPlan(), []
    wanted = {cell_path(out_dir, *cell): cell for cell in cells}
    for path in sorted((out_dir / "cells").glob("*.json")):
        try:
            old = read_result(path)
        except BenchError as exc:
            if not force:
                raise BenchError(f"{exc}; `run --force` moves it aside (cells/{path.name}.corrupt) and "
                                 f"redoes the cell") from exc
            plan.aside[path] = ".corrupt"
            continue
        cell = old["cell"]
        stored = (cell["model"], cell["corpus"], cell["seed"])
        if path.name != cell_file_name(*stored):  # made under another naming, or renamed by hand
            raise BenchError(f"{path}: holds model {stored[0]} on corpus {stored[1]!r} seed {stored[2]}, whose file "
                             f"is named {cell_file_name(*stored)}; run `lm-lineage migrate {out_dir}` once to rename "
                             f"its cells")
        if wanted.get(path, stored) != stored:  # two cells whose names' hashes collide: neither may replace the other
            raise BenchError(f"{path}: holds model {stored[0]} on corpus {stored[1]!r} seed {stored[2]}, and this "
                             f"run's cell {wanted[path][0]} on {wanted[path][1]!r} seed {wanted[path][2]} has the "
                             f"same file name; use another --out")
        new = expected.get((cell["model"], cell["corpus"]))
        if new is None or old.get("status") != "ok" or old["key"]["hash"] == new.key["hash"]:
            continue  # another model or corpus, a failed cell (redone), or the same settings and data
        if force:
            plan.aside.update({} if path in wanted else {path: ".stale"})
            continue
        refused.append(f"{path.name}: {describe_difference(old, new.config, new.key)}")
    if refused:
        more = f" (and {len(refused) - 3} more cells)" if len(refused) > 3 else ""
        raise BenchError(f"{out_dir} holds cells made with other settings or data, which this run would mix "
                         f"with its own: " + "; ".join(refused[:3]) + more
                         + "; use --force to redo them, or another --out")
    for path, cell in wanted.items():
        if force or path in plan.aside or not path.exists():
            plan.to_run.append(cell)
            continue
        old = read_result(path)  # readable: checked above
        if old.get("status") != "ok" or old["key"]["hash"] != expected[cell[:2]].key["hash"]:
            plan.to_run.append(cell)  # a failed cell is redone
    return plan

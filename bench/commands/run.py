"""`lm-lineage run`: a matrix of models x corpora x seeds, then its tables and report, and the
parts eval-vectors runs the same way (`run_and_render`, `exit_code`)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

from bench.commands.flags import split_names
from bench.errors import BenchError
from bench.run import outdir

MAX_CELLS_WITHOUT_YES = 1_000  # more is likely a typo (seeds = 100000): such a run asks for --yes


def run_command(args) -> int:
    from bench.run.config import load_matrix

    if args.seeds is not None and args.seeds < 1:
        raise BenchError(f"--seeds must be >= 1, got {args.seeds}")
    matrix = load_matrix(args.matrix, args.set, models=split_names(args.models, "--models"),
                         corpora=split_names(args.corpus, "--corpus"), seeds=args.seeds,
                         vectors=split_names(args.vectors, "--vectors"), unsets=args.unset)
    cells = len(matrix.cells())
    if cells > MAX_CELLS_WITHOUT_YES and not args.yes:
        raise BenchError(f"matrix {matrix.name}: {cells:,} cells ({len(matrix.models)} models x {len(matrix.corpora)} "
                         f"corpora x {len(matrix.seeds)} seeds), more than {MAX_CELLS_WITHOUT_YES:,}; check its "
                         f"seeds and lists, or pass --yes to run them all")
    out = f"runs/{matrix.name}" if args.out is None else args.out
    with outdir.claim(out, "--out", named=args.out is not None) as out_dir:
        failed, path = run_and_render(matrix, out_dir, args, make_executor(args), args.device,
                                      precision=args.precision, save_models=args.save_models)
    if not args.quiet:
        print(results_table(out_dir))
    print(f"results: {out_dir}/cells, tables and report: {path}")
    return exit_code(failed)


def run_and_render(matrix, out_dir: Path, args, executor, device: str, precision: str = "fp32",
                   save_models: bool = False, cached_cells: dict | None = None,
                   before_render: Callable[[Path], None] | None = None) -> tuple[list[Path], Path]:
    """run_matrix, then the tables and report: (failed cells, report path). Interrupted
    (Ctrl-C, SIGTERM), it re-renders the tables from the cells kept before it re-raises, so
    they match the cells; the executor is closed either way. `before_render(cells folder)`
    runs on the cells kept before either render."""
    from bench.report import render as report
    from bench.run.runner import resolve_precision, run_matrix

    try:
        resolved = executor.resolve_device(device)
        # Progress bars are for a person watching: none in a log file or pipe.
        progress = not args.no_progress and sys.stderr.isatty()
        failed = run_matrix(matrix, out_dir, args.data_dir, resolved, force=args.force, progress=progress,
                            executor=executor, precision=resolve_precision(precision, resolved),
                            save_models=save_models, cached_cells=cached_cells)
    except KeyboardInterrupt:
        if before_render is not None:
            before_render(out_dir / "cells")
        render_finished_cells(report, out_dir)
        raise
    finally:
        executor.close()
    if before_render is not None:
        before_render(out_dir / "cells")
    return failed, report.render(out_dir)


def render_finished_cells(report, out_dir: Path) -> None:
    """The tables of the cells an interrupted run kept; a failure to render is a warning, so
    the interrupt still ends the command."""
    if any((out_dir / "cells").glob("*.json")):
        try:
            report.render(out_dir)
        except BenchError as exc:
            print(f"lm-lineage: the tables of {out_dir} were not re-rendered: {exc}", file=sys.stderr)


def results_table(out_dir: Path) -> str:
    """The closing table of a run (bench.report.summary): the main score per model and task."""
    from bench.report import summary
    from bench.report.sections import MIN_SCORED_PAIRS
    from bench.report.tables import tables
    from bench.run.results import load_results

    cells = out_dir / "cells"  # absent when no cell ran
    table = summary.summary(tables(load_results(cells) if cells.is_dir() else []), MIN_SCORED_PAIRS)
    return (f"main scores (mean over seeds; similarity: mean Spearman rho over the sets with >= {MIN_SCORED_PAIRS} "
            f"pairs covered):\n" + summary.render(table))


def exit_code(failed: list[Path]) -> int:
    """1, naming them, when cells failed (their reasons are in their JSON and the report); else 0."""
    if not failed:
        return 0
    print(f"{len(failed)} cell(s) failed (reasons in their JSON and in the report): "
          + ", ".join(path.stem for path in failed), file=sys.stderr)
    return 1


def make_executor(args):
    """The executor --executor names; Ray connects here, before anything is written."""
    from bench.run.executors import LocalExecutor, RayExecutor

    if args.executor == "local":
        if args.ray_address is not None or args.ray_cpus is not None:
            raise BenchError("--ray-address and --ray-cpus need --executor ray")
        return LocalExecutor(isolate=not args.in_process)
    if args.executor == "ray":
        if args.in_process:
            raise BenchError("--in-process needs --executor local")
        return RayExecutor(args.ray_address or "auto", 1.0 if args.ray_cpus is None else args.ray_cpus)
    raise BenchError(f"--executor {args.executor!r}: expected local or ray")

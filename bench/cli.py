"""`lm-lineage run | report | list`.

User errors (`BenchError`) print one line and exit with code 2; a run with failed cells
exits with code 1 after writing every other cell and the tables.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.errors import BenchError

# The machines this runs on often have no route to the Hugging Face hub; every model and
# corpus we load by default is local, so never wait on the hub unless the user asks.
for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_name, "1")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lm-lineage", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a matrix of models x corpora x seeds")
    run.add_argument("--matrix", default="quick", help="a shipped matrix name or a .toml file (default: quick)")
    run.add_argument("--models", help="comma-separated models, replacing the matrix's list")
    run.add_argument("--corpus", help="comma-separated corpora, replacing the matrix's list")
    run.add_argument("--seeds", type=int, help="number of seeds (0..N-1), replacing the matrix's")
    run.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override one setting, e.g. --set train.epochs=1 or --set model.word2vec-sg.batch_size=4096")
    run.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    run.add_argument("--data-dir", help="data root holding corpora/ and wordsim/ (default: $LM_LINEAGE_DATA)")
    run.add_argument("--out", default=None, help="output folder (default: runs/MATRIX)")
    run.add_argument("--force", action="store_true", help="redo cells that already have a result")
    run.add_argument("--allow-hub", action="store_true",
                     help="let datasets/transformers reach the Hugging Face hub (hub corpora need it)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--in-process", action="store_true",
                     help="run cells in this process instead of a fresh worker each (debugging; timings then "
                          "depend on the cells before)")

    report = commands.add_parser("report", help="render tables and report.md from result files")
    report.add_argument("--results", default="results", help="folder of result JSON (default: results)")
    report.add_argument("--out", default=None, help="where tables go (default: the results folder)")

    flow = commands.add_parser("gradient-flow", help="the vanishing-gradient diagnostic: gradient_flow.csv")
    flow.add_argument("--out", default="results", help="folder for gradient_flow.csv (default: results)")
    flow.add_argument("--seeds", type=int, default=3, help="number of seeds (default: 3)")
    flow.add_argument("--corpus", default="lee", help="text the windows come from (default: lee)")
    flow.add_argument("--data-dir", help="data root (default: $LM_LINEAGE_DATA)")

    commands.add_parser("list", help="list models, corpora, matrices and metrics")
    return parser


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _run(args) -> int:
    if args.allow_hub:
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ[name] = "0"
    from bench import report
    from bench.config import load_matrix
    from bench.runner import resolve_device, run_matrix

    if args.seeds is not None and args.seeds < 1:
        raise BenchError(f"--seeds must be >= 1, got {args.seeds}")
    matrix = load_matrix(args.matrix, args.set, models=_split(args.models), corpora=_split(args.corpus),
                         seeds=args.seeds)
    device = resolve_device(args.device)
    out_dir = Path(args.out or f"runs/{matrix.name}")
    failed = run_matrix(matrix, out_dir, args.data_dir, device, force=args.force, progress=not args.no_progress,
                        isolate=not args.in_process)
    path = report.render(out_dir)
    print(f"results: {out_dir}/cells, tables and report: {path}")
    if failed:
        print(f"{len(failed)} cell(s) failed (reasons in their JSON and in the report): "
              + ", ".join(p.stem for p in failed), file=sys.stderr)
        return 1
    return 0


def _gradient_flow(args) -> int:
    from bench.diagnostics import GradientFlowConfig, gradient_flow_table
    from bench.results import write_text_atomic

    if args.seeds < 1:
        raise BenchError(f"--seeds must be >= 1, got {args.seeds}")
    table = gradient_flow_table(GradientFlowConfig(corpus=args.corpus), list(range(args.seeds)), args.data_dir)
    path = Path(args.out) / "gradient_flow.csv"
    write_text_atomic(path, table.to_csv(index=False, float_format="%.6g"))
    far = table[table["k"] == table["k"].max()].groupby("model")["grad_norm"].mean()
    print(f"{path}: mean |d loss_t / d h_(t-k)| at k={table['k'].max()}: "
          + ", ".join(f"{model} {value:.3g}" for model, value in far.items()))
    return 0


def _list() -> int:
    from bench.config import MATRIX_DIR
    from bench.datasets import CORPORA
    from bench.metrics import METRICS
    from bench.models import MODELS

    print("models:")
    for spec in MODELS.values():
        print(f"  {spec.name:18} [{spec.family}] {spec.description}")
    print("corpora:")
    for spec in CORPORA.values():
        print(f"  {spec.name:18} [{spec.kind}] {spec.description}")
    print("matrices:")
    for path in sorted(MATRIX_DIR.glob("*.toml")):
        print(f"  {path.stem}")
    print("metrics:")
    for metric in METRICS.values():
        print(f"  {metric.name:18} {metric.direction} is better, unit: {metric.unit}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "report":
            from bench import report

            path = report.render(Path(args.results), Path(args.out) if args.out else None)
            print(f"tables and report: {path}")
            return 0
        if args.command == "gradient-flow":
            return _gradient_flow(args)
        return _list()
    except BenchError as exc:
        print(f"lm-lineage: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lm-lineage: interrupted; finished cells are kept, re-run to continue", file=sys.stderr)
        return 130

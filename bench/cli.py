"""`lm-lineage run | report | list`.

User errors (`BenchError`) print one line and exit with code 2; a run with failed cells
exits with code 1 after writing every other cell and the tables.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import tomllib
from pathlib import Path

from bench.errors import BenchError
from bench.run import outdir

# The machines this runs on often have no route to the Hugging Face hub; every model and
# corpus we load by default is local, so never wait on the hub unless the user asks.
for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_name, "1")


# Defaults of the output flags: every command writes under runs/ unless told otherwise, never
# into the committed results/ (`bench.run.outdir.check_named`).
EVAL_VECTORS_OUT = "runs/eval-vectors"
GRADIENT_FLOW_OUT = "runs/gradient-flow"
GATES_OUT = "runs/quality_gates.json"
MAX_CELLS_WITHOUT_YES = 1_000  # more is likely a typo (seeds = 100000): such a run asks for --yes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lm-lineage", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a matrix of models x corpora x seeds")
    run.add_argument("--matrix", default="quick", help="a shipped matrix name or a .toml file (default: quick)")
    run.add_argument("--models", help="comma-separated models, replacing the matrix's list")
    run.add_argument("--corpus", help="comma-separated corpora, replacing the matrix's list")
    run.add_argument("--seeds", type=int, help="number of seeds (0..N-1), replacing the matrix's")
    run.add_argument("--vectors", metavar="PATH[,PATH...]",
                     help="word-vector files to score as extra rows (kind = \"vectors\", format detected), each "
                          "named after its file stem")
    run.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override one setting, e.g. --set train.epochs=1 or --set model.word2vec-sg.batch_size=4096")
    run.add_argument("--unset", action="append", default=[], metavar="SECTION.KEY",
                     help="drop one setting of the matrix file so its default applies, e.g. --unset "
                          "probe.wsd_max_train_per_word (no cap)")
    run.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    run.add_argument("--data-dir", help="data root holding corpora/ and wordsim/ (default: $LM_LINEAGE_DATA)")
    run.add_argument("--out", default=None, help="output folder (default: runs/MATRIX)")
    run.add_argument("--force", action="store_true", help="redo cells that already have a result")
    run.add_argument("--yes", action="store_true",
                     help=f"run a matrix of more than {MAX_CELLS_WITHOUT_YES:,} cells (without it, such a matrix, "
                          f"likely a typo in seeds or a list, is refused)")
    run.add_argument("--save-models", action="store_true",
                     help="save what each cell trains under OUT/models/<cell>/: word vectors as word2vec binary, "
                          "LM and biLM weights as safetensors with their config (checkpoint.json)")
    run.add_argument("--allow-hub", action="store_true",
                     help="let datasets/transformers reach the Hugging Face hub (hub corpora need it)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--in-process", action="store_true",
                     help="run cells in this process instead of a fresh worker each (debugging; timings then "
                          "depend on the cells before)")
    run.add_argument("--precision", default="fp32",
                     help="fp32 | bf16: bf16 autocast of the forward passes of the LMs bench.train.lm trains, on CUDA "
                          "only (default: fp32)")
    run.add_argument("--executor", default="local",
                     help="local: one cell at a time on this machine (default) | ray: cells as Ray tasks")
    run.add_argument("--ray-address",
                     help="with --executor ray: HOST:PORT or ray://HOST:PORT of a running cluster, auto (the one "
                          "`ray start` made here, or $RAY_ADDRESS; the default) or local (a private one)")
    run.add_argument("--ray-cpus", type=float, help="with --executor ray: CPUs each cell asks for (default: 1)")

    report = commands.add_parser("report", help="render tables, report.md and report.html from result files")
    report.add_argument("--results", default="results", help="folder of result JSON (default: results)")
    report.add_argument("--out", default=None,
                        help="where tables go (default: the results folder, unless that is the committed results/: "
                             "then --out is needed)")

    flow = commands.add_parser("gradient-flow", help="the vanishing-gradient diagnostic: gradient_flow.csv and .png")
    flow.add_argument("--out", default=None,
                      help=f"folder for gradient_flow.csv and .png (default: {GRADIENT_FLOW_OUT})")
    flow.add_argument("--seeds", type=int, default=3, help="number of seeds (default: 3)")
    flow.add_argument("--corpus", default="lee", help="text the windows come from (default: lee)")
    flow.add_argument("--data-dir", help="data root (default: $LM_LINEAGE_DATA)")
    flow.add_argument("--regime-seeds", type=int, default=0,
                      help="also measure both regimes on Brown with this many seeds: the Elman RNN by spectral radius "
                           "with LSTM and GRU, at init and trained (gradient_regimes.csv), and training with and "
                           "without clipping (clipping.csv); 8 short trainings, about 8 CPU-minutes a seed "
                           "(default: 0, skip)")

    gates = commands.add_parser("gates", help="record the quality gates' seed spread (bench.run.gates)")
    gates.add_argument("--seeds", type=int, default=5, help="number of seeds (0..N-1), at least 2 (default: 5)")
    gates.add_argument("--out", default=None,
                       help=f"the JSON file to write (default: {GATES_OUT}; the gate tests read "
                            f"results/quality_gates.json)")

    migrate = commands.add_parser("migrate", help="add cell keys to results made before cells were keyed (once)")
    migrate.add_argument("results", help="folder of result JSON (searched recursively for cells/*.json)")
    migrate.add_argument("--data-dir", help="the data root the cells were scored with (default: $LM_LINEAGE_DATA)")

    vectors = commands.add_parser(
        "eval-vectors", help="how good are my vectors? score files on the similarity sets and analogies, "
                             "beside glove-6b-50d")
    vectors.add_argument("files", nargs="+", metavar="FILE",
                         help="word-vector files (word2vec text/binary, GloVe text, fastText .vec, gensim "
                              "KeyedVectors; format detected), each row named after its file stem")
    vectors.add_argument("--out", default=None, help=f"output folder (default: {EVAL_VECTORS_OUT})")
    vectors.add_argument("--data-dir", help="data root: score every similarity set in its wordsim/ (default: "
                                            "$LM_LINEAGE_DATA; without one, gensim's WS-353 and SimLex-999)")
    vectors.add_argument("--force", action="store_true", help="score files that already have a result again")
    vectors.add_argument("--no-progress", action="store_true", help="no progress bars")

    commands.add_parser("list", help="list models, corpora, matrices and metrics")
    return parser


def _split(value: str | None, flag: str) -> list[str] | None:
    """A comma-separated flag's names; None when the flag is not given. An empty list (`--models ,`,
    `--corpus "$UNSET"`) is an error, never "the matrix's whole list"."""
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise BenchError(f"{flag} {value!r}: expected a comma-separated list of names, got none")
    return names


def _run(args) -> int:
    if args.allow_hub:
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            os.environ[name] = "0"
    from bench.run.config import load_matrix

    if args.seeds is not None and args.seeds < 1:
        raise BenchError(f"--seeds must be >= 1, got {args.seeds}")
    matrix = load_matrix(args.matrix, args.set, models=_split(args.models, "--models"),
                         corpora=_split(args.corpus, "--corpus"), seeds=args.seeds,
                         vectors=_split(args.vectors, "--vectors"), unsets=args.unset)
    cells = len(matrix.cells())
    if cells > MAX_CELLS_WITHOUT_YES and not args.yes:
        raise BenchError(f"matrix {matrix.name}: {cells:,} cells ({len(matrix.models)} models x {len(matrix.corpora)} "
                         f"corpora x {len(matrix.seeds)} seeds), more than {MAX_CELLS_WITHOUT_YES:,}; check its "
                         f"seeds and lists, or pass --yes to run them all")
    out = f"runs/{matrix.name}" if args.out is None else args.out
    with outdir.claim(out, "--out", named=args.out is not None) as out_dir:
        failed, path = _run_and_render(matrix, out_dir, args, _executor(args), args.device, precision=args.precision,
                                       save_models=args.save_models)
    print(f"results: {out_dir}/cells, tables and report: {path}")
    return _exit_code(failed)


def _run_and_render(matrix, out_dir: Path, args, executor, device: str, precision: str = "fp32",
                    save_models: bool = False) -> tuple[list[Path], Path]:
    """run_matrix, then the tables and report: (failed cells, report path). Interrupted
    (Ctrl-C, SIGTERM), it re-renders the tables from the cells kept before it re-raises, so
    they match the cells; the executor is closed either way."""
    from bench.report import render as report
    from bench.run.runner import resolve_precision, run_matrix

    try:
        resolved = executor.resolve_device(device)
        failed = run_matrix(matrix, out_dir, args.data_dir, resolved, force=args.force, progress=not args.no_progress,
                            executor=executor, precision=resolve_precision(precision, resolved),
                            save_models=save_models)
    except KeyboardInterrupt:
        _render_finished_cells(report, out_dir)
        raise
    finally:
        executor.close()
    return failed, report.render(out_dir)


REFERENCE_VECTORS = "glove-6b-50d"  # the row eval-vectors prints beside the user's files


def _eval_vectors(args) -> int:
    """A run of a matrix made here: one `kind = "vectors"` row per file plus glove-6b-50d, on
    the embedded Lee corpus (which vectors read from files ignore: it only labels the cells)."""
    import pandas as pd

    from bench.report.render import MIN_SCORED_PAIRS, tables
    from bench.run.config import add_vectors_model, matrix_from_dict
    from bench.run.executors import LocalExecutor
    from bench.run.results import load_results

    raw = {"description": "eval-vectors: word-vector files scored beside " + REFERENCE_VECTORS,
           "models": [REFERENCE_VECTORS], "corpora": ["lee"], "seeds": 1}
    names = [add_vectors_model(raw, path) for path in args.files]
    matrix = matrix_from_dict(raw, "eval-vectors", "eval-vectors")
    out = EVAL_VECTORS_OUT if args.out is None else args.out
    with outdir.claim(out, "--out", named=args.out is not None) as out_dir:
        failed, path = _run_and_render(matrix, out_dir, args, LocalExecutor(), "auto")
    frames = tables(load_results(out_dir / "cells"))
    wordsim = frames["wordsim"].assign(scored=lambda f: f["pairs"] - f["oov_pairs"])
    # Each model on the pairs it covers, with their count; too few pairs give no correlation.
    wordsim["cell"] = [f"{rho:.3f} ({n})" if n >= MIN_SCORED_PAIRS else f"– ({n})"
                       for rho, n in zip(wordsim["spearman"], wordsim["scored"])]
    analogy = frames["analogy"][frames["analogy"]["section"] == "total"].assign(
        cell=lambda f: [f"{100 * a:.1f}% ({q - oov})" if a == a else f"– ({q - oov})"
                        for a, q, oov in zip(f["accuracy"], f["questions"], f["oov_questions"])],
        method=lambda f: f["method"] + " (Google analogies)")
    table = pd.concat([wordsim.pivot(index="model", columns="benchmark", values="cell"),
                       analogy.pivot(index="model", columns="method", values="cell")], axis=1)
    order = [name for name in [*names, REFERENCE_VECTORS] if name in table.index]
    print(f"Spearman rho per similarity set (pairs the model covers; fewer than {MIN_SCORED_PAIRS}: –), "
          f"analogy accuracy (questions it covers):")
    print(table.reindex(order).rename_axis(index=None, columns=None).fillna("–").to_string())
    print(f"results: {out_dir}/cells, tables and report: {path}")
    return _exit_code(failed)


def _exit_code(failed: list[Path]) -> int:
    """1, naming them, when cells failed (their reasons are in their JSON and the report); else 0."""
    if not failed:
        return 0
    print(f"{len(failed)} cell(s) failed (reasons in their JSON and in the report): "
          + ", ".join(path.stem for path in failed), file=sys.stderr)
    return 1


def _render_finished_cells(report, out_dir: Path) -> None:
    if any((out_dir / "cells").glob("*.json")):
        try:
            report.render(out_dir)
        except BenchError as exc:
            print(f"lm-lineage: the tables of {out_dir} were not re-rendered: {exc}", file=sys.stderr)


def _migrate(args) -> int:
    from bench.data.datasets import resolve_data_dir
    from bench.run.migrate import migrate_folder

    migrated = migrate_folder(Path(args.results), resolve_data_dir(args.data_dir))
    print(f"{len(migrated)} result file(s) under {args.results} now carry their cell key")
    return 0


def _executor(args):
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


def _gradient_flow(args) -> int:
    from bench.report import figures
    from bench.eval import diagnostics
    from bench.run.results import write_bytes_atomic

    if args.seeds < 1:
        raise BenchError(f"--seeds must be >= 1, got {args.seeds}")
    if args.regime_seeds < 0:
        raise BenchError(f"--regime-seeds must be >= 0, got {args.regime_seeds}")
    out = GRADIENT_FLOW_OUT if args.out is None else args.out
    with outdir.claim(out, "--out", named=args.out is not None) as out_dir:
        path = out_dir / "gradient_flow.csv"
        table = diagnostics.gradient_flow_table(diagnostics.GradientFlowConfig(corpus=args.corpus),
                                                list(range(args.seeds)), args.data_dir)
        files = {path.name: _csv_bytes(table), "gradient_flow.png": figures.gradient_flow(table)}
        if args.regime_seeds:
            config = diagnostics.GradientRegimesConfig()
            prepared = diagnostics.prepare_regime_corpus(config, args.data_dir)
            seeds = list(range(args.regime_seeds))
            regimes = diagnostics.gradient_regimes_table(config, prepared, seeds)
            clipping = diagnostics.clipping_table(config, prepared, seeds)
            files |= {"gradient_regimes.csv": _csv_bytes(regimes),
                      "gradient_regimes.png": figures.gradient_regimes(regimes),
                      "clipping.csv": _csv_bytes(clipping), "clipping.png": figures.clipping(clipping)}
        for name, content in files.items():  # all measured before the first write: nothing half-written
            write_bytes_atomic(out_dir / name, content)
    far = table[table["k"] == table["k"].max()].groupby("model")["grad_norm"].mean()
    print(f"{path} (plot: {path.with_suffix('.png').name}): mean |d loss_t / d h_(t-k)| at k={table['k'].max()}: "
          + ", ".join(f"{model} {value:.3g}" for model, value in far.items()))
    if args.regime_seeds:
        verdicts = {"Elman gradients explode above radius 1 (init; smallest growth factor per step above 1)":
                    diagnostics.explodes_above_one(regimes),
                    "LSTM/GRU keep gradients 50 steps back (trained; log10 retention over vanishing Elman)":
                    diagnostics.gated_cells_keep_gradients(regimes),
                    "clipping prevents divergence (final loss unclipped - clipped, nats/token)":
                    diagnostics.clipping_prevents_divergence(clipping)}
        for claim, verdict in verdicts.items():
            print(f"{claim}: {'holds' if verdict.holds else 'does not hold'} in {verdict.seeds_holding} of "
                  f"{verdict.seeds} seed(s), effect {verdict.effect:.3g} ± {verdict.sd:.3g}")
    return 0


def _csv_bytes(table) -> bytes:
    return table.to_csv(index=False, float_format="%.6g").encode("utf-8")


def _gates(args) -> int:
    from bench.run.gates import SCHEMA, record_gates
    from bench.run.results import write_json_atomic

    if args.seeds < 2:
        raise BenchError(f"--seeds must be >= 2 (a gate's tolerance is the spread over seeds), got {args.seeds}")
    out = outdir.as_path(GATES_OUT if args.out is None else args.out, "--out")
    # The record is one file: checked as our own or new, and its folder locked, before minutes of training.
    outdir.check_record(out, "--out", SCHEMA)
    outdir.check_named(out.parent, "--out", named=args.out is not None)
    with outdir.locked(out.parent, "--out"):
        payload = record_gates(list(range(args.seeds)))
        write_json_atomic(out, payload)
    print(f"{out}: {len(payload['gates'])} quality gates over {args.seeds} seeds")
    return 0


def _list() -> int:
    from bench.run.config import MATRIX_DIR
    from bench.data.datasets import CORPORA
    from bench.eval.metrics import METRICS
    from bench.models.registry import KINDS, MODELS

    print("models:")
    for spec in MODELS.values():
        print(f"  {spec.name:18} [{spec.family}] {spec.description}")
    print("kinds (a model of your own: [model.NAME] with kind = ...; see the README's Bring your own model):")
    for spec in KINDS.values():
        print(f"  {spec.name:18} [{spec.family}] {spec.description}")
    print("corpora:")
    for spec in CORPORA.values():
        print(f"  {spec.name:18} [{spec.kind}] {spec.description}")
    print("matrices:")
    for path in sorted(MATRIX_DIR.glob("*.toml")):
        print(f"  {path.stem:28} {tomllib.loads(path.read_text()).get('description', '')}")
    print("metrics:")
    for metric in METRICS.values():
        print(f"  {metric.name:18} {metric.direction} is better, unit: {metric.unit}")
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as SIGINT raises KeyboardInterrupt, and handled as
    one on the way up: the run unwinds (its cell's worker is stopped, no partial file is left,
    the tables are rendered from the cells kept) instead of dying where it stands."""


def _raise_terminated(signum, frame):
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Only the main thread may set signal handlers (main() also runs inside tests' threads).
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "report":
            from bench.report import render as report

            # The tables go to --out, else into the results folder: either must take them.
            out, flag = (args.results, "--results") if args.out is None else (args.out, "--out")
            with outdir.claim(out, flag, named=args.out is not None) as out_dir:
                path = report.render(Path(args.results), out_dir)
            print(f"tables and report: {path} and {path.with_suffix('.html')}")
            return 0
        if args.command == "eval-vectors":
            return _eval_vectors(args)
        if args.command == "gradient-flow":
            return _gradient_flow(args)
        if args.command == "migrate":
            return _migrate(args)
        if args.command == "gates":
            return _gates(args)
        return _list()
    except BenchError as exc:
        print(f"lm-lineage: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("lm-lineage: terminated (SIGTERM); finished cells are kept, re-run to continue", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("lm-lineage: interrupted; finished cells are kept, re-run to continue", file=sys.stderr)
        return 128 + signal.SIGINT
    finally:
        if previous_sigterm is not None:  # None: not ours to set (another thread), or set outside Python
            signal.signal(signal.SIGTERM, previous_sigterm)

"""`lm-lineage run | eval-vectors | report | claims | list | data build | migrate | gradient-flow | gates`.

Exit codes: 0 done; 1 cells of a run or of eval-vectors failed (every other cell and the
tables are written); 2 bad input (a `BenchError`: one line naming the file or key, nothing half-written);
130 / 143 interrupted by Ctrl-C / SIGTERM (finished cells are kept).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import overload

from bench.errors import BenchError
from bench.eval import VECTOR_TASKS
from bench.run import outdir

# The machines this runs on often have no route to the Hugging Face hub; every model and
# corpus we load by default is local, so a command never waits on the hub unless the user asks.
HUB_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


@contextlib.contextmanager
def _hub_access(allow: bool):
    """The hub's offline switches for one command: "0" with --allow-hub, else "1" unless the
    caller's environment sets them; restored after, so main() in a test or another program
    leaves os.environ as it found it (workers started meanwhile inherit the command's)."""
    previous = {name: os.environ.get(name) for name in HUB_OFFLINE_VARIABLES}
    for name in HUB_OFFLINE_VARIABLES:
        if allow:
            os.environ[name] = "0"
        else:
            os.environ.setdefault(name, "1")
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# Defaults of the output flags: every command writes under runs/ unless told otherwise, never
# into the committed results/ (`bench.run.outdir.check_named`).
EVAL_VECTORS_OUT = "runs/eval-vectors"
GRADIENT_FLOW_OUT = "runs/gradient-flow"
GATES_OUT = "runs/quality_gates.json"
MAX_CELLS_WITHOUT_YES = 1_000  # more is likely a typo (seeds = 100000): such a run asks for --yes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lm-lineage", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n")[1])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
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
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bars (they are shown only when stderr is a terminal)")
    run.add_argument("--quiet", action="store_true", help="no results table at the end, only the paths")
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

    claims = commands.add_parser("claims", help="the claims ledger: each claim of the note with its verdict, "
                                                "computed from the result files (bench.report.claims)")
    claims.add_argument("--results", default="results", help="folder of result JSON (default: results)")

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

    migrate = commands.add_parser("migrate", help="add cell keys to results made before cells were keyed, and "
                                                  "rename cells to their current file names (once)")
    migrate.add_argument("results", help="folder of result JSON (searched recursively for cells/*.json)")
    migrate.add_argument("--data-dir", help="the data root the cells were scored with (default: $LM_LINEAGE_DATA)")

    vectors = commands.add_parser(
        "eval-vectors", help="how good are my vectors? score files on the similarity sets and analogies, "
                             "beside glove-6b-50d")
    vectors.add_argument("files", nargs="+", metavar="FILE",
                         help="word-vector files (word2vec text/binary, GloVe text, fastText .vec, gensim "
                              "KeyedVectors; format detected), each row named after its file stem, after its "
                              "folder where stems repeat (OUT/models/<cell>/vectors.bin), or NAME=FILE")
    vectors.add_argument("--tasks", default=",".join(VECTOR_TASKS), metavar="TASK[,TASK]",
                         help=f"what to score: some of {', '.join(VECTOR_TASKS)} (default: both)")
    vectors.add_argument("--no-reference", action="store_true",
                         help="no glove-6b-50d row (it is scored once per machine, then read from the cache)")
    vectors.add_argument("--out", default=None, help=f"output folder (default: {EVAL_VECTORS_OUT})")
    vectors.add_argument("--data-dir", help="data root: score every similarity set in its wordsim/ (default: "
                                            "$LM_LINEAGE_DATA; without one, gensim's WS-353 and SimLex-999)")
    vectors.add_argument("--force", action="store_true", help="score files that already have a result again")
    vectors.add_argument("--no-progress", action="store_true",
                         help="no progress bars (they are shown only when stderr is a terminal)")
    vectors.add_argument("--quiet", action="store_true", help="no results table at the end, only the paths")

    commands.add_parser("list", help="list models, corpora, probe tasks, matrices and metrics")

    data = commands.add_parser("data", help="build the data root (corpora, similarity sets) from public sources")
    build = data.add_subparsers(dest="data_command", required=True).add_parser(
        "build", help="fetch NLTK's corpora and the 13 similarity sets, build every folder of the data root and "
                      "check each file's sha256; folders that already verify are kept")
    build.add_argument("--out", metavar="DIR",
                       help="the data root to build (default: $LM_LINEAGE_DATA, else ~/lm-lineage-data)")
    build.add_argument("--only", metavar="NAME[,NAME...]",
                       help="these folders only (brown, brown-pos, ptb-sample, reuters, gutenberg, movie-reviews, "
                            "senseval2, wordsim)")
    build.add_argument("--nltk-archives", metavar="DIR",
                       help="take NLTK's archives (brown.zip, treebank.zip, ...) from DIR instead of downloading them")
    build.add_argument("--nltk-index", metavar="URL",
                       help="the NLTK package index to download from (default: NLTK's own)")
    build.add_argument("--wordsim-dir", metavar="DIR",
                       help="take the 13 EN-*.txt similarity sets from DIR instead of downloading them")
    build.add_argument("--base-url", metavar="URL",
                       help="where the similarity sets are downloaded from (default: data/word-sim of "
                            "mfaruqui/eval-word-vectors on GitHub)")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lm-lineage")
    except PackageNotFoundError:
        return "(not installed: pip install -e .)"


@overload
def _split(value: str, flag: str) -> list[str]: ...
@overload
def _split(value: None, flag: str) -> None: ...
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
    if not args.quiet:
        print(_results_table(out_dir))
    print(f"results: {out_dir}/cells, tables and report: {path}")
    return _exit_code(failed)


def _run_and_render(matrix, out_dir: Path, args, executor, device: str, precision: str = "fp32",
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
        _render_finished_cells(report, out_dir)
        raise
    finally:
        executor.close()
    if before_render is not None:
        before_render(out_dir / "cells")
    return failed, report.render(out_dir)


def _eval_vectors(args) -> int:
    """A run of a matrix made here: one `kind = "vectors"` row per file, plus glove-6b-50d
    (from the cache when scored before, bench.run.reference), on the embedded Lee corpus
    (which vectors read from files ignore: it only labels the cells, and bench.run.not_trained
    marks them so that no row claims it or a seed). The table printed and eval_vectors.csv come
    from bench.run.api's frame of each cell's rows."""
    import pandas as pd

    from bench.run import not_trained, reference
    from bench.run.api import VECTOR_COLUMNS, vector_frame
    from bench.run.config import add_vectors_model, matrix_from_dict, vectors_names
    from bench.run.executors import LocalExecutor
    from bench.run.results import load_results, write_text_atomic
    from bench.run.runner import cell_path

    tasks = _split(args.tasks, "--tasks")
    unknown = [task for task in tasks if task not in VECTOR_TASKS]
    if unknown:
        raise BenchError(f"--tasks {args.tasks}: unknown {', '.join(unknown)}; "
                         f"expected some of {', '.join(VECTOR_TASKS)}")
    raw = {"description": "eval-vectors: word-vector files" + ("" if args.no_reference else
                                                                " scored beside " + reference.REFERENCE_VECTORS),
           "models": [] if args.no_reference else [reference.REFERENCE_VECTORS], "corpora": ["lee"], "seeds": 1,
           "eval": {"tasks": tasks}}
    names = [add_vectors_model(raw, name, path, "eval-vectors") for name, path in vectors_names(args.files,
                                                                                                  "eval-vectors")]
    matrix = matrix_from_dict(raw, "eval-vectors", "eval-vectors")
    out = EVAL_VECTORS_OUT if args.out is None else args.out
    with outdir.claim(out, "--out", named=args.out is not None) as out_dir:
        cached_cells = {}
        if not args.no_reference:
            cached = reference.cache_path(matrix, "lee", args.data_dir)
            reference_cell = cell_path(out_dir, reference.REFERENCE_VECTORS, "lee", 0)
            cached_cells[reference_cell] = cached
        # In this process: a worker per file would import torch and gensim again for each,
        # and scoring read vectors has no training timings that other cells could skew.
        failed, path = _run_and_render(matrix, out_dir, args, LocalExecutor(isolate=False), "auto",
                                       cached_cells=cached_cells, before_render=not_trained.mark)
        if not args.no_reference:
            reference.keep(reference_cell, cached)
        scored = [vector_frame(r["metrics"]).assign(model=r["cell"]["model"])
                  for r in load_results(out_dir / "cells") if r["status"] == "ok"]
        columns = ["model", *VECTOR_COLUMNS]
        frame = pd.concat(scored, ignore_index=True)[columns] if scored else pd.DataFrame(columns=columns)
        write_text_atomic(out_dir / "eval_vectors.csv", frame.to_csv(index=False, float_format="%.6g"))
    if not args.quiet:
        print(_vectors_table(frame, [*names, reference.REFERENCE_VECTORS]))
    print(f"results: {out_dir}/cells, eval_vectors.csv, tables and report: {path}")
    return _exit_code(failed)


def _vectors_table(frame, order: list[str]) -> str:
    """One line per model: Spearman rho per similarity set and analogy accuracy per method,
    each with the pairs or questions the model covers (too few pairs give no correlation)."""
    import pandas as pd

    from bench.report.sections import MIN_SCORED_PAIRS

    def cell(row) -> str:
        if row.task == "analogy":  # accuracy is NaN when no question is covered
            return f"– ({row.covered})" if pd.isna(row.score) else f"{100 * row.score:.1f}% ({row.covered})"
        return f"{row.score:.3f} ({row.covered})" if row.covered >= MIN_SCORED_PAIRS else f"– ({row.covered})"

    shown = frame.assign(cell=[cell(row) for row in frame.itertuples()],
                         benchmark=[b.replace("google-", "") + " (Google analogies)" if t == "analogy" else b
                                    for t, b in zip(frame["task"], frame["benchmark"])])
    table = shown.pivot(index="model", columns="benchmark", values="cell")
    table = table[list(dict.fromkeys(shown["benchmark"]))]  # similarity sets, then the analogy methods
    return (f"Spearman rho per similarity set (pairs the model covers; fewer than {MIN_SCORED_PAIRS}: –), "
            f"analogy accuracy (questions it covers):\n"
            + table.reindex([name for name in order if name in table.index])
            .rename_axis(index=None, columns=None).fillna("–").to_string())


def _results_table(out_dir: Path) -> str:
    """The closing table of a run (bench.report.summary): the main score per model and task."""
    from bench.report import summary
    from bench.report.sections import MIN_SCORED_PAIRS
    from bench.report.tables import tables
    from bench.run.results import load_results

    cells = out_dir / "cells"  # absent when no cell ran
    table = summary.summary(tables(load_results(cells) if cells.is_dir() else []), MIN_SCORED_PAIRS)
    return (f"main scores (mean over seeds; similarity: mean Spearman rho over the sets with >= {MIN_SCORED_PAIRS} "
            f"pairs covered):\n" + summary.render(table))


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
    print(f"{len(migrated)} result file(s) under {args.results} migrated: each carries its cell key under its "
          f"current name")
    return 0


def _data_build(args) -> int:
    from bench.data.build import NLTK_INDEX, WORDSIM_URL, build_data_root
    from bench.data.datasets import DATA_ENV

    for local, remote in (("nltk_archives", "nltk_index"), ("wordsim_dir", "base_url")):
        if getattr(args, local) is not None and getattr(args, remote) is not None:
            raise BenchError(f"--{local.replace('_', '-')} and --{remote.replace('_', '-')}: expected one source, "
                             f"local copies or a URL, not both")
    out = outdir.as_path(args.out or os.environ.get(DATA_ENV) or str(Path.home() / "lm-lineage-data"), "--out")
    outdir.check_writable(out, "--out")
    built = build_data_root(out, _split(args.only, "--only"),
                            nltk_archives=None if args.nltk_archives is None else Path(args.nltk_archives),
                            wordsim_dir=None if args.wordsim_dir is None else Path(args.wordsim_dir),
                            nltk_index=args.nltk_index or NLTK_INDEX, wordsim_url=args.base_url or WORDSIM_URL)
    print(f"data root {out}: {len(built)} folder(s) built, every file verified; use it with --data-dir {out} "
          f"or {DATA_ENV}={out}")
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
    from bench.eval import diagnostics
    from bench.report import figures
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
            if content is not None:  # None: a figure with nothing to plot (an empty table) is not written
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


def _claims(args) -> int:
    from bench.report.claims import print_ledger
    from bench.report.render import claim_rows
    from bench.report.tables import tables
    from bench.run.results import load_results

    results_dir = Path(args.results)
    results = load_results(results_dir)
    print_ledger(claim_rows(results_dir, results, tables(results)))
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
    from bench.data.datasets import CORPORA
    from bench.eval.metrics import METRICS
    from bench.eval.tasks import PROBE_TASKS
    from bench.models.registry import KINDS, MODELS
    from bench.run.config import MATRIX_DIR

    print("models:")
    for spec in MODELS.values():
        print(f"  {spec.name:18} [{spec.family}] {spec.description}")
    for error in MODELS.plugin_errors:  # a broken plugin is left out of the list; the rest still works
        print(f"lm-lineage: warning: {error}", file=sys.stderr)
    print("kinds (a model of your own: [model.NAME] with kind = ...; see the README's Bring your own model):")
    for spec in KINDS.values():
        print(f"  {spec.name:18} [{spec.family}] {spec.description}")
    print("corpora:")
    for corpus in CORPORA.values():
        print(f"  {corpus.name:18} [{corpus.kind}] {corpus.description}")
    print("probe tasks ([probe] tasks = [...], settings in [probe.NAME]):")
    for task in PROBE_TASKS.values():
        print(f"  {task.name:18} {task.description}")
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
    with _hub_access(allow=getattr(args, "allow_hub", False)):  # only `run` has --allow-hub
        return _command(args)


def _command(args) -> int:
    """The command `args` name; a user error is one line and exit code 2."""
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
        if args.command == "claims":
            return _claims(args)
        if args.command == "eval-vectors":
            return _eval_vectors(args)
        if args.command == "gradient-flow":
            return _gradient_flow(args)
        if args.command == "migrate":
            return _migrate(args)
        if args.command == "gates":
            return _gates(args)
        if args.command == "data":
            return _data_build(args)
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

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

from bench.commands.data import data_build_command
from bench.commands.diagnostics import GATES_OUT, GRADIENT_FLOW_OUT, gates_command, gradient_flow_command
from bench.commands.eval_vectors import EVAL_VECTORS_OUT, eval_vectors_command
from bench.commands.listing import list_command
from bench.commands.report import claims_command, migrate_command, report_command
from bench.commands.run import MAX_CELLS_WITHOUT_YES, run_command
from bench.errors import BenchError
from bench.eval import VECTOR_TASKS

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


def _parser() -> argparse.ArgumentParser:
    """Every command's flags; each command's parser names its handler (bench.commands) as `handler`."""
    parser = argparse.ArgumentParser(prog="lm-lineage", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n")[1])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a matrix of models x corpora x seeds")
    run.set_defaults(handler=run_command)
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
    report.set_defaults(handler=report_command)
    report.add_argument("--results", default="results", help="folder of result JSON (default: results)")
    report.add_argument("--out", default=None,
                        help="where tables go (default: the results folder, unless that is the committed results/: "
                             "then --out is needed)")

    claims = commands.add_parser("claims", help="the claims ledger: each claim of the note with its verdict, "
                                                "computed from the result files (bench.report.claims)")
    claims.set_defaults(handler=claims_command)
    claims.add_argument("--results", default="results", help="folder of result JSON (default: results)")

    flow = commands.add_parser("gradient-flow", help="the vanishing-gradient diagnostic: gradient_flow.csv and .png")
    flow.set_defaults(handler=gradient_flow_command)
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
    gates.set_defaults(handler=gates_command)
    gates.add_argument("--seeds", type=int, default=5, help="number of seeds (0..N-1), at least 2 (default: 5)")
    gates.add_argument("--out", default=None,
                       help=f"the JSON file to write (default: {GATES_OUT}; the gate tests read "
                            f"results/quality_gates.json)")

    migrate = commands.add_parser("migrate", help="add cell keys to results made before cells were keyed, and "
                                                  "rename cells to their current file names (once)")
    migrate.set_defaults(handler=migrate_command)
    migrate.add_argument("results", help="folder of result JSON (searched recursively for cells/*.json)")
    migrate.add_argument("--data-dir", help="the data root the cells were scored with (default: $LM_LINEAGE_DATA)")

    vectors = commands.add_parser(
        "eval-vectors", help="how good are my vectors? score files on the similarity sets and analogies, "
                             "beside glove-6b-50d")
    vectors.set_defaults(handler=eval_vectors_command)
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

    commands.add_parser("list", help="list models, corpora, probe tasks, matrices and metrics").set_defaults(
        handler=list_command)

    data = commands.add_parser("data", help="build the data root (corpora, similarity sets) from public sources")
    build = data.add_subparsers(dest="data_command", required=True).add_parser(
        "build", help="fetch NLTK's corpora and the 13 similarity sets, build every folder of the data root and "
                      "check each file's sha256; folders that already verify are kept")
    build.set_defaults(handler=data_build_command)
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
        return args.handler(args)
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

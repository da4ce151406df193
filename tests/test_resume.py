"""A matrix killed at a random point resumes: no finished cell is lost or redone, and no
partial file is left behind.

`lm-lineage run` runs as a real process (each cell in its own worker), is killed at a
seeded random moment after some cells finished, then re-run without --force. Two ways to
die: SIGKILL (power cut, OOM killer) and Ctrl-C, i.e. SIGINT to the whole process group
as a terminal sends it, so the cell's worker gets it too.
"""

import os
import random
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

MODELS = ["word2vec-cbow", "gensim-cbow", "svd-ppmi", "word2vec-sg"]
CELLS = sorted(f"{model}__lee__seed0.json" for model in MODELS)
# A cell takes seconds on 2 idle cores, but minutes on a machine busy with other work.
TIMEOUT_S = 1800
# Small cells: one epoch, 16 dimensions (ARPACK's SVD of Lee's PPMI takes seconds at the
# default 100 dimensions, well under one at 16). What is tested is the files, not the vectors.
SMALL = ("--set", "train.epochs=1", "--set", "train.vector_size=16")


@contextmanager
def _matrix_run(out: Path, stderr, *extra: str):
    """`lm-lineage run` in its own process group, which a signal reaches as a whole (the run
    and its cell's worker, nothing else); whatever is left of it is killed on the way out."""
    command = [sys.executable, "-m", "bench", "run", "--matrix", "quick", "--models", ",".join(MODELS), *SMALL,
               "--out", str(out), "--no-progress", *extra]
    # A job started in the background of a non-interactive shell (as CI may run the suite)
    # inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler: give
    # the run the default disposition, as a terminal's foreground job has.
    run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
                           preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        yield run
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()


def _finished(out: Path) -> list[str]:
    return sorted(path.name for path in (out / "cells").glob("*.json"))


def _leftovers(out: Path) -> list[Path]:
    return [path for path in out.rglob("*") if ".tmp" in path.name]


def _group_gone(pgid: int, within_s: float = 3.0) -> bool:
    """Whether every process of the group has ended within `within_s`. A runner killed as its
    next worker starts leaves multiprocessing's resource tracker to see its pipe close and
    exit (it ignores SIGTERM), which takes a moment on a loaded machine; a worker left running
    its cell would outlast the wait (it imports torch and the models first)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("kill_signal, seed", [(signal.SIGKILL, 1), (signal.SIGINT, 2)])
def test_killed_run_resumes_without_losing_or_redoing_cells(tmp_path, monkeypatch, kill_signal, seed):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)  # the embedded Lee corpus and gensim's similarity sets
    rng = random.Random(seed)
    # Kill while at least one cell is done and at least two are not: after 1..n-2 cells, plus
    # a random part of the next cell's time. Each cell starts a fresh interpreter that imports
    # torch (over half a second on an idle machine), so two cells outlast the longest delay.
    cells_before_kill = rng.randint(1, len(MODELS) - 2)
    delay_s = rng.uniform(0.0, 0.5)
    out = tmp_path / "run"
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "w") as stderr, _matrix_run(out, stderr) as run:
        deadline = time.monotonic() + TIMEOUT_S
        while len(_finished(out)) < cells_before_kill and run.poll() is None:
            assert time.monotonic() < deadline, "the run finished too few cells in time"
            time.sleep(0.05)
        assert run.poll() is None, f"the run ended before the kill: {stderr_path.read_text()}"
        time.sleep(delay_s)
        os.killpg(run.pid, kill_signal)
        code = run.wait(timeout=TIMEOUT_S)
    if kill_signal == signal.SIGINT:
        assert code == 130, stderr_path.read_text()
        assert "interrupted; finished cells are kept" in stderr_path.read_text()
        assert not _leftovers(out), "Ctrl-C must not leave partial files"
    else:
        assert code == -signal.SIGKILL
    finished = {name: ((out / "cells" / name).read_bytes(), (out / "cells" / name).stat().st_mtime_ns)
                for name in _finished(out)}
    assert len(finished) >= cells_before_kill, "a finished cell was lost"
    assert len(finished) < len(CELLS), "the run was killed after its last cell: nothing left to resume"

    # The re-run's cells in its own process (--in-process): which cells it skips is the point, not its workers.
    with open(stderr_path, "w") as stderr, _matrix_run(out, stderr, "--in-process") as rerun:
        assert rerun.wait(timeout=TIMEOUT_S) == 0, stderr_path.read_text()
    assert _finished(out) == CELLS
    for name, (content, mtime_ns) in finished.items():
        path = out / "cells" / name
        assert path.read_bytes() == content and path.stat().st_mtime_ns == mtime_ns, f"{name} was redone"
    assert not _leftovers(out)


# Deterministic models (gensim with one worker and a fixed hash seed, SVD, Kneser-Ney), so an
# interrupted-and-resumed folder must hold the same numbers as an uninterrupted one.
STEADY_MODELS = ["gensim-cbow", "svd-ppmi", "kn3"]
STEADY_TABLES = {"wordsim.csv": ["model", "corpus", "seed", "benchmark", "pairs", "spearman"],
                 "analogy.csv": ["model", "corpus", "seed", "method", "section", "questions", "accuracy"],
                 "perplexity.csv": ["model", "corpus", "seed", "split", "perplexity"]}


def _steady_run(out: Path, stderr, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "bench", "run", "--matrix", "quick", "--models", ",".join(STEADY_MODELS),
               *SMALL, "--set", "model.gensim-cbow.workers=1", "--set", "vocab.unk=<unk>",
               "--seeds", "2", "--out", str(out), "--no-progress", *extra]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
                            env={**os.environ, "PYTHONHASHSEED": "0"})


def _tables(out: Path) -> dict:
    import pandas as pd

    return {name: pd.read_csv(out / name)[columns].sort_values(columns[:5]).reset_index(drop=True)
            for name, columns in STEADY_TABLES.items()}


@pytest.mark.slow
def test_random_kills_leave_intact_cells_and_the_tables_of_an_uninterrupted_run(tmp_path, monkeypatch):
    """SIGKILL, then SIGTERM, to the runner at random moments, resuming after each: every
    cell that was finished stays byte for byte, no worker outlives its runner, and the final
    tables equal those of a run that was never interrupted. Each killed run first finishes a
    cell of its own (so every kill has finished cells to keep, however fast or loaded the
    machine), then dies a random part of a second into its next one: its worker starting,
    training, writing.
    The uninterrupted run and the last, finishing one run their cells in their own process
    (--in-process): only the killed runs need workers."""
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    import pandas as pd

    rng = random.Random(7)
    clean, resumed = tmp_path / "clean", tmp_path / "resumed"
    with open(tmp_path / "clean.txt", "w") as stderr:
        assert _steady_run(clean, stderr, "--in-process").wait(timeout=TIMEOUT_S) == 0, \
            (tmp_path / "clean.txt").read_text()
    finished: dict[str, bytes] = {}
    for kill, kill_signal in enumerate([signal.SIGKILL, signal.SIGTERM]):
        with open(tmp_path / "stderr.txt", "w") as stderr:
            run = _steady_run(resumed, stderr)
            deadline = time.monotonic() + TIMEOUT_S
            while len(_finished(resumed)) == len(finished) and run.poll() is None:
                assert time.monotonic() < deadline, f"kill {kill}: the run finished no cell in time"
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.0))
            if run.poll() is None:
                os.killpg(run.pid, kill_signal)
            run.wait(timeout=TIMEOUT_S)
            assert _group_gone(run.pid), f"kill {kill}: a process of the run's group outlived it"
        for name, content in finished.items():
            assert (resumed / "cells" / name).read_bytes() == content, f"{name} changed after kill {kill}"
        finished = {path.name: path.read_bytes() for path in (resumed / "cells").glob("*.json")}
    with open(tmp_path / "stderr.txt", "w") as stderr:
        assert _steady_run(resumed, stderr, "--in-process").wait(timeout=TIMEOUT_S) == 0, \
            (tmp_path / "stderr.txt").read_text()
    assert not _leftovers(resumed)
    assert _finished(resumed) == _finished(clean)
    for name, table in _tables(clean).items():
        pd.testing.assert_frame_equal(_tables(resumed)[name], table, check_exact=False, rtol=1e-9)

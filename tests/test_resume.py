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


@contextmanager
def _matrix_run(out: Path, stderr):
    """`lm-lineage run` in its own process group, which a signal reaches as a whole (the run
    and its cell's worker, nothing else); whatever is left of it is killed on the way out."""
    command = [sys.executable, "-m", "bench", "run", "--matrix", "quick", "--models", ",".join(MODELS),
               "--set", "train.epochs=1", "--out", str(out), "--no-progress"]
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

    with open(stderr_path, "w") as stderr, _matrix_run(out, stderr) as rerun:
        assert rerun.wait(timeout=TIMEOUT_S) == 0, stderr_path.read_text()
    assert _finished(out) == CELLS
    for name, (content, mtime_ns) in finished.items():
        path = out / "cells" / name
        assert path.read_bytes() == content and path.stat().st_mtime_ns == mtime_ns, f"{name} was redone"
    assert not _leftovers(out)

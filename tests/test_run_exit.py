"""What a run leaves behind after its last line (issue 28): no resource-tracker warnings."""

from __future__ import annotations

import pytest

from bench.cli import main
from bench.run import executors


@pytest.mark.slow
def test_a_cell_worker_exits_by_itself_after_replying_so_its_semaphores_are_unlinked(tmp_path, monkeypatch):
    """A cell's worker draws its progress bar with tqdm, whose lock is a named semaphore in a
    spawned process, unlinked by the worker's exit handlers. A worker stopped (SIGTERM) right
    after it replied, before those ran, left the semaphore to multiprocessing's resource
    tracker, which warned of "leaked semaphore objects" at the end of every run. So by the
    time the runner stops a worker that replied, the worker must have ended on its own."""
    stopped = []

    def recording_stop(worker):
        stopped.append(worker.exitcode)  # None: still running, about to be terminated
        stop(worker)

    stop = executors._stop
    monkeypatch.setattr(executors, "_stop", recording_stop)
    assert main(["run", "--matrix", "quick", "--models", "word2vec-cbow", "--set", "train.epochs=1",
                 "--out", str(tmp_path / "out")]) == 0
    assert stopped == [0]

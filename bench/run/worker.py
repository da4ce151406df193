"""The worker process of one cell (`bench.run.executors.run_in_worker`), which never outlives
the runner that started it.

This module imports only the standard library at its top: a spawned worker imports it
first, ties its life to the runner's, and only then receives its cell's job, whose
unpickling imports torch and the models (seconds, minutes on a loaded machine, during which
a runner killed by SIGKILL would otherwise leave the worker and multiprocessing's resource
tracker running on).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def worker_main(conn: Connection, parent_pid: int) -> None:
    """Receive one job through `conn`, run it, and send back ("result", the result dict),
    ("raised", the exception `run_cell` raised) or ("failed", why the job could not start:
    receiving it imports the models, which can fail)."""
    # Ctrl-C reaches the terminal's whole process group: the runner alone handles it, and
    # stops this worker (SIGTERM) on its way out, without a traceback from here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)
    try:
        job = conn.recv()
        from bench.run.cell import run_cell
    except Exception as exc:
        conn.send(("failed", f"the worker could not start the cell: {type(exc).__name__}: {exc}"))
        return
    reply: tuple[str, dict | BaseException]
    try:
        reply = ("result", run_cell(*job))
    except BaseException as exc:  # raised again in the runner, as a call in its own process would
        reply = ("raised", exc)
    try:
        conn.send(reply)
    except Exception as exc:  # an exception object that does not pickle: its text still reaches the runner
        conn.send(("raised", RuntimeError(f"{type(reply[1]).__name__}: {reply[1]} (and sending it failed: {exc})")))


def die_with_parent(parent_pid: int) -> None:
    """End this process when `parent_pid`, its parent, dies, however it dies.

    On Linux the kernel sends SIGKILL at the parent's death (prctl PR_SET_PDEATHSIG), even
    while this process is inside a long native call; elsewhere a daemon thread checks the
    parent every second. The parent may have died before this ran: then this process has
    been adopted (its parent pid changed), and it ends at once.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    else:
        threading.Thread(target=_watch_parent, args=(parent_pid,), name="lm-lineage parent watch",
                         daemon=True).start()
    if os.getppid() != parent_pid:
        os._exit(1)


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)

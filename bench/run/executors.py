"""Executors run a matrix's cells: `LocalExecutor` (the default: one at a time on this machine,
each in a fresh worker process) or `RayExecutor` (Ray tasks on a cluster). Either way the
results come back to the runner's process, which writes them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
from pathlib import Path
from typing import Iterator

import torch

from bench.data.datasets import CACHE_ENV
from bench.errors import BenchError
from bench.run.cell import CellJob, run_cell
from bench.run.results import SCHEMA
from bench.run.worker import worker_main

# A Ray task's process gets the environment of its node, not ours: these carry this run's
# hub access (--allow-hub) and tokenization cache to the cells.
RAY_CELL_ENVIRONMENT = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", CACHE_ENV)


def _parse_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise BenchError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from exc
    if device.type not in ("cpu", "cuda"):
        raise BenchError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    return device


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = _parse_device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"--device {name}: CUDA was requested but torch sees no GPU "
                         f"(torch {torch.__version__}, built for CUDA {torch.version.cuda})")
    return device


def _failed_result(job: CellJob, reason: str) -> dict:
    """The result of a cell whose worker never returned one."""
    return {"schema": SCHEMA, "cell": {"model": job.model, "corpus": job.corpus, "seed": job.seed,
                                       "matrix": job.matrix.name},
            "status": "failed", "error": reason}


class LocalExecutor:
    """The default: one cell at a time on this machine.

    With `isolate` every cell runs in a fresh worker process: its timings and peak memory
    do not depend on the cells before it (glibc keeps or returns freed memory depending on
    the process' history: our CBOW trained at 1.04M tokens/s in a fresh process and at
    0.57M on its second run in the same one), and a cell that crashes or is killed for
    memory is recorded as failed while the matrix goes on. A worker never outlives the
    runner (`run_in_worker`). Without `isolate` (debugging) the cells run in this process.
    """

    def __init__(self, isolate: bool = True):
        self.isolate = isolate

    def resolve_device(self, name: str) -> torch.device:
        return resolve_device(name)

    def run(self, jobs: dict[Path, CellJob]) -> Iterator[tuple[Path, dict]]:
        """(result path, result) of every job, in order, each as soon as it is done."""
        for path, job in jobs.items():
            yield path, self._run_one(job)

    def _run_one(self, job: CellJob) -> dict:
        return run_in_worker(job) if self.isolate else run_cell(*job)

    def close(self) -> None:
        """Nothing to release: each worker process ends with its cell."""


# How long a worker gets to end after SIGTERM before it is killed.
WORKER_STOP_TIMEOUT_S = 5.0
# How long a worker that has sent its result gets to exit by itself before it is stopped.
WORKER_EXIT_TIMEOUT_S = 30.0


def run_in_worker(job: CellJob) -> dict:
    """`run_cell(*job)` in a fresh spawned process (`bench.run.worker`); an exception it
    raises is raised here.

    The worker never outlives this call: when it returns or raises (Ctrl-C, the SIGTERM the
    CLI turns into an exception), a worker still running is terminated, then killed. If
    this process dies without unwinding (SIGKILL), the worker learns it from the kernel and
    dies too (`bench.run.worker.die_with_parent`), and with both gone multiprocessing's
    resource tracker reads the end of its pipe and exits.
    """
    context = multiprocessing.get_context("spawn")
    conn, worker_conn = context.Pipe()
    worker = context.Process(target=worker_main, args=(worker_conn, os.getpid()),
                             name=f"lm-lineage cell {job.model} {job.corpus} seed {job.seed}")
    try:
        worker.start()
        worker_conn.close()  # the worker holds the only other end: end-of-file here means it died
        try:
            conn.send(job)
            outcome, payload = conn.recv()
        except (EOFError, ConnectionError):  # a socket pair: a worker killed before reading its job resets it
            worker.join()
            return _failed_result(job, f"the worker process died ({_exit_reason(worker.exitcode)})")
        # Having replied, the worker ends on its own: let it, so its exit handlers run. They
        # unlink the named semaphores it made (a spawned process' multiprocessing locks, such
        # as tqdm's); a worker stopped by SIGTERM here leaves them to the resource tracker,
        # which then warns of "leaked semaphore objects" (and "No such file or directory" for
        # one the worker had unlinked but not yet unregistered) when the run ends.
        worker.join(WORKER_EXIT_TIMEOUT_S)
    finally:
        worker_conn.close()
        conn.close()
        _stop(worker)
    if outcome == "raised":
        raise payload
    return _failed_result(job, payload) if outcome == "failed" else payload


def _stop(worker: multiprocessing.process.BaseProcess) -> None:
    """Terminate `worker` if it still runs (SIGTERM, then SIGKILL after a grace period) and reap it."""
    if worker.pid is None:  # interrupted before it started
        return
    if worker.is_alive():
        worker.terminate()
        worker.join(WORKER_STOP_TIMEOUT_S)
    if worker.is_alive():
        worker.kill()
    worker.join()


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:  # a signal Python has no name for
            name = f"signal {-exitcode}"
        return f"killed by {name}: out of memory, or killed from outside"
    return f"exit code {exitcode}, without a result"


class RayExecutor:
    """Cells as Ray tasks on a Ray cluster, all submitted at once.

    `address`: HOST:PORT or ray://HOST:PORT of a running cluster, "auto" (the cluster
    `ray start` made on this machine, or $RAY_ADDRESS) or "local" (a private one for this
    run, stopped at `close`). Each task asks for `cpus_per_cell` CPUs, and one GPU when the
    cell's model runs on a CUDA device; Ray sets the task's threads and CUDA_VISIBLE_DEVICES
    from that. As with the local executor, each cell gets a fresh worker process and a
    worker that dies is a failed cell, not retried (a re-run redoes it). The results come
    back to this process, which writes them. Every node needs this project installed at
    the same versions, and the data root and corpus folders at the same paths.
    """

    def __init__(self, address: str, cpus_per_cell: float):
        try:
            import ray
        except ImportError as exc:
            raise BenchError("--executor ray needs Ray: pip install 'lm-lineage[ray]'") from exc
        if cpus_per_cell <= 0:
            raise BenchError(f"--ray-cpus must be > 0, got {cpus_per_cell}")
        _check_reachable(address)
        env_vars = {name: os.environ[name] for name in RAY_CELL_ENVIRONMENT if name in os.environ}
        try:
            # log_to_driver=False: the cells' progress bars and logs stay in Ray's worker logs
            # instead of interleaving here; a failed cell's reason is in its result.
            ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False,
                     runtime_env={"env_vars": env_vars})
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BenchError(f"--ray-address {address}: {_first_line(exc)}") from exc
        self.address = address
        self.cpus_per_cell = cpus_per_cell

    def resolve_device(self, name: str) -> torch.device:
        """Like `resolve_device`, but the cells run on the cluster: its GPUs count, not this machine's."""
        import ray

        has_gpu = ray.cluster_resources().get("GPU", 0) >= 1
        if name == "auto":
            return torch.device("cuda" if has_gpu else "cpu")
        device = _parse_device(name)
        if device.type != "cuda":
            return device
        if device.index not in (None, 0):
            raise BenchError(f"--device {name}: with --executor ray each cell uses the GPU Ray assigns it, which "
                             f"it sees as cuda:0; use --device cuda")
        if not has_gpu:
            raise BenchError(f"--device {name}: CUDA was requested but the Ray cluster ({self.address}) has no GPU")
        return torch.device("cuda")

    def run(self, jobs: dict[Path, CellJob]) -> Iterator[tuple[Path, dict]]:
        """(result path, result) of every job, in the order the tasks finish."""
        import ray

        # max_calls=1: a fresh worker process per cell; max_retries=0: a dead worker is a failed cell.
        remote_cell = ray.remote(max_calls=1, max_retries=0)(run_cell)
        pending = {}
        for path, job in jobs.items():
            gpus = 1 if job.device.type == "cuda" and job.matrix.spec(job.model).runs_on_device else 0
            # The workers do not share this process' working directory.
            task_job = job._replace(data_root=job.data_root.resolve() if job.data_root else None)
            pending[remote_cell.options(num_cpus=self.cpus_per_cell, num_gpus=gpus).remote(*task_job)] = (path, job)
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            path, job = pending.pop(ref)
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:
                cause = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) else exc
                result = _failed_result(job, f"the Ray task failed: {type(cause).__name__}: {_first_line(cause)}")
            yield path, result

    def close(self) -> None:
        """Disconnect; a cluster ends this run's unfinished tasks then, and a "local" one stops."""
        import ray

        ray.shutdown()


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """ray.init keeps retrying an address where no cluster answers (over five minutes with
    Ray 2.60); one TCP connect says so in seconds."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise BenchError(f"--ray-address {address!r}: expected HOST:PORT, ray://HOST:PORT, auto or local")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise BenchError(f"--ray-address {address}: no Ray cluster answers there ({exc.strerror or exc})") from exc


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)

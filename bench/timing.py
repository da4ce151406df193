"""Timing protocol: CUDA synchronized before every clock read, peak memory per phase.

`measure` times one phase. Peak host memory is the process' resident set size sampled
every 5 ms during the phase (Linux /proc; elsewhere the lifetime peak from getrusage);
on CUDA the peak is also read from the allocator after resetting it.
"""

from __future__ import annotations

import platform
import resource
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

_STATM = Path("/proc/self/statm")
_PAGE_MB = resource.getpagesize() / 2**20


def rss_mb() -> float:
    if _STATM.exists():
        return int(_STATM.read_text().split()[1]) * _PAGE_MB
    # ru_maxrss is KiB on Linux, bytes on macOS; only reached off Linux.
    scale = 1 / 2**20 if platform.system() == "Darwin" else 1 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


@dataclass
class Phase:
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    peak_cuda_mb: float | None = None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def measure(device: torch.device):
    """Time the block: `with measure(device) as phase: ...`, then read phase.wall_s."""
    phase = Phase()
    stop = threading.Event()
    peak = [rss_mb()]

    def sample():
        while not stop.wait(0.005):
            peak[0] = max(peak[0], rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    sampler.start()
    start = time.perf_counter()
    try:
        yield phase
    finally:
        synchronize(device)
        phase.wall_s = time.perf_counter() - start
        stop.set()
        sampler.join()
        phase.peak_rss_mb = max(peak[0], rss_mb())
        if device.type == "cuda":
            phase.peak_cuda_mb = torch.cuda.max_memory_allocated(device) / 2**20

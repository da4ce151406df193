"""Timing protocol: CUDA synchronized before every clock read, peak memory per phase.

`measure` times one phase. Peak host memory is the process' resident-set high-water
mark for the phase: on Linux the kernel's own (`VmHWM`, reset by writing 5 to
/proc/self/clear_refs), which costs nothing while the phase runs; elsewhere a thread
samples the resident set every 20 ms (a sampler competes for the GIL with Python-
threaded training, which is why it is only the fallback). On CUDA the peak is also
read from the allocator after resetting it.
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

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_mb(field: str) -> float | None:
    if not _STATUS.exists():
        return None
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    return None


def rss_mb() -> float:
    current = _status_mb("VmRSS")
    if current is not None:
        return current
    # ru_maxrss is KiB on Linux, bytes on macOS; only reached off Linux.
    scale = 1 / 2**20 if platform.system() == "Darwin" else 1 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark; False where the kernel offers no such reset."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return _status_mb("VmHWM") is not None


@dataclass
class Phase:
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    peak_cuda_mb: float | None = None

    def row(self, tokens: int | None, device: torch.device) -> dict:
        """The phase as a result's timing row; `tokens` processed (None: not counted) give its rate."""
        return {"device": device.type, "wall_s": self.wall_s,
                "tokens": tokens, "tokens_per_s": tokens / self.wall_s if tokens and self.wall_s > 0 else None,
                "peak_rss_mb": self.peak_rss_mb, "peak_cuda_mb": self.peak_cuda_mb}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def measure(device: torch.device):
    """Time the block: `with measure(device) as phase: ...`, then read phase.wall_s."""
    phase = Phase()
    stop = threading.Event()
    peak = [rss_mb()]
    kernel_peak = _reset_peak_rss()

    def sample():
        while not stop.wait(0.02):
            peak[0] = max(peak[0], rss_mb())

    sampler = None if kernel_peak else threading.Thread(target=sample, daemon=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    if sampler:
        sampler.start()
    start = time.perf_counter()
    try:
        yield phase
    finally:
        synchronize(device)
        phase.wall_s = time.perf_counter() - start
        if sampler:
            stop.set()
            sampler.join()
        kernel_mb = _status_mb("VmHWM") if kernel_peak else None
        phase.peak_rss_mb = kernel_mb if kernel_mb is not None else max(peak[0], rss_mb())
        if device.type == "cuda":
            phase.peak_cuda_mb = torch.cuda.max_memory_allocated(device) / 2**20

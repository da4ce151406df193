"""What every speed benchmark shares: how a call is timed, the calibration that normalises
it, and the fixed sizes.

A benchmark's raw median moves with the machine: another process on the same cores can
double it. So every round of a benchmark is bracketed by a fixed calibration kernel (the
same kinds of work the benchmarks do: torch matmul, gather and index_add on the CPU,
numpy sorting and counting, a Python loop), timed CALIBRATION_REPEATS times right before
each round and after the last, and the figure the speed gate compares is

    normalized_median = median(round times) / median(calibration times)

(`extra_info`, with the calibration's median as `calibration_s`). Load that slows the
whole machine slows both; a change that slows only the benchmarked code moves the ratio.
Medians of the many samples, not per-round ratios: one 10-30 ms calibration run on a
loaded machine scatters by a quarter (interquartile range over its median, load 12), and a
ratio of two single runs carries both scatters. The calibration is CPU work: a CUDA
benchmark's round is mostly device time, which CPU load moves less, so its normalised
figure drifts the other way with load (read GPU rows with that in mind).

Test-only fault injection: LM_LINEAGE_BENCH_SLOWDOWN=k (an integer >= 1) makes every
timed round run its work k times and leaves the calibration alone: a real k-fold slowdown
of the hot path, which tests/test_speed_gate.py uses to show the gate fails on it.
Never set it when saving or comparing a baseline.
"""

import math
import os
import statistics
import time

import numpy as np
import pytest
import torch

from bench.timing import synchronize

# Each benchmark times about this much work: a 10 ms call gets 100 rounds, so its median
# holds still on a 2-core machine; a slow call still gets MIN_ROUNDS.
TARGET_SECONDS = 1.0
MIN_ROUNDS = 7
CALIBRATION_REPEATS = 3  # calibration runs per bracket
VOCAB = 5000  # output size of the neural LMs
SLOWDOWN_ENV = "LM_LINEAGE_BENCH_SLOWDOWN"

# torch's intra-op pool and numpy's BLAS pool size for every benchmark (conftest pins both)
# and for the calibration. One thread: on a shared machine each runnable thread gets its
# share of a core, so one-thread work slows in proportion to the load and the calibration
# follows it; a pool of two on two busy cores waits at every op for a descheduled thread
# (10-250x under a load of 12: a GloVe epoch on 2 threads took 26.6 s a round, 104 ms idle)
# and no calibration could follow that. It also makes the normalised figure mean more
# nearly the same on a machine with more cores. word2vec's benchmark keeps the threads its
# config names (its kernel's Python threads do not spin).
BENCH_THREADS = 1


def _calibration_inputs():
    generator = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    return {
        "matrix": torch.randn(160, 160, generator=generator),  # (160, 160) matmul operand
        "table": torch.randn(20_000, 64, generator=generator),  # (rows, dim) embedding table
        "rows": torch.randint(20_000, (8192,), generator=generator),  # (8192,) rows gathered
        # preallocated outputs: the kernel times work, not the allocator's page faults
        "gathered": torch.empty(8192, 64),
        "grad": torch.empty(20_000, 64),
        "floats": rng.standard_normal(40_000),
        "tokens": rng.integers(2_000, size=6_000).tolist(),  # a Python list, counted in a loop
    }


_CALIBRATION = _calibration_inputs()


def calibration_kernel() -> float:
    """A fixed, deterministic mix of the benchmarks' kinds of work, a few ms on a 2-core
    machine, on one torch thread (BENCH_THREADS): it slows with the machine's load, never
    with a thread pool that spins while its other thread is descheduled, so a benchmark
    that starts to spin (issue 15's 65x) moves its normalised figure by nearly as much.
    Returns a number from every part so none is skipped."""
    c = _CALIBRATION
    threads = torch.get_num_threads()
    torch.set_num_threads(BENCH_THREADS)
    try:
        product = c["matrix"] @ c["matrix"] @ c["matrix"]  # (160, 160)
        gathered = torch.index_select(c["table"], 0, c["rows"], out=c["gathered"])  # (8192, 64)
        grad = c["grad"].zero_().index_add_(0, c["rows"], gathered)  # (20000, 64)
    finally:
        torch.set_num_threads(threads)
    order = np.argsort(c["floats"])  # (40000,)
    counts = np.bincount(order[:10_000] % 1000)  # (1000,)
    seen: dict[int, int] = {}
    for token in c["tokens"]:
        seen[token] = seen.get(token, 0) + 1
    return float(product[0, 0]) + float(grad[0, 0]) + float(counts[0]) + len(seen)


def injected_slowdown() -> int:
    """The test-only repeat count from LM_LINEAGE_BENCH_SLOWDOWN (1 when unset)."""
    value = os.environ.get(SLOWDOWN_ENV, "1")
    if not value.isdigit() or int(value) < 1:
        raise pytest.UsageError(f"{SLOWDOWN_ENV}={value!r}: expected an integer >= 1 (test-only repeat count)")
    return int(value)


def time_on_device(benchmark, device: torch.device, work):
    """Time `work` with the GPU's queue drained before the clock stops, each round bracketed
    by calibration runs (module docstring). One untimed warm-up call (CUDA kernels load,
    caches fill) also sizes the rounds. Returns what `work` returned."""
    repeat = injected_slowdown()

    def synchronized():
        for _ in range(repeat):
            result = work()
        synchronize(device)
        return result

    calibrations = []

    def calibrate():
        for _ in range(CALIBRATION_REPEATS):
            started = time.perf_counter()
            calibration_kernel()
            calibrations.append(time.perf_counter() - started)

    calibrate()  # the first call loads numpy's and torch's code paths; not kept
    calibrations.clear()
    started = time.perf_counter()
    synchronized()
    warm_up_s = time.perf_counter() - started
    rounds = max(MIN_ROUNDS, math.ceil(TARGET_SECONDS / max(warm_up_s, 1e-6)))
    result = benchmark.pedantic(synchronized, setup=calibrate, rounds=rounds, iterations=1)
    if benchmark.stats is None:  # --benchmark-disable: one plain call, nothing timed
        return result
    calibrate()  # after the last round
    calibration_s = statistics.median(calibrations)  # over (rounds + 1) * CALIBRATION_REPEATS runs
    benchmark.extra_info.update({
        "calibration_s": calibration_s,
        "normalized_median": benchmark.stats.stats.median / calibration_s,
        "injected_slowdown": repeat,
    })
    return result

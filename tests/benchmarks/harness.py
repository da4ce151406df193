"""What every speed benchmark shares: how a call is timed, and the fixed sizes."""

import math
import time

import torch

from bench.timing import synchronize

# Each benchmark times about this much work: a 10 ms call gets 100 rounds, so its median
# holds still on a 2-core machine; a slow call still gets MIN_ROUNDS.
TARGET_SECONDS = 1.0
MIN_ROUNDS = 5
VOCAB = 5000  # output size of the neural LMs


def time_on_device(benchmark, device: torch.device, work):
    """Time `work` with the GPU's queue drained before the clock stops. One untimed warm-up
    call (CUDA kernels load, caches fill) also sizes the rounds. Returns what `work` returned."""

    def synchronized():
        result = work()
        synchronize(device)
        return result

    started = time.perf_counter()
    synchronized()
    warm_up_s = time.perf_counter() - started
    rounds = max(MIN_ROUNDS, math.ceil(TARGET_SECONDS / max(warm_up_s, 1e-6)))
    return benchmark.pedantic(synchronized, rounds=rounds, iterations=1)

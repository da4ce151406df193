"""Fixtures of the speed benchmarks: the devices they run on and fixed synthetic data."""

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from tests.benchmarks.harness import BENCH_THREADS
from tests.corpora import encode

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def pinned_threads():
    """Each benchmark starts on BENCH_THREADS torch threads and BLAS threads (numpy's and
    scipy's pool, apart from torch's; see harness), whatever the machine's cores or the
    benchmark before it left set (fit_glove sets torch's count and keeps it); torch's count
    the session started with is restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(BENCH_THREADS)
    with threadpool_limits(limits=BENCH_THREADS, user_api="blas"):
        yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def zipf_corpus():
    """(ids, offsets, words, counts) of about 50,000 Zipf-distributed tokens over up to 5,000
    types in sentences of 5-30 words, fixed seed, encoded as the harness does."""
    rng = np.random.default_rng(0)
    types = 5000
    weights = 1.0 / np.arange(1, types + 1)
    stream = rng.choice(types, size=50_000, p=weights / weights.sum())
    cuts = np.cumsum(rng.integers(5, 31, size=len(stream) // 5))
    cuts = cuts[cuts < len(stream)]
    sentences = [[f"w{i}" for i in part] for part in np.split(stream, cuts)]
    return encode(sentences)

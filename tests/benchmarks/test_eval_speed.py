"""Speed of evaluation (`pytest --benchmark-only`): word similarity, 3CosAdd analogies and
the perplexity of a small LM, on fixed random models."""

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from bench.eval import metrics
from bench.models.registry import MODELS
from bench.train import lm
from impl import rnn
from tests.benchmarks.harness import VOCAB, time_on_device


def random_vectors(must_have: set[str], size: int, dims: int) -> KeyedVectors:
    """`size` words with fixed random vectors: `must_have` (sorted) first, then fillers."""
    words = sorted(must_have)
    words += [f"filler{i}" for i in range(size - len(words))]
    vectors = KeyedVectors(dims)
    vectors.add_vectors(words, np.random.default_rng(0).standard_normal((size, dims)).astype(np.float32))
    return vectors


@pytest.mark.benchmark(group="eval")
def test_word_similarity(benchmark):
    ws353 = metrics.load_similarity_set(datapath("wordsim353.tsv"))
    vectors = random_vectors({w for a, b, _ in ws353.pairs for w in (a, b)}, 100_000, 100)
    row = time_on_device(benchmark, torch.device("cpu"), lambda: metrics.evaluate_similarity(vectors, ws353))
    assert row["pairs"] == len(ws353.pairs) and row["oov_pairs"] == 0


@pytest.mark.benchmark(group="eval")
def test_analogy_3cosadd(benchmark, device):
    """All 19,544 Google questions against 10,000 candidate words of 50 dimensions."""
    with open(datapath("questions-words.txt")) as questions:
        words = {w for line in questions if not line.startswith(":") for w in line.split()}
    vectors = random_vectors(words, 10_000, 50)
    rows = time_on_device(benchmark, device, lambda: metrics.evaluate_analogies(
        vectors, methods=("3cosadd",), device=device))
    total = next(row for row in rows if row["section"] == "total")
    assert total["questions"] == 19544 and total["oov_questions"] == 0


@pytest.mark.benchmark(group="eval")
def test_lstm_perplexity(benchmark, device):
    """2,000 tokens through a 2-layer 128-unit LSTM, state carried (batch 1, bptt 35): the
    protocol's single row leaves nothing to batch, so this times the sequential per-step cost."""
    spec = MODELS["lstm"]
    torch.manual_seed(0)
    model = rnn.RNNLM(spec.config_cls(**spec.preset, emb=128, hidden=128, layers=2), VOCAB).to(device)
    ids = np.random.default_rng(0).integers(VOCAB, size=2000)
    scored = time_on_device(benchmark, device, lambda: lm.evaluate_perplexity(
        model, ids, device, start_id=0, batch_size=1, bptt=35))
    assert scored["scored_tokens"] == len(ids) and np.isfinite(scored["perplexity"])

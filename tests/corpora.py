"""Small corpora for the embedding-model tests, in the harness' calling convention:
(ids, offsets, words, counts) with the vocabulary sorted by descending count."""

import collections

import numpy as np
from gensim.test.utils import datapath
from gensim.utils import simple_preprocess


def encode(sentences: list[list[str]], min_count: int = 1):
    """(ids, offsets, words, counts) as the harness builds them: vocabulary by descending count."""
    freq = collections.Counter(w for s in sentences for w in s)
    words = [w for w, c in sorted(freq.items(), key=lambda kv: -kv[1]) if c >= min_count]
    index = {w: i for i, w in enumerate(words)}
    ids, offsets = [], [0]
    for s in sentences:
        ids.extend(index[w] for w in s if w in index)
        offsets.append(len(ids))
    counts = np.array([freq[w] for w in words], dtype=np.int64)
    return np.array(ids, dtype=np.int64), np.array(offsets, dtype=np.int64), words, counts


def toy():
    """200 Zipf-distributed sentences of 1-11 words over 30 types, fixed seed."""
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(30)]
    p = 1.0 / np.arange(1, 31)
    sentences = [list(rng.choice(vocab, size=rng.integers(1, 12), p=p / p.sum())) for _ in range(200)]
    return encode(sentences)


def lee(min_count: int = 2):
    """gensim's Lee background corpus (300 documents), simple_preprocess tokens."""
    with open(datapath("lee_background.cor"), encoding="utf-8") as f:
        return encode([simple_preprocess(line) for line in f], min_count=min_count)

"""Interpolated modified Kneser-Ney (impl.kneser_ney) against a plain dict-based re-derivation."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from impl.kneser_ney import KNConfig, KneserNey, estimate_discounts, evaluate

# 26 tokens whose count-of-counts n1, n2, n3 are non-zero at every order for n = 2 and 3,
# so the closed-form discounts (not the fallback) are exercised. "e" never occurs.
WORDS = "abcde"
TINY = [WORDS.index(t) for t in "d c b c b a d c b a b c c c c b a a a c c a b a b c".split()]
HELD_OUT = [WORDS.index(t) for t in "a b c e d d a c b b e c a".split()]


class ReferenceKN:
    """Chen & Goodman's interpolated modified KN, written out with dicts, one probability at a time."""

    def __init__(self, train: list[int], vocab_size: int, order: int):
        self.V, self.n = vocab_size, order
        raw = {k: Counter(tuple(train[i:i + k]) for i in range(len(train) - k + 1)) for k in range(1, order + 1)}
        self.counts = {order: raw[order]}
        for k in range(1, order):
            # N1+(. g): distinct words seen right before g
            self.counts[k] = Counter(longer[1:] for longer in raw[k + 1])
        self.discounts = {}
        for k, counts in self.counts.items():
            n1, n2, n3, n4 = (sum(1 for c in counts.values() if c == r) for r in (1, 2, 3, 4))
            y = n1 / (n1 + 2 * n2)
            self.discounts[k] = {1: 1 - 2 * y * n2 / n1, 2: 2 - 3 * y * n3 / n2, 3: 3 - 4 * y * n4 / n3}

    def discount(self, k: int, count: int) -> float:
        return 0.0 if count == 0 else self.discounts[k][min(count, 3)]

    def prob(self, history: tuple[int, ...], word: int) -> float:
        history = history[max(0, len(history) - (self.n - 1)):]
        return self._prob(len(history) + 1, history, word)

    def _prob(self, k: int, history: tuple[int, ...], word: int) -> float:
        if k == 0:
            return 1.0 / self.V
        lower = self._prob(k - 1, history[1:], word)
        followers = {g[-1]: c for g, c in self.counts[k].items() if g[:-1] == history}
        total = sum(followers.values())
        if total == 0:
            return lower
        gamma = sum(self.discount(k, c) for c in followers.values()) / total
        count = followers.get(word, 0)
        return max(count - self.discount(k, count), 0.0) / total + gamma * lower


def test_discounts_from_count_of_counts():
    # n = (10, 4, 2, 1): Y = 10/18 = 5/9; D1 = 1 - 2Y*4/10 = 5/9; D2 = 2 - 3Y*2/4 = 7/6; D3+ = 3 - 4Y/2 = 17/9
    assert estimate_discounts([10, 4, 2, 1]) == pytest.approx((5 / 9, 7 / 6, 17 / 9), abs=1e-15)
    assert estimate_discounts([10, 4, 2, 0])[2] == 3.0  # no n4: D3+ takes the whole count of 3
    assert estimate_discounts([5, 0, 1, 1]) is None  # no doubletons: Y is 1 but D2 divides by n2
    assert estimate_discounts([10, 1, 10, 1]) is None  # D2 = 2 - 25 < 0


@pytest.mark.parametrize("order", [2, 3])
def test_matches_reference_on_tiny_corpus(order):
    V = len(WORDS)
    model = KneserNey(KNConfig(order=order)).fit(np.array(TINY), V)
    reference = ReferenceKN(TINY, V, order)
    assert model.fallback_orders == []
    for k in range(1, order + 1):
        assert model.discounts[k - 1] == pytest.approx([reference.discounts[k][r] for r in (1, 2, 3)], abs=1e-15)
    # Every history of every length up to order-1 (seen or not), and a longer one.
    histories = [h for length in range(order) for h in itertools.product(range(V), repeat=length)]
    for history in histories + [(0, 1, 2, 3)]:
        expected = [reference.prob(history, w) for w in range(V)]
        np.testing.assert_allclose(model.prob_distribution(history), expected, rtol=0, atol=1e-12)
    expected_log = [np.log(reference.prob(tuple(HELD_OUT[:i]), w)) for i, w in enumerate(HELD_OUT)]
    np.testing.assert_allclose(model.log_prob(np.array(HELD_OUT)), expected_log, rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.log_prob(np.array(HELD_OUT), start=4), expected_log[4:], rtol=0, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_normalized_for_seen_and_unseen_contexts(order):
    rng = np.random.default_rng(order)
    V = 30
    train = rng.integers(0, V - 3, 400)  # the last 3 ids never occur in train
    model = KneserNey(KNConfig(order=order, discount_fallback=(0.5, 1.0, 1.5))).fit(train, V)
    seen = [tuple(train[i - length:i].tolist()) for i in (50, 123, 399) for length in range(order + 1)]
    unseen = [(V - 1,), (V - 2, V - 1), (0, V - 1, 5), tuple(rng.integers(0, V, 4).tolist()), ()]
    for context in seen + unseen:
        p = model.prob_distribution(context)
        assert p.shape == (V,) and np.all(p > 0)
        assert abs(p.sum() - 1.0) < 1e-12, context
    # The vectorized scorer agrees with the per-context distribution, start of stream included.
    stream = np.concatenate([train[:20], rng.integers(0, V, 20)])
    expected = [np.log(model.prob_distribution(tuple(stream[max(0, i - order + 1):i].tolist()))[w])
                for i, w in enumerate(stream)]
    np.testing.assert_allclose(model.log_prob(stream), expected, rtol=0, atol=1e-12)


def test_own_text_beats_shuffled_text():
    rng = np.random.default_rng(0)
    V = 50
    # A sparse Markov chain: each word has 3 likely successors.
    successors = rng.integers(0, V, (V, 3))
    train = [0]
    for _ in range(5000):
        train.append(int(successors[train[-1], rng.integers(0, 3)]))
    train = np.array(train)
    model = KneserNey(KNConfig(order=3)).fit(train, V)
    own, shuffled = evaluate(model, train), evaluate(model, rng.permutation(train))
    assert own["scored_tokens"] == shuffled["scored_tokens"] == train.size
    assert own["perplexity"] < 4 < 2 * V / 3 < shuffled["perplexity"]
    assert own["perplexity"] == pytest.approx(np.exp(own["nll_sum"] / own["scored_tokens"]))
    assert own["context"] == "2 previous tokens of the same stream"  # a trigram reads two


def test_user_errors():
    with pytest.raises(ValueError, match="not fitted"):
        KneserNey().score(np.array([1, 2]))
    with pytest.raises(ValueError, match="order"):
        KNConfig(order=0)
    unfit = KneserNey(KNConfig(order=3))
    with pytest.raises(ValueError, match="discount_fallback"):
        unfit.fit(np.array([0, 1, 2, 0, 1]), 3)  # too little data for the closed form
    with pytest.raises(ValueError, match="not fitted"):
        unfit.prob_distribution(())  # a failed fit leaves nothing half-built
    model = KneserNey(KNConfig(order=2)).fit(np.array(TINY), len(WORDS))
    with pytest.raises(ValueError, match="outside"):
        model.log_prob(np.array([0, len(WORDS)]))
    with pytest.raises(ValueError, match="1-D integer"):
        model.log_prob(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, np.array([], dtype=np.int64))

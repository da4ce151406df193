"""Interpolated modified Kneser-Ney n-gram language model (Chen & Goodman 1998, 1999).

For a history h of length k-1 and its suffix h' (first token dropped):

    p_k(w | h) = (a_k(hw) - D_k(a_k(hw))) / a_k(h.) + gamma_k(h) * p_{k-1}(w | h')
    gamma_k(h) = (D_k1 N1(h.) + D_k2 N2(h.) + D_k3+ N3+(h.)) / a_k(h.)
    p_0(w)     = 1 / V  (uniform over the whole vocabulary)

where a_k are raw counts at the highest order n and continuation counts
a_k(g) = N1+(. g) (distinct tokens seen before g) at lower orders, a_k(h.) is the sum of
a_k(hw) over w, and Nr(h.) the number of words w with a_k(hw) = r (N3+: >= 3). The three
discounts of each order come from that order's count-of-counts n1..n4 (of the a_k):
Y = n1/(n1 + 2 n2), D1 = 1 - 2Y n2/n1, D2 = 2 - 3Y n3/n2, D3+ = 3 - 4Y n4/n3.

Conventions, all chosen so every distribution sums to exactly 1 over the vocabulary:

- The training ids are one stream (sentence boundaries ignored); there is no start symbol,
  so an n-gram that only occurs at the very start of the stream has continuation count 0.
- A history the model never saw (a_k(h.) = 0) adds nothing at that order: gamma = 1, the
  lower order is used as is. Histories longer than n-1 are cut to their last n-1 tokens;
  shorter ones (the first tokens of a scored stream) start the recursion at order len+1,
  i.e. they use the lower-order (continuation-count) distributions.
- Where the closed-form discounts are undefined or out of range (n1, n2 or n3 is 0, or some
  D_r outside [0, r]: tiny or artificial data) fitting fails, unless `discount_fallback`
  gives the discounts to use instead, as KenLM's lmplz --discount_fallback does.

N-grams are counted with numpy only: the k-gram at each position gets the index of its
(k-1)-gram prefix in the sorted (k-1)-gram table, and key = prefix_index * V + last_word is
sorted with np.unique. Keys stay below max(N, V) * V whatever the order (no V^n), the tables
are sorted lexicographically, and lookups are np.searchsorted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from impl._checks import check_int, is_num, need, need_ints

_INT64_MAX = np.iinfo(np.int64).max


@dataclass
class KNConfig:
    order: int = 3
    # (D1, D2, D3+) for an order whose closed-form discounts fail; None raises instead.
    # KenLM's fallback is (0.5, 1.0, 1.5).
    discount_fallback: tuple[float, float, float] | None = None

    def __post_init__(self):
        need_ints(self, "order")
        fallback = self.discount_fallback
        if fallback is not None:
            need(self, isinstance(fallback, (tuple, list)) and len(fallback) == 3
                 and all(is_num(d) and 0.0 <= d <= r for r, d in enumerate(fallback, start=1)),
                 "discount_fallback", "(D1, D2, D3+) with 0 <= Dr <= r, or unset")
            self.discount_fallback = tuple(float(d) for d in fallback)


def estimate_discounts(count_of_counts) -> tuple[float, float, float] | None:
    """(D1, D2, D3+) from n1..n4 (Chen & Goodman eq. 26); None where undefined or out of range."""
    n1, n2, n3, n4 = (int(c) for c in count_of_counts)
    if n1 == 0 or n2 == 0 or n3 == 0:
        return None
    y = n1 / (n1 + 2 * n2)
    discounts = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    if not all(0.0 <= d <= r for r, d in enumerate(discounts, start=1)):
        return None
    return discounts


def _check_ids(ids, vocab_size: int, name: str) -> np.ndarray:
    array = np.asarray(ids)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array of token ids, got shape {array.shape} "
                         f"dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= vocab_size):
        raise ValueError(f"{name} has ids outside [0, {vocab_size}): min {array.min()}, max {array.max()}")
    return array.astype(np.int64)


def _lookup(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Row of each query key in the sorted unique `keys`, -1 where absent: (M,) int64."""
    if keys.size == 0:
        return np.full(query.shape, -1, dtype=np.int64)
    rows = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    return np.where(keys[rows] == query, rows, -1)


@dataclass
class _OrderTable:
    """Everything order k needs, in backoff form: p_k(w|h) = direct[hw] + scale[h] * p_{k-1}(w|h')."""

    keys: np.ndarray  # (U_k,) int64, sorted: index of the (k-1)-gram prefix * V + last word
    direct: np.ndarray  # (U_k,) float64: (a_k - D(a_k)) / a_k(h.), 0 for a_k = 0
    scale: np.ndarray  # (U_{k-1},) float64: gamma_k(h); 1 where h was never followed (a_k(h.) = 0)


def _order_table(keys: np.ndarray, counts: np.ndarray, d: tuple[float, float, float], V: int,
                 n_histories: int) -> _OrderTable:
    history = keys // V  # (U_k,) row of each k-gram's (k-1)-gram prefix; 0 for order 1
    discount = np.array([0.0, *d])[np.minimum(counts, 3)]  # (U_k,) D(a_k), 0 for a_k = 0
    total = np.bincount(history, weights=counts, minlength=n_histories)  # (U_{k-1},) a_k(h.)
    mass = np.bincount(history, weights=discount, minlength=n_histories)  # (U_{k-1},) gamma * a_k(h.)
    seen = total > 0
    safe_total = np.where(seen, total, 1.0)
    return _OrderTable(keys=keys, direct=(counts - discount) / safe_total[history],
                       scale=np.where(seen, mass / safe_total, 1.0))


class KneserNey:
    """Interpolated modified Kneser-Ney over integer token ids; see the module docstring."""

    def __init__(self, config: KNConfig | None = None):
        self.config = config or KNConfig()
        self.vocab_size: int | None = None
        self.tables: list[_OrderTable] = []  # tables[k - 1] is order k
        self.discounts = np.zeros((0, 3))  # (order, 3): D1, D2, D3+ per order k = row + 1
        self.fallback_orders: list[int] = []  # orders whose discounts came from discount_fallback

    def fit(self, train_ids: np.ndarray, vocab_size: int) -> KneserNey:
        """Count every order on one stream of ids in [0, vocab_size) and estimate its discounts."""
        check_int("vocab_size", vocab_size)
        ids = _check_ids(train_ids, vocab_size, "train_ids")
        if ids.size == 0:
            raise ValueError("train_ids is empty: nothing to count")
        if max(ids.size, vocab_size) > _INT64_MAX // vocab_size:
            raise ValueError(f"{ids.size} tokens with vocab_size {vocab_size} overflow the int64 n-gram keys")
        n, V = self.config.order, vocab_size
        # Built aside and stored at the end, so a failed fit leaves no half-fitted model.
        tables: list[_OrderTable] = []
        discounts, fallback_orders = [], []

        # Order 1's table is the whole vocabulary (row = word id) under the single empty history.
        keys = np.arange(V, dtype=np.int64)
        gram_at = ids  # (N - k + 1,): row of the k-gram starting at each position, for k = 1
        raw = np.bincount(ids, minlength=V)
        for k in range(1, n + 1):
            if k < n:
                # (k+1)-grams: prefix row * V + next word, then their sorted unique table.
                next_keys, first, next_gram_at, next_raw = np.unique(
                    gram_at[:-1] * V + ids[k:], return_index=True, return_inverse=True, return_counts=True)
                # Continuation count of a k-gram: distinct (k+1)-grams that end with it, i.e. the
                # k-gram one position after each distinct (k+1)-gram's first occurrence.
                counts = np.bincount(gram_at[first + 1], minlength=keys.size)
            else:
                counts = raw
            count_of_counts = np.bincount(np.minimum(counts, 5), minlength=6)[1:5]  # n1..n4
            d = estimate_discounts(count_of_counts)
            if d is None:
                if self.config.discount_fallback is None:
                    raise ValueError(f"cannot estimate modified Kneser-Ney discounts for order {k} from "
                                     f"count-of-counts n1..n4={count_of_counts.tolist()} (too little data?); "
                                     f"set KNConfig.discount_fallback (in a matrix: discount_fallback in the "
                                     f"model's own table, e.g. [model.kn3])")
                d = self.config.discount_fallback
                fallback_orders.append(k)
            discounts.append(d)
            tables.append(_order_table(keys, counts, d, V, n_histories=1 if k == 1 else tables[-1].keys.size))
            if k < n:
                keys, gram_at, raw = next_keys, next_gram_at.reshape(-1), next_raw
        self.vocab_size, self.tables = V, tables
        self.discounts, self.fallback_orders = np.array(discounts), fallback_orders
        return self

    def _require_fit(self) -> int:
        if self.vocab_size is None:
            raise ValueError("KneserNey model is not fitted: call fit(train_ids, vocab_size) first")
        return self.vocab_size

    def log_prob(self, ids: np.ndarray, start: int = 0) -> np.ndarray:
        """Natural-log probability of ids[start:], each given up to order-1 previous tokens of `ids`.

        Tokens before `start` serve only as history. Returns (len(ids) - start,) float64.
        """
        V = self._require_fit()
        x = _check_ids(ids, V, "ids")
        if not 0 <= start <= x.size:
            raise ValueError(f"start must be in [0, {x.size}], got {start}")
        p = np.full(x.size, 1.0 / V)  # (M,) p_k(x_i | history), built up from order 0
        ends = x  # (M,) row of the (k-1)-gram ending at each position, -1 if unseen or too short
        for k, table in enumerate(self.tables, start=1):
            if k == 1:
                history = np.zeros(x.size, dtype=np.int64)
                gram = x
            else:
                history = np.full(x.size, -1, dtype=np.int64)  # (k-1)-gram ending just before i
                history[1:] = ends[:-1]
                gram = np.where(history >= 0, _lookup(table.keys, np.maximum(history, 0) * V + x), -1)
            seen = history >= 0
            direct = np.where(gram >= 0, table.direct[np.maximum(gram, 0)], 0.0)
            p = np.where(seen, direct + table.scale[np.maximum(history, 0)] * p, p)
            ends = gram
        return np.log(p[start:])

    def score(self, ids: np.ndarray, start: int = 0) -> tuple[float, int]:
        """(negative log-likelihood sum in nats, number of scored tokens) of ids[start:]."""
        logp = self.log_prob(ids, start)
        return float(-logp.sum()), int(logp.size)

    def prob_distribution(self, context: tuple[int, ...]) -> np.ndarray:
        """p(w | context) for every word w: (V,) float64, summing to 1."""
        V = self._require_fit()
        context = tuple(_check_ids(np.asarray(context, dtype=np.int64), V, "context").tolist())
        context = context[len(context) - min(len(context), len(self.tables) - 1):]
        p = np.full(V, 1.0 / V)
        for k, table in enumerate(self.tables, start=1):
            if k - 1 > len(context):
                break
            history = self._history_row(context[len(context) - (k - 1):], V) if k > 1 else 0
            if history < 0:
                break  # a history never seen means no longer one was either
            lo, hi = np.searchsorted(table.keys, [history * V, (history + 1) * V])
            p = table.scale[history] * p
            p[table.keys[lo:hi] - history * V] += table.direct[lo:hi]
        return p

    def _history_row(self, tokens: tuple[int, ...], V: int) -> int:
        """Row of the len(tokens)-gram `tokens` in its order's table, -1 if never seen (V: the
        fitted vocabulary size)."""
        row = tokens[0]
        for j, token in enumerate(tokens[1:], start=2):
            row = int(_lookup(self.tables[j - 1].keys, np.array([row * V + token]))[0])
            if row < 0:
                return -1
        return row


def evaluate(model: KneserNey, ids: np.ndarray) -> dict:
    """Perplexity of a fitted model on one held-out stream."""
    nll_sum, scored = model.score(ids)
    if scored == 0:
        raise ValueError("evaluate: the stream to score is empty")
    return {"perplexity": math.exp(nll_sum / scored), "nll_sum": nll_sum, "scored_tokens": scored,
            "context": f"{model.config.order - 1} previous tokens of the same stream"}

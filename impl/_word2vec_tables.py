"""Word2vec's sampling tables, shared by its two backends (impl/_word2vec_numba.py and
impl/_word2vec_torch.py): gensim's Huffman tree, its subsampling keep probabilities, a Walker
alias table for the noise words, and gensim's bound on a pair's score.
"""

from __future__ import annotations

import heapq

import numpy as np

# gensim (word2vec.c) ignores a pair whose score lies outside [-MAX_EXP, MAX_EXP].
MAX_EXP = 6.0


class _HeapNode(tuple):
    """(count, index, left, right) ordered by count alone, as gensim's Heapitem.

    Comparing counts only makes heapq break ties exactly as gensim does, so the
    tree (and every code) is gensim's.
    """

    def __lt__(self, other):
        return self[0] < other[0]


def huffman_codes(counts: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Huffman codes and paths exactly as gensim's ``_assign_binary_codes``.

    Returns ``(codes, points)``: for word i, ``codes[i]`` (uint8) are the branch
    bits from the root down and ``points[i]`` (int64) the inner nodes on the way,
    numbered 0..len(counts)-2 in merge order (the root is len(counts)-2). The
    first node popped from the heap is the 0-branch.
    """
    n = len(counts)
    heap = [_HeapNode((int(c), i, None, None)) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    for k in range(n - 1):
        a, b = heapq.heappop(heap), heapq.heappop(heap)
        heapq.heappush(heap, _HeapNode((a[0] + b[0], n + k, a, b)))
    codes: list[np.ndarray] = [np.zeros(0, np.uint8)] * n
    points: list[np.ndarray] = [np.zeros(0, np.int64)] * n
    stack: list[tuple[_HeapNode, list[int], list[int]]] = [(heap[0], [], [])] if n else []  # (node, code, point)
    while stack:
        node, code, point = stack.pop()
        if node[1] < n:
            codes[node[1]] = np.array(code, np.uint8)
            points[node[1]] = np.array(point, np.int64)
        else:
            point = point + [node[1] - n]
            stack.append((node[2], code + [0], point))
            stack.append((node[3], code + [1], point))
    return codes, points


def huffman_table(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``huffman_codes`` as padded arrays: ``(points [V, depth] int64, codes [V, depth]
    uint8, lengths [V] int64)``, word i's path being ``points[i, :lengths[i]]``;
    depth >= 1 so that an empty tree (one word) still has a column."""
    codes, points = huffman_codes(counts)
    lengths = np.array([len(c) for c in codes], dtype=np.int64)
    depth = max(1, int(lengths.max()))
    point_table = np.zeros((len(counts), depth), np.int64)
    code_table = np.zeros((len(counts), depth), np.uint8)
    for i, (c, p) in enumerate(zip(codes, points)):
        point_table[i, : len(p)] = p
        code_table[i, : len(c)] = c
    return point_table, code_table, lengths


def keep_probabilities(counts: np.ndarray, sample: float) -> np.ndarray:
    """gensim's subsampling keep probability per word (float64, capped at 1)."""
    counts = np.asarray(counts, dtype=np.float64)
    if sample == 0:
        return np.ones_like(counts)
    threshold = sample * counts.sum()
    with np.errstate(divide="ignore"):
        p = (np.sqrt(counts / threshold) + 1.0) * (threshold / counts)
    return np.minimum(p, 1.0)


def alias_table(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker/Vose alias table for O(1) draws from ``weights`` (any scale).

    Returns ``(accept, alias)``: draw k uniformly, keep k with probability
    ``accept[k]``, else take ``alias[k]``. (A binary search over gensim's
    cumulative table costs ~15 dependent cache misses per noise word.)
    """
    n = len(weights)
    scaled = np.asarray(weights, dtype=np.float64) * (n / np.sum(weights))
    accept = np.ones(n)
    alias = np.arange(n)
    small = [i for i in range(n) if scaled[i] < 1.0]
    large = [i for i in range(n) if scaled[i] >= 1.0]
    while small and large:
        s, g = small.pop(), large[-1]
        accept[s], alias[s] = scaled[s], g
        scaled[g] -= 1.0 - scaled[s]
        if scaled[g] < 1.0:
            small.append(large.pop())
    return accept, alias


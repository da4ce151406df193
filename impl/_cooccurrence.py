"""Window co-occurrence counts: the one counter GloVe (impl/glove.py) and PPMI-SVD (impl/svd.py) share.

Model files never import each other; this helper module holds what both count models need,
so the windows are counted one way, under one memory bound.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from impl._checks import check_int

# Peak bytes per nonzero while counting: the float64 + int32 CSR accumulator
# (12 bytes) exists up to three times at once (accumulator, chunk sum, and the
# transpose added for the symmetric window).
_BYTES_PER_NONZERO = 36
# Token positions per counting chunk: chunk * window pairs (row, col, weight:
# 16 bytes each) are summed into the accumulator at a time.
_CHUNK_TOKENS = 1 << 20


def cooccurrence(
    ids: np.ndarray,
    offsets: np.ndarray,
    vocab_size: int,
    window: int,
    *,
    symmetric: bool = True,
    distance_weighting: bool = True,
    max_memory_gb: float = 4.0,
) -> sp.coo_matrix:
    """Window co-occurrence counts X [vocab_size, vocab_size] (float64).

    Every pair of tokens (t, t + d) with 1 <= d <= window in the same sentence
    (sentence i is ``ids[offsets[i]:offsets[i+1]]``) adds 1/d (GloVe's weighting)
    or, with ``distance_weighting=False``, 1 to X[ids[t], ids[t + d]] (row: the
    earlier word) and, when ``symmetric``, also to X[ids[t + d], ids[t]]. Raises
    ValueError as soon as the estimated peak memory, from the nonzeros counted
    so far, exceeds ``max_memory_gb``.
    """
    check_int("window", window)
    ids = np.asarray(ids, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    V, N = int(vocab_size), len(ids)
    # Sentence index of every token [N]: a pair counts only if both ends agree.
    sent = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    X = sp.csr_matrix((V, V), dtype=np.float64)
    for t0 in range(0, N, _CHUNK_TOKENS):
        t1 = min(N, t0 + _CHUNK_TOKENS)
        rows, cols, vals = [], [], []
        for d in range(1, window + 1):
            left = np.arange(t0, min(t1, N - d))  # [n_d] positions with a right neighbour at d
            keep = left[sent[left] == sent[left + d]]
            rows.append(ids[keep])
            cols.append(ids[keep + d])
            vals.append(np.full(len(keep), 1.0 / d if distance_weighting else 1.0))
        # coo -> csr sums the duplicate (row, col) pairs of this chunk.
        pairs = (np.concatenate(rows), np.concatenate(cols))
        X = X + sp.coo_matrix((np.concatenate(vals), pairs), shape=(V, V)).tocsr()
        nonzeros = X.nnz * (2 if symmetric else 1)
        estimate = nonzeros * _BYTES_PER_NONZERO / 1e9
        if estimate > max_memory_gb:
            raise ValueError(
                f"cooccurrence: estimated {estimate:.3g} GB for {nonzeros} nonzeros "
                f"(vocab {V}, window {window}) exceeds the {max_memory_gb} GB bound; shrink the vocabulary or window"
            )
    if symmetric:
        X = X + X.T
    return X.tocoo()

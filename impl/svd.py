"""SVD of a (shifted, smoothed) PPMI matrix: the count-based baseline, tuned.

Paper: Levy, Goldberg, Dagan (2015), "Improving Distributional Similarity with
Lessons Learned from Word Embeddings". Word vectors are the top singular
vectors of the positive pointwise mutual information matrix of word-context
co-occurrences, with the hyper-parameters the paper carries over from
word2vec and GloVe:

  * context distribution smoothing (cds): context counts raised to
    ``cds_alpha`` (0.75, word2vec's noise exponent) when computing P(c);
  * shifted PPMI: max(PMI - log k, 0) with k = ``neg_shift`` (word2vec's
    number of negative samples; k = 1 is plain PPMI);
  * eigenvalue weighting: vectors U_d Sigma_d^p with p = ``eig_power``
    (p = 1 is the textbook SVD, 0.5 the symmetric split, 0 drops Sigma);
  * row normalisation of the output vectors.

What differs from the paper's hyperwords code: the window is symmetric and
fixed (optionally weighted 1/distance, as GloVe) instead of word2vec's dynamic
window, there is no frequent-word subsampling, contexts never cross a
sentence, only the word vectors W = U Sigma^p are returned (not W + C), and
the truncated SVD is ARPACK's (scipy ``svds``) started from a seeded vector,
so it is deterministic for a seed; it always runs on the CPU. The windows are
counted by GloVe's counter (impl/_cooccurrence.py), under its default 4 GB bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from gensim.models import KeyedVectors
from scipy.sparse.linalg import svds

from impl._checks import check_flat_corpus, is_bool, is_num, need, need_ints
from impl._cooccurrence import cooccurrence


@dataclass
class SVDConfig:
    """Hyper-parameters, named after the paper's (win, dyn, cds, neg, eig, nrm)."""

    vector_size: int = 100
    window: int = 5
    distance_weighting: bool = False  # True: a context at distance d counts 1/d
    cds_alpha: float = 0.75  # context counts ** cds_alpha; 1 = no smoothing
    neg_shift: float = 1.0  # PMI - log(neg_shift); 1 = plain PPMI
    eig_power: float = 0.5  # vectors = U Sigma^eig_power
    normalize: bool = True  # unit-length output rows

    def __post_init__(self) -> None:
        need_ints(self, "vector_size", "window")
        need(self, is_bool(self.distance_weighting), "distance_weighting", "a bool")
        need(self, is_num(self.cds_alpha) and self.cds_alpha > 0, "cds_alpha", "a number > 0")
        need(self, is_num(self.neg_shift) and self.neg_shift >= 1, "neg_shift", "a number >= 1")
        need(self, is_num(self.eig_power) and self.eig_power >= 0, "eig_power", "a number >= 0")
        need(self, is_bool(self.normalize), "normalize", "a bool")


def ppmi(counts_matrix: sp.spmatrix, cds_alpha: float = 0.75, neg_shift: float = 1.0) -> sp.csr_matrix:
    """Shifted PPMI with context distribution smoothing, on the nonzeros only.

    SPPMI(w, c) = max(0, log(#(w,c) * sum_c' #(c')^a / (#(w) * #(c)^a)) - log k),
    with #(w) the row sums, #(c) the column sums, a = ``cds_alpha`` and
    k = ``neg_shift``; entries that end up 0 are dropped.
    """
    M = sp.csr_matrix(counts_matrix, dtype=np.float64, copy=True)
    M.sum_duplicates()
    M.eliminate_zeros()
    row_sum = np.asarray(M.sum(axis=1)).ravel()  # [V] #(w)
    col_smooth = np.asarray(M.sum(axis=0)).ravel() ** cds_alpha  # [C] #(c)^a
    # Each stored entry of row r, column c: #(w,c) / (#(w) * P_a(c)).
    rows = np.repeat(np.arange(M.shape[0]), np.diff(M.indptr))
    M.data = np.log(M.data * col_smooth.sum() / (row_sum[rows] * col_smooth[M.indices])) - math.log(neg_shift)
    M.data = np.maximum(M.data, 0.0)
    M.eliminate_zeros()
    return M


def svd_vectors(matrix: sp.spmatrix, k: int, eig_power: float, *, seed: int) -> np.ndarray:
    """Top-k truncated SVD vectors U_k Sigma_k^eig_power [n_rows, k] (float64).

    Columns are ordered by decreasing singular value; ARPACK starts from a
    vector drawn from ``seed``, so the result is deterministic for a seed.
    """
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    v0 = np.random.default_rng(seed).uniform(-1.0, 1.0, min(matrix.shape))
    u, s, _ = svds(matrix, k=k, v0=v0, solver="arpack")
    order = np.argsort(-s)  # svds returns ascending singular values
    return u[:, order] * s[order] ** eig_power


def train_svd_ppmi(
    ids: np.ndarray,
    offsets: np.ndarray,
    words: list[str],
    counts: np.ndarray,
    config: SVDConfig,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> KeyedVectors:
    """Count windows in a flat corpus, SVD its shifted PPMI, return the word vectors.

    ``ids``, ``offsets``, ``counts``: the flat corpus of ``impl._checks.check_flat_corpus``
    (``counts`` is only checked: the PMI marginals come from the window counts); ``words``:
    the vocabulary, by descending count. ``device`` is accepted for the common signature;
    sparse counting and ARPACK run on the CPU.
    """
    V = len(words)
    ids, offsets, counts = check_flat_corpus(ids, offsets, counts, V)
    if config.vector_size >= V:
        raise ValueError(f"SVDConfig.vector_size={config.vector_size}: expected fewer dimensions than the {V} words")

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=3, unit="step", desc="svd-ppmi")  # counts, ppmi, svd
    X = cooccurrence(ids, offsets, V, config.window, distance_weighting=config.distance_weighting)
    if bar is not None:
        bar.update(1)
    X = ppmi(X, config.cds_alpha, config.neg_shift)
    if bar is not None:
        bar.update(1)
    vectors = svd_vectors(X, config.vector_size, config.eig_power, seed=seed)  # [V, vector_size]
    if bar is not None:
        bar.update(1)
        bar.close()
    if config.normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms > 0, norms, 1.0)  # rows of words without contexts stay 0
    kv = KeyedVectors(vector_size=config.vector_size)
    kv.add_vectors(list(words), vectors.astype(np.float32))
    return kv

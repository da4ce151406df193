"""GloVe: global vectors from weighted least squares on log co-occurrence counts.

Paper: Pennington, Socher, Manning (2014), "GloVe: Global Vectors for Word
Representation". The model minimises

    J = sum_{i,j: X_ij > 0} f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2,
    f(x) = min(1, (x / x_max)^alpha),

over the nonzero entries of the word-context co-occurrence matrix X, where a
context word at distance d from the centre adds 1/d to X (symmetric window,
never crossing a sentence). Training follows the reference C code (glove.c):
AdaGrad with accumulators starting at 1 that sum the squared
*learning-rate-scaled* vector gradients (glove.c's bias steps are not scaled
by the learning rate, and neither are ours), word/context vectors and biases
drawn uniform(-0.5, 0.5) / vector_size, per-coordinate clipping of the vector
gradients at 100, and word + context vectors as output.

What differs, on purpose:
  * Updates are applied per mini-batch of ``batch_size`` nonzero entries, all
    computed from the same parameter snapshot and summed per row (scatter-add),
    instead of Hogwild per-entry SGD. Each row's AdaGrad accumulator still grows
    by the sum of the squared per-entry steps, as if they were applied one by one.
  * The nonzero entries are reshuffled every epoch (glove.c shuffles the
    co-occurrence file once, then reads it in the same order every epoch).
  * The counts are built in memory as a sparse matrix (vectorized, bounded by
    ``max_vocab_memory_gb``) rather than by cooccur.c's on-disk merge sort.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from gensim.models import KeyedVectors

from impl._checks import check_flat_corpus, is_bool, is_num, need, need_ints
from impl._cooccurrence import cooccurrence
from impl._torch_threads import torch_threads

# glove.c clips each coordinate of a per-entry gradient to [-100, 100].
_GRAD_CLIP = 100.0


@dataclass
class GloVeConfig:
    """Hyper-parameters, named and defaulted like the reference C code's flags."""

    vector_size: int = 100
    window: int = 10
    x_max: float = 100.0
    alpha: float = 0.75
    epochs: int = 25
    learning_rate: float = 0.05
    batch_size: int = 2048  # nonzero entries per update (fastest on one CPU thread; larger on a GPU)
    symmetric: bool = True  # False: left context only, as cooccur.c -symmetric 0
    max_vocab_memory_gb: float = 4.0  # bound on the co-occurrence matrix while counting
    threads: int = 2  # torch's intra-op threads on the CPU while fitting (restored after)

    # Fields a matrix's shared [train] table does not set: there `alpha` is word2vec's
    # learning rate, here the weighting exponent; only [model.glove] sets it.
    not_shared: ClassVar[frozenset[str]] = frozenset({"alpha"})

    def __post_init__(self) -> None:
        need_ints(self, "vector_size", "window", "epochs", "batch_size", "threads")
        need(self, is_num(self.x_max) and self.x_max > 0, "x_max", "a number > 0")
        need(self, is_num(self.alpha) and self.alpha >= 0, "alpha", "a number >= 0")
        need(self, is_num(self.learning_rate) and self.learning_rate > 0, "learning_rate", "a number > 0")
        need(self, is_bool(self.symmetric), "symmetric", "a bool")
        need(self, is_num(self.max_vocab_memory_gb) and self.max_vocab_memory_gb > 0, "max_vocab_memory_gb",
             "a number > 0")


def glove_weight(x, x_max: float, alpha: float):
    """f(x) = min(1, (x / x_max)^alpha), elementwise on a numpy array or torch tensor."""
    w = (x / x_max) ** alpha
    return w.clamp(max=1.0) if isinstance(w, torch.Tensor) else np.minimum(w, 1.0)


def _nonzero_entries(X: sp.spmatrix, config: GloVeConfig, device: torch.device):
    """The nonzero entries of X [V, V] as tensors on ``device``: rows, cols [nnz] (int64) and
    log X_ij, f(X_ij) [nnz] (float32, computed in float64)."""
    X = sp.csr_matrix(X, dtype=np.float64, copy=True)
    X.sum_duplicates()  # one entry per (row, col), then only the nonzero ones
    X.eliminate_zeros()
    X = X.tocoo()
    if X.shape[0] != X.shape[1] or (X.data < 0).any():
        raise ValueError(f"X: expected a square matrix of positive counts, got shape {X.shape}")
    rows = torch.from_numpy(X.row.astype(np.int64)).to(device)  # [nnz]
    cols = torch.from_numpy(X.col.astype(np.int64)).to(device)  # [nnz]
    x = torch.from_numpy(X.data.astype(np.float64))
    log_x = torch.log(x).float().to(device)  # [nnz]
    f_x = glove_weight(x, config.x_max, config.alpha).float().to(device)  # [nnz]
    return rows, cols, log_x, f_x


def _adagrad_step(P: torch.Tensor, G: torch.Tensor, entries, idx: torch.Tensor, lr: float) -> torch.Tensor:
    """One mini-batch update of P and G [2V, D + 1] in place from the entries ``idx`` [b].

    Returns the batch's cost 0.5 * sum f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2
    (float64), computed before the update.
    """
    rows, cols, log_x, f_x = entries
    V, D, b = P.shape[0] // 2, P.shape[1] - 1, len(idx)
    both = torch.cat([rows.index_select(0, idx), cols.index_select(0, idx) + V])  # [2b] word, context rows
    p = P.index_select(0, both)  # [2b, D + 1]
    w, c = p[:b], p[b:]
    diff = (w[:, :D] * c[:, :D]).sum(1) + w[:, D] + c[:, D] - log_x.index_select(0, idx)  # [b]
    fdiff = f_x.index_select(0, idx) * diff  # [b] half the gradient of J with respect to the score
    cost = 0.5 * (fdiff * diff).sum(dtype=torch.float64)
    # Negated per-entry gradients [2b, D + 1]: each side's vector gradient
    # is fdiff times the other side's vector, clipped, times the learning
    # rate (folded into the factor and the clip); the bias gradient is
    # fdiff itself, not scaled by the learning rate, as in glove.c.
    neg_grad = torch.empty_like(p)
    factor = (-lr * fdiff)[:, None]  # [b, 1]
    torch.mul(c[:, :D], factor, out=neg_grad[:b, :D])
    torch.mul(w[:, :D], factor, out=neg_grad[b:, :D])
    neg_grad[:, :D].clamp_(-lr * _GRAD_CLIP, lr * _GRAD_CLIP)
    neg_grad[:b, D] = -fdiff
    neg_grad[b:, D] = -fdiff
    # Steps use the accumulators from before this batch; the accumulators
    # then grow by every per-entry squared gradient.
    P.index_add_(0, both, G.index_select(0, both).rsqrt_().mul_(neg_grad))
    G.index_add_(0, both, neg_grad.square_())
    return cost


def fit_glove(
    X: sp.spmatrix,
    config: GloVeConfig,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> tuple[np.ndarray, list[float]]:
    """Fit GloVe to a co-occurrence matrix X [V, V].

    Returns ``(vectors, losses)``: word + context vectors [V, vector_size]
    (float32) and, per epoch, glove.c's reported cost 0.5 * J / nnz, summed
    over each batch before its update.
    """
    device = torch.device(device)
    with torch_threads(config.threads if device.type == "cpu" else torch.get_num_threads()):
        return _fit(X, config, seed, device, progress)


def _fit(X: sp.spmatrix, config: GloVeConfig, seed: int, device: torch.device,
         progress: bool) -> tuple[np.ndarray, list[float]]:
    entries = _nonzero_entries(X, config, device)
    V, D, nnz = X.shape[0], config.vector_size, len(entries[0])

    # Parameters P [2V, D + 1]: rows 0..V-1 are the word vectors w_i, rows
    # V..2V-1 the context vectors w~_j, each with its bias in the last column
    # (glove.c's single parameter array), uniform(-0.5, 0.5) / D. G [2V, D + 1]
    # holds their AdaGrad accumulators, starting at 1.
    init = (np.random.default_rng(seed).random((2 * V, D + 1), dtype=np.float32) - 0.5) / D
    P = torch.from_numpy(init).to(device)
    G = torch.ones_like(P)
    gen = torch.Generator(device=device).manual_seed(seed)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs * nnz, unit="pair", desc="glove")
    losses = []
    for _ in range(config.epochs):
        order = torch.randperm(nnz, generator=gen, device=device)
        cost = torch.zeros((), dtype=torch.float64, device=device)
        for b0 in range(0, nnz, config.batch_size):
            idx = order[b0 : b0 + config.batch_size]  # [b]
            cost += _adagrad_step(P, G, entries, idx, config.learning_rate)
            if bar is not None:
                bar.update(len(idx))
        losses.append(cost.item() / max(nnz, 1))
        if bar is not None:
            bar.set_postfix(cost=f"{losses[-1]:.4f}")
    if bar is not None:
        bar.close()
    vectors = P[:V, :D] + P[V:, :D]  # word + context vectors [V, D]
    return vectors.cpu().numpy(), losses


def train_glove(
    ids: np.ndarray,
    offsets: np.ndarray,
    words: list[str],
    counts: np.ndarray,
    config: GloVeConfig,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> KeyedVectors:
    """Count co-occurrences in a flat corpus, fit GloVe, return word + context vectors.

    ``ids``, ``offsets``, ``counts``: the flat corpus of ``impl._checks.check_flat_corpus``
    (``counts`` is only checked); ``words``: the vocabulary, by descending count.
    """
    V = len(words)
    ids, offsets, counts = check_flat_corpus(ids, offsets, counts, V)
    X = cooccurrence(ids, offsets, V, config.window, symmetric=config.symmetric,
                     max_memory_gb=config.max_vocab_memory_gb)
    vectors, _ = fit_glove(X, config, seed=seed, device=device, progress=progress)
    kv = KeyedVectors(vector_size=config.vector_size)
    kv.add_vectors(list(words), vectors)
    return kv

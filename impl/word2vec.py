"""Word2Vec: CBOW and skip-gram with negative sampling or hierarchical softmax.

Papers:
  * Mikolov, Chen, Corrado, Dean (2013a), "Efficient Estimation of Word
    Representations in Vector Space" (CBOW, skip-gram, hierarchical softmax).
  * Mikolov, Sutskever, Chen, Corrado, Dean (2013b), "Distributed
    Representations of Words and Phrases and their Compositionality"
    (negative sampling with the unigram^0.75 noise distribution, frequent-word
    subsampling).

The training semantics follow gensim's ``word2vec_inner.pyx`` (itself a port of
the original ``word2vec.c``): per-epoch subsampling with gensim's keep
probability applied before windowing, a dynamic window drawn per centre word,
contexts that never cross sentence boundaries, the unigram^ns_exponent noise
distribution, a Huffman tree built exactly like gensim's, a learning rate decaying
linearly from ``alpha`` to ``min_alpha`` over all epochs, gensim's input-vector
initialisation (uniform(-1, 1) / vector_size; output vectors zero), gensim's
skip of any dot product outside [-6, 6], and gensim's CBOW quirk of giving
every context word the full error when ``cbow_mean`` is on (and error/count
when it is off).

Two implementations of those semantics (``Word2VecConfig.backend``; "auto" takes
the kernel on the CPU and the torch path on CUDA):

``"numba"``, the CPU kernel: gensim's design. Compiled functions (``_train_job``)
process a job of whole sentences with per-pair SGD, each pair seeing the updates of
the pairs before it, and ``threads`` Python threads run jobs Hogwild on the shared
matrices (the kernel releases the GIL; no spinning pool, so a thread that loses its
core only slows its own jobs). What differs from gensim, on purpose:
  * With hierarchical softmax and negative sampling together, a pair (skip-gram)
    or centre (CBOW) scores its Huffman path and its noise targets from one input
    vector and takes one input step, as ``word2vec.c`` does; gensim 4 runs the two
    objectives one after the other, each with its own input step.
  * Skip-gram shares one draw of ``negative`` noise words among a centre's context
    pairs (``sg_shared_negatives=True``, the default, as the torch path must for
    speed); ``sg_shared_negatives=False`` draws per pair as gensim does.
  * Noise words come from a Walker alias table (two random numbers, two table
    reads: 10-16 ns a draw for 11k-50k words) instead of a binary search of
    gensim's cumulative table (52-76 ns).
  * The learning rate is set per sentence rather than per job of ~10k words, and
    each job's random stream (gensim's 48-bit linear congruential generator) is
    seeded from ``seed``, so one thread gives the same vectors on every run.
    With ``threads`` > 1, as with gensim's workers, the interleaving of the
    threads' updates (and so the vectors) varies from run to run.

``"torch"``, the batched path (CUDA, or the CPU on request): updates are computed
for a batch of ``batch_size`` consecutive centre positions at a time, so that
batched tensor ops rather than Python carry the cost:
  * CBOW scores every centre of the batch against one parameter snapshot and
    sums the steps (scatter-add). Skip-gram (``sg_update_order="slot"``, the
    default) goes through the window one slot at a time: the batch's pairs with
    their context word at slot j are scored against the matrices as the slots
    before left them, so a centre's output rows and a token's input row change
    between the pairs that use them, as in the kernel's loop. Scoring the whole
    window against one snapshot (``sg_update_order="batch"``) trains about 1.5x
    faster but lands elsewhere: on offline-mix (standard-vectors settings, 3
    seeds) MEN-TR-3k 0.38 where gensim gets 0.35, whatever the batch size (64 or
    1024 centres); the slot order gets gensim's 0.35. (Per-centre private copies
    of the rows do not close that gap: the frequent words' shared rows need the
    updates of the other centres between slots too.)
  * Skip-gram noise is shared per centre by default as above; measured on
    offline-mix (seed 0, standard-vectors settings, batch order), per-pair draws
    did not close the +0.03 MEN-TR-3k gap to gensim (0.373 vs gensim's 0.347;
    WS-353 0.332, SimLex 0.241) and cost several times the training time.
  * CPU parallelism: ``threads`` Python threads split each batch's centres
    (CBOW and batch-order skip-gram) and the calling thread applies the summed
    steps in a fixed order, so results do not depend on thread timing;
    ``intra_op_threads`` sizes torch's own pool for the duration of training
    (the slot order's only parallelism, as its slots run in sequence).
  * torch's random generators draw the subsampling, windows and noise words.

Both use the exact sigmoid instead of gensim's 1000-entry lookup table, so results
match gensim statistically, not bit for bit.
"""

from __future__ import annotations

import heapq
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import torch
from gensim.models import KeyedVectors
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from impl._checks import check_flat_corpus, is_bool, is_int, is_num, need

# gensim (word2vec.c) ignores a pair whose score lies outside [-MAX_EXP, MAX_EXP].
_MAX_EXP = 6.0
# Torch path: raw tokens per sentence-aligned chunk whose subsampling, windows and
# noise words are drawn in one vectorized go (memory: a few dozen bytes per token).
_CHUNK_TOKENS = 1 << 18
# Kernel: raw tokens per job a thread takes at a time (gensim's batch_words is 10k).
# Small enough that threads share the last jobs of a run evenly, large enough that
# the ~20 us of Python per job stay below 1% of its time.
_JOB_TOKENS = 1 << 14


@dataclass
class Word2VecConfig:
    """Hyper-parameters, named and defaulted like gensim's ``Word2Vec``."""

    arch: str = "cbow"  # "cbow" | "sg"
    vector_size: int = 100
    window: int = 5
    negative: int = 5
    hs: bool = False
    ns_exponent: float = 0.75
    sample: float = 1e-3
    epochs: int = 5
    # None: 0.025 for sg, 0.05 for cbow (word2vec.c's defaults; gensim's Word2Vec
    # class defaults to 0.025 for both).
    alpha: float | None = None
    min_alpha: float = 1e-4
    # "auto": the numba kernel on the CPU, the torch path on CUDA (module docstring).
    backend: str = "auto"  # "auto" | "numba" | "torch"
    # Worker threads: the kernel's Hogwild threads, or the torch path's per-batch workers.
    # "auto": one per core this process may run on (os.sched_getaffinity).
    threads: int | str = "auto"
    cbow_mean: bool = True
    sg_shared_negatives: bool = True  # skip-gram: one noise draw per centre, shared by its window
    # Torch path only. Centre positions per update.
    batch_size: int = 1024
    # Torch path only: torch.set_num_threads during training (restored after). torch's
    # OpenMP pool busy-waits, so it is worth more than 1 only on otherwise idle cores
    # (the slot order's only parallelism).
    intra_op_threads: int = 1
    # Torch path only, skip-gram: "slot" applies the steps after each window slot
    # (gensim's quality on offline-mix); "batch" scores every slot of the batch against
    # one parameter snapshot and sums the steps (about 1.5x faster, +0.03 MEN-TR-3k over
    # gensim; see the module docstring).
    sg_update_order: str = "slot"

    def __post_init__(self) -> None:
        need(self, self.arch in ("cbow", "sg"), "arch", "'cbow' or 'sg'")
        need(self, is_int(self.vector_size) and self.vector_size >= 1, "vector_size", "an int >= 1")
        need(self, is_int(self.window) and self.window >= 1, "window", "an int >= 1")
        need(self, is_bool(self.hs), "hs", "a bool")
        need(self, is_int(self.negative) and self.negative >= 0, "negative", "an int >= 0")
        need(self, self.hs or self.negative > 0, "negative", "an int >= 1 when hs is False")
        need(self, is_num(self.ns_exponent), "ns_exponent", "a finite number")
        need(self, is_num(self.sample) and self.sample >= 0, "sample", "a number >= 0")
        need(self, is_int(self.epochs) and self.epochs >= 1, "epochs", "an int >= 1")
        need(self, self.alpha is None or (is_num(self.alpha) and self.alpha > 0), "alpha", "None or a number > 0")
        need(self, is_num(self.min_alpha) and self.min_alpha >= 0, "min_alpha", "a number >= 0")
        need(self, self.backend in ("auto", "numba", "torch"), "backend", "'auto', 'numba' or 'torch'")
        need(self, self.threads == "auto" or (is_int(self.threads) and self.threads >= 1), "threads",
             "'auto' or an int >= 1")
        need(self, is_bool(self.cbow_mean), "cbow_mean", "a bool")
        need(self, is_bool(self.sg_shared_negatives), "sg_shared_negatives", "a bool")
        need(self, is_int(self.batch_size) and self.batch_size >= 1, "batch_size", "an int >= 1")
        need(self, is_int(self.intra_op_threads) and self.intra_op_threads >= 1, "intra_op_threads", "an int >= 1")
        need(self, self.sg_update_order in ("batch", "slot"), "sg_update_order", "'batch' or 'slot'")

    @property
    def start_alpha(self) -> float:
        if self.alpha is not None:
            return float(self.alpha)
        return 0.025 if self.arch == "sg" else 0.05

    @property
    def n_threads(self) -> int:
        """``threads`` resolved: "auto" is the number of cores this process may run on."""
        if self.threads != "auto":
            return int(self.threads)
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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
    stack = [(heap[0], [], [])] if n else []
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


def context_mask(sent: torch.Tensor, reduced: torch.Tensor, window: int) -> torch.Tensor:
    """Which window slots of each position hold a trainable context word.

    ``sent`` [n] is the sentence id of each (kept) token, ``reduced`` [n] the
    effective window (1..window) drawn for each centre. Returns a bool tensor
    [n, 2*window+1] whose column j stands for the token at offset j - window;
    the centre column is False, as are slots beyond the effective window or in
    another sentence (or outside the sequence).
    """
    n = sent.shape[0]
    pad = torch.full((window,), -1, dtype=sent.dtype, device=sent.device)
    padded = torch.cat([pad, sent, pad])  # [n + 2w]
    slots = padded.unfold(0, 2 * window + 1, 1)  # [n, 2w+1] view
    offs = torch.arange(-window, window + 1, device=sent.device).abs()  # [2w+1]
    near = (offs[None, :] <= reduced[:, None]) & (offs[None, :] > 0)
    return (slots == sent[:, None]) & near if n else near


def train_word2vec(
    ids: np.ndarray,
    offsets: np.ndarray,
    words: list[str],
    counts: np.ndarray,
    config: Word2VecConfig,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> KeyedVectors:
    """Train word vectors on a flat corpus; return the input vectors.

    ``ids`` holds the token ids of the whole corpus, sentence i being
    ``ids[offsets[i]:offsets[i+1]]``; ``words`` is the vocabulary sorted by
    descending count and ``counts`` its corpus frequencies.
    """
    device = torch.device(device)
    V, D = len(words), config.vector_size
    ids, offsets, counts = check_flat_corpus(ids, offsets, counts, V, positive_counts=True)
    backend = config.backend
    if backend == "auto":
        backend = "numba" if device.type == "cpu" else "torch"
    if backend == "numba" and device.type != "cpu":
        raise ValueError(f"Word2VecConfig.backend='numba' runs on the CPU, not on device {device}")

    # Input vectors as gensim's prep_vectors: uniform(-1, 1) / vector_size. [V, D]
    syn0 = (np.random.default_rng(seed).random((V, D), dtype=np.float32) * 2 - 1) / D
    # One output matrix [n_out, D] holds the Huffman inner nodes (rows 0..V-2)
    # followed by the negative-sampling word vectors, so both objectives share
    # one scoring path. Targets per centre: [path..., word, noise...].
    n_inner = V - 1 if config.hs else 0
    syn_out = np.zeros((n_inner + (V if config.negative else 0), D), np.float32)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs * len(ids), unit="tok", desc=f"word2vec {config.arch}")
    try:
        if backend == "numba":
            _train_numba(ids, offsets, counts, syn0, syn_out, config, seed, bar)
        else:
            syn0 = _train_torch(ids, offsets, counts, syn0, syn_out, config, seed, device, bar)
    finally:
        if bar is not None:
            bar.close()

    kv = KeyedVectors(vector_size=D)
    kv.add_vectors(list(words), syn0)
    return kv


def warm_up(config: Word2VecConfig, device: torch.device | str = "cpu") -> None:
    """Run `config`'s code path once on a toy corpus: the kernel is compiled (or loaded from
    numba's on-disk cache), so a timed run that follows measures training, not the seconds
    of compilation the first call in a fresh checkout takes (Lee trains in under one)."""
    ids = np.tile(np.arange(4, dtype=np.int64), 6)  # 2 sentences of 12 tokens over 4 words
    train_word2vec(ids, np.array([0, 12, 24]), ["a", "b", "c", "d"], np.full(4, 6), replace(config, epochs=1),
                   seed=0, device=device)


# --- the numba kernel -----------------------------------------------------------------------

# fastmath without "nnan"/"ninf": reassociation lets LLVM vectorize the dot products and
# the row updates, while the MAX_EXP test still sees NaN and inf as they are.
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
# gensim's random_int32: a 48-bit linear congruential generator (java.util.Random's),
# whose bits 16..47 are the 32-bit draw. uint64 constants keep numba in unsigned ints.
_LCG_MUL, _LCG_ADD, _LCG_MASK = np.uint64(25214903917), np.uint64(11), np.uint64((1 << 48) - 1)
_U16, _U32 = np.uint64(16), np.uint64(32)
_ONE = np.float32(1.0)


@intrinsic
def _prefetch(typingctx, matrix, row, col):
    """Hint the CPU to fetch the cache line of ``matrix[row, col]`` (LLVM's prefetch: for a
    write, into all cache levels); no effect on results."""

    def codegen(context, builder, signature, args):
        array_type, row_type, col_type = signature.args
        array = context.make_array(array_type)(context, builder, args[0])
        index = [context.cast(builder, args[1], row_type, types.intp),
                 context.cast(builder, args[2], col_type, types.intp)]
        pointer = builder.bitcast(cgutils.get_item_pointer(context, builder, array_type, array, index),
                                  ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [pointer.type, i32, i32, i32]), "llvm.prefetch.p0")
        builder.call(prefetch, [pointer, ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(matrix, row, col), codegen


@njit(nogil=True, cache=True)
def _prefetch_row(matrix, row):
    """Prefetch every cache line (16 floats) of ``matrix[row]``, its last one included."""
    for d in range(0, matrix.shape[1], 16):
        _prefetch(matrix, row, d)
    _prefetch(matrix, row, matrix.shape[1] - 1)


@njit(nogil=True, cache=True)
def _next(state):
    """One LCG step: (new state, 32 random bits), both uint64."""
    state = (state * _LCG_MUL + _LCG_ADD) & _LCG_MASK
    return state, state >> _U16


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _score_and_step(inputs, i, syn_out, rows, labels, n, alpha, work):
    """gensim's inner loop for one input vector x = ``inputs[i]`` [D] against the output
    rows ``rows[:n]`` with labels ``labels[:n]``, in order: each row with a score f inside
    (-MAX_EXP, MAX_EXP) adds g * row to ``work`` [D] (the input's step, applied by the
    caller) and then takes its own step g * x, g = (label - sigmoid(f)) * alpha.
    (A matrix and a row index rather than a row view: a view's reference count is one
    atomic counter for the whole matrix, which the threads would fight over.)"""
    D = inputs.shape[1]
    for t in range(n):
        r = rows[t]
        f = np.float32(0.0)
        for d in range(D):
            f += inputs[i, d] * syn_out[r, d]
        if f <= -_MAX_EXP or f >= _MAX_EXP:
            continue
        g = (labels[t] - _ONE / (_ONE + math.exp(-f))) * alpha
        for d in range(D):
            work[d] += g * syn_out[r, d]
            syn_out[r, d] += g * inputs[i, d]


@njit(nogil=True, cache=True)
def _centre_targets(word, points, codes, lengths, hs, negative, n_inner, rows, labels):
    """Write the fixed output targets of centre ``word`` to rows/labels: its Huffman path
    (label 1 - code, gensim's) and, with negative sampling, the word itself (label 1).
    Returns how many were written."""
    n = 0
    if hs:
        for b in range(lengths[word]):
            rows[n] = points[word, b]
            labels[n] = _ONE - codes[word, b]
            n += 1
    if negative:
        rows[n] = n_inner + word
        labels[n] = _ONE
        n += 1
    return n


@njit(nogil=True, cache=True)
def _draw_noise(word, negative, n_inner, accept, alias, rows, labels, n, state):
    """Append ``negative`` noise draws to rows/labels from position n (label 0), skipping
    any draw equal to the centre ``word`` as gensim does. ``accept`` [V] uint64 holds the
    alias table's keep probabilities scaled to 2^32. Returns (new n, new state)."""
    V = np.uint64(accept.shape[0])
    for _ in range(negative):
        state, r = _next(state)
        k = np.int64((r * V) >> _U32)  # uniform in [0, V): the high bits of r * V
        state, u = _next(state)
        if u >= accept[k]:
            k = alias[k]
        if k != word:
            rows[n] = n_inner + k
            labels[n] = np.float32(0.0)
            n += 1
    return n, state


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _cbow_centre(syn0, syn_out, sent, i, lo, hi, rows, labels, n, cbow_mean, alpha, neu1, work):
    """One CBOW centre ``sent[i]`` with context ``sent[lo:hi]`` minus position i, as
    gensim's fast_sentence_cbow_*: the context's summed (or mean) input vector neu1 [D]
    scores the targets rows[:n], and every context word takes the whole step.
    ``neu1`` [1, D] and ``work`` [D] are scratch."""
    count = hi - lo - 1
    if count == 0:
        return
    D = syn0.shape[1]
    inv_count = _ONE / np.float32(count)
    scale = inv_count if cbow_mean else _ONE
    for d in range(D):
        neu1[0, d] = 0.0
        work[d] = 0.0
    # Each row index is read into a local before its loop over d: read inside it, LLVM must
    # assume the stores may change it (it cannot tell the arrays apart) and keeps the loop
    # scalar, reloading it per element (8x the instructions, measured with callgrind).
    for m in range(lo, hi):
        if m != i:
            word = sent[m]
            for d in range(D):
                neu1[0, d] += syn0[word, d]
    for d in range(D):
        neu1[0, d] *= scale
    _score_and_step(neu1, 0, syn_out, rows, labels, n, alpha, work)
    if not cbow_mean:
        for d in range(D):
            work[d] *= inv_count
    for m in range(lo, hi):
        if m != i:
            word = sent[m]
            for d in range(D):
                syn0[word, d] += work[d]


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _sg_centre(syn0, syn_out, sent, i, lo, hi, rows, labels, n, per_pair_noise, negative, n_inner,
               accept, alias, alpha, work, state):
    """One skip-gram centre ``sent[i]`` with context ``sent[lo:hi]`` minus position i, as
    gensim's fast_sentence_sg_*: pair by pair, the context word's input vector scores the
    centre's targets rows[:n] (plus fresh noise words per pair when ``per_pair_noise``)
    and then takes its step. Returns the random state."""
    D = syn0.shape[1]
    for m in range(lo, hi):
        if m == i:
            continue
        n_pair = n
        if per_pair_noise:
            n_pair, state = _draw_noise(sent[i], negative, n_inner, accept, alias, rows, labels, n, state)
        for d in range(D):
            work[d] = 0.0
        word = sent[m]  # a local for the loop over d (see _cbow_centre)
        _score_and_step(syn0, word, syn_out, rows, labels, n_pair, alpha, work)
        for d in range(D):  # the input's step comes after every target has been scored
            syn0[word, d] += work[d]
    return state


@njit(nogil=True, cache=True)
def _train_job(ids, offsets, s0, s1, syn0, syn_out, keep, accept, alias, points, codes, lengths,
               sg, hs, negative, shared_negatives, cbow_mean, window, alpha0, alpha1, done, total, state):
    """Train on sentences s0..s1-1 of the flat corpus (``ids`` [n_tokens] int32,
    ``offsets`` [n_sentences + 1]) in place on ``syn0`` [V, D] and ``syn_out``
    [n_inner + V or 0, D]. ``keep`` [V] and ``accept`` [V] are keep probabilities
    scaled to 2^32 (uint64), ``alias`` [V] the alias table's other word, ``points``/
    ``codes`` [V, depth] and ``lengths`` [V] the Huffman table. The learning rate
    falls linearly from alpha0 (raw token 0 of epoch 0) to alpha1 (the end, ``total``
    raw tokens later); this job starts ``done`` raw tokens in. ``state`` seeds the
    job's LCG."""
    V, D = syn0.shape
    n_inner = V - 1 if hs else 0
    r0 = offsets[s0]
    sent = np.empty(offsets[s1] - r0, np.int32)  # the kept tokens of one sentence
    rows = np.empty(points.shape[1] + 1 + negative, np.int64)  # [path..., word, noise...]
    labels = np.empty(rows.shape[0], np.float32)
    neu1 = np.empty((1, D), np.float32)  # CBOW's context vector, as a matrix row
    work = np.empty(D, np.float32)
    per_pair_noise = sg and not shared_negatives and negative > 0
    for s in range(s0, s1):
        alpha = np.float32(alpha0 - (alpha0 - alpha1) * (done + offsets[s] - r0) / total)
        n_kept = 0
        for t in range(offsets[s], offsets[s + 1]):
            state, r = _next(state)
            if r < keep[ids[t]]:
                sent[n_kept] = ids[t]
                n_kept += 1
        for i in range(n_kept):
            state, r = _next(state)
            b = np.int64((r * np.uint64(window)) >> _U32) + 1  # effective window in 1..window
            lo, hi = max(0, i - b), min(n_kept, i + b + 1)
            n = _centre_targets(sent[i], points, codes, lengths, hs, negative, n_inner, rows, labels)
            if negative and not per_pair_noise:
                n, state = _draw_noise(sent[i], negative, n_inner, accept, alias, rows, labels, n, state)
            # The centre's output rows and the input row that just entered its window are the
            # likely cache misses: fetched together, their misses overlap instead of stalling
            # the loops one by one (Brown train, 11k words, 1 thread, median CPU time per epoch
            # of 4: CBOW 0.79 -> 0.67 s, skip-gram 1.96 -> 1.80 s; prefetching the next
            # centre's rows instead was slower than this, measured on an earlier build).
            for t in range(n):
                _prefetch_row(syn_out, rows[t])
            _prefetch_row(syn0, sent[hi - 1])
            if sg:
                state = _sg_centre(syn0, syn_out, sent, i, lo, hi, rows, labels, n, per_pair_noise, negative,
                                   n_inner, accept, alias, alpha, work, state)
            else:
                _cbow_centre(syn0, syn_out, sent, i, lo, hi, rows, labels, n, cbow_mean, alpha, neu1, work)


def _scaled_to_2_32(p: np.ndarray) -> np.ndarray:
    """Probabilities as uint64 thresholds for a 32-bit draw r: ``r < result`` has probability p."""
    return np.round(np.asarray(p, dtype=np.float64) * 2.0**32).astype(np.uint64)


def _jobs(offsets: np.ndarray) -> list[tuple[int, int]]:
    """Sentence ranges (s0, s1) of about _JOB_TOKENS raw tokens each, covering the corpus."""
    cuts = np.unique(np.searchsorted(offsets, np.arange(0, offsets[-1], _JOB_TOKENS), side="right") - 1)
    cuts = np.append(cuts, len(offsets) - 1)
    return [(int(a), int(b)) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def _train_numba(ids, offsets, counts, syn0, syn_out, config: Word2VecConfig, seed: int, bar) -> None:
    """The kernel's training loop: every epoch's jobs in order, each taken by the next
    free thread of ``config.n_threads`` (the calling thread alone for 1), updating syn0
    and syn_out in place."""
    keep = _scaled_to_2_32(keep_probabilities(counts, config.sample))
    accept, alias = alias_table(counts.astype(np.float64) ** config.ns_exponent)
    accept = _scaled_to_2_32(accept)
    points, codes, lengths = huffman_table(counts) if config.hs else (
        np.zeros((len(counts), 1), np.int64), np.zeros((len(counts), 1), np.uint8), np.zeros(len(counts), np.int64))
    ids32 = ids.astype(np.int32)
    jobs = _jobs(offsets)
    # A random stream of its own (the init drew from default_rng(seed)); LCG states are 48-bit.
    states = np.random.default_rng([seed, 1]).integers(1, 1 << 48, size=(config.epochs, len(jobs)), dtype=np.uint64)
    n_tokens = len(ids)
    total = float(config.epochs * n_tokens)

    def run(job: tuple[int, int]) -> int:
        epoch, k = job
        s0, s1 = jobs[k]
        _train_job(ids32, offsets, s0, s1, syn0, syn_out, keep, accept, alias, points, codes, lengths,
                   config.arch == "sg", config.hs, config.negative, config.sg_shared_negatives, config.cbow_mean,
                   config.window, config.start_alpha, config.min_alpha, float(epoch * n_tokens + offsets[s0]),
                   total, states[epoch, k])
        return int(offsets[s1] - offsets[s0])

    work = [(epoch, k) for epoch in range(config.epochs) for k in range(len(jobs))]
    threads = config.n_threads
    # No pool for one thread: the calling thread trains, in job order, reproducibly.
    pool = ThreadPoolExecutor(threads) if threads > 1 else None
    try:
        for n_raw in pool.map(run, work) if pool else map(run, work):
            if bar is not None:
                bar.update(n_raw)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


# --- the torch path -------------------------------------------------------------------------


@dataclass
class _TorchTables:
    """Per-word tables of the torch path, on the training device."""

    keep_prob: torch.Tensor  # [V] float64 subsampling keep probability
    noise_accept: torch.Tensor  # [V] float64 alias table: keep the uniform draw k with this probability
    noise_alias: torch.Tensor  # [V] int64 ... else take this word
    hs_points: torch.Tensor | None  # [V, depth] int64 inner-node rows of each word's path
    hs_labels: torch.Tensor | None  # [V, depth] gensim's label 1 - code
    hs_mask: torch.Tensor | None  # [V, depth] 1 where the path is real
    neg_labels: torch.Tensor  # [1 + noise per centre]: the word (1), then its noise words (0)
    noise_per_centre: int  # K, or span * K for skip-gram's per-pair noise (span blocks of K)


def _torch_tables(counts: np.ndarray, config: Word2VecConfig, device: torch.device) -> _TorchTables:
    hs_points = hs_labels = hs_mask = None
    if config.hs:
        points, codes, lengths = huffman_table(counts)
        real = np.arange(points.shape[1])[None, :] < lengths[:, None]  # [V, depth]
        hs_points = torch.from_numpy(points).to(device)
        hs_labels = torch.from_numpy(np.where(real, 1.0 - codes, 0.0).astype(np.float32)).to(device)
        hs_mask = torch.from_numpy(real.astype(np.float32)).to(device)
    accept, alias = alias_table(counts.astype(np.float64) ** config.ns_exponent)
    # Skip-gram draws noise per (centre, slot) pair unless told to share it per centre.
    per_pair_noise = config.arch == "sg" and not config.sg_shared_negatives
    noise_per_centre = config.negative * ((2 * config.window + 1) if per_pair_noise else 1)
    neg_labels = torch.zeros(noise_per_centre + 1, device=device)
    neg_labels[0] = 1
    return _TorchTables(torch.from_numpy(keep_probabilities(counts, config.sample)).to(device),
                        torch.from_numpy(accept).to(device), torch.from_numpy(alias).to(device),
                        hs_points, hs_labels, hs_mask, neg_labels, noise_per_centre)


def _train_torch(ids, offsets, counts, syn0_np, syn_out_np, config: Word2VecConfig, seed: int,
                 device: torch.device, bar) -> np.ndarray:
    """The batched torch loop over epochs and sentence-aligned chunks; returns syn0 [V, D]."""
    # Restored on the way out: evaluation after training keeps the caller's thread count.
    torch_threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(config.intra_op_threads)
    gen = torch.Generator(device=device).manual_seed(seed)
    syn0, syn_out = torch.from_numpy(syn0_np).to(device), torch.from_numpy(syn_out_np).to(device)
    tables = _torch_tables(counts, config, device)
    ids_t = torch.from_numpy(ids.astype(np.int64, copy=False)).to(device)
    # Sentence-aligned chunk boundaries (sentence indices), ~_CHUNK_TOKENS raw tokens each.
    cuts = np.unique(np.searchsorted(offsets, np.arange(0, len(ids), _CHUNK_TOKENS), side="right") - 1)
    cuts = np.append(cuts, len(offsets) - 1)
    sent_len = torch.from_numpy(np.diff(offsets)).to(device)
    total = config.epochs * len(ids)
    workers = _Workers(config.n_threads if device.type == "cpu" else 1)
    done = 0
    try:
        for _ in range(config.epochs):
            for s0, s1 in zip(cuts[:-1], cuts[1:]):
                r0, r1 = int(offsets[s0]), int(offsets[s1])
                sent = torch.repeat_interleave(torch.arange(s1 - s0, device=device), sent_len[s0:s1])
                alphas = (done, r1 - r0, total)
                _torch_chunk(syn0, syn_out, ids_t[r0:r1], sent, tables, config, gen, alphas, workers)
                done += r1 - r0
                if bar is not None:
                    bar.update(r1 - r0)
    finally:
        workers.close()
        torch.set_num_threads(torch_threads)
    return syn0.cpu().numpy()


def _torch_chunk(syn0, syn_out, chunk, sent, tables: _TorchTables, config: Word2VecConfig, gen, alphas,
                 workers) -> None:
    """One chunk of whole sentences: ``chunk`` [m] raw token ids and ``sent`` [m] their
    sentence index. Draws the subsampling, windows and noise words in one go, then steps
    batch by batch; ``alphas`` = (raw tokens done before the chunk, chunk size, total)."""
    device, W = syn0.device, config.window
    done, size, total = alphas
    kept = torch.rand(len(chunk), generator=gen, device=device, dtype=torch.float64) < tables.keep_prob[chunk]
    w, sent = chunk[kept], sent[kept]  # [n] kept tokens, windows span them
    n, V = len(w), syn0.shape[0]
    reduced = torch.randint(1, W + 1, (n,), generator=gen, device=device)
    valid = context_mask(sent, reduced, W).to(syn0.dtype)  # [n, 2W+1]
    w_pad = torch.cat([w.new_zeros(W), w, w.new_zeros(W)])  # [n + 2W]
    noise = None
    if config.negative:
        shape = (n, tables.noise_per_centre)  # [n, K or span*K]
        pick = torch.randint(0, V, shape, generator=gen, device=device)
        u = torch.rand(shape, generator=gen, device=device, dtype=torch.float64)
        noise = torch.where(u < tables.noise_accept[pick], pick, tables.noise_alias[pick])  # noise words, as pick
    a0, a1 = config.start_alpha, config.min_alpha
    for b0 in range(0, n, config.batch_size):
        b1 = min(n, b0 + config.batch_size)
        targets, labels, tmask = _torch_targets(w[b0:b1], None if noise is None else noise[b0:b1], tables,
                                                syn0.shape[0] - 1 if config.hs else 0, syn0.dtype)
        alpha = a0 - (a0 - a1) * (done + size * b0 / n) / total
        args = (syn0, syn_out, w_pad[b0 : b1 + 2 * W], valid[b0:b1], targets, labels, tmask, alpha, config)
        if config.arch == "sg" and config.sg_update_order == "slot":
            _sg_slot_steps(*args)
        else:
            workers.step(_sg_step if config.arch == "sg" else _cbow_step, *args)


def _torch_targets(centre, noise, tables: _TorchTables, n_inner: int, dtype):
    """Output rows, labels and slot mask [b, T] of the centres ``centre`` [b]: their
    Huffman paths, then (with ``noise`` [b, K or span*K]) the word and its noise words."""
    parts_t, parts_l, parts_m = [], [], []
    if tables.hs_points is not None:
        parts_t.append(tables.hs_points[centre])
        parts_l.append(tables.hs_labels[centre])
        parts_m.append(tables.hs_mask[centre])
    if noise is not None:
        tgt = torch.cat([centre[:, None], noise], 1)  # [b, K+1]
        parts_t.append(tgt + n_inner)
        parts_l.append(tables.neg_labels.expand(len(centre), -1))
        # gensim skips a noise word equal to the centre word.
        m = tgt != centre[:, None]
        m[:, 0] = True
        parts_m.append(m.to(dtype))
    return torch.cat(parts_t, 1), torch.cat(parts_l, 1), torch.cat(parts_m, 1)


class _Workers:
    """Deterministic data parallelism over ``n`` threads for one batch.

    Each thread computes the steps of a contiguous slice of the batch's centres,
    all reading the same parameter snapshot (torch ops release the GIL); the
    calling thread then scatter-adds the slices in order. A serial scatter
    keeps results independent of timing: index_add_ into column bands of the
    matrices (the race-free parallel alternative) measured ~5x slower per row
    on the strided views.
    """

    def __init__(self, n: int):
        self.n = n
        self.pool = ThreadPoolExecutor(n - 1) if n > 1 else None

    def step(self, step, syn0, syn_out, ctx_ids, valid, targets, labels, tmask, alpha, config) -> None:
        b, span = valid.shape
        cuts = [b * i // self.n for i in range(self.n + 1)]
        parts = [
            (syn0, syn_out, ctx_ids[lo : hi + span - 1], valid[lo:hi], targets[lo:hi], labels[lo:hi], tmask[lo:hi], alpha, config)
            for lo, hi in zip(cuts[:-1], cuts[1:])
            if hi > lo
        ]
        # The calling thread takes the first slice itself.
        futures = [self.pool.submit(step, *p) for p in parts[1:]] if self.pool else []
        grads = [step(*parts[0])] + [f.result() for f in futures]
        for p, (g_in, g_out) in zip(parts, grads):
            syn0.index_add_(0, p[2], g_in)
            syn_out.index_add_(0, p[4].reshape(-1), g_out)

    def close(self) -> None:
        if self.pool:
            self.pool.shutdown()


def _scores_to_grads(f: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, alpha: float) -> torch.Tensor:
    """gensim's g = (label - sigmoid(f)) * alpha, zero where masked or |f| >= MAX_EXP."""
    g = (labels - torch.sigmoid(f)) * mask
    return g.masked_fill_(f.abs() >= _MAX_EXP, 0).mul_(alpha)


def _cbow_step(syn0, syn_out, ctx_ids, valid, targets, labels, tmask, alpha, config):
    """Gradient steps of one batch of b consecutive CBOW centres.

    ctx_ids [b + 2W] are the kept tokens from W before the first centre to W
    after the last; valid [b, 2W+1] marks usable window slots of each centre;
    targets/labels/tmask [b, T] are its output rows, labels and slot mask.
    Returns (input step [b + 2W, D] for rows ctx_ids, output step [b*T, D] for
    rows targets), both already scaled by alpha.
    """
    b, span = valid.shape
    D = syn0.shape[1]
    emb = syn0.index_select(0, ctx_ids)  # [b + 2W, D]
    win = emb.as_strided((b, span, D), (D, D, 1))  # [b, 2W+1, D] window view
    h = torch.bmm(valid[:, None, :], win).squeeze(1)  # [b, D] summed context
    count = valid.sum(1, keepdim=True).clamp_(min=1)  # [b, 1]
    if config.cbow_mean:
        h /= count
    out = syn_out.index_select(0, targets.reshape(-1)).view(b, -1, D)  # [b, T, D]
    # Row-vector bmm orientations: measured several times faster than [T, D] @ [D, 1].
    f = torch.bmm(h[:, None, :], out.transpose(1, 2)).squeeze(1)  # [b, T]
    g = _scores_to_grads(f, labels, tmask, alpha)  # [b, T]
    work = torch.bmm(g[:, None, :], out).squeeze(1)  # [b, D] error for each context word
    if not config.cbow_mean:
        work /= count
    # Every context slot j of centre c adds work[c] to token c + j - W, i.e. a
    # transposed banded sum over the b + 2W tokens (one row per token to scatter).
    grad_in = torch.zeros_like(emb)  # [b + 2W, D]
    for j in range(span):
        grad_in[j : j + b].addcmul_(valid[:, j, None], work)
    return grad_in, (g[:, :, None] * h[:, None, :]).view(-1, D)


def _sg_slot_steps(syn0, syn_out, ctx_ids, valid, targets, labels, tmask, alpha, config) -> None:
    """Skip-gram steps of one batch applied slot by slot (``sg_update_order="slot"``).

    Arguments as ``_sg_step``. For j = 0 .. 2W, every centre's pairs with its context
    word at slot j are scored against the matrices as the slots before left them, and
    their steps are added at once: a centre's output rows and a token's input row then
    change between the pairs they take part in, as in gensim's pair-by-pair loop.
    The rows are gathered and scattered once per slot instead of once per batch.
    """
    b, span = valid.shape
    D = syn0.shape[1]
    K = config.negative
    per_pair = K * span if K and not config.sg_shared_negatives else 0
    n_shared = targets.shape[1] - per_pair
    for j in range(span):
        # Only the centres whose drawn window holds a context word at slot j take part: with
        # window W about 40% of the slots are empty, so compacting skips that work.
        live = valid[:, j].nonzero().squeeze(1)  # [n] centre indices within the batch
        if live.numel() == 0:  # the centre slot, and slots beyond every drawn window
            continue
        rows = targets[live, :n_shared]  # [n, S]
        mask = tmask[live, :n_shared]
        slot_labels = labels[live, :n_shared]
        if per_pair:
            block = slice(n_shared + j * K, n_shared + (j + 1) * K)  # slot j's own noise words
            rows = torch.cat([rows, targets[live, block]], 1)  # [n, S + K]
            mask = torch.cat([mask, tmask[live, block]], 1)
            slot_labels = torch.cat([slot_labels, labels[live, block]], 1)
        n = live.numel()
        inputs = ctx_ids[j : j + b][live]  # [n] the context word of slot j, one per live centre
        e = syn0.index_select(0, inputs)  # [n, D]
        out = syn_out.index_select(0, rows.reshape(-1)).view(n, -1, D)  # [n, R, D]
        # Row-vector orientation ([n, 1, D] @ [n, D, R]): several times faster than [n, R, D] @ [n, D, 1].
        f = torch.bmm(e[:, None, :], out.transpose(1, 2)).squeeze(1)  # [n, R]
        g = _scores_to_grads(f, slot_labels, mask, alpha)  # [n, R]
        syn_out.index_add_(0, rows.reshape(-1), (g[:, :, None] * e[:, None, :]).reshape(-1, D))
        syn0.index_add_(0, inputs, torch.bmm(g[:, None, :], out).squeeze(1))


def _sg_step(syn0, syn_out, ctx_ids, valid, targets, labels, tmask, alpha, config):
    """Gradient steps of one skip-gram batch; arguments and result as ``_cbow_step``.

    As in gensim, the input is the context word and the output side is the
    centre word: its Huffman path and/or itself, shared by all pairs of the
    centre's window, then the noise words. A target row is [shared | noise]:
    with ``sg_shared_negatives`` (the default) the noise part holds K words shared
    by every slot; without it, span blocks of K words, block j for context slot j.
    """
    b, span = valid.shape
    D = syn0.shape[1]
    per_pair = config.negative * span if config.negative and not config.sg_shared_negatives else 0
    n_shared = targets.shape[1] - per_pair
    emb = syn0.index_select(0, ctx_ids)  # [b + 2W, D]
    win = emb.as_strided((b, span, D), (D, D, 1))  # [b, 2W+1, D] window view
    out = syn_out.index_select(0, targets.reshape(-1)).view(b, -1, D)  # [b, T, D]
    shared = out[:, :n_shared]  # [b, S, D]
    f = torch.bmm(win, shared.transpose(1, 2))  # [b, 2W+1, S] one score per (pair, shared target)
    g = _scores_to_grads(f, labels[:, None, :n_shared], valid[:, :, None] * tmask[:, None, :n_shared], alpha)
    per_slot = torch.bmm(g, shared)  # [b, 2W+1, D] error for each context slot
    grad_out = torch.bmm(g.transpose(1, 2), win)  # [b, S, D]
    if per_pair:
        noise = out[:, n_shared:].view(b, span, config.negative, D)  # [b, 2W+1, K, D]
        f_noise = (noise @ win[..., None]).squeeze(-1)  # [b, 2W+1, K]
        mask = valid[:, :, None] * tmask[:, n_shared:].view(b, span, config.negative)
        g_noise = _scores_to_grads(f_noise, labels.new_zeros(()), mask, alpha)  # [b, 2W+1, K]
        per_slot += (g_noise[:, :, None, :] @ noise).squeeze(2)  # [b, 2W+1, D]
        grad_noise = g_noise[..., None] * win[:, :, None, :]  # [b, 2W+1, K, D]
        grad_out = torch.cat([grad_out, grad_noise.reshape(b, per_pair, D)], 1)  # [b, T, D]
    grad_in = torch.zeros_like(emb)  # [b + 2W, D]
    for j in range(span):
        grad_in[j : j + b] += per_slot[:, j]
    return grad_in, grad_out.reshape(-1, D)

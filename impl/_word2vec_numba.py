"""Word2vec's CPU kernel (``Word2VecConfig.backend = "numba"``): gensim's design in numba.

Compiled functions (``_train_job``) process a job of whole sentences with per-pair SGD,
each pair seeing the updates of the pairs before it, and ``threads`` Python threads run
jobs Hogwild on the shared matrices (the kernel releases the GIL). `train_numba` is the
entry point; ``config`` is the run's ``impl.word2vec.Word2VecConfig`` (its module docstring
says what the kernel does differently from gensim, on purpose).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from impl._word2vec_tables import MAX_EXP, alias_table, huffman_table, keep_probabilities

# Raw tokens per job a thread takes at a time (gensim's batch_words is 10k). Small enough
# that threads share the last jobs of a run evenly, large enough that the ~20 us of Python
# per job stay below 1% of its time.
_JOB_TOKENS = 1 << 14

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
        if f <= -MAX_EXP or f >= MAX_EXP:
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


def train_numba(ids, offsets, counts, syn0, syn_out, config, seed: int, bar) -> None:
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

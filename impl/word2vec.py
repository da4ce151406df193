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
table, a Huffman tree built exactly like gensim's, a learning rate decaying
linearly from ``alpha`` to ``min_alpha`` over all epochs, gensim's input-vector
initialisation (uniform(-1, 1) / vector_size; output vectors zero), gensim's
skip of any dot product outside [-6, 6], and gensim's CBOW quirk of giving
every context word the full error when ``cbow_mean`` is on (and error/count
when it is off).

What differs, on purpose, so that batched tensor ops rather than Python carry
the cost:
  * Updates are computed for a batch of ``batch_size`` consecutive centre
    positions at a time instead of by Hogwild per-pair SGD, where every pair
    sees the updates of the pairs before it. CBOW scores every centre of the
    batch against one parameter snapshot and sums the steps (scatter-add).
    Skip-gram (``sg_update_order="slot"``, the default) goes through the window
    one slot at a time: the batch's pairs with their context word at slot j are
    scored against the matrices as the slots before left them, so a centre's
    output rows and a token's input row change between the pairs that use them,
    as in gensim's loop. Scoring the whole window against one snapshot
    (``sg_update_order="batch"``) trains about 1.5x faster but lands elsewhere:
    on offline-mix (standard-vectors settings, 3 seeds) MEN-TR-3k 0.38 where
    gensim gets 0.35, whatever the batch size (64 or 1024 centres); the slot
    order gets gensim's 0.35. (Per-centre private copies of the rows do not
    close that gap: the frequent words' shared rows need the updates of the
    other centres between slots too.)
  * Skip-gram with negative sampling draws ``negative`` noise words per centre
    word and shares them among that centre's context pairs
    (``sg_shared_negatives=True``, the default); gensim draws fresh ones per
    (centre, context) pair, which ``sg_shared_negatives=False`` reproduces.
    Each context-noise interaction count is the same in expectation. Measured on
    offline-mix (seed 0, standard-vectors settings, batch order), per-pair draws
    did not close the +0.03 MEN-TR-3k gap to gensim (0.373 vs gensim's 0.347; WS-353
    0.332, SimLex 0.241) and cost several times the training time, so sharing
    stays the default.
  * CPU parallelism: ``threads`` Python threads split each batch's centres
    (CBOW and batch-order skip-gram) and the calling thread applies the summed
    steps in a fixed order, so results do not depend on thread timing;
    ``intra_op_threads`` sizes torch's own pool for the duration of training
    (the slot order's only parallelism, as its slots run in sequence). gensim
    instead runs Hogwild workers.
  * Exact sigmoid instead of gensim's 1000-entry lookup table, and torch's
    random generators instead of gensim's linear congruential one, so results
    match gensim statistically, not bit for bit.
"""

from __future__ import annotations

import heapq
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from gensim.models import KeyedVectors

# gensim (word2vec.c) ignores a pair whose score lies outside [-MAX_EXP, MAX_EXP].
_MAX_EXP = 6.0
# Raw tokens per sentence-aligned chunk whose subsampling, windows and noise
# words are drawn in one vectorized go (memory: a few dozen bytes per token).
_CHUNK_TOKENS = 1 << 18


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
    batch_size: int = 1024  # centre positions per update
    # CPU parallelism, two kinds (measured on 2 idle cores, offline-mix): Python workers
    # that split each batch (see _Workers) suit batch-order skip-gram's many small bmm's
    # (2 workers 504k tok/s vs 377k with torch threads); torch's intra-op pool suits CBOW's
    # few large element-wise ops (batch 2048: 1.26M tok/s vs 0.96M with 2 workers) and is
    # all the slot order uses (2 intra-op threads 450k tok/s vs 322k with 1). torch's
    # OpenMP pool busy-waits, so on a loaded machine prefer workers where they apply.
    threads: int = 2  # Python worker threads per batch
    intra_op_threads: int = 1  # torch.set_num_threads during training (restored after)
    cbow_mean: bool = True
    sg_shared_negatives: bool = True  # skip-gram: one noise draw per centre, shared by its window
    # Skip-gram: "slot" applies the steps after each window slot (gensim's quality on
    # offline-mix; runs on torch's intra-op pool, so give it intra_op_threads, not threads);
    # "batch" scores every slot of the batch against one parameter snapshot and sums the
    # steps (about 1.5x faster, +0.03 MEN-TR-3k over gensim; see the module docstring).
    sg_update_order: str = "slot"

    def __post_init__(self) -> None:
        def need(ok: bool, field: str, expected: str) -> None:
            if not ok:
                raise ValueError(f"Word2VecConfig.{field}={getattr(self, field)!r}: expected {expected}")

        def is_int(v: object) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))

        def is_num(v: object) -> bool:
            return (is_int(v) or isinstance(v, (float, np.floating))) and math.isfinite(v)

        need(self.arch in ("cbow", "sg"), "arch", "'cbow' or 'sg'")
        need(is_int(self.vector_size) and self.vector_size >= 1, "vector_size", "an int >= 1")
        need(is_int(self.window) and self.window >= 1, "window", "an int >= 1")
        need(isinstance(self.hs, (bool, np.bool_)), "hs", "a bool")
        need(is_int(self.negative) and self.negative >= 0, "negative", "an int >= 0")
        need(self.hs or self.negative > 0, "negative", "an int >= 1 when hs is False")
        need(is_num(self.ns_exponent), "ns_exponent", "a finite number")
        need(is_num(self.sample) and self.sample >= 0, "sample", "a number >= 0")
        need(is_int(self.epochs) and self.epochs >= 1, "epochs", "an int >= 1")
        need(is_int(self.intra_op_threads) and self.intra_op_threads >= 1, "intra_op_threads", "an int >= 1")
        need(self.alpha is None or (is_num(self.alpha) and self.alpha > 0), "alpha", "None or a number > 0")
        need(is_num(self.min_alpha) and self.min_alpha >= 0, "min_alpha", "a number >= 0")
        need(is_int(self.batch_size) and self.batch_size >= 1, "batch_size", "an int >= 1")
        need(is_int(self.threads) and self.threads >= 1, "threads", "an int >= 1")
        need(isinstance(self.cbow_mean, (bool, np.bool_)), "cbow_mean", "a bool")
        need(isinstance(self.sg_shared_negatives, (bool, np.bool_)), "sg_shared_negatives", "a bool")
        need(self.sg_update_order in ("batch", "slot"), "sg_update_order", "'batch' or 'slot'")

    @property
    def start_alpha(self) -> float:
        if self.alpha is not None:
            return float(self.alpha)
        return 0.025 if self.arch == "sg" else 0.05


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
    ids = np.asarray(ids)
    offsets = np.asarray(offsets, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    V, D, W = len(words), config.vector_size, config.window
    if counts.shape != (V,) or V == 0:
        raise ValueError(f"counts: expected one count per word ({V} words, >= 1), got shape {counts.shape}")
    if (counts <= 0).any():
        raise ValueError("counts: expected every count >= 1")
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids: expected a 1-d integer array, got {ids.dtype} with shape {ids.shape}")
    if len(ids) and (ids.min() < 0 or ids.max() >= V):
        raise ValueError(f"ids: expected every id in [0, {V}), got range [{ids.min()}, {ids.max()}]")
    if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[-1] != len(ids) or (np.diff(offsets) < 0).any():
        raise ValueError(f"offsets: expected non-decreasing int offsets from 0 to len(ids)={len(ids)}")
    # Restored on the way out: evaluation after training keeps the caller's thread count.
    torch_threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(config.intra_op_threads)

    gen = torch.Generator(device=device).manual_seed(seed)
    # Input vectors as gensim's prep_vectors: uniform(-1, 1) / vector_size. [V, D]
    init = np.random.default_rng(seed).random((V, D), dtype=np.float32) * 2 - 1
    syn0 = torch.from_numpy(init / D).to(device)

    # One output matrix [n_out, D] holds the Huffman inner nodes (rows 0..V-2)
    # followed by the negative-sampling word vectors, so both objectives share
    # one gather/score/scatter path. Targets per centre: [paths..., word, noise...].
    n_inner = V - 1 if config.hs else 0
    syn_out = torch.zeros((n_inner + (V if config.negative else 0), D), device=device)
    hs_points = hs_labels = hs_mask = None
    if config.hs:
        codes, points = huffman_codes(counts)
        depth = max(1, max(len(c) for c in codes))
        hs_points = torch.zeros((V, depth), dtype=torch.int64)  # [V, depth] inner-node rows
        hs_labels = torch.zeros((V, depth))  # [V, depth] gensim's label 1 - code
        hs_mask = torch.zeros((V, depth))  # [V, depth] 1 where the path is real
        for i, (c, p) in enumerate(zip(codes, points)):
            hs_points[i, : len(p)] = torch.from_numpy(p)
            hs_labels[i, : len(c)] = torch.from_numpy(1.0 - c.astype(np.float32))
            hs_mask[i, : len(c)] = 1
        hs_points, hs_labels, hs_mask = hs_points.to(device), hs_labels.to(device), hs_mask.to(device)
    accept, alias = alias_table(counts.astype(np.float64) ** config.ns_exponent)
    noise_accept, noise_alias = torch.from_numpy(accept).to(device), torch.from_numpy(alias).to(device)
    span = 2 * W + 1
    # Skip-gram draws noise per (centre, slot) pair unless told to share it per centre;
    # the per-pair noise of centre c sits in its target row as span blocks of K.
    per_pair_noise = config.arch == "sg" and not config.sg_shared_negatives
    noise_per_centre = config.negative * (span if per_pair_noise else 1)
    neg_labels = torch.zeros(noise_per_centre + 1, device=device)
    neg_labels[0] = 1

    keep_prob = torch.from_numpy(keep_probabilities(counts, config.sample)).to(device)
    ids_t = torch.from_numpy(ids.astype(np.int64, copy=False)).to(device)
    # Sentence-aligned chunk boundaries (sentence indices), ~_CHUNK_TOKENS raw tokens each.
    cuts = np.unique(np.searchsorted(offsets, np.arange(0, len(ids), _CHUNK_TOKENS), side="right") - 1)
    cuts = np.append(cuts, len(offsets) - 1)
    sent_len = torch.from_numpy(np.diff(offsets)).to(device)

    total = config.epochs * len(ids)
    a0, a1 = config.start_alpha, config.min_alpha
    step = _sg_step if config.arch == "sg" else _cbow_step
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="tok", desc=f"word2vec {config.arch}")
    workers = _Workers(config.threads if device.type == "cpu" else 1)
    done = 0
    try:
        for _ in range(config.epochs):
            for s0, s1 in zip(cuts[:-1], cuts[1:]):
                r0, r1 = int(offsets[s0]), int(offsets[s1])
                chunk = ids_t[r0:r1]  # [m] raw tokens of sentences s0..s1-1
                sent = torch.repeat_interleave(torch.arange(s1 - s0, device=device), sent_len[s0:s1])
                kept = torch.rand(len(chunk), generator=gen, device=device, dtype=torch.float64) < keep_prob[chunk]
                w, sent = chunk[kept], sent[kept]  # [n] kept tokens, windows span them
                n = len(w)
                reduced = torch.randint(1, W + 1, (n,), generator=gen, device=device)
                valid = context_mask(sent, reduced, W).to(syn0.dtype)  # [n, 2W+1]
                w_pad = torch.cat([w.new_zeros(W), w, w.new_zeros(W)])  # [n + 2W]
                if config.negative:
                    pick = torch.randint(0, V, (n, noise_per_centre), generator=gen, device=device)  # [n, K or span*K]
                    u = torch.rand((n, noise_per_centre), generator=gen, device=device, dtype=torch.float64)
                    noise = torch.where(u < noise_accept[pick], pick, noise_alias[pick])  # noise words, as pick
                for b0 in range(0, n, config.batch_size):
                    b1 = min(n, b0 + config.batch_size)
                    centre = w[b0:b1]  # [b]
                    parts_t, parts_l, parts_m = [], [], []
                    if config.hs:
                        parts_t.append(hs_points[centre])
                        parts_l.append(hs_labels[centre])
                        parts_m.append(hs_mask[centre])
                    if config.negative:
                        tgt = torch.cat([centre[:, None], noise[b0:b1]], 1)  # [b, K+1]
                        parts_t.append(tgt + n_inner)
                        parts_l.append(neg_labels.expand(b1 - b0, -1))
                        # gensim skips a noise word equal to the centre word.
                        m = tgt != centre[:, None]
                        m[:, 0] = True
                        parts_m.append(m.to(syn0.dtype))
                    targets = torch.cat(parts_t, 1) if len(parts_t) > 1 else parts_t[0]  # [b, T]
                    labels = torch.cat(parts_l, 1) if len(parts_l) > 1 else parts_l[0]  # [b, T]
                    tmask = torch.cat(parts_m, 1) if len(parts_m) > 1 else parts_m[0]  # [b, T]
                    alpha = a0 - (a0 - a1) * (done + (r1 - r0) * b0 / n) / total
                    if config.arch == "sg" and config.sg_update_order == "slot":
                        _sg_slot_steps(syn0, syn_out, w_pad[b0 : b1 + 2 * W], valid[b0:b1], targets, labels, tmask, alpha, config)
                    else:
                        workers.step(step, syn0, syn_out, w_pad[b0 : b1 + 2 * W], valid[b0:b1], targets, labels, tmask, alpha, config)
                done += r1 - r0
                if bar is not None:
                    bar.update(r1 - r0)
    finally:
        workers.close()
        torch.set_num_threads(torch_threads)
        if bar is not None:
            bar.close()

    kv = KeyedVectors(vector_size=D)
    kv.add_vectors(list(words), syn0.cpu().numpy())
    return kv


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
    with per-pair noise (the default) the noise part holds span blocks of K
    words, block j for context slot j; with ``sg_shared_negatives`` it holds K
    words shared by every slot.
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

"""Word2vec's batched torch path (``Word2VecConfig.backend = "torch"``: CUDA, or the CPU on
request): the updates of ``batch_size`` consecutive centre positions at a time, so that
batched tensor ops rather than Python carry the cost.

`train_torch` is the entry point; ``config`` is the run's ``impl.word2vec.Word2VecConfig``
(its module docstring gives the update orders and how they compare with gensim).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from impl._word2vec_tables import MAX_EXP, alias_table, huffman_table, keep_probabilities

# Raw tokens per sentence-aligned chunk whose subsampling, windows and noise words are drawn
# in one vectorized go (memory: a few dozen bytes per token).
_CHUNK_TOKENS = 1 << 18


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


def _torch_tables(counts: np.ndarray, config, device: torch.device) -> _TorchTables:
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


def train_torch(ids, offsets, counts, syn0_np, syn_out_np, config, seed: int,
                 device: torch.device, bar) -> np.ndarray:
    """The batched torch loop over epochs and sentence-aligned chunks; returns syn0 [V, D]."""
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
    return syn0.cpu().numpy()


def _torch_chunk(syn0, syn_out, chunk, sent, tables: _TorchTables, config, gen, alphas,
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
        assert tables.hs_labels is not None and tables.hs_mask is not None, "_torch_tables sets all three"
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
            (syn0, syn_out, ctx_ids[lo : hi + span - 1], valid[lo:hi], targets[lo:hi], labels[lo:hi], tmask[lo:hi],
             alpha, config)
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
    return g.masked_fill_(f.abs() >= MAX_EXP, 0).mul_(alpha)


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

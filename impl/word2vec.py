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
the kernel on the CPU and the torch path on CUDA), each in a helper module of its own,
drawing from the same tables (``impl/_word2vec_tables.py``: the Huffman tree, the
subsampling keep probabilities, the noise words' alias table):

``"numba"``, the CPU kernel (``impl/_word2vec_numba.py``): gensim's design, per-pair SGD
over jobs of whole sentences, each pair seeing the updates of the pairs before it, and
``threads`` Python threads running jobs Hogwild on the shared matrices (no spinning pool,
so a thread that loses its core only slows its own jobs). What differs from gensim, on purpose:
  * With hierarchical softmax and negative sampling together, a pair (skip-gram)
    or centre (CBOW) scores its Huffman path and its noise targets from one input
    vector and takes one input step, as ``word2vec.c`` does; gensim 4 runs the two
    objectives one after the other, each with its own input step.
  * Skip-gram shares one draw of ``negative`` noise words among a centre's context
    pairs (``sg_shared_negatives=True``, the default, as the torch path must for
    speed); ``sg_shared_negatives=False`` draws per pair as gensim does.
  * Noise words come from a Walker alias table (two random numbers, two table
    reads) instead of a binary search of gensim's cumulative table: several times
    faster a draw (measured in results/README.md, "word2vec's implementation notes").
  * The learning rate is set per sentence rather than per job of ~10k words, and
    each job's random stream (gensim's 48-bit linear congruential generator) is
    seeded from ``seed``, so one thread gives the same vectors on every run.
    With ``threads`` > 1, as with gensim's workers, the interleaving of the
    threads' updates (and so the vectors) varies from run to run.

``"torch"``, the batched path (``impl/_word2vec_torch.py``; CUDA, or the CPU on request):
updates are computed for a batch of ``batch_size`` consecutive centre positions at a time,
so that batched tensor ops rather than Python carry the cost:
  * CBOW scores every centre of the batch against one parameter snapshot and
    sums the steps (scatter-add). Skip-gram (``sg_update_order="slot"``, the
    default) goes through the window one slot at a time: the batch's pairs with
    their context word at slot j are scored against the matrices as the slots
    before left them, so a centre's output rows and a token's input row change
    between the pairs that use them, as in the kernel's loop. Scoring the whole
    window against one snapshot (``sg_update_order="batch"``) trains faster but
    lands above gensim on MEN-TR-3k whatever the batch size, where the slot order
    matches it. (Per-centre private copies of the rows do not close that gap: the
    frequent words' shared rows need the updates of the other centres between slots too.)
  * Skip-gram noise is shared per centre by default as above; per-pair draws did
    not close the batch order's gap to gensim and cost several times the training
    time. The measurements behind both points are in results/README.md
    ("word2vec's implementation notes").
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

import os
from dataclasses import dataclass, replace

import numpy as np
import torch
from gensim.models import KeyedVectors

from impl._checks import check_flat_corpus, is_bool, is_int, is_num, need
from impl._torch_threads import torch_threads
from impl._word2vec_numba import train_numba
from impl._word2vec_torch import train_torch


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
    # Torch path only: torch's intra-op threads during training (restored after). torch's
    # OpenMP pool busy-waits, so it is worth more than 1 only on otherwise idle cores
    # (the slot order's only parallelism).
    intra_op_threads: int = 1
    # Torch path only, skip-gram: "slot" applies the steps after each window slot
    # (gensim's quality on offline-mix); "batch" scores every slot of the batch against
    # one parameter snapshot and sums the steps (faster, but above gensim on MEN-TR-3k;
    # see the module docstring).
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
            train_numba(ids, offsets, counts, syn0, syn_out, config, seed, bar)
        else:
            # Evaluation after training keeps the caller's thread count.
            with torch_threads(config.intra_op_threads if device.type == "cpu" else torch.get_num_threads()):
                syn0 = train_torch(ids, offsets, counts, syn0, syn_out, config, seed, device, bar)
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



"""Unit tests for impl/word2vec.py; the Lee-corpus training runs are marked slow."""

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors
from gensim.models.word2vec import _assign_binary_codes
from gensim.test.utils import datapath

from tests.corpora import lee as lee_corpus
from tests.corpora import toy
from impl.word2vec import (
    Word2VecConfig,
    _sg_slot_steps,
    alias_table,
    context_mask,
    huffman_codes,
    keep_probabilities,
    train_word2vec,
)




# --- Huffman tree -------------------------------------------------------------------------


def test_huffman_codes_by_hand():
    # Merges: (1:w3, 2:w2) -> n0 (3); (3:w1, 3:n0) -> n1 (6); (5:w0, 6:n1) -> n2 (11) = root.
    # The first node popped is the 0-branch, inner nodes are numbered in merge order.
    codes, points = huffman_codes(np.array([5, 3, 2, 1]))
    assert [c.tolist() for c in codes] == [[0], [1, 0], [1, 1, 1], [1, 1, 0]]
    assert [p.tolist() for p in points] == [[2], [2, 1], [2, 1, 0], [2, 1, 0]]


def test_huffman_codes_match_gensim():
    counts = np.sort(np.random.default_rng(1).integers(1, 50, size=40))[::-1]
    kv = KeyedVectors(vector_size=2)
    kv.add_vectors([f"w{i}" for i in range(len(counts))], np.zeros((len(counts), 2), np.float32))
    for i, c in enumerate(counts):
        kv.set_vecattr(i, "count", int(c))
    _assign_binary_codes(kv)
    codes, points = huffman_codes(counts)
    for i in range(len(counts)):
        assert codes[i].tolist() == kv.get_vecattr(i, "code").tolist()
        assert points[i].tolist() == kv.get_vecattr(i, "point").tolist()


def test_huffman_single_word_has_empty_path():
    codes, points = huffman_codes(np.array([7]))
    assert codes[0].tolist() == [] and points[0].tolist() == []


# --- subsampling, noise distribution, windows -----------------------------------------------


def test_keep_probabilities_by_hand():
    # total 1000, sample 0.01 -> threshold 10; p = (sqrt(f/10) + 1) * 10/f, capped at 1.
    p = keep_probabilities(np.array([900, 90, 10]), 0.01)
    np.testing.assert_allclose(p, [(np.sqrt(90) + 1) / 90, 4 / 9, 1.0])
    assert keep_probabilities(np.array([900, 90, 10]), 0.0).tolist() == [1.0, 1.0, 1.0]


def test_alias_table_by_hand_and_exact_distribution():
    accept, alias = alias_table(np.array([3.0, 1.0]))
    assert accept.tolist() == [1.0, 0.5] and alias.tolist() == [0, 0]
    w = np.random.default_rng(2).random(50) ** 3
    accept, alias = alias_table(w)
    implied = accept.copy()
    np.add.at(implied, alias, 1.0 - accept)
    np.testing.assert_allclose(implied / len(w), w / w.sum(), atol=1e-12)


def test_context_mask_by_hand():
    # Two sentences [0 0 0 | 1 1]; columns are offsets -2..2.
    sent = torch.tensor([0, 0, 0, 1, 1])
    reduced = torch.tensor([1, 2, 1, 2, 1])
    F, T = False, True
    expected = [
        [F, F, F, T, F],
        [F, T, F, T, F],  # offset +2 would reach sentence 1
        [F, T, F, F, F],
        [F, F, F, T, F],  # offsets -1, -2 lie in sentence 0
        [F, T, F, F, F],
    ]
    assert context_mask(sent, reduced, 2).tolist() == expected


def test_context_mask_respects_window_and_sentences():
    g = torch.Generator().manual_seed(3)
    sent = torch.sort(torch.randint(0, 40, (500,), generator=g)).values
    reduced = torch.randint(1, 6, (500,), generator=g)
    mask = context_mask(sent, reduced, 5)
    c, j = mask.nonzero(as_tuple=True)
    o = j - 5
    assert (o != 0).all() and (o.abs() <= reduced[c]).all()
    assert ((c + o >= 0) & (c + o < 500)).all()
    assert (sent[c + o] == sent[c]).all()
    # Every same-sentence neighbour inside the reduced window is there.
    want = sum(
        int(((sent[i + k] == sent[i]) if 0 <= i + k < 500 else False))
        for i in range(500)
        for k in range(-int(reduced[i]), int(reduced[i]) + 1)
        if k
    )
    assert len(c) == want


@pytest.mark.parametrize("arch,hs,negative", [("cbow", False, 5), ("sg", False, 5), ("cbow", True, 0), ("sg", True, 2)])
def test_no_update_without_context(arch, hs, negative):
    # One-token sentences have no context; no input vector may move from gensim's init.
    ids = np.array([0, 1, 2, 0, 1, 0], dtype=np.int64)
    offsets = np.arange(len(ids) + 1, dtype=np.int64)
    cfg = Word2VecConfig(arch=arch, hs=hs, negative=negative, vector_size=8, sample=0, epochs=2)
    kv = train_word2vec(ids, offsets, ["a", "b", "c"], np.array([3, 2, 1]), cfg, seed=4)
    init = (np.random.default_rng(4).random((3, 8), dtype=np.float32) * 2 - 1) / 8
    np.testing.assert_array_equal(kv.vectors, init)


# --- config and input validation ----------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"arch": "skipgram"}, "arch"),
        ({"vector_size": 0}, "vector_size"),
        ({"vector_size": True}, "vector_size"),
        ({"window": 0}, "window"),
        ({"negative": -1}, "negative"),
        ({"negative": 0, "hs": False}, "negative"),
        ({"hs": 1}, "hs"),
        ({"sample": -1e-3}, "sample"),
        ({"epochs": 0}, "epochs"),
        ({"alpha": 0.0}, "alpha"),
        ({"min_alpha": float("nan")}, "min_alpha"),
        ({"batch_size": 0}, "batch_size"),
        ({"threads": 0}, "threads"),
        ({"cbow_mean": "yes"}, "cbow_mean"),
        ({"sg_update_order": "pair"}, "sg_update_order"),
    ],
)
def test_config_validation(kwargs, field):
    with pytest.raises(ValueError, match=rf"^Word2VecConfig\.{field}="):
        Word2VecConfig(**kwargs)


def test_config_defaults():
    assert Word2VecConfig(hs=True, negative=0).negative == 0
    assert Word2VecConfig(arch="sg").start_alpha == 0.025
    assert Word2VecConfig().start_alpha == 0.05
    assert Word2VecConfig(alpha=0.1).start_alpha == 0.1


def test_bad_inputs_raise_value_error():
    cfg = Word2VecConfig(vector_size=4)
    with pytest.raises(ValueError, match="^ids"):
        train_word2vec(np.array([0, 3]), np.array([0, 2]), ["a", "b"], np.array([2, 1]), cfg, seed=0)
    with pytest.raises(ValueError, match="^offsets"):
        train_word2vec(np.array([0, 1]), np.array([0, 1]), ["a", "b"], np.array([2, 1]), cfg, seed=0)
    with pytest.raises(ValueError, match="^counts"):
        train_word2vec(np.array([0, 1]), np.array([0, 2]), ["a", "b"], np.array([2]), cfg, seed=0)


# --- outputs ------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path):
    ids, offsets, words, counts = toy()
    kv = train_word2vec(ids, offsets, words, counts, Word2VecConfig(vector_size=16, epochs=1), seed=5)
    assert kv.vectors.dtype == np.float32 and kv.vectors.shape == (len(words), 16)
    assert kv.index_to_key == words
    for binary in (False, True):
        path = tmp_path / f"vec.{'bin' if binary else 'txt'}"
        kv.save_word2vec_format(str(path), binary=binary)
        back = KeyedVectors.load_word2vec_format(str(path), binary=binary)
        assert back.index_to_key == words
        np.testing.assert_allclose(back.vectors, kv.vectors, rtol=0, atol=0 if binary else 1e-7)


@pytest.mark.parametrize("arch,hs,negative", [("cbow", False, 5), ("sg", True, 3)])
def test_same_seed_same_vectors(arch, hs, negative):
    ids, offsets, words, counts = toy()
    cfg = Word2VecConfig(arch=arch, hs=hs, negative=negative, vector_size=16, epochs=2, batch_size=64)
    a = train_word2vec(ids, offsets, words, counts, cfg, seed=6).vectors
    b = train_word2vec(ids, offsets, words, counts, cfg, seed=6).vectors
    c = train_word2vec(ids, offsets, words, counts, cfg, seed=7).vectors
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.isfinite(a).all()


# --- real training (slow) -----------------------------------------------------------------


@pytest.fixture(scope="module")
def lee():
    return lee_corpus()


def _ws353(kv):
    return kv.evaluate_word_pairs(datapath("wordsim353.tsv"))[1].statistic


def _gensim_pair_steps(syn0, syn_out, pairs, alpha):
    """gensim's skip-gram loop by hand, in float64: for each (context, [centre, noise...])
    pair in turn, score the context's input row against the centre (label 1) and each noise
    word (label 0), step the output rows with the input row as it was, then the input row
    with the output rows as they were. Returns the updated (syn0, syn_out)."""
    want_in, want_out = syn0.astype(np.float64), syn_out.astype(np.float64)
    for context, rows in pairs:
        v = want_in[context].copy()
        work = np.zeros(want_in.shape[1])
        for i, row in enumerate(rows):
            g = ((1.0 if i == 0 else 0.0) - 1 / (1 + np.exp(-v @ want_out[row]))) * alpha
            work += g * want_out[row]
            want_out[row] += g * v
        want_in[context] += work
    return want_in, want_out


@pytest.mark.parametrize("shared", [True, False])
def test_slot_order_is_gensims_pair_by_pair_sgd_for_one_centre(shared):
    # One centre (word 0) with context words 1 (slot 0) and 2 (slot 2), window 1, noise
    # word 3 (K = 1), against gensim's loop by hand.
    rng = np.random.default_rng(0)
    syn0 = rng.standard_normal((4, 3)).astype(np.float32)
    syn_out = rng.standard_normal((4, 3)).astype(np.float32)
    alpha, noise = 0.1, [[3], [3], [3]] if not shared else [[3]]
    pairs = [(context, [0] + (noise[slot] if not shared else noise[0])) for slot, context in ((0, 1), (2, 2))]
    want_in, want_out = _gensim_pair_steps(syn0, syn_out, pairs, alpha)
    targets = torch.tensor([[0] + sum(noise, [])])  # [1, T]: centre, then the noise of each slot or all
    labels = torch.tensor([[1.0] + [0.0] * (targets.shape[1] - 1)])
    cfg = Word2VecConfig(arch="sg", negative=1, window=1, sg_shared_negatives=shared, sg_update_order="slot")
    got_in, got_out = torch.from_numpy(syn0.copy()), torch.from_numpy(syn_out.copy())
    _sg_slot_steps(got_in, got_out, torch.tensor([1, 0, 2]), torch.tensor([[1.0, 0.0, 1.0]]), targets, labels,
                   torch.ones_like(labels), alpha, cfg)
    np.testing.assert_allclose(got_in.numpy(), want_in, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_out.numpy(), want_out, rtol=1e-5, atol=1e-6)


def test_slot_order_skips_empty_slots_and_steps_slot_by_slot_across_centres():
    # Two centres of one batch (window 1): centre word 0 has a context only at slot 0
    # (word 1), centre word 4 only at slot 2 (word 2), and both share noise word 3. Slot 0
    # holds only the first pair and slot 2 only the second, so the second pair must see
    # the first pair's step on the shared noise row, as in gensim's pair-by-pair loop.
    rng = np.random.default_rng(1)
    syn0 = rng.standard_normal((5, 3)).astype(np.float32)
    syn_out = rng.standard_normal((5, 3)).astype(np.float32)
    alpha = 0.1
    want_in, want_out = _gensim_pair_steps(syn0, syn_out, [(1, [0, 3]), (2, [4, 3])], alpha)
    targets = torch.tensor([[0, 3], [4, 3]])  # [b=2, T]: the centre, then the shared noise word
    labels = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    valid = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # [b, 2W+1]
    cfg = Word2VecConfig(arch="sg", negative=1, window=1, sg_update_order="slot")
    got_in, got_out = torch.from_numpy(syn0.copy()), torch.from_numpy(syn_out.copy())
    # Kept tokens from W before the first centre to W after the last: [1, (0), (4), 2].
    _sg_slot_steps(got_in, got_out, torch.tensor([1, 0, 4, 2]), valid, targets, labels, torch.ones_like(labels),
                   alpha, cfg)
    np.testing.assert_allclose(got_in.numpy(), want_in, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_out.numpy(), want_out, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize(
    "arch,hs,negative,epochs,shared,order",
    [("cbow", False, 5, 20, True, "batch"), ("sg", False, 5, 20, True, "batch"), ("sg", True, 2, 20, False, "batch"),
     ("cbow", True, 0, 20, True, "batch"), ("sg", True, 0, 20, True, "batch"), ("sg", False, 5, 20, True, "slot"),
     ("sg", True, 2, 20, False, "slot")],
)
def test_lee_beats_random_vectors(lee, arch, hs, negative, epochs, shared, order):
    # shared=False: gensim's fresh noise words per (centre, context) pair, next to the Huffman path.
    ids, offsets, words, counts = lee
    cfg = Word2VecConfig(arch=arch, hs=hs, negative=negative, vector_size=50, epochs=epochs, batch_size=256,
                         sg_shared_negatives=shared, sg_update_order=order)
    kv = train_word2vec(ids, offsets, words, counts, cfg, seed=0)
    control = KeyedVectors(vector_size=50)
    control.add_vectors(words, np.random.default_rng(0).standard_normal((len(words), 50)).astype(np.float32))
    ours, rand = _ws353(kv), _ws353(control)
    assert ours > rand + 0.1, (ours, rand)


@pytest.mark.slow
def test_torch_intra_op_threads_stay_deterministic_and_are_restored(lee):
    # Tensors of this size (batch 2048 x 100 dims) are split across torch's pool, unlike the toy's.
    ids, offsets, words, counts = lee
    cfg = Word2VecConfig(arch="cbow", vector_size=100, epochs=1, batch_size=2048, threads=1, intra_op_threads=2)
    before = torch.get_num_threads()
    a = train_word2vec(ids, offsets, words, counts, cfg, seed=3).vectors
    b = train_word2vec(ids, offsets, words, counts, cfg, seed=3).vectors
    np.testing.assert_array_equal(a, b)
    assert torch.get_num_threads() == before

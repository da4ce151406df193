"""Unit tests for impl/glove.py; the Lee-corpus training run is marked slow."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from impl._cooccurrence import cooccurrence
from impl.glove import GloVeConfig, fit_glove, glove_weight, train_glove
from tests.corpora import lee as lee_corpus
from tests.corpora import toy

# --- counting settings (the counter itself: tests/test_cooccurrence.py) -------------------


def test_cooccurrence_memory_bound():
    ids, offsets, words, _ = toy()
    with pytest.raises(ValueError, match="max_vocab_memory_gb"):
        GloVeConfig(max_vocab_memory_gb=0)
    cfg = GloVeConfig(vector_size=4, epochs=1, max_vocab_memory_gb=1e-6)
    with pytest.raises(ValueError, match="exceeds"):
        train_glove(ids, offsets, words, np.ones(len(words), np.int64), cfg, seed=0)


@pytest.mark.parametrize("window", [0, -1, 1.5, True])
def test_window_must_be_a_positive_int(window):
    with pytest.raises(ValueError, match=r"GloVeConfig\.window"):
        GloVeConfig(window=window)


# --- weighting function -------------------------------------------------------------------


def test_glove_weight_values():
    x = np.array([0.0, 1.0, 25.0, 50.0, 100.0, 101.0, 1e6])
    f = glove_weight(x, 100.0, 0.75)
    np.testing.assert_allclose(f, [0.0, 0.01**0.75, 0.25**0.75, 0.5**0.75, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(glove_weight(x, 100.0, 1.0), [0.0, 0.01, 0.25, 0.5, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(glove_weight(np.array([5.0, 20.0]), 10.0, 0.5), [0.5**0.5, 1.0])
    # Monotone up to x_max, and the same on torch tensors.
    grid = np.linspace(0, 100, 101)
    assert (np.diff(glove_weight(grid, 100.0, 0.75)) > 0).all()
    t = glove_weight(torch.from_numpy(x), 100.0, 0.75)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), f)


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field,value",
    [("vector_size", 0), ("x_max", 0.0), ("alpha", -1.0), ("epochs", 0), ("learning_rate", 0.0),
     ("batch_size", 0), ("symmetric", 1), ("threads", 0), ("x_max", float("nan"))],
)
def test_config_rejects(field, value):
    with pytest.raises(ValueError, match=rf"GloVeConfig\.{field}=.*expected"):
        GloVeConfig(**{field: value})


# --- training -----------------------------------------------------------------------------


def test_loss_decreases_on_a_tiny_corpus():
    ids, offsets, words, _ = toy()
    X = cooccurrence(ids, offsets, len(words), 5)
    vectors, losses = fit_glove(X, GloVeConfig(vector_size=10, epochs=30, batch_size=64), seed=0)
    assert vectors.shape == (len(words), 10) and vectors.dtype == np.float32
    assert len(losses) == 30 and np.isfinite(losses).all()
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(b <= a * 1.05 for a, b in zip(losses, losses[1:])), losses


def test_fit_recovers_a_low_rank_log_matrix():
    # X_ij = exp(u_i . v_j + 3) is exactly representable: the fit should drive J towards 0.
    rng = np.random.default_rng(0)
    u, v = rng.normal(size=(20, 3)) * 0.5, rng.normal(size=(20, 3)) * 0.5
    X = sp.coo_matrix(np.exp(u @ v.T + 3))
    _, losses = fit_glove(X, GloVeConfig(vector_size=8, epochs=200, batch_size=50, learning_rate=0.1), seed=1)
    assert losses[-1] < 0.01 * losses[0], losses[::20]


def test_same_seed_same_vectors():
    ids, offsets, words, counts = toy()
    cfg = GloVeConfig(vector_size=16, epochs=3, batch_size=32)
    a = train_glove(ids, offsets, words, counts, cfg, seed=6)
    b = train_glove(ids, offsets, words, counts, cfg, seed=6)
    c = train_glove(ids, offsets, words, counts, cfg, seed=7)
    assert isinstance(a, KeyedVectors) and a.index_to_key == words
    assert a.vectors.shape == (len(words), 16) and a.vectors.dtype == np.float32
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert not np.array_equal(a.vectors, c.vectors)
    assert np.isfinite(a.vectors).all()


def test_train_glove_rejects_bad_inputs():
    ids, offsets, words, counts = toy()
    cfg = GloVeConfig(vector_size=4, epochs=1)
    with pytest.raises(ValueError, match="ids"):
        train_glove(ids + len(words), offsets, words, counts, cfg, seed=0)
    with pytest.raises(ValueError, match="offsets"):
        train_glove(ids, offsets[:-1], words, counts, cfg, seed=0)
    with pytest.raises(ValueError, match="counts"):
        train_glove(ids, offsets, words, counts[:-1], cfg, seed=0)


# --- real training (slow) -----------------------------------------------------------------


@pytest.mark.slow
def test_lee_beats_random_vectors():
    ids, offsets, words, counts = lee_corpus()
    cfg = GloVeConfig(vector_size=50, window=5, epochs=25, threads=1)
    kv = train_glove(ids, offsets, words, counts, cfg, seed=0)
    control = KeyedVectors(vector_size=50)
    control.add_vectors(words, np.random.default_rng(0).standard_normal((len(words), 50)).astype(np.float32))
    ours = kv.evaluate_word_pairs(datapath("wordsim353.tsv"))[1][0]
    rand = control.evaluate_word_pairs(datapath("wordsim353.tsv"))[1][0]
    assert ours > rand + 0.1, (ours, rand)

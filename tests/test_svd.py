"""Unit tests for impl/svd.py; the Lee-corpus run is marked slow."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from impl.svd import SVDConfig, ppmi, svd_vectors, train_svd_ppmi
from tests.corpora import lee as lee_corpus
from tests.corpora import toy

# --- PPMI ---------------------------------------------------------------------------------

# Row sums #(w) = 7, 3, 3; column sums #(c) = 7, 3, 3; |D| = 13.
_COUNTS = np.array([[6.0, 1.0, 0.0], [1.0, 0.0, 2.0], [0.0, 2.0, 1.0]])


def test_ppmi_plain_by_hand():
    expected = np.zeros((3, 3))
    expected[0, 0] = math.log(6 * 13 / (7 * 7))
    # (0, 1) and (1, 0): log(1 * 13 / (7 * 3)) < 0, clipped to 0.
    expected[1, 2] = expected[2, 1] = math.log(2 * 13 / (3 * 3))
    expected[2, 2] = math.log(1 * 13 / (3 * 3))
    out = ppmi(sp.csr_matrix(_COUNTS), cds_alpha=1.0, neg_shift=1.0)
    assert isinstance(out, sp.csr_matrix)
    np.testing.assert_allclose(out.toarray(), expected)
    assert out.nnz == 4 and (out.data > 0).all()  # the clipped entries are dropped


def test_ppmi_with_context_smoothing_and_shift_by_hand():
    a = 0.75
    total = 7**a + 3**a + 3**a  # sum over contexts of #(c)^0.75

    def pmi(w_c, w, c):
        return math.log(w_c * total / (w * c**a))

    smoothed = np.zeros((3, 3))
    for (r, c), n in np.ndenumerate(_COUNTS):
        if n:
            smoothed[r, c] = max(0.0, pmi(n, _COUNTS[r].sum(), _COUNTS[:, c].sum()))
    # Smoothing inflates P(c) of the rare contexts 1 and 2, so it lowers their
    # PMI and raises the PMI of the frequent context 0.
    assert smoothed[0, 0] > math.log(6 * 13 / (7 * 7))
    assert 0 < smoothed[2, 2] < math.log(1 * 13 / (3 * 3))
    np.testing.assert_allclose(ppmi(sp.csr_matrix(_COUNTS), cds_alpha=a).toarray(), smoothed)

    # The shift acts on the unclipped PMI, before the clip.
    shifted = np.zeros((3, 3))
    for (r, c), n in np.ndenumerate(_COUNTS):
        if n:
            shifted[r, c] = max(0.0, pmi(n, _COUNTS[r].sum(), _COUNTS[:, c].sum()) - math.log(2))
    out = ppmi(sp.coo_matrix(_COUNTS), cds_alpha=a, neg_shift=2.0)
    np.testing.assert_allclose(out.toarray(), shifted)
    assert out.nnz == np.count_nonzero(shifted) < np.count_nonzero(smoothed)


# --- SVD and eigenvalue weighting ---------------------------------------------------------


@pytest.mark.parametrize("power", [0.0, 0.5, 1.0])
def test_eigenvalue_weighting_matches_numpy(power):
    A = np.random.default_rng(3).random((9, 7))
    U, s, _ = np.linalg.svd(A, full_matrices=False)
    expected = U[:, :3] * s[:3] ** power
    got = svd_vectors(sp.csr_matrix(A), 3, power, seed=0)
    signs = np.sign((got * expected).sum(0))  # singular vectors are defined up to sign
    np.testing.assert_allclose(got * signs, expected, atol=1e-8)
    if power == 0.0:
        np.testing.assert_allclose(got.T @ got, np.eye(3), atol=1e-8)  # orthonormal columns


# --- configuration and training -----------------------------------------------------------


@pytest.mark.parametrize(
    "field,value",
    [("vector_size", 0), ("window", 0), ("distance_weighting", 1), ("cds_alpha", 0.0), ("neg_shift", 0.5),
     ("eig_power", -0.5), ("normalize", "yes"), ("cds_alpha", float("inf"))],
)
def test_config_rejects(field, value):
    with pytest.raises(ValueError, match=rf"SVDConfig\.{field}=.*expected"):
        SVDConfig(**{field: value})


def test_same_seed_same_vectors():
    ids, offsets, words, counts = toy()
    cfg = SVDConfig(vector_size=8, window=3)
    a = train_svd_ppmi(ids, offsets, words, counts, cfg, seed=6)
    b = train_svd_ppmi(ids, offsets, words, counts, cfg, seed=6)
    assert isinstance(a, KeyedVectors) and a.index_to_key == words
    assert a.vectors.shape == (len(words), 8) and a.vectors.dtype == np.float32
    np.testing.assert_array_equal(a.vectors, b.vectors)
    np.testing.assert_allclose(np.linalg.norm(a.vectors, axis=1), 1.0, rtol=1e-5)


def test_vector_size_must_be_below_vocabulary():
    ids, offsets, words, counts = toy()
    with pytest.raises(ValueError, match="vector_size"):
        train_svd_ppmi(ids, offsets, words, counts, SVDConfig(vector_size=len(words)), seed=0)


# --- real training (slow) -----------------------------------------------------------------


@pytest.mark.slow
def test_lee_beats_random_vectors():
    ids, offsets, words, counts = lee_corpus()
    kv = train_svd_ppmi(ids, offsets, words, counts, SVDConfig(vector_size=50), seed=0)
    control = KeyedVectors(vector_size=50)
    control.add_vectors(words, np.random.default_rng(0).standard_normal((len(words), 50)).astype(np.float32))
    ours = kv.evaluate_word_pairs(datapath("wordsim353.tsv"))[1][0]
    rand = control.evaluate_word_pairs(datapath("wordsim353.tsv"))[1][0]
    assert ours > rand + 0.15, (ours, rand)

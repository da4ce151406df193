"""Unit tests for impl/_cooccurrence.py, the window counter GloVe and PPMI-SVD share."""

import numpy as np
import pytest
import scipy.sparse as sp

import impl._cooccurrence as co
from impl._cooccurrence import cooccurrence
from tests.corpora import lee, toy


def _reference(ids, offsets, V, window, *, weighted=True, symmetric=True) -> sp.csr_matrix:
    """The counts [V, V] sentence by sentence, distance by distance, each pair summed by
    np.bincount over flat (row, col) keys: the definition the chunked sparse counter must match."""
    keys, weights = [], []
    for s0, s1 in zip(offsets[:-1], offsets[1:]):
        sentence = ids[s0:s1]
        for d in range(1, min(window, len(sentence) - 1) + 1):
            pairs = [(sentence[:-d], sentence[d:])] + ([(sentence[d:], sentence[:-d])] if symmetric else [])
            for rows, cols in pairs:
                keys.append(rows * V + cols)
                weights.append(np.full(len(rows), 1 / d if weighted else 1.0))
    unique, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    sums = np.bincount(inverse, np.concatenate(weights))  # [n_unique] one sum per (row, col)
    return sp.csr_matrix((sums, (unique // V, unique % V)), shape=(V, V))


def test_by_hand():
    # "a b c a", window 2 (a=0, b=1, c=2): pairs (a,b)@1, (b,c)@1, (c,a)@1, (a,c)@2, (b,a)@2;
    # the two a's are 3 apart, outside the window.
    ids, offsets = np.array([0, 1, 2, 0]), np.array([0, 4])
    X = cooccurrence(ids, offsets, 3, 2)
    assert isinstance(X, sp.coo_matrix) and X.dtype == np.float64
    expected = np.array([[0.0, 1 + 1 / 2, 1 + 1 / 2], [1 + 1 / 2, 0.0, 1.0], [1 + 1 / 2, 1.0, 0.0]])
    np.testing.assert_allclose(X.toarray(), expected)
    # Left context only: row = the earlier word, column = the later one.
    left = np.array([[0.0, 1.0, 1 / 2], [1 / 2, 0.0, 1.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(cooccurrence(ids, offsets, 3, 2, symmetric=False).toarray(), left)


def test_unweighted_by_hand():
    # "a b c a" | "b c", window 2: a-b@1, b-c@1, c-a@1, a-c@2, b-a@2, then b-c@1.
    ids, offsets = np.array([0, 1, 2, 0, 1, 2]), np.array([0, 4, 6])
    X = cooccurrence(ids, offsets, 3, 2, distance_weighting=False).toarray()
    np.testing.assert_allclose(X, [[0, 2, 2], [2, 0, 2], [2, 2, 0]])
    np.testing.assert_allclose(cooccurrence(ids, offsets, 3, 2).toarray(), [[0, 1.5, 1.5], [1.5, 0, 2], [1.5, 2, 0]])


def test_stops_at_sentence_boundaries():
    # "a b" | "c a": one sentence each; a window of 3 would join b-c and a-c across the break.
    ids, offsets = np.array([0, 1, 2, 0]), np.array([0, 2, 4])
    X = cooccurrence(ids, offsets, 3, 3).toarray()
    np.testing.assert_allclose(X, [[0.0, 1.0, 1.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    # Empty sentences change nothing.
    np.testing.assert_allclose(cooccurrence(ids, np.array([0, 0, 2, 2, 4]), 3, 3).toarray(), X)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("symmetric", [False, True])
def test_matches_a_reference(weighted, symmetric):
    ids, offsets, words, _ = toy()
    V, window = len(words), 4
    got = cooccurrence(ids, offsets, V, window, symmetric=symmetric, distance_weighting=weighted)
    expected = _reference(ids, offsets, V, window, weighted=weighted, symmetric=symmetric)
    np.testing.assert_allclose(got.toarray(), expected.toarray())


def test_lee_matches_a_reference():
    # A real corpus (gensim's Lee background, 55k tokens), in both ways the models count it:
    # GloVe's 1/d weights and PPMI-SVD's plain counts.
    ids, offsets, words, _ = lee()
    for weighted in (True, False):
        got = cooccurrence(ids, offsets, len(words), 5, distance_weighting=weighted).tocsr()
        expected = _reference(ids, offsets, len(words), 5, weighted=weighted)
        assert got.nnz == expected.nnz > 100_000
        assert abs(got - expected).max() <= 1e-12 * expected.max()
        if not weighted:
            assert (got != expected).nnz == 0  # whole counts: exact in any order


def test_chunks_change_nothing(monkeypatch):
    # Pairs whose ends fall in two chunks are counted once, by the chunk of their left end.
    ids, offsets, words, _ = toy()
    whole = cooccurrence(ids, offsets, len(words), 3, distance_weighting=False).toarray()
    monkeypatch.setattr(co, "_CHUNK_TOKENS", 7)
    assert len(ids) > 10 * 7
    np.testing.assert_array_equal(cooccurrence(ids, offsets, len(words), 3, distance_weighting=False).toarray(),
                                  whole)


def test_memory_bound():
    ids, offsets, words, _ = toy()
    with pytest.raises(ValueError, match=r"estimated [0-9.e-]+ GB for \d+ nonzeros .* exceeds the 1e-06 GB bound"):
        cooccurrence(ids, offsets, len(words), 5, max_memory_gb=1e-6)


@pytest.mark.parametrize("window", [0, -1, 1.5, True])
def test_window_must_be_a_positive_int(window):
    with pytest.raises(ValueError, match=r"window=.*expected an int >= 1"):
        cooccurrence(np.array([0, 1]), np.array([0, 2]), 2, window)

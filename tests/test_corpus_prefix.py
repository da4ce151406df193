"""`NAME@N`: a corpus cut to the first N tokens of its train split, one more cell key (issue 25, claim 4)."""

import json

import pytest

from bench.cli import main
from bench.data.datasets import corpus_prefix
from bench.data.prepared import prepare_corpus
from bench.data.vocab import TokenizerConfig, VocabConfig
from bench.errors import BenchError
from bench.run.config import load_matrix
from tests.conftest import write_corpus

# 9 train tokens over three lines; `d` first comes in the second line.
TRAIN = "a b c\nd a d\ne a b\n"


def _prepared(corpus: str):
    return prepare_corpus(corpus, None, TokenizerConfig(), VocabConfig(min_count=1))


def test_a_prefix_keeps_the_first_n_tokens_and_ranks_words_by_their_counts_in_it(tmp_path):
    folder = write_corpus(tmp_path / "toy", TRAIN)
    whole, prefix = _prepared(str(folder)), _prepared(f"{folder}@5")
    assert whole.train.n_tokens == 9 and whole.vocab.words[:2] == ["a", "b"]
    # The first 5 tokens: "a b c" and "d a", the second line cut where the count ends.
    assert prefix.train_sentences() == [["a", "b", "c"], ["d", "a"]]
    assert prefix.vocab.words == ["a", "b", "c", "d"]  # e never comes; b, c, d tie and keep their first occurrence
    assert prefix.name == f"{folder}@5" and prefix.fingerprint["first_tokens"] == 5
    assert prefix.streams["test"].n_tokens == whole.streams["test"].n_tokens  # held-out splits stay whole


def test_a_prefix_is_its_own_cell_key_and_is_recorded_in_the_result(tmp_path):
    folder = write_corpus(tmp_path / "toy", TRAIN * 20)
    out = tmp_path / "run"
    args = ["run", "--out", str(out), "--no-progress", "--in-process", "--models", "gensim-cbow", "--corpus",
            f"{folder}@60,{folder}@90", "--set", "vocab.min_count=1", "--set", "train.vector_size=8"]
    assert main(args) == 0
    cells = {json.loads(path.read_text())["cell"]["corpus"]: json.loads(path.read_text())
             for path in (out / "cells").glob("*.json")}
    small, large = cells[f"{folder}@60"], cells[f"{folder}@90"]
    assert small["dataset"]["first_tokens"] == 60 and large["dataset"]["first_tokens"] == 90
    assert small["key"]["hash"] != large["key"]["hash"]
    assert small["key"]["parts"]["data.corpus"] != large["key"]["parts"]["data.corpus"]


def test_a_bad_prefix_is_one_line_naming_the_corpus(tmp_path):
    folder = write_corpus(tmp_path / "toy", TRAIN)
    with pytest.raises(BenchError, match=r"expected N >= 1"):
        corpus_prefix("offline-mix@0")
    with pytest.raises(BenchError, match=r"holds 9 tokens, fewer than the 10 asked for") as error:
        _prepared(f"{folder}@10")
    assert "\n" not in str(error.value)
    assert corpus_prefix("user@host-corpus") == ("user@host-corpus", None)  # no count after the @: a plain name


def test_the_corpus_size_matrix_lists_the_five_prefixes_of_offline_mix():
    matrix = load_matrix("corpus-size")
    assert [corpus_prefix(corpus) for corpus in matrix.corpora] == [
        ("offline-mix", n) for n in (250_000, 500_000, 1_000_000, 2_000_000, 4_000_000)]
    assert matrix.models == ["word2vec-cbow", "word2vec-sg", "gensim-cbow", "gensim-sg"] and matrix.seeds == [0, 1, 2]

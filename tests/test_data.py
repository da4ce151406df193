"""Corpus loading, tokenization, vocabulary rules and the numericalized-corpus cache."""

import numpy as np
import pytest

from bench.data import vocab as vocab_module
from bench.data.datasets import load_corpus
from bench.data.vocab import TokenizerConfig, VocabConfig, build_vocab, tokenize_corpus
from bench.errors import BenchError
from tests.conftest import write_corpus


def test_embedded_lee_loads_with_three_splits():
    corpus = load_corpus("lee")
    assert len(corpus.splits["train"]) == 300  # lee_background.cor: 300 documents
    assert len(corpus.splits["validation"]) + len(corpus.splits["test"]) == 50  # lee.cor
    assert corpus.fingerprint["sha256"] and corpus.fingerprint["lines"]["train"] == 300


def test_local_folder_loads_by_path(tmp_path):
    folder = write_corpus(tmp_path / "toy", "The cat sat .\nthe dog sat\n")
    corpus = load_corpus(str(folder))
    assert corpus.splits["train"] == ["The cat sat .", "the dog sat"]
    assert corpus.fingerprint["source"] == str(folder)


@pytest.mark.data
def test_brown_from_data_root_matches_manifest(data_root):
    corpus = load_corpus("brown", data_root)
    tokenized = tokenize_corpus(corpus, TokenizerConfig(lowercase=False, pattern=r"\S+"))
    # ../shared/data/MANIFEST.json: whitespace tokens per split
    assert tokenized.splits["train"].n_tokens == 800_001
    assert tokenized.splits["validation"].n_tokens == 200_021
    assert tokenized.splits["test"].n_tokens == 161_170


@pytest.mark.data
def test_offline_mix_joins_four_train_splits(data_root):
    corpus = load_corpus("offline-mix", data_root)
    assert list(corpus.splits) == ["train"]
    parts = sum(len(load_corpus(name, data_root).splits["train"])
                for name in ("brown", "reuters", "gutenberg", "movie-reviews"))
    assert len(corpus.splits["train"]) == parts


def test_bad_corpus_inputs_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    with pytest.raises(BenchError, match="unknown corpus 'nope'"):
        load_corpus("nope")
    with pytest.raises(BenchError, match="data root"):
        load_corpus("brown")
    with pytest.raises(BenchError, match="split 'train' is empty"):
        load_corpus(str(write_corpus(tmp_path / "empty", "\n\n")))
    with pytest.raises(BenchError, match="Hugging Face hub .*Salesforce/wikitext.*folder"):
        load_corpus("wikitext-2")


def _toy_tokenized(tmp_path, train="a b a c a b\nb d\n", validation="a e\n", test="z a\n"):
    return tokenize_corpus(load_corpus(str(write_corpus(tmp_path / "c", train, validation, test))),
                           TokenizerConfig(pattern=r"\S+"))


def test_types_sorted_by_train_count_then_first_occurrence(tmp_path):
    tokenized = _toy_tokenized(tmp_path)
    # train counts: a 3, b 3, c 1, d 1; e and z only outside train (count 0)
    assert tokenized.types == ["a", "b", "c", "d", "e", "z"]
    assert tokenized.train_counts.tolist() == [3, 3, 1, 1, 0, 0]
    assert tokenized.splits["train"].offsets.tolist() == [0, 6, 8]


def test_min_count_drops_rare_words(tmp_path):
    vocab = build_vocab(_toy_tokenized(tmp_path), VocabConfig(min_count=2))
    assert vocab.words == ["a", "b"]
    stream, unk_rate = vocab.numericalize(_toy_tokenized(tmp_path).splits["train"])
    assert stream.ids.tolist() == [0, 1, 0, 0, 1, 1]  # c and d dropped
    assert stream.offsets.tolist() == [0, 5, 6]
    assert unk_rate == pytest.approx(2 / 8)


def test_max_size_unk_and_eos(tmp_path):
    tokenized = _toy_tokenized(tmp_path)
    vocab = build_vocab(tokenized, VocabConfig(min_count=1, max_size=3, unk="<unk>", eos="</s>"))
    assert vocab.words == ["a", "b", "c", "<unk>", "</s>"]
    assert vocab.counts.tolist() == [3, 3, 1, 1, 2]  # <unk>: d once; </s>: two train lines
    stream, unk_rate = vocab.numericalize(tokenized.splits["test"])  # "z a"
    assert [vocab.words[i] for i in stream.ids] == ["<unk>", "a", "</s>"]
    assert stream.offsets.tolist() == [0, 3]
    assert unk_rate == pytest.approx(0.5)


def test_vocab_rule_leaving_nothing_is_an_error(tmp_path):
    with pytest.raises(BenchError, match="min_count=10 leaves an empty vocabulary"):
        build_vocab(_toy_tokenized(tmp_path), VocabConfig(min_count=10))


def test_lowercase_and_pattern_are_applied(tmp_path):
    corpus = load_corpus(str(write_corpus(tmp_path / "c", "The THE the, don't stop-gap!\n")))
    tokenized = tokenize_corpus(corpus, TokenizerConfig())
    assert tokenized.types[:1] == ["the"] and tokenized.train_counts[0] == 3
    assert set(tokenized.types) == {"the", "don't", "stop-gap", "a", "b", "c"}


def test_long_lines_are_split(tmp_path):
    corpus = load_corpus(str(write_corpus(tmp_path / "c", " ".join(["w"] * 25) + "\n")))
    tokenized = tokenize_corpus(corpus, TokenizerConfig(max_sentence_len=10))
    assert tokenized.splits["train"].offsets.tolist() == [0, 10, 20, 25]


def test_second_tokenization_reads_the_cache(tmp_path, monkeypatch):
    corpus = load_corpus(str(write_corpus(tmp_path / "c", "x y x\n")))
    first = tokenize_corpus(corpus, TokenizerConfig())

    def fail(*args):
        raise AssertionError("tokenized again instead of reading the cache")

    monkeypatch.setattr(vocab_module, "_tokenize", fail)
    second = tokenize_corpus(corpus, TokenizerConfig())
    assert second.types == first.types
    np.testing.assert_array_equal(second.splits["train"].ids, first.splits["train"].ids)

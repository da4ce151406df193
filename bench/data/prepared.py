"""A corpus made ready for one family: tokenized, vocabulary applied, every split as ids.

`prepare_corpus` builds one from the corpus, tokenizer and vocab rule: the runner builds it
once per corpus to check the data before a run writes anything, and every cell builds its own
again in its worker (quickly: the tokenized corpus comes from the token cache, bench.data.vocab).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.data.datasets import load_corpus
from bench.data.vocab import (
    TokenizedCorpus,
    TokenizerConfig,
    TokenStream,
    Vocab,
    VocabConfig,
    build_vocab,
    tokenize_corpus,
)
from bench.errors import BenchError


@dataclass
class PreparedCorpus:
    name: str
    vocab: Vocab
    streams: dict[str, TokenStream]  # split -> vocab ids
    unk_rates: dict[str, float]  # split -> fraction of corpus tokens outside the vocabulary
    fingerprint: dict
    tokenized: TokenizedCorpus = field(repr=False)  # every split before the vocabulary rule
    progress: bool = False
    _sentences: list[list[str]] | None = field(default=None, repr=False)

    @property
    def train(self) -> TokenStream:
        return self.streams["train"]

    def train_sentences(self) -> list[list[str]]:
        """Train split as lists of vocabulary words, for libraries that take strings (gensim)."""
        if self._sentences is None:
            self._sentences = self.train.sentences(self.vocab.words)
        return self._sentences

    def split_words(self, split: str) -> list[list[str]]:
        """A split's sentences as the tokenizer's words, before the vocabulary rule (no
        `<unk>`, no sentence ends): the text an open-vocabulary model reads."""
        return self.tokenized.splits[split].sentences(self.tokenized.types)

    def describe(self) -> dict:
        """The dataset block of a result: where the data came from and what the model saw."""
        return {
            **self.fingerprint,
            "splits": {split: {"tokens": s.n_tokens, "sentences": s.n_sentences, "unk_rate": self.unk_rates[split]}
                       for split, s in self.streams.items()},
            "vocab_size": len(self.vocab),
        }


def prepare_corpus(name: str, data_dir: str | Path | None, tokenizer: TokenizerConfig, vocab_config: VocabConfig,
                   progress: bool = False) -> PreparedCorpus:
    tokenized = tokenize_corpus(load_corpus(name, data_dir), tokenizer)
    if tokenized.fingerprint.get("first_tokens") is not None:  # NAME@N (bench.data.datasets.corpus_prefix)
        tokenized = first_train_tokens(tokenized, tokenized.fingerprint["first_tokens"], name)
    if vocab_config.eos is not None:
        _check_no_line_is_cut(tokenized, vocab_config.eos)
    vocab = build_vocab(tokenized, vocab_config)
    streams, unk_rates = {}, {}
    for split, stream in tokenized.splits.items():
        streams[split], unk_rates[split] = vocab.numericalize(stream)
    return PreparedCorpus(name, vocab, streams, unk_rates, tokenized.fingerprint, tokenized, progress)


def first_train_tokens(tokenized: TokenizedCorpus, n: int, name: str) -> TokenizedCorpus:
    """`tokenized` with its train split cut to its first `n` tokens (the sentence the cut falls in
    ends there) and its types ranked again by their counts in that prefix, so the vocabulary
    rule sees only the prefix, as it would a corpus of that size. Validation and test stay whole."""
    train = tokenized.splits["train"]
    if n > train.n_tokens:
        raise BenchError(f"corpus '{name}': its train split holds {train.n_tokens:,} tokens, fewer than the {n:,} "
                         f"asked for; expected N at most {train.n_tokens:,}")
    ids = train.ids[:n]  # (n,)
    offsets = np.append(train.offsets[train.offsets < n], n)  # (sentences started before n + 1,)
    counts = np.bincount(ids, minlength=len(tokenized.types))  # (types,)
    present, first_seen = np.unique(ids, return_index=True)
    first = np.full(len(tokenized.types), n, dtype=np.int64)  # types absent from the prefix rank last
    first[present] = first_seen
    order = np.lexsort((first, -counts))  # by descending count, ties by first occurrence (as _tokenize)
    remap = np.empty_like(order)
    remap[order] = np.arange(order.shape[0])
    splits = {split: TokenStream(remap[stream.ids.astype(np.int64)].astype(np.int32), stream.offsets)
              for split, stream in {**tokenized.splits, "train": TokenStream(ids, offsets)}.items()}
    return dataclasses.replace(tokenized, types=[tokenized.types[i] for i in order], train_counts=counts[order],
                               splits=splits)


def _check_no_line_is_cut(tokenized: TokenizedCorpus, eos: str) -> None:
    """With sentence ends scored, a line is a sentence: the tokenizer must not cut one.

    A line longer than tokenizer.max_sentence_len is cut into pieces of exactly that
    length, and each piece would get a false sentence end. A piece and a line of exactly
    max_sentence_len tokens look the same after tokenization, so both are refused.
    """
    limit = tokenized.tokenizer.max_sentence_len
    for split, stream in tokenized.splits.items():
        longest = int(np.diff(stream.offsets).max(initial=0))
        if longest >= limit:
            raise BenchError(f"tokenizer.max_sentence_len={limit}: a line of split '{split}' reaches it, and lines "
                             f"that long are cut into pieces that would each end in a false sentence end "
                             f"(vocab.eos={eos!r}); expected max_sentence_len above the longest line")

"""A corpus made ready for one family: tokenized, vocabulary applied, every split as ids.

Built once per (corpus, tokenizer, vocab rule) in a run and passed explicitly to every
cell that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.datasets import load_corpus
from bench.vocab import TokenizerConfig, TokenStream, Vocab, VocabConfig, build_vocab, tokenize_corpus


@dataclass
class PreparedCorpus:
    name: str
    vocab: Vocab
    streams: dict[str, TokenStream]  # split -> vocab ids
    unk_rates: dict[str, float]  # split -> fraction of corpus tokens outside the vocabulary
    fingerprint: dict
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
    vocab = build_vocab(tokenized, vocab_config)
    streams, unk_rates = {}, {}
    for split, stream in tokenized.splits.items():
        streams[split], unk_rates[split] = vocab.numericalize(stream)
    return PreparedCorpus(name, vocab, streams, unk_rates, tokenized.fingerprint, progress)

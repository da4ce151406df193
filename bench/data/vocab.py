"""Tokenization, vocabularies and the numericalized-corpus cache.

Two explicit, recorded settings decide what a model sees:

- `TokenizerConfig`: lower-casing and the token regex (plus a cap on line length, since
  gensim silently truncates sentences past 10,000 tokens; we split them instead so both
  sides see the same tokens);
- `VocabConfig`: min count or max size, and what happens to other words: dropped
  (Word2Vec style) or mapped to `<unk>` (language models), plus optional sentence ends.

Tokenizing a corpus is the slow step, so `tokenize_corpus` caches the result, content
addressed: the file name is a hash of the data's sha256 (or hub revision) and the tokenizer
settings. The cache holds plain arrays only (integer ids, and the word types as one UTF-8
byte array with offsets), read with `allow_pickle=False`; an entry that cannot be read is
discarded and rebuilt, with one line saying so. The vocabulary rule is then a cheap
remapping of those arrays.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.data.datasets import CACHE_ENV, RawCorpus, cache_dir
from bench.errors import BenchError

CACHE_VERSION = 2  # 2: word types as UTF-8 bytes + offsets (1 stored a pickled object array)


@dataclass(frozen=True)
class TokenizerConfig:
    lowercase: bool = True
    # Words with inner apostrophes/hyphens; punctuation dropped. `\S+` keeps the
    # corpus' own tokenization (pre-tokenized corpora such as brown, for LMs).
    pattern: str = r"[^\W_]+(?:['’-][^\W_]+)*"
    max_sentence_len: int = 10000

    def __post_init__(self):
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise BenchError(f"tokenizer.pattern {self.pattern!r} is not a valid regex: {exc}") from exc
        if self.max_sentence_len < 1:
            raise BenchError(f"tokenizer.max_sentence_len must be >= 1, got {self.max_sentence_len}")


@dataclass(frozen=True)
class VocabConfig:
    min_count: int = 5
    max_size: int | None = None  # keep at most this many words (most frequent first)
    unk: str | None = None  # None: drop out-of-vocabulary tokens; else map them to this symbol
    eos: str | None = None  # None: no sentence-end symbol; else appended to every line

    def __post_init__(self):
        if self.min_count < 1:
            raise BenchError(f"vocab.min_count must be >= 1, got {self.min_count}")
        if self.max_size is not None and self.max_size < 1:
            raise BenchError(f"vocab.max_size must be >= 1 or unset, got {self.max_size}")


@dataclass
class TokenStream:
    """One split as flat token ids plus sentence offsets.

    ids: (n_tokens,) int32; offsets: (n_sentences + 1,) int64, sentence i is
    ids[offsets[i]:offsets[i + 1]].
    """

    ids: np.ndarray
    offsets: np.ndarray

    @property
    def n_tokens(self) -> int:
        return int(self.ids.shape[0])

    @property
    def n_sentences(self) -> int:
        return int(self.offsets.shape[0] - 1)

    def sentences(self, words: list[str]) -> list[list[str]]:
        """The split as lists of strings (what gensim trains on)."""
        flat = [words[i] for i in self.ids.tolist()]
        bounds = self.offsets.tolist()
        return [flat[bounds[k]:bounds[k + 1]] for k in range(len(bounds) - 1)]


@dataclass
class TokenizedCorpus:
    """All word types of a corpus and every split as ids into them.

    `types` is sorted by descending train count (ties: first occurrence), then types
    seen only outside train; `train_counts[i]` is the train count of `types[i]`.
    """

    types: list[str]
    train_counts: np.ndarray
    splits: dict[str, TokenStream]
    fingerprint: dict
    tokenizer: TokenizerConfig


def _cache_key(fingerprint: dict, tokenizer: TokenizerConfig) -> str:
    """The data's content hash (or hub revision) and the tokenizer settings; not its path."""
    data = {name: fingerprint.get(name) for name in ("sha256", "revision", "config")}
    payload = json.dumps({"v": CACHE_VERSION, "data": data, "tok": asdict(tokenizer)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def tokenize_corpus(corpus: RawCorpus, tokenizer: TokenizerConfig, use_cache: bool = True) -> TokenizedCorpus:
    """Tokenize every split once; later calls with the same data and settings read the cache."""
    cacheable = use_cache and bool(corpus.fingerprint.get("sha256") or corpus.fingerprint.get("revision"))
    path = cache_dir() / "tokens" / f"{_cache_key(corpus.fingerprint, tokenizer)}.npz"
    if cacheable and path.exists():
        cached = _read_cache(path, corpus.fingerprint, tokenizer)
        if cached is not None:
            return cached
    tokenized = _tokenize(corpus, tokenizer)
    if cacheable:
        _write_cache(path, tokenized)
    return tokenized


def _tokenize(corpus: RawCorpus, tokenizer: TokenizerConfig) -> TokenizedCorpus:
    find_tokens = re.compile(tokenizer.pattern).findall
    index: dict[str, int] = {}
    split_tokens: dict[str, tuple[list[int], list[int]]] = {}
    # Train first, so type ids follow first occurrence in train before anything else.
    for split in sorted(corpus.splits, key=lambda s: s != "train"):
        ids: list[int] = []
        offsets = [0]
        for line in corpus.splits[split]:
            tokens = find_tokens(line.lower() if tokenizer.lowercase else line)
            for start in range(0, len(tokens), tokenizer.max_sentence_len):
                chunk = tokens[start:start + tokenizer.max_sentence_len]
                ids.extend(index.setdefault(token, len(index)) for token in chunk)
                offsets.append(len(ids))
        split_tokens[split] = (ids, offsets)
    if not split_tokens["train"][0]:
        raise BenchError(f"corpus '{corpus.name}': the tokenizer pattern {tokenizer.pattern!r} "
                         f"finds no tokens in the train split")

    first_seen = list(index)
    counts = np.bincount(np.asarray(split_tokens["train"][0], dtype=np.int64), minlength=len(first_seen))
    # Stable sort by descending count keeps first-occurrence order among ties.
    order = np.argsort(-counts, kind="stable")
    remap = np.empty_like(order)
    remap[order] = np.arange(order.shape[0])
    splits = {
        split: TokenStream(remap[np.asarray(ids, dtype=np.int64)].astype(np.int32),
                           np.asarray(offsets, dtype=np.int64))
        for split, (ids, offsets) in split_tokens.items()
    }
    return TokenizedCorpus([first_seen[i] for i in order], counts[order], splits, corpus.fingerprint, tokenizer)


def _write_cache(path: Path, tokenized: TokenizedCorpus) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cache folder {path.parent} (set ${CACHE_ENV} to move it): {exc.strerror}") from exc
    encoded = [word.encode("utf-8") for word in tokenized.types]
    type_offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(word) for word in encoded], out=type_offsets[1:])
    arrays = {"type_bytes": np.frombuffer(b"".join(encoded), dtype=np.uint8), "type_offsets": type_offsets,
              "train_counts": tokenized.train_counts}
    for split, stream in tokenized.splits.items():
        arrays[f"{split}.ids"] = stream.ids
        arrays[f"{split}.offsets"] = stream.offsets
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written cache
    except BaseException:  # Ctrl-C included: no half-written temp file left behind
        tmp.unlink(missing_ok=True)
        raise


def _read_cache(path: Path, fingerprint: dict, tokenizer: TokenizerConfig) -> TokenizedCorpus | None:
    """The cached tokenization, or None (and the entry deleted) when it cannot be read."""
    try:
        with np.load(path, allow_pickle=False) as data:
            names = {key.split(".")[0] for key in data.files if "." in key}
            splits = {split: TokenStream(data[f"{split}.ids"], data[f"{split}.offsets"]) for split in names}
            blob, offsets = data["type_bytes"].tobytes(), data["type_offsets"]
            types = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(len(offsets) - 1)]
            counts = data["train_counts"]
    # A truncated or foreign file: zipfile, numpy (e.g. a pickled array) and UTF-8 errors.
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        print(f"lm-lineage: cache entry {path} is unreadable ({type(exc).__name__}); rebuilding it", file=sys.stderr)
        path.unlink(missing_ok=True)
        return None
    return TokenizedCorpus(types, counts, splits, fingerprint, tokenizer)


@dataclass
class Vocab:
    """The model vocabulary: `words[i]` for id i, most frequent first; specials at the end."""

    words: list[str]
    counts: np.ndarray  # train count per word (specials: their train occurrences)
    config: VocabConfig
    type_to_id: np.ndarray  # (n_types,) int64: corpus type id -> vocab id, -1 = dropped

    @property
    def unk_id(self) -> int | None:
        return self.words.index(self.config.unk) if self.config.unk is not None else None

    @property
    def eos_id(self) -> int | None:
        return self.words.index(self.config.eos) if self.config.eos is not None else None

    def __len__(self) -> int:
        return len(self.words)

    def numericalize(self, stream: TokenStream) -> tuple[TokenStream, float]:
        """Map a split to vocab ids. Returns the stream and its unknown-token rate.

        The rate is the fraction of the split's corpus tokens outside the vocabulary
        (mapped to <unk> or dropped); sentence ends are not counted.
        """
        mapped = self.type_to_id[stream.ids.astype(np.int64)]
        known = mapped >= 0
        unk_rate = float(1.0 - known.mean()) if mapped.size else 0.0
        if self.config.unk is not None:
            mapped = np.where(known, mapped, self.unk_id)
            keep = np.ones_like(known)
        else:
            keep = known
        # Kept tokens per sentence give the new offsets: (n_sentences,)
        sentence_of_token = np.repeat(np.arange(stream.n_sentences), np.diff(stream.offsets))
        kept_per_sentence = np.bincount(sentence_of_token[keep], minlength=stream.n_sentences)
        ids = mapped[keep]
        if self.config.eos is not None:
            # Insert eos after each sentence: position = new sentence end.
            ends = np.cumsum(kept_per_sentence)
            ids = np.insert(ids, ends, self.eos_id)
            kept_per_sentence = kept_per_sentence + 1
        offsets = np.concatenate([[0], np.cumsum(kept_per_sentence)]).astype(np.int64)
        return TokenStream(ids.astype(np.int32), offsets), unk_rate


def build_vocab(tokenized: TokenizedCorpus, config: VocabConfig) -> Vocab:
    """Apply the vocabulary rule to the train counts."""
    counts = tokenized.train_counts
    keep = counts >= config.min_count
    if config.max_size is not None:
        keep[config.max_size:] = False  # types are already sorted by descending count
    n_keep = int(keep.sum())
    if n_keep == 0:
        raise BenchError(f"vocab.min_count={config.min_count} leaves an empty vocabulary "
                         f"(the most frequent train word occurs {int(counts.max())} times)")
    words = list(tokenized.types[:n_keep])
    word_counts = [int(c) for c in counts[:n_keep]]
    # Types seen only outside train have count 0 here, so they are dropped too.
    type_to_id = np.where(keep, np.arange(len(counts)), -1).astype(np.int64)
    for special, count in ((config.unk, int(counts[~keep].sum())),
                           (config.eos, tokenized.splits["train"].n_sentences)):
        if special is None:
            continue
        if special in words:
            raise BenchError(f"vocab special symbol {special!r} is also a corpus word; choose another")
        words.append(special)
        word_counts.append(count)
    return Vocab(words, np.asarray(word_counts, dtype=np.int64), config, type_to_id)

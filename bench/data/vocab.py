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
byte array with offsets). An entry is checked before use against that schema: its array
names and dtypes, each array's size against the bytes it holds (read from the .npy headers
first, so a header claiming 10^12 elements allocates nothing), offsets that delimit their
arrays and ids within the word types. An entry that fails is discarded and rebuilt, with one
line saying so. The vocabulary rule is then a cheap remapping of those arrays.
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

from bench.data.datasets import SPLITS, RawCorpus, writable_cache_dir
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
    if not cacheable:
        return _tokenize(corpus, tokenizer)
    path = writable_cache_dir("tokens") / f"{_cache_key(corpus.fingerprint, tokenizer)}.npz"
    if path.exists():
        cached = _read_cache(path, corpus.fingerprint, tokenizer)
        if cached is not None:
            return cached
    tokenized = _tokenize(corpus, tokenizer)
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
    encoded = [word.encode("utf-8") for word in tokenized.types]
    type_offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(word) for word in encoded], out=type_offsets[1:])
    arrays: dict[str, np.ndarray] = {"type_bytes": np.frombuffer(b"".join(encoded), dtype=np.uint8),
                                     "type_offsets": type_offsets, "train_counts": tokenized.train_counts}
    for split, stream in tokenized.splits.items():
        arrays[f"{split}.ids"] = stream.ids
        arrays[f"{split}.offsets"] = stream.offsets
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    try:
        np.savez(tmp, **arrays)  # type: ignore[arg-type]  # numpy's stub reads a **dict as its allow_pickle flag
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written cache
    except BaseException:  # Ctrl-C included: no half-written temp file left behind
        tmp.unlink(missing_ok=True)
        raise


# The arrays of a cache entry and their dtypes (the writer's; little-endian, as np.savez writes them here).
_TYPE_ARRAYS: dict[str, np.dtype] = {"type_bytes": np.dtype(np.uint8), "type_offsets": np.dtype(np.int64),
                "train_counts": np.dtype(np.int64)}
_SPLIT_ARRAYS: dict[str, np.dtype] = {"ids": np.dtype(np.int32), "offsets": np.dtype(np.int64)}
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _read_cache(path: Path, fingerprint: dict, tokenizer: TokenizerConfig) -> TokenizedCorpus | None:
    """The cached tokenization, or None (and the entry deleted, with one line on stderr) when
    it cannot be read or is not what `_write_cache` writes."""
    try:
        arrays = _read_entry(path)
        types, counts, splits = _checked_entry(arrays)
    # A truncated or foreign file: zipfile errors (an unknown compression method is NotImplementedError,
    # an encrypted member RuntimeError), .npy header and schema errors, UTF-8 errors (ValueError).
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        print(f"lm-lineage: cache entry {path} is unreadable ({exc}); rebuilding it", file=sys.stderr)
        path.unlink(missing_ok=True)
        return None
    return TokenizedCorpus(types, counts, splits, fingerprint, tokenizer)


def _expected_dtype(name: str) -> np.dtype | None:
    split, _, array = name.partition(".")
    return _SPLIT_ARRAYS.get(array) if split in SPLITS else _TYPE_ARRAYS.get(name)


def _read_entry(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz entry, each checked against its expected name, dtype and
    1-D shape, and its header's size against the bytes it holds, before anything is allocated."""
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            expected = _expected_dtype(name)
            if expected is None or not info.filename.endswith(".npy"):
                raise ValueError(f"an array {info.filename!r}, which a token cache does not hold")
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version not in _NPY_HEADER_READERS:
                    raise ValueError(f"array {name!r} has .npy version {version}")
                shape, _, dtype = _NPY_HEADER_READERS[version](member)
                if dtype != expected or len(shape) != 1:
                    raise ValueError(f"array {name!r} is {dtype} of shape {shape}, expected 1-D {expected}")
                data_bytes = info.file_size - member.tell()
                if shape[0] * dtype.itemsize != data_bytes:
                    raise ValueError(f"array {name!r} claims {shape[0]} elements and holds {data_bytes} bytes")
                arrays[name] = np.frombuffer(member.read(data_bytes), dtype=dtype)
    return arrays


def _checked_entry(arrays: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray, dict[str, TokenStream]]:
    """(types, train counts, splits) of an entry whose arrays delimit each other: offsets
    from 0 to their array's end, never decreasing; a count per type; ids within the types."""
    split_names = sorted({name.split(".")[0] for name in arrays if "." in name})
    needed = [*_TYPE_ARRAYS,
              *(f"{split}.{array}" for split in sorted({"train", *split_names}) for array in _SPLIT_ARRAYS)]
    missing = [name for name in needed if name not in arrays]
    if missing:
        raise ValueError(f"no array {', '.join(map(repr, missing))}")
    blob, type_offsets = arrays["type_bytes"], arrays["type_offsets"]
    _check_offsets(type_offsets, len(blob), "type_offsets")
    n_types = len(type_offsets) - 1
    counts = arrays["train_counts"]
    if len(counts) != n_types or (counts < 0).any():
        raise ValueError(f"'train_counts' holds {len(counts)} counts for {n_types} types, or a negative one")
    splits = {}
    for split in split_names:
        ids, offsets = arrays[f"{split}.ids"], arrays[f"{split}.offsets"]
        _check_offsets(offsets, len(ids), f"{split}.offsets")
        if ids.size and (ids.min() < 0 or ids.max() >= n_types):
            raise ValueError(f"'{split}.ids' holds ids outside the {n_types} word types")
        splits[split] = TokenStream(ids, offsets)
    text = blob.tobytes()
    types = [text[type_offsets[i]:type_offsets[i + 1]].decode("utf-8") for i in range(n_types)]
    return types, counts, splits


def _check_offsets(offsets: np.ndarray, length: int, name: str) -> None:
    if len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != length or (np.diff(offsets) < 0).any():
        raise ValueError(f"'{name}' does not run from 0 to {length} without decreasing")


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
        unk_id, eos_id = self.unk_id, self.eos_id  # None where the config has no such token
        if unk_id is not None:
            mapped = np.where(known, mapped, unk_id)
            keep = np.ones_like(known)
        else:
            keep = known
        # Kept tokens per sentence give the new offsets: (n_sentences,)
        sentence_of_token = np.repeat(np.arange(stream.n_sentences), np.diff(stream.offsets))
        kept_per_sentence = np.bincount(sentence_of_token[keep], minlength=stream.n_sentences)
        ids = mapped[keep]
        if eos_id is not None:
            # Insert eos after each sentence: position = new sentence end.
            ends = np.cumsum(kept_per_sentence)
            ids = np.insert(ids, ends, eos_id)
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

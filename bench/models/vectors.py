"""Word vectors from a file: the `vectors` model kind (bring your own vectors).

Formats (`format =`, detected from the file's first bytes when unset):

- `word2vec-text`: a header line `COUNT DIM`, then one `word v1 ... vDIM` line per word;
- `fasttext-vec`: fastText's `.vec` files, the same layout as word2vec-text;
- `word2vec-binary`: the header line, then per word `word ` and DIM little-endian float32s
  (word2vec.c adds a newline after each vector, gensim does not; both are read);
- `glove-text`: GloVe's files, word2vec text without the header;
- `gensim`: gensim's native `KeyedVectors.save` file. It is a pickle, and unpickling can
  run any code the file names: it is read with an unpickler that builds only the classes a
  gensim 4 KeyedVectors file holds (KeyedVectors, numpy arrays and dtypes) and refuses any
  other. What it builds is bounded by the file's size: a pickle of a few bytes can ask numpy
  for any array (`ndarray((10**13,))`), and a KeyedVectors file never needs an array larger
  than the bytes it holds. Arrays saved beside it (`FILE.vectors.npy`) are read with numpy's
  pickle-free loader, mapped first so a header claiming more than the file holds is refused.
  Files of gensim 3 name other classes and are refused with how to convert them.

The word2vec-style formats are read by gensim's `load_word2vec_format`, which streams the
file and allocates only the kept rows (`limit`: the first N words, like gensim's). gensim's
own errors on a damaged file carry no file line (and a line with too few values surfaces as
a numpy broadcast error), so a failed read is diagnosed again by `scan`, which walks the
file and names the first bad line. `check_file` runs the same walk, every number of a text
file parsed (about a quarter of the read's time), in the runner before any cell starts, so a
malformed file is one line and exit 2, not a failed cell after others ran; a gensim file it
reads whole, through the restricted unpickler.
"""

from __future__ import annotations

import hashlib
import io
import math
import mmap
import pickle
import pickletools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors

from bench.errors import BenchError
from bench.models.contract import BuildContext, TrainedVectors

FORMATS = ("word2vec-text", "word2vec-binary", "glove-text", "fasttext-vec", "gensim")
TEXT_WITH_HEADER = ("word2vec-text", "fasttext-vec")
PICKLE_PROTOCOL_2_PLUS = b"\x80"  # the PROTO opcode every pickle of protocol >= 2 starts with


@dataclass(frozen=True)
class VectorsConfig:
    path: str = ""  # the vectors file; relative paths are read from the working directory
    format: str | None = None  # one of FORMATS; None: detected from the file
    limit: int | None = None  # keep the first N words of the file; None: all

    def __post_init__(self):
        if not isinstance(self.path, str) or not self.path:
            raise ValueError("path: expected the vectors file, e.g. path = \"vectors.txt\"")
        if self.format is not None and self.format not in FORMATS:
            raise ValueError(f"format: expected one of {', '.join(FORMATS)} (or unset: detected), "
                             f"got {self.format!r}")
        if self.limit is not None and (not isinstance(self.limit, int) or isinstance(self.limit, bool)
                                       or self.limit < 1):
            raise ValueError(f"limit: expected a number of words >= 1, got {self.limit!r}")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"vectors file {path} does not exist")
    return path


def _parse_header(line: bytes) -> tuple[int, int] | None:
    """(count, dims) when the line is a word2vec header `COUNT DIM`, else None."""
    parts = line.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        count, dims = int(parts[0]), int(parts[1])
        if count >= 1 and dims >= 1:
            return count, dims
    return None


def detect_format(path: str | Path) -> str:
    """The format of a vectors file, from its first line (see the module docstring)."""
    path = _existing(path)
    with open(path, "rb") as handle:
        first = handle.readline(1 << 16)
        if first.startswith(PICKLE_PROTOCOL_2_PLUS):
            return "gensim"
        header = _parse_header(first)
        if header is None:
            return "glove-text"
        # Text or binary: the first vector of a text file is a line of DIM + 1 words.
        body = handle.read(64 * header[1] + 4096)
    line = body.split(b"\n", 1)[0]
    try:
        parts = line.decode("utf-8").rstrip().split(" ")
        [float(x) for x in parts[1:]]
        if len(parts) == header[1] + 1:
            return "word2vec-text"
    except (UnicodeDecodeError, ValueError):
        pass
    return "word2vec-binary"


def read_vectors(path: str | Path, fmt: str | None = None, limit: int | None = None) -> KeyedVectors:
    """The vectors of a file as gensim KeyedVectors, in the file's word order; a damaged
    file is a BenchError naming the file, the line (or vector) and what was expected."""
    path = _existing(path)
    fmt = fmt or detect_format(path)
    if fmt == "gensim":
        return _read_gensim(path, limit)
    header = _check_header(path, fmt)
    try:
        kv = KeyedVectors.load_word2vec_format(str(path), binary=fmt == "word2vec-binary",
                                               no_header=fmt == "glove-text", limit=limit)
    except (ValueError, EOFError, UnicodeDecodeError, IndexError, TypeError, AssertionError) as exc:
        # gensim's message names no file line: find the first bad line ourselves.
        problem = scan(path, fmt, limit)
        raise BenchError(problem or f"{path}: not a {fmt} file ({type(exc).__name__}: {exc})") from exc
    if header is not None and limit is None:
        _check_count(path, fmt, header, kv)
    return kv


def check_file(path: str | Path, fmt: str | None = None, limit: int | None = None) -> None:
    """Before a run writes anything: the file exists and is sound (header, values per line,
    each a number, UTF-8 words, a binary file not cut short; a gensim file is read)."""
    path = _existing(path)
    fmt = fmt or detect_format(path)
    if fmt == "gensim":
        _read_gensim(path, limit)  # a pickle has no line structure to walk: only reading it checks it
        return
    problem = scan(path, fmt, limit)
    if problem:
        raise BenchError(problem)


def _check_header(path: Path, fmt: str) -> tuple[int, int] | None:
    with open(path, "rb") as handle:
        first = handle.readline(1 << 16)
    header = _parse_header(first)
    if fmt == "glove-text":
        if header is not None:
            raise BenchError(f"{path}: line 1 is a word2vec header ({first.strip().decode()}); GloVe text files "
                             f"have none: set format = \"word2vec-text\" (or leave format unset)")
        return None
    if header is None:
        raise BenchError(f"{path}: line 1: expected a {fmt} header 'COUNT DIM' (two positive integers), got "
                         f"{first[:60]!r}; a file without a header is format = \"glove-text\"")
    return header


def _check_count(path: Path, fmt: str, header: tuple[int, int], kv: KeyedVectors) -> None:
    """gensim reads the header's COUNT vectors and ignores what follows: a file with more
    is refused, since its header and body disagree."""
    count, dims = header
    if fmt == "word2vec-binary":
        with open(path, "rb") as handle:
            header_bytes = len(handle.readline())
        # Each vector is `word ` + 4 * dims bytes, optionally followed by a newline (word2vec.c).
        body = sum(len(word.encode("utf-8")) + 1 + 4 * dims for word in kv.index_to_key)
        extra = path.stat().st_size - header_bytes - body
        duplicates = count - len(kv)  # gensim keeps the first of a repeated word: its bytes are not counted
        more = extra > 1 and extra != count if duplicates == 0 else False
    else:
        more = _count_lines(path) > count + 1
    if more:
        raise BenchError(_more_than_header(path, count))


def _count_lines(path: Path) -> int:
    """Lines of a text file, a last line without a newline included, trailing blank lines not."""
    newlines, tail = 0, b""
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            newlines += block.count(b"\n")
            tail = (tail + block)[-4096:]
    stripped = tail.rstrip()
    # The newlines inside the trailing whitespace end no line of content; a last line
    # without a newline is a line.
    return newlines - tail[len(stripped):].count(b"\n") + (1 if stripped else 0)


def scan(path: Path, fmt: str, limit: int | None) -> str | None:
    """The first problem of a word2vec-style file as one line naming the file and line
    (vector, for binary files), or None when its structure and every number are sound."""
    with open(path, "rb") as handle:
        if fmt == "word2vec-binary":
            return _scan_binary(path, handle, limit)
        return _scan_text(path, handle, fmt, limit)


def _scan_text(path: Path, handle: io.BufferedReader, fmt: str, limit: int | None) -> str | None:
    count, dims = None, None
    line_no = 0
    if fmt != "glove-text":
        line_no = 1
        header = _parse_header(handle.readline())
        if header is None:
            return f"{path}: line 1: expected a header 'COUNT DIM' (two positive integers)"
        count, dims = header
    wanted = count if limit is None else min(limit, count or limit)
    seen = 0
    for raw in handle:
        if wanted is not None and seen == wanted:
            if limit is None and raw.strip():
                return _more_than_header(path, wanted)  # without a limit, wanted is the header's count
            break
        line_no += 1
        if not raw.strip() and count is None:
            continue  # a GloVe file's trailing blank line
        try:
            parts = raw.decode("utf-8").rstrip().split(" ")
        except UnicodeDecodeError as exc:
            return f"{path}: line {line_no}: not valid UTF-8 (byte {exc.start} of the line); expected UTF-8 text"
        if dims is None:
            dims = len(parts) - 1
            if dims < 1:
                return f"{path}: line {line_no}: expected a word and its values separated by spaces, got {raw[:60]!r}"
        if len(parts) != dims + 1:
            return (f"{path}: line {line_no}: expected a word and {dims} values, got {len(parts) - 1} values "
                    f"(word {parts[0][:40]!r})")
        for value in parts[1:]:
            try:
                float(value)
            except ValueError:
                return f"{path}: line {line_no}: value {value[:40]!r} is not a number (word {parts[0][:40]!r})"
        seen += 1
    if count is not None and wanted is not None and seen < wanted:  # wanted: count, or less under a limit
        return (f"{path}: the header (line 1) says {count} words but the file ends after {seen} lines of vectors; "
                f"expected them to agree")
    if seen == 0:
        return f"{path}: no vectors in the file"
    return None


def _scan_binary(path: Path, handle: io.BufferedReader, limit: int | None) -> str | None:
    header_line = handle.readline()
    header = _parse_header(header_line)
    if header is None:
        return f"{path}: line 1: expected a header 'COUNT DIM' (two positive integers)"
    count, dims = header
    wanted = count if limit is None else min(limit, count)
    size = path.stat().st_size
    data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        position = len(header_line)
        for index in range(wanted):
            space = data.find(b" ", position)
            if space == -1 or size - (space + 1) < 4 * dims:
                return (f"{path}: cut short: the header says {count} vectors of {dims} float32 values, but the file "
                        f"ends inside vector {index + 1} (at byte {size})")
            try:
                data[position:space].decode("utf-8")
            except UnicodeDecodeError:
                return f"{path}: vector {index + 1} (byte {position}): its word is not valid UTF-8; expected UTF-8 words"
            position = space + 1 + 4 * dims
    finally:
        data.close()
    # After the last vector: nothing, word2vec.c's newline, or a newline after every vector.
    if limit is None and size - position not in (0, 1) and size - position != count:
        return _more_than_header(path, count)
    return None


def _more_than_header(path: Path, count: int) -> str:
    return (f"{path}: the header (line 1) says {count} words but the file holds more vectors after them; "
            f"expected the header's count to match the body")


# ---------------------------------------------------------------------------------------------
# gensim's native format, through a restricted unpickler
# ---------------------------------------------------------------------------------------------

# Every global a gensim 4 KeyedVectors pickle names (numpy 2 moved numpy.core to numpy._core).
_ALLOWED_GLOBALS = {
    ("gensim.models.keyedvectors", "KeyedVectors"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _TooLarge(pickle.UnpicklingError):
    """A call in the pickle would build more than the file could describe."""


class _UnpickledKeyedVectors(KeyedVectors):
    """What the pickle's KeyedVectors global stands for. A KeyedVectors file rebuilds its
    object from its state (`__new__`, then its attributes) and never calls the class, whose
    `__init__` allocates `count` rows: a call is refused before it allocates."""

    def __init__(self, *args, **kwargs):
        raise pickle.UnpicklingError("gensim.models.keyedvectors.KeyedVectors called with arguments")


class _NotCalled:
    """Stands for a global that a KeyedVectors pickle names but never calls (numpy.ndarray:
    the first argument of _reconstruct)."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError(f"{self.name} called with arguments")


_NDARRAY = _NotCalled("numpy.ndarray")


class _KeyedVectorsUnpickler(pickle.Unpickler):
    """Python's "Restricting Globals" recipe: only the classes a KeyedVectors file holds, and
    no array larger than `budget` bytes (the file's size: a KeyedVectors pickle reconstructs
    its arrays empty and fills them from bytes it holds)."""

    def __init__(self, handle: io.BytesIO, budget: int):
        super().__init__(handle)
        self.budget = budget

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"{module}.{name}")
        if name == "KeyedVectors":
            return _UnpickledKeyedVectors
        if name == "ndarray":
            return _NDARRAY
        if name == "_reconstruct":
            return self._bounded_reconstruct
        return super().find_class(module, name)

    def _bounded_reconstruct(self, subtype, shape, dtype) -> np.ndarray:
        """numpy's _reconstruct(ndarray, shape, dtype), once `shape` x `dtype` fits the budget."""
        if subtype is not _NDARRAY or not isinstance(shape, tuple) \
                or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise pickle.UnpicklingError("numpy._core.multiarray._reconstruct with arguments other than an "
                                         "ndarray's")
        n_bytes = math.prod(shape) * np.dtype(dtype).itemsize
        if n_bytes > self.budget:
            raise _TooLarge(f"an array of shape {shape} ({n_bytes:,} bytes), more than the file's {self.budget:,} "
                            f"bytes could describe")
        return np.ndarray(shape, dtype)


def _load_side_array(path: Path) -> np.ndarray:
    """An array gensim saved beside its file: mapped first (a header that claims more than the
    file holds fails here, before anything is allocated), then copied into memory."""
    try:
        return np.array(np.load(path, mmap_mode="r", allow_pickle=False))
    except (ValueError, OSError, EOFError) as exc:
        raise BenchError(f"{path}: not a readable .npy array ({type(exc).__name__}: {exc})") from exc


def _check_lengths(path: Path, data: bytes) -> None:
    """Every length a pickle's opcodes state fits in the bytes that follow: the unpickler
    allocates a BINBYTES8's stated size before reading it, so 69 bytes could cost gigabytes."""
    try:
        for _ in pickletools.genops(data):
            pass
    except ValueError as exc:  # pickletools reads each counted argument and checks its length
        raise BenchError(f"{path}: not a readable gensim KeyedVectors file (its pickle states more bytes than it "
                         f"holds: {exc})") from exc


def _read_gensim(path: Path, limit: int | None) -> KeyedVectors:
    convert = ("convert it with gensim: KeyedVectors.load(PATH).save_word2vec_format(OUT, binary=True), "
               "then use OUT")
    data = path.read_bytes()
    _check_lengths(path, data)
    try:
        kv = _KeyedVectorsUnpickler(io.BytesIO(data), budget=len(data)).load()
    except _TooLarge as exc:
        raise BenchError(f"{path}: the pickle asks for {exc}; it is not a gensim KeyedVectors file") from exc
    except pickle.UnpicklingError as exc:
        raise BenchError(f"{path}: a pickle naming {exc}, which a gensim 4 KeyedVectors file does not hold; "
                         f"it is not loaded (unpickling can run code); {convert}") from exc
    except (EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as exc:
        raise BenchError(f"{path}: not a readable gensim KeyedVectors file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(kv, KeyedVectors):
        raise BenchError(f"{path}: the pickle holds a {type(kv).__name__}, expected a gensim KeyedVectors; {convert}")
    if getattr(kv, "__scipys", []) or getattr(kv, "__recursive_saveloads", []):
        raise BenchError(f"{path}: a KeyedVectors file with sparse or nested parts, which are pickles of their "
                         f"own; {convert}")
    for attribute in getattr(kv, "__numpys", []):  # large arrays gensim saved beside the file
        side = Path(f"{path}.{attribute}.npy")
        if not side.is_file():
            raise BenchError(f"{path}: its array '{attribute}' is saved in {side}, which does not exist")
        setattr(kv, attribute, _load_side_array(side))
    for attribute in getattr(kv, "__ignoreds", []):
        setattr(kv, attribute, None)
    vectors = getattr(kv, "vectors", None)
    keys = getattr(kv, "index_to_key", None)
    if not isinstance(vectors, np.ndarray) or vectors.ndim != 2 or not isinstance(keys, list) \
            or len(keys) != vectors.shape[0] or not all(isinstance(k, str) for k in keys):
        raise BenchError(f"{path}: expected a KeyedVectors with one row of 'vectors' per word of 'index_to_key'")
    if limit is not None and limit < len(keys):
        kept = KeyedVectors(vectors.shape[1])
        kept.add_vectors(keys[:limit], np.ascontiguousarray(vectors[:limit]))
        return kept
    # A clean object: the unpickled one carries gensim's save-time bookkeeping attributes.
    clean = KeyedVectors(vectors.shape[1])
    clean.add_vectors(keys, np.ascontiguousarray(vectors))
    return clean


# --- the `vectors` kind (bench.models.registry.KINDS) --------------------------------------


def build(ctx: BuildContext) -> TrainedVectors:
    """The kind's build: the file's vectors (the corpus only labels the cell)."""
    return TrainedVectors(read_vectors(ctx.config.path, ctx.config.format, ctx.config.limit), train_tokens=None)


def check(config: VectorsConfig, where: str) -> None:
    """The file read through once before a run writes anything; a bad one is one line naming `where`."""
    try:
        check_file(config.path, config.format, config.limit)
    except BenchError as exc:
        raise BenchError(f"{where}: {exc}") from exc


def fingerprint(config: VectorsConfig) -> dict:
    """The vectors file is this model's data: its sha256 identifies the row."""
    return {"vectors": {"path": config.path, "sha256": file_sha256(config.path),
                        "format": config.format or detect_format(config.path), "limit": config.limit}}

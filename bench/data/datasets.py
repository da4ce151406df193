"""Corpus registry: every corpus is loaded through `datasets.load_dataset`.

Three sources, one interface (`load_corpus(name, data_dir) -> RawCorpus`):

- embedded: gensim's Lee corpus, shipped inside the gensim wheel, so the default
  matrix works on any machine with the dependencies installed;
- local: folders under a data root (`--data-dir` or `LM_LINEAGE_DATA`), each loadable
  with `load_dataset(folder)`; `offline-mix` concatenates several train splits;
- hub: aliases for Hugging Face hub ids, for users with network. Without network they
  fail with one line that says how to use a local copy instead;
- train-text: the text of a local corpus's train split alone, as language-model sentences
  (`senseval2-train-text`: a probe corpus's train contexts, no labels), with validation and
  test carved out of that train split (`carve_train_split`); the corpus's other split files
  are never opened, so a model trained on it has not read a word of the probe's test split.

A corpus name that is a path to a folder is loaded as a local folder too, so a user
with a downloaded copy of a hub corpus can point at it directly. `NAME@N` is corpus NAME cut
to the first N tokens of its train split (`corpus_prefix`; the cut is made after
tokenization, bench.data.prepared), so one matrix can list several sizes of one corpus.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError

DATA_ENV = "LM_LINEAGE_DATA"
CACHE_ENV = "LM_LINEAGE_CACHE"
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class CorpusSpec:
    """How to load one named corpus. `kind` is embedded | local | composite | hub | train-text."""

    name: str
    kind: str
    description: str
    folder: str | None = None  # local: relative to the data root
    text_field: str = "text"  # the column holding a line of text (or a token list)
    parts: tuple[str, ...] = ()  # composite: the local corpora whose train splits are joined
    held_out: str | None = None  # composite: the part whose validation and test splits it keeps
    hub_id: str | None = None
    hub_config: str | None = None


CORPORA: dict[str, CorpusSpec] = {
    spec.name: spec
    for spec in [
        CorpusSpec(
            "lee",
            "embedded",
            "gensim's Lee corpus: lee_background.cor (300 news documents) as train, "
            "lee.cor (50 documents) split in halves as validation/test",
        ),
        CorpusSpec("brown", "local", "Brown corpus, Bengio et al. 2003 split, one sentence a line",
                   folder="corpora/brown"),
        CorpusSpec("brown-pos", "local", "Brown corpus with part-of-speech tags (tokens/tags jsonl)",
                   folder="corpora/brown-pos", text_field="tokens"),
        CorpusSpec("reuters", "local", "Reuters-21578 ModApte, raw newswire, one document a line",
                   folder="corpora/reuters"),
        CorpusSpec("ptb-sample", "local", "NLTK 10% Penn Treebank sample, Mikolov preprocessing",
                   folder="corpora/ptb-sample"),
        CorpusSpec("gutenberg", "local", "14 Project Gutenberg books, one paragraph a line (train only)",
                   folder="corpora/gutenberg"),
        CorpusSpec("movie-reviews", "local", "Pang & Lee polarity 2.0, one sentence a line (train only)",
                   folder="corpora/movie-reviews"),
        CorpusSpec("senseval2", "local", "Senseval-2 line/hard/serve/interest contexts with their senses "
                   "({word, tokens, head, sense} jsonl, train and test): the word-sense probe's corpus",
                   folder="corpora/senseval2", text_field="tokens"),
        CorpusSpec("senseval2-train-text", "train-text", "the text of senseval2's train split alone as LM sentences "
                   "(no senses; its test split never opened): every 20th context held out as validation and every "
                   "20th as test, the rest train; for fine-tuning a biLM on the word-sense probe's domain",
                   folder="corpora/senseval2", text_field="tokens"),
        CorpusSpec(
            "offline-mix",
            "composite",
            "train splits of brown + reuters + gutenberg + movie-reviews: the word-vector corpus",
            parts=("brown", "reuters", "gutenberg", "movie-reviews"),
        ),
        CorpusSpec(
            "brown-reuters",
            "composite",
            "train splits of brown + reuters (1.7M words), with Brown's validation and test: more text for a "
            "language model scored as on brown",
            parts=("brown", "reuters"),
            held_out="brown",
        ),
        CorpusSpec("wikitext-2", "hub", "WikiText-2 (raw)", hub_id="Salesforce/wikitext",
                   hub_config="wikitext-2-raw-v1"),
        CorpusSpec("wikitext-103", "hub", "WikiText-103 (raw)", hub_id="Salesforce/wikitext",
                   hub_config="wikitext-103-raw-v1"),
        CorpusSpec("ptb", "hub", "Penn Treebank, Mikolov's split", hub_id="ptb-text-only/ptb_text_only",
                   text_field="sentence"),
        CorpusSpec("text8", "hub", "text8: first 10^8 bytes of cleaned English Wikipedia",
                   hub_id="afmck/text8"),
    ]
}


@dataclass
class RawCorpus:
    """Lines of text per split, plus where they came from.

    `fingerprint` identifies the exact data: name, source, line and byte-level hashes
    (sha256 of the files read) or the hub revision, and the line count per split.
    """

    name: str
    splits: dict[str, list[str]]
    fingerprint: dict = field(default_factory=dict)


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """The data root: the explicit argument, else $LM_LINEAGE_DATA, else None."""
    if data_dir is not None and not str(data_dir):  # `--data-dir "$UNSET"`: not the same as no --data-dir
        raise BenchError("--data-dir '': expected the data root folder (or no --data-dir)")
    value = data_dir if data_dir is not None else os.environ.get(DATA_ENV)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise BenchError(f"data root {path} (from --data-dir or ${DATA_ENV}) is not a folder")
    return path


def cache_dir() -> Path:
    """Where the suite caches: tokenized corpora and the `datasets` Arrow files of each corpus."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "lm-lineage")).expanduser()


def writable_cache_dir(*parts: str) -> Path:
    """cache_dir()/PARTS, made if missing; one line naming it and ${CACHE_ENV} when this
    process cannot write there (else a traceback of `datasets`' file lock, or of numpy)."""
    folder = cache_dir().joinpath(*parts)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=".lm-lineage-write-check-", dir=folder))
    except OSError as exc:
        raise BenchError(f"cache folder {folder} cannot be written ({exc.strerror}); set ${CACHE_ENV} to a "
                         f"writable folder") from exc
    return folder


def datasets_cache_for(sha256: str) -> str:
    """A `datasets` cache folder per content hash. `datasets` keys its cache of local files
    by path and modification time, so a file edited in place (same size and mtime) would
    load its old Arrow copy while its new sha256 is recorded; keyed by the hash, the data
    loaded is always the data fingerprinted."""
    return str(writable_cache_dir("datasets", sha256[:24]))


def _sha256_files(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _lines(dataset, text_field: str, source: str) -> list[str]:
    if text_field not in dataset.column_names:
        raise BenchError(f"{source}: expected a column '{text_field}', found {dataset.column_names}")
    values = dataset[text_field]
    # A token-list column (brown-pos) becomes one whitespace-joined line.
    return [" ".join(v) if isinstance(v, list) else v for v in values]


def load_folder_dataset(folder: Path, label: str):
    """`load_dataset(folder)`, the split files it read and their sha256, or one line naming what is wrong."""
    datasets = _quiet_datasets()
    files = sorted(p for p in folder.iterdir() if p.suffix in (".txt", ".jsonl", ".json"))
    if not files:
        raise BenchError(f"corpus '{label}': folder {folder} holds no .txt/.jsonl split files")
    for path in files:  # load_dataset's error for these names no file
        _check_text_file(path, label)
    sha256 = _sha256_files(files)
    cache = datasets_cache_for(sha256)
    try:
        loaded = datasets.load_dataset(str(folder), cache_dir=cache)
    except Exception as exc:  # datasets raises many types; the user needs one line
        raise BenchError(f"corpus '{label}': load_dataset({folder}) failed: {_first_line(exc)}") from exc
    return loaded, files, sha256


def _check_text_file(path: Path, label: str) -> None:
    """A split file must be UTF-8 and hold some text; else one line naming the file, the
    split and (for bad bytes) the line."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines, has_text = 0, 1, False
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            try:
                has_text = bool(decoder.decode(block).strip()) or has_text
            except UnicodeDecodeError as exc:
                line = lines + block.count(b"\n", 0, exc.start)
                raise BenchError(f"corpus '{label}': {path} is not UTF-8 (line {line}, byte {offset + exc.start}: "
                                 f"{exc.reason}); expected UTF-8 text") from exc
            offset, lines = offset + len(block), lines + block.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise BenchError(f"corpus '{label}': {path} is not UTF-8 (it ends inside a character); expected UTF-8 "
                         f"text") from exc
    if not has_text:
        raise BenchError(f"corpus '{label}': split '{path.stem}' is empty ({path} holds no text)")


def _data_root_for(name: str, data_dir: str | Path | None) -> Path:
    root = resolve_data_dir(data_dir)
    if root is None:
        raise BenchError(f"corpus '{name}' lives under a data root: pass --data-dir or set "
                         f"${DATA_ENV} (e.g. ../shared/data)")
    return root


def local_folder(spec: CorpusSpec, data_dir: str | Path | None) -> Path:
    """The folder of a local registry corpus under the data root, or one line saying why not."""
    if spec.folder is None:
        raise BenchError(f"corpus '{spec.name}': a local corpus needs a folder under the data root, got none")
    root = _data_root_for(spec.name, data_dir)
    folder = root / spec.folder
    if not folder.is_dir():
        raise BenchError(f"corpus '{spec.name}': expected folder {folder} under the data root {root}")
    return folder


def corpus_folder(name: str, data_dir: str | Path | None, kind: str, field: str, holding: str) -> Path:
    """The folder of a corpus that is read as files rather than as lines of text (a probe
    task's): a local registry corpus under the data root, else a folder path. For the errors:
    `kind` names the corpus ("tagged", "word-sense"), `field` the field it is read for and
    `holding` what its files hold."""
    spec = CORPORA.get(name)
    if spec is None:
        folder = Path(name).expanduser()
        if not folder.is_dir():
            local = [spec.name for spec in CORPORA.values() if spec.kind == "local"]
            raise BenchError(f"unknown {kind} corpus '{name}': expected one of {', '.join(local)} or a folder of "
                             f"{holding}")
        return folder
    if spec.kind != "local":
        raise BenchError(f"corpus '{name}' has no '{field}' field: it is a {spec.kind} corpus; expected a local "
                         f"corpus or a folder of {holding}")
    return local_folder(spec, data_dir)


def _load_folder(folder: Path, text_field: str, label: str) -> RawCorpus:
    loaded, _, sha256 = load_folder_dataset(folder, label)
    splits = {split: _lines(loaded[split], text_field, f"{folder}/{split}")
              for split in SPLITS if split in loaded}
    return RawCorpus(
        label,
        splits,
        {"name": label, "source": str(folder), "sha256": sha256},
    )


def _load_embedded_lee() -> RawCorpus:
    from gensim.test.utils import datapath

    train_path, eval_path = Path(datapath("lee_background.cor")), Path(datapath("lee.cor"))
    # The Lee files are Latin-1, not UTF-8.
    loaded = _quiet_datasets().load_dataset(
        "text", data_files={"train": str(train_path), "evaluation": str(eval_path)}, encoding="latin-1",
        cache_dir=datasets_cache_for(_sha256_files([train_path, eval_path])),
    )
    evaluation = loaded["evaluation"]["text"]
    half = len(evaluation) // 2
    return RawCorpus(
        "lee",
        {"train": loaded["train"]["text"], "validation": evaluation[:half], "test": evaluation[half:]},
        {"name": "lee", "source": "gensim test data: lee_background.cor, lee.cor",
         "sha256": _sha256_files([train_path, eval_path])},
    )


def _load_hub(spec: CorpusSpec) -> RawCorpus:
    datasets = _quiet_datasets()

    try:
        loaded = datasets.load_dataset(spec.hub_id, spec.hub_config)
    except Exception as exc:
        hub = f"{spec.hub_id}{' ' + spec.hub_config if spec.hub_config else ''}"
        if os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1":
            why = " and this run keeps off the hub: pass --allow-hub to download it, or"
        else:
            why = f", which could not be reached ({_first_line(exc)}):"
        raise BenchError(f"corpus '{spec.name}' is on the Hugging Face hub ({hub}){why} save its splits as "
                         f"train/validation/test.txt in a folder and pass that folder as the corpus") from exc
    splits = {split: _lines(loaded[split], spec.text_field, f"{spec.hub_id}/{split}")
              for split in SPLITS if split in loaded}
    revision = loaded[next(iter(loaded))].info.version
    return RawCorpus(spec.name, splits, {"name": spec.name, "source": f"hub:{spec.hub_id}",
                                         "config": spec.hub_config, "revision": str(revision),
                                         "sha256": None})


def _quiet_datasets():
    """`datasets`, with its per-split progress bars off: noise for local files, and a
    clean stderr keeps a failed run to its one error line."""
    import datasets
    import huggingface_hub

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    huggingface_hub.utils.logging.set_verbosity_error()  # its retry warnings when the hub is unreachable
    return datasets


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def corpus_prefix(name: str) -> tuple[str, int | None]:
    """`NAME@N` -> (NAME, N): the corpus cut to the first N train tokens; any other name -> (name, None)."""
    found = re.fullmatch(r"(.+)@(\d+)", name)
    if found is None:
        return name, None
    if int(found[2]) < 1:
        raise BenchError(f"corpus '{name}': NAME@N cuts the train split to its first N tokens; expected N >= 1")
    return found[1], int(found[2])


def load_corpus(name: str, data_dir: str | Path | None = None) -> RawCorpus:
    """Load corpus `name` (a registry name, a folder path, or either as `NAME@N`) as lines per split.

    `NAME@N` loads NAME whole and records `first_tokens = N` in its fingerprint (so in its
    cells' keys); prepare_corpus makes the cut, counted in the tokenizer's tokens."""
    base, first_tokens = corpus_prefix(name)
    if first_tokens is not None:
        corpus = load_corpus(base, data_dir)
        corpus.name = name
        corpus.fingerprint.update(name=name, first_tokens=first_tokens)
        return corpus
    spec = CORPORA.get(name)
    if spec is None:
        folder = Path(name).expanduser()
        if folder.is_dir():
            corpus = _load_folder(folder, "text", name)
        else:
            raise BenchError(f"unknown corpus '{name}': expected one of {', '.join(CORPORA)} "
                             f"or a folder with train/validation/test.txt")
    elif spec.kind == "embedded":
        corpus = _load_embedded_lee()
    elif spec.kind == "hub":
        corpus = _load_hub(spec)
    elif spec.kind == "local":
        corpus = _load_local(spec, data_dir)
    elif spec.kind == "train-text":
        corpus = _load_train_text(spec, data_dir)
    else:
        corpus = _load_composite(spec, data_dir)
    for split, lines in corpus.splits.items():
        if not any(line.strip() for line in lines):
            raise BenchError(f"corpus '{name}': split '{split}' is empty")
    if "train" not in corpus.splits:
        raise BenchError(f"corpus '{name}': no train split")
    corpus.fingerprint["lines"] = {split: len(lines) for split, lines in corpus.splits.items()}
    return corpus


def _load_local(spec: CorpusSpec, data_dir: str | Path | None) -> RawCorpus:
    return _load_folder(local_folder(spec, data_dir), spec.text_field, spec.name)


def _load_composite(spec: CorpusSpec, data_dir: str | Path | None) -> RawCorpus:
    root = _data_root_for(spec.name, data_dir)
    parts = [_load_local(CORPORA[part], root) for part in spec.parts]
    splits = {"train": [line for part in parts for line in part.splits["train"]]}
    if spec.held_out is not None:  # already fingerprinted: the held-out part is one of the parts
        held_out = parts[spec.parts.index(spec.held_out)]
        splits.update({split: held_out.splits[split] for split in ("validation", "test") if split in held_out.splits})
    digest = hashlib.sha256("".join(part.fingerprint["sha256"] for part in parts).encode()).hexdigest()
    return RawCorpus(spec.name, splits,
                     {"name": spec.name, "source": " + ".join(f"{p.fingerprint['source']}:train" for p in parts),
                      "sha256": digest})


# train-text corpora: of every CARVE_EVERY lines of the source's train split (in file order),
# the one at CARVE_VALIDATION goes to validation and the one at CARVE_TEST to test.
CARVE_EVERY = 20
CARVE_VALIDATION, CARVE_TEST = CARVE_EVERY - 2, CARVE_EVERY - 1
TRAIN_FILES = ("train.jsonl", "train.txt")


def carve_train_split(lines: list[str]) -> dict[str, list[str]]:
    """One split's lines as train, validation and test, by position (`CARVE_EVERY`): a fixed,
    seed-free cut that takes the same share of every stretch of the file, so a file grouped
    by word (senseval2's) gives each group's lines to every split."""
    position = [i % CARVE_EVERY for i in range(len(lines))]
    return {"train": [line for line, p in zip(lines, position) if p not in (CARVE_VALIDATION, CARVE_TEST)],
            "validation": [line for line, p in zip(lines, position) if p == CARVE_VALIDATION],
            "test": [line for line, p in zip(lines, position) if p == CARVE_TEST]}


def _load_train_text(spec: CorpusSpec, data_dir: str | Path | None) -> RawCorpus:
    """The text of a local corpus's train file alone (`carve_train_split`): only that file is
    opened, loaded and hashed."""
    folder = local_folder(spec, data_dir)
    found = [folder / name for name in TRAIN_FILES if (folder / name).is_file()]
    if not found:
        raise BenchError(f"corpus '{spec.name}': expected {' or '.join(TRAIN_FILES)} in {folder}")
    path = found[0]
    _check_text_file(path, spec.name)
    sha256 = _sha256_files([path])
    builder = "json" if path.suffix == ".jsonl" else "text"
    try:
        loaded = _quiet_datasets().load_dataset(builder, data_files={"train": str(path)},
                                                cache_dir=datasets_cache_for(sha256))
    except Exception as exc:  # datasets raises many types; the user needs one line
        raise BenchError(f"corpus '{spec.name}': load_dataset({path}) failed: {_first_line(exc)}") from exc
    lines = _lines(loaded["train"], spec.text_field if builder == "json" else "text", str(path))
    return RawCorpus(spec.name, carve_train_split(lines),
                     {"name": spec.name, "source": f"{path} (validation, test: every {CARVE_EVERY}th line of it)",
                      "sha256": sha256})

"""`lm-lineage data build`: the data root rebuilt from public sources, byte for byte.

Every folder of the data root (`corpora/<name>/`, `wordsim/`) is made by one recipe (the
data root's BUILD.md; each builder below states its own) from two public sources: NLTK's corpus archives, fetched by NLTK's own
downloader from its package index (or taken from a folder of those archives), and the 13
similarity sets of Faruqui & Dyer's eval-word-vectors repository (or a folder of them).

Each built file must match its sha256 in `manifest.json`, committed beside this module: a
benchmark number is only comparable if the text behind it is the same, so a changed upstream
archive is an error naming the file, never silently different data. A folder is written
whole or not at all (built and checked in a private staging folder inside the data root,
then renamed into place), and a folder whose files already verify is kept as it is, so a
re-run fetches and rebuilds only what is missing or damaged.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import random
import re
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from bench.errors import BenchError

NLTK_INDEX = "https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/index.xml"  # NLTK's own default
WORDSIM_URL = "https://raw.githubusercontent.com/mfaruqui/eval-word-vectors/master/data/word-sim"
MANIFEST = Path(__file__).with_name("manifest.json")

WORDSIM_SETS = (
    "EN-MC-30.txt", "EN-MEN-TR-3k.txt", "EN-MTurk-287.txt", "EN-MTurk-771.txt", "EN-RG-65.txt",
    "EN-RW-STANFORD.txt", "EN-SIMLEX-999.txt", "EN-SimVerb-3500.txt", "EN-VERB-143.txt",
    "EN-WS-353-ALL.txt", "EN-WS-353-REL.txt", "EN-WS-353-SIM.txt", "EN-YP-130.txt",
)

Files = dict[str, bytes]  # a built folder: file name -> contents


@dataclass
class Sources:
    """What one build reads: NLTK's corpora unpacked under `nltk_root/corpora/<package>/` (a
    folder on `nltk.data.path` while the build runs, as NLTK's readers require), and the
    similarity sets in `wordsim`."""

    nltk_root: Path
    wordsim: Path | None

    def corpus(self, package: str) -> Path:
        return self.nltk_root / "corpora" / package

    @cached_property
    def brown_splits(self) -> dict[str, list[list[tuple[str, str]]]]:
        """Brown's tagged sentences in Bengio et al.'s splits, read once for brown/ and brown-pos/.

        NLTK's TaggedCorpusReader over the 500 text files (`c[a-r]\\d\\d`, not cats.txt or the
        README), files in sorted order; a sentence goes to train while fewer than 800,000 words
        came before it, to validation while fewer than 1,000,000, else to test."""
        from nltk.corpus.reader import TaggedCorpusReader

        reader = TaggedCorpusReader(str(self.corpus("brown")), r"c[a-r]\d\d")
        splits: dict[str, list[list[tuple[str, str]]]] = {"train": [], "validation": [], "test": []}
        words_before = 0
        for sentence in reader.tagged_sents(sorted(reader.fileids())):
            split = "train" if words_before < 800_000 else "validation" if words_before < 1_000_000 else "test"
            splits[split].append(sentence)
            words_before += len(sentence)
        return splits


def _lines(items: Iterable[str]) -> bytes:
    """One item a line, every line ending in a newline (the last one too), UTF-8."""
    return "".join(f"{item}\n" for item in items).encode("utf-8")


def _fold(text: str) -> str:
    """Runs of whitespace (newlines included) as single spaces, none at the ends."""
    return " ".join(text.split())


def _in_fractions(items: list, train: float, validation: float) -> dict[str, list]:
    """The first int(train * n) items as train, up to int(validation * n) as validation, the rest as test."""
    n = len(items)
    return {"train": items[:int(train * n)], "validation": items[int(train * n):int(validation * n)],
            "test": items[int(validation * n):]}


def _brown(sources: Sources) -> Files:
    return {f"{split}.txt": _lines(" ".join(word for word, _ in sentence) for sentence in sentences)
            for split, sentences in sources.brown_splits.items()}


def _brown_pos(sources: Sources) -> Files:
    return {f"{split}.jsonl": _lines(json.dumps({"tokens": [word for word, _ in sentence],
                                                 "tags": [tag for _, tag in sentence]})
                                     for sentence in sentences)
            for split, sentences in sources.brown_splits.items()}


_PUNCTUATION = re.compile(r"[^\w]+")
_NUMBER = re.compile(r"[\d.,\-/:]*\d[\d.,\-/:]*")


def _ptb_sample(sources: Sources) -> Files:
    """Mikolov's PTB preprocessing on NLTK's 10% WSJ sample: no traces (`-NONE-`) or
    punctuation-only tokens, numbers as `N`, the rest lower-cased; split 80/10/10 in order."""
    from nltk.corpus.reader import BracketParseCorpusReader

    reader = BracketParseCorpusReader(str(sources.corpus("treebank") / "combined"), r"wsj_.*\.mrg")
    sentences = []
    for tagged in reader.tagged_sents(sorted(reader.fileids())):
        tokens = ["N" if _NUMBER.fullmatch(word) else word.lower() for word, tag in tagged
                  if tag != "-NONE-" and not _PUNCTUATION.fullmatch(word)]
        if tokens:
            sentences.append(" ".join(tokens))
    return {f"{split}.txt": _lines(part) for split, part in _in_fractions(sentences, 0.8, 0.9).items()}


def _documents(folder: Path) -> list[str]:
    """Each file of `folder` as one line, files in the numeric order of their names (Reuters' ids)."""
    return [_fold(path.read_text(encoding="latin-1"))
            for path in sorted(folder.iterdir(), key=lambda path: int(path.name))]


def _reuters(sources: Sources) -> Files:
    """ModApte: the first 90% of the training documents train, the rest validation; test as is."""
    root = sources.corpus("reuters")
    training = _documents(root / "training")
    cut = int(0.9 * len(training))
    return {"train.txt": _lines(training[:cut]), "validation.txt": _lines(training[cut:]),
            "test.txt": _lines(_documents(root / "test"))}


def _gutenberg(sources: Sources) -> Files:
    """Every book's paragraphs (text between blank lines), books in sorted order; train only."""
    paragraphs = []
    for book in sorted(sources.corpus("gutenberg").glob("*.txt")):
        folded = (_fold(part) for part in re.split(r"\n\s*\n", book.read_text(encoding="latin-1")))
        paragraphs += [paragraph for paragraph in folded if paragraph]
    return {"train.txt": _lines(paragraphs)}


def _movie_reviews(sources: Sources) -> Files:
    """Every non-blank line of the negative reviews, then of the positive ones; train only."""
    lines = []
    for polarity in ("neg", "pos"):
        for review in sorted((sources.corpus("movie_reviews") / polarity).glob("*.txt")):
            lines += [_fold(line) for line in review.read_text(encoding="latin-1").splitlines() if line.strip()]
    return {"train.txt": _lines(lines)}


SENSEVAL_WORDS = ("hard", "interest", "line", "serve")
_INSTANCE = re.compile(r'<instance id="([^"]*)">(.*?)</instance>', re.S)
_ANSWER = re.compile(r'<answer [^>]*senseid="([^"]*)"')
_CONTEXT = re.compile(r"<context>(.*?)</context>", re.S)
# BUILD.md's element form is `<wf pos="TAG">TOKEN</wf>`, double-quoted: the archive's 5,953
# `<wf pos='"'>"</wf>` (a double quote, tagged with one) are not tokens in the published files.
_WORD_OR_HEAD = re.compile(r'<wf pos="([^"]*)">([^<]*)</wf>|<head>')


def _senseval_rows(text: str, word: str) -> Iterator[dict]:
    """The rows of one `<word>.pos` file; instances without exactly one answer and one head,
    or without tokens, are dropped."""
    for instance in _INSTANCE.finditer(text):
        instance_id, body = instance.groups()
        senses = _ANSWER.findall(body)
        context = _CONTEXT.search(body)
        tokens: list[str] = []
        tags: list[str] = []
        heads: list[int] = []
        for match in _WORD_OR_HEAD.finditer(context.group(1) if context else ""):
            if match.group(0) == "<head>":
                heads.append(len(tokens))  # the token the head wraps comes next
            else:
                tags.append(match.group(1))
                tokens.append(match.group(2))
        if len(senses) == 1 and len(heads) == 1 and tokens:
            yield {"id": instance_id, "word": word, "tokens": tokens, "tags": tags, "head": heads[0],
                   "sense": senses[0]}


def _senseval2(sources: Sources) -> Files:
    """An 80/20 split stratified by (word, sense) with Python's random.Random(0); each split
    sorted by id. The archive's README travels along as SOURCE-README (its terms)."""
    root = sources.corpus("senseval")
    groups: dict[tuple[str, str], list[dict]] = {}
    for word in SENSEVAL_WORDS:
        for row in _senseval_rows((root / f"{word}.pos").read_text(encoding="latin-1"), word):
            groups.setdefault((row["word"], row["sense"]), []).append(row)
    rng = random.Random(0)
    train, test = [], []
    for key in sorted(groups):
        rows = groups[key]
        rng.shuffle(rows)
        cut = round(0.8 * len(rows))
        train += rows[:cut]
        test += rows[cut:]
    return {"train.jsonl": _lines(json.dumps(row) for row in sorted(train, key=lambda row: row["id"])),
            "test.jsonl": _lines(json.dumps(row) for row in sorted(test, key=lambda row: row["id"])),
            "SOURCE-README": (root / "README").read_bytes()}


def _wordsim(sources: Sources) -> Files:
    assert sources.wordsim is not None, "build() fetches the similarity sets whenever this recipe is due"
    return {name: (sources.wordsim / name).read_bytes() for name in WORDSIM_SETS}


@dataclass(frozen=True)
class Recipe:
    """One folder of the data root and how it is made."""

    folder: str  # relative to the data root
    packages: tuple[str, ...]  # the NLTK packages it reads; none: the similarity sets
    build: Callable[[Sources], Files]

    @property
    def name(self) -> str:
        return Path(self.folder).name


RECIPES: tuple[Recipe, ...] = (
    Recipe("corpora/brown", ("brown",), _brown),
    Recipe("corpora/brown-pos", ("brown",), _brown_pos),
    Recipe("corpora/ptb-sample", ("treebank",), _ptb_sample),
    Recipe("corpora/reuters", ("reuters",), _reuters),
    Recipe("corpora/gutenberg", ("gutenberg",), _gutenberg),
    Recipe("corpora/movie-reviews", ("movie_reviews",), _movie_reviews),
    Recipe("corpora/senseval2", ("senseval",), _senseval2),
    Recipe("wordsim", (), _wordsim),
)


def load_manifest() -> dict[str, dict[str, str]]:
    """folder -> {file name: sha256}, for every folder of RECIPES."""
    return json.loads(MANIFEST.read_text(encoding="utf-8"))["folders"]


def select_recipes(names: Iterable[str] | None) -> list[Recipe]:
    """The recipes of these folder names (`brown`, `wordsim`, ...), in RECIPES' order; all without names."""
    if names is None:
        return list(RECIPES)
    known = {recipe.name: recipe for recipe in RECIPES}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise BenchError(f"--only {','.join(unknown)}: expected folder names among {', '.join(known)}")
    return [recipe for recipe in RECIPES if recipe.name in set(names)]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verifies(folder: Path, hashes: dict[str, str]) -> bool:
    """True when every file the manifest lists for `folder` is there with its sha256."""
    return all((folder / name).is_file() and _sha256((folder / name).read_bytes()) == digest
               for name, digest in hashes.items())


def build_data_root(out: Path, only: Iterable[str] | None = None, *, nltk_archives: Path | None = None,
                    wordsim_dir: Path | None = None, nltk_index: str = NLTK_INDEX, wordsim_url: str = WORDSIM_URL,
                    log: Callable[[str], None] = print) -> list[str]:
    """Build the folders of the data root `out` that do not verify yet; return those built.

    Sources are gathered first (every local one checked before anything is read), so a
    missing one stops the build before any folder is touched. A built file whose sha256 is
    not the manifest's is a BenchError naming it, and its folder is not installed."""
    manifest = load_manifest()
    todo = []
    for recipe in select_recipes(only):
        if verifies(out / recipe.folder, manifest[recipe.folder]):
            log(f"{out / recipe.folder}: verified, kept")
        else:
            todo.append(recipe)
    if not todo:
        return []
    packages = sorted({package for recipe in todo for package in recipe.packages})
    needs_wordsim = any(not recipe.packages for recipe in todo)
    if nltk_archives is not None:
        _require_files([nltk_archives / f"{package}.zip" for package in packages],
                       "NLTK's archives, as its downloader serves them")
    if wordsim_dir is not None and needs_wordsim:
        _require_files([wordsim_dir / name for name in WORDSIM_SETS],
                       "the similarity sets of eval-word-vectors' data/word-sim")
    nltk = _import_nltk() if packages else None
    out.mkdir(parents=True, exist_ok=True)
    # Private (0700), as NLTK's downloader requires of its folder, and inside `out`, so a
    # folder built here is renamed into place on the same file system.
    with tempfile.TemporaryDirectory(prefix=".data-build-", dir=out) as folder, _nltk_path(nltk, Path(folder) / "nltk"):
        work = Path(folder)
        wordsim = wordsim_dir
        if wordsim is None and needs_wordsim:
            wordsim = _download_wordsim(wordsim_url, work / "wordsim")
        sources = Sources(work / "nltk", wordsim)
        for package in packages:
            if nltk_archives is not None:
                _unpack(nltk_archives / f"{package}.zip", sources.nltk_root / "corpora")
            else:
                _download_package(package, nltk_index, sources.nltk_root)
        for recipe in todo:
            files = recipe.build(sources)
            _check(out / recipe.folder, files, manifest[recipe.folder])
            _install(out / recipe.folder, files, work)
            log(f"{out / recipe.folder}: built, {len(files)} file(s) verified")
    return [recipe.folder for recipe in todo]


def _require_files(paths: list[Path], what: str) -> None:
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise BenchError(f"{', '.join(missing)}: missing; expected {what} there")


def _import_nltk():
    try:
        import nltk
    except ImportError as exc:
        raise BenchError("nltk is not installed; expected `pip install 'lm-lineage[data]'` "
                         "(its downloader and corpus readers build the corpora)") from exc
    return nltk


@contextlib.contextmanager
def _nltk_path(nltk, root: Path) -> Iterator[None]:
    """`root` (made here) on nltk.data.path while the build reads, since NLTK opens files only
    under it; the list restored after. Without NLTK (no package needed), nothing."""
    if nltk is None:
        yield
        return
    saved = list(nltk.data.path)
    root.mkdir(mode=0o700)
    nltk.data.path.append(str(root))
    try:
        yield
    finally:
        nltk.data.path[:] = saved


def _unpack(archive: Path, corpora: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as opened:
            opened.extractall(corpora)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BenchError(f"{archive}: not a readable zip archive ({exc}); expected NLTK's archive") from exc


def _download_package(package: str, index: str, root: Path) -> None:
    """NLTK's downloader (checksums, size limits and safe unpacking are its own) into `root/corpora/`."""
    from nltk.downloader import Downloader

    errors = io.StringIO()  # the error is raised as one line below, not also printed
    try:
        Downloader(server_index_url=index, download_dir=str(root)).download(
            package, quiet=True, raise_on_error=True, print_error_to=errors, extract=True)
    except (OSError, ValueError) as exc:
        raise BenchError(f"NLTK package {package!r} from {index}: {_fold(str(exc))}") from exc


def _download_wordsim(base_url: str, folder: Path) -> Path:
    folder.mkdir()
    for name in WORDSIM_SETS:
        url = f"{base_url.rstrip('/')}/{name}"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                (folder / name).write_bytes(response.read())
        except (OSError, ValueError) as exc:  # URLError and HTTPError are OSErrors
            raise BenchError(f"{url}: could not be fetched ({_fold(str(exc))}); expected the similarity set "
                             f"{name} (--base-url, or --wordsim-dir for local copies)") from exc
    return folder


def _check(folder: Path, files: Files, hashes: dict[str, str]) -> None:
    if sorted(files) != sorted(hashes):
        raise BenchError(f"{folder}: built {sorted(files)}, expected the manifest's files {sorted(hashes)}")
    for name, data in files.items():
        if _sha256(data) != hashes[name]:
            raise BenchError(f"{folder / name}: sha256 {_sha256(data)} is not the manifest's {hashes[name]} "
                             f"(bench/data/{MANIFEST.name}); it was built from another source than the published one")


def _install(target: Path, files: Files, work: Path) -> None:
    """Write the folder under `work`, then rename it into place; a damaged folder it replaces
    is moved into `work` first, and goes with it."""
    staged = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=work))
    for name, data in files.items():
        (staged / name).write_bytes(data)
    staged.chmod(0o755)  # mkdtemp's 0700 was for building; the data root is read by everyone who runs the suite
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.rename(work / f"replaced-{staged.name}")
    staged.rename(target)

"""`lm-lineage data build` (bench.data.build): the data root rebuilt byte for byte.

The four real NLTK archives of the data root's sources/nltk/ rebuild five corpora whose
sha256 must be the data root's MANIFEST.json's; NLTK's downloader is exercised against an
HTTP server on 127.0.0.1 only; the reuters and gutenberg recipes (whose archives are not in
the data root) run on small made-up archives with hand-written expectations.
"""

from __future__ import annotations

import hashlib
import http.server
import ipaddress
import json
import re
import threading
import zipfile
from functools import partial
from pathlib import Path

import pytest

from bench.cli import _parser, main
from bench.data.build import RECIPES, WORDSIM_SETS, Sources, build_data_root, load_manifest
from bench.errors import BenchError

ROOT = Path(__file__).resolve().parents[1]
REAL_ARCHIVES = ("brown", "treebank", "movie_reviews", "senseval")
FROM_REAL_ARCHIVES = ["brown", "brown-pos", "ptb-sample", "movie-reviews", "senseval2"]
LOOPBACK = "127.0.0.1"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _published_hashes(data_root: Path) -> dict[str, dict[str, str]]:
    """folder -> {file: sha256} from the data root's own MANIFEST.json (not the committed copy)."""
    published = json.loads((data_root / "MANIFEST.json").read_text())
    folders = {f"corpora/{name}": {entry["file"]: entry["sha256"] for entry in splits.values()}
               for name, splits in published.items() if name != "wordsim"}
    folders["wordsim"] = {name: entry["sha256"] for name, entry in published["wordsim"].items()}
    return folders


@pytest.mark.data
def test_committed_manifest_is_the_data_roots(data_root):
    """Every hash the build checks is the published one; SOURCE-README is the one file the
    data root's MANIFEST.json does not list."""
    published = _published_hashes(data_root)
    committed = load_manifest()
    assert {folder: {name: digest for name, digest in files.items() if name != "SOURCE-README"}
            for folder, files in committed.items()} == published
    assert sorted(committed) == sorted(recipe.folder for recipe in RECIPES)
    assert tuple(sorted(committed["wordsim"])) == tuple(sorted(WORDSIM_SETS))


@pytest.mark.data
def test_real_archives_rebuild_five_corpora_byte_for_byte_then_rerun_keeps_them(data_root, tmp_path):
    out = tmp_path / "root"
    logged = []
    built = build_data_root(out, FROM_REAL_ARCHIVES, nltk_archives=data_root / "sources" / "nltk", log=logged.append)
    assert built == [f"corpora/{name}" for name in FROM_REAL_ARCHIVES]
    published = _published_hashes(data_root)
    for folder in built:
        for name, digest in published[folder].items():
            assert _sha256(out / folder / name) == digest, f"{folder}/{name}"
    assert (out / "corpora/senseval2/SOURCE-README").read_bytes() == \
        (data_root / "corpora/senseval2/SOURCE-README").read_bytes()
    assert sorted(path.name for path in out.iterdir()) == ["corpora"]  # no staging folder left

    # A damaged file is rebuilt; everything that verifies is kept, and no archive is read for it.
    (out / "corpora/movie-reviews/train.txt").write_text("damaged\n")
    logged.clear()
    rebuilt = build_data_root(out, FROM_REAL_ARCHIVES, nltk_archives=data_root / "sources" / "nltk",
                              log=logged.append)
    assert rebuilt == ["corpora/movie-reviews"]
    assert _sha256(out / "corpora/movie-reviews/train.txt") == published["corpora/movie-reviews"]["train.txt"]
    assert sum("verified, kept" in line for line in logged) == 4


class _Server(http.server.ThreadingHTTPServer):
    requested: list[str]


@pytest.fixture
def local_server(tmp_path):
    """An HTTP server on 127.0.0.1 (nowhere else) serving tmp_path/site; yields (base URL, paths asked for)."""
    site = tmp_path / "site"
    site.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 (the base class's name); record, do not print
            self.server.requested.append(self.path)

    server = _Server((LOOPBACK, 0), partial(Handler, directory=str(site)))
    server.requested = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}", site, server.requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def nltk_allows_loopback(monkeypatch):
    """NLTK's downloader refuses every address that is not globally routable (its SSRF
    guard); this test's server is on 127.0.0.1, so that one address, and no other, is allowed."""
    pathsec = pytest.importorskip("nltk.pathsec")
    forbidden = pathsec._ip_is_forbidden
    loopback = ipaddress.ip_address(LOOPBACK)
    monkeypatch.setattr(pathsec, "_ip_is_forbidden", lambda ip: ip != loopback and forbidden(ip))


def _nltk_index(base_url: str, archives: list[Path]) -> str:
    """An index in the form of NLTK's own index.xml, listing `archives` as corpora served at base_url."""
    packages = []
    for archive in archives:
        with zipfile.ZipFile(archive) as opened:
            unzipped = sum(member.file_size for member in opened.infolist())
        data = archive.read_bytes()
        packages.append(f'<package id="{archive.stem}" name="{archive.stem}" subdir="corpora" unzip="1" '
                        f'url="{base_url}/{archive.name}" size="{len(data)}" unzipped_size="{unzipped}" '
                        f'checksum="{hashlib.md5(data).hexdigest()}" '
                        f'sha256_checksum="{hashlib.sha256(data).hexdigest()}" />')
    return f'<?xml version="1.0"?>\n<nltk_data><packages>{"".join(packages)}</packages><collections /></nltk_data>\n'


@pytest.mark.data
def test_nltk_downloader_and_similarity_sets_from_a_local_server(data_root, tmp_path, local_server,
                                                                 nltk_allows_loopback):
    base_url, site, requested = local_server
    archives = []
    for package in ("movie_reviews", "senseval"):
        archives.append(site / f"{package}.zip")
        archives[-1].write_bytes((data_root / "sources/nltk" / f"{package}.zip").read_bytes())
    (site / "index.xml").write_text(_nltk_index(base_url, archives))
    (site / "word-sim").mkdir()
    for name in WORDSIM_SETS:
        (site / "word-sim" / name).write_bytes((data_root / "wordsim" / name).read_bytes())

    out = tmp_path / "root"
    code = main(["data", "build", "--out", str(out), "--only", "movie-reviews,senseval2,wordsim",
                 "--nltk-index", f"{base_url}/index.xml", "--base-url", f"{base_url}/word-sim"])
    assert code == 0
    published = _published_hashes(data_root)
    for folder in ("corpora/movie-reviews", "corpora/senseval2", "wordsim"):
        assert {name: _sha256(out / folder / name) for name in published[folder]} == published[folder]
    assert {"/movie_reviews.zip", "/senseval.zip", "/word-sim/EN-MC-30.txt"} <= set(requested)
    assert any(path.startswith("/index.xml") for path in requested)


@pytest.mark.data
def test_a_changed_source_file_is_one_line_and_installs_nothing(data_root, tmp_path, local_server, capsys):
    base_url, site, _ = local_server
    (site / "word-sim").mkdir()
    for name in WORDSIM_SETS:
        (site / "word-sim" / name).write_bytes((data_root / "wordsim" / name).read_bytes())
    (site / "word-sim" / "EN-MC-30.txt").write_text("car\tautomobile\t3.92\n")

    out = tmp_path / "root"
    assert main(["data", "build", "--out", str(out), "--only", "wordsim", "--base-url", f"{base_url}/word-sim"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert f"{out / 'wordsim' / 'EN-MC-30.txt'}: sha256" in error
    assert list(out.iterdir()) == []  # no wordsim/, no staging folder


def test_missing_archives_are_named_in_one_line_before_anything_is_written(tmp_path, capsys):
    pytest.importorskip("nltk")
    out = tmp_path / "root"
    code = main(["data", "build", "--out", str(out), "--only", "reuters,gutenberg",
                 "--nltk-archives", str(tmp_path / "archives")])
    assert code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1
    assert "archives/gutenberg.zip" in error and "archives/reuters.zip" in error and "missing" in error
    assert not out.exists()


def test_unknown_folder_name_and_two_sources_for_one_are_refused(tmp_path, capsys):
    assert main(["data", "build", "--out", str(tmp_path / "root"), "--only", "brown,wikitext"]) == 2
    assert "--only wikitext: expected folder names among brown, brown-pos" in capsys.readouterr().err
    assert main(["data", "build", "--out", str(tmp_path / "root"), "--wordsim-dir", str(tmp_path),
                 "--base-url", "http://127.0.0.1:1/word-sim"]) == 2
    assert "--wordsim-dir and --base-url: expected one source" in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def _recipe(name: str):
    return next(recipe for recipe in RECIPES if recipe.name == name)


def _unpacked(archive: Path, root: Path) -> Sources:
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(root / "corpora")
    return Sources(root, None)


def test_reuters_recipe_numeric_order_latin1_folded_and_ninety_percent_train(tmp_path):
    training = {str(i): f"doc {i}\n  line two\t end\n".encode("latin-1") for i in (1, 2, 3, 4, 5, 6, 7, 8, 9)}
    training["10"] = "Caf\xe9 \n\n news".encode("latin-1")  # read as Latin-1; 10 sorts after 9, not after 1
    archive = _zip(tmp_path / "reuters.zip", {
        **{f"reuters/training/{name}": data for name, data in training.items()},
        "reuters/test/15": b"test  fifteen\n", "reuters/test/14826": b"last\n", "reuters/test/200": b"two hundred",
        "reuters/cats.txt": b"test/15 acq\n",
    })
    files = _recipe("reuters").build(_unpacked(archive, tmp_path / "nltk"))
    assert files["train.txt"] == "".join(f"doc {i} line two end\n" for i in range(1, 10)).encode()
    assert files["validation.txt"] == "Café news\n".encode("utf-8")
    assert files["test.txt"] == b"test fifteen\ntwo hundred\nlast\n"


def test_gutenberg_recipe_paragraphs_of_every_book_in_sorted_order(tmp_path):
    archive = _zip(tmp_path / "gutenberg.zip", {
        "gutenberg/melville-moby_dick.txt": b"Call me\nIshmael.\n\n\n  Some years ago \n \t\nna\xefve.\n",
        "gutenberg/austen-emma.txt": b"\n\nEmma Woodhouse,\nhandsome.\n\nThe end.",
        "gutenberg/README": b"not a book\n\nat all\n",
    })
    files = _recipe("gutenberg").build(_unpacked(archive, tmp_path / "nltk"))
    assert files == {"train.txt": "Emma Woodhouse, handsome.\nThe end.\nCall me Ishmael.\nSome years ago\nnaïve.\n"
                                  .encode("utf-8")}


def test_a_recipe_whose_output_differs_from_the_manifest_is_refused_naming_the_file(tmp_path):
    pytest.importorskip("nltk")
    archives = tmp_path / "archives"
    archives.mkdir()
    _zip(archives / "gutenberg.zip", {"gutenberg/austen-emma.txt": b"Not the real book.\n"})
    out = tmp_path / "root"
    with pytest.raises(BenchError, match=re.escape(f"{out / 'corpora/gutenberg/train.txt'}: sha256 ")):
        build_data_root(out, ["gutenberg"], nltk_archives=archives, log=lambda line: None)
    assert list(out.iterdir()) == []


# --- the command line's conventions (issue 28, Deliver 7) ------------------------------------

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands() -> list[str]:
    subparsers = next(action for action in _parser()._actions if action.dest == "command")
    return list(subparsers.choices)


def test_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert re.fullmatch(r"lm-lineage \S+.*\n", capsys.readouterr().out)


def test_help_and_readme_synopsis_name_every_command_and_exit_code():
    description = _parser().description  # the first paragraph of bench/cli.py's docstring
    synopsis = re.search(r"^## The command line\n(.*?)(?=^## )", README, flags=re.M | re.S).group(1)
    for command in _commands():
        assert re.search(rf"\b{command}\b", description), command
        assert f"lm-lineage {command}" in synopsis, command
    for flag in ("--no-progress", "--in-process", "--force"):
        assert flag in synopsis
    assert re.search(r"eval-vectors FILE\.\.\. .*--force", synopsis)
    for code in ("0", "1", "2", "130", "143"):
        assert re.search(rf"\b{code}\b", synopsis.split("Exit codes")[1]), code


def test_list_names_senseval2_and_only_readme_sections_that_exist(capsys):
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert re.search(r"^  senseval2 ", listed, flags=re.M)
    sections = set(re.findall(r"^#+ (.+)$", README, flags=re.M))
    cited = re.findall(r"README(?:'s|:) ([A-Z][\w ]*?)(?=[):;,.]|$)", listed, flags=re.M)
    assert cited and set(cited) <= sections

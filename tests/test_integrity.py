"""Nothing lost, nothing silently wrong (issue 29): each way a hostile run lost a result or got
a wrong one without being told, reproduced.

- cell names: two corpora whose paths differ only by `/` and `_` got one cell file, so the
  second cell replaced the first;
- checkpoints: a weights file changed after saving loaded without a word; a checkpoint of
  another vocabulary failed as a cell after the run had started, with a message giving two
  equal word counts; the weights were written 0600;
- token cache: an entry that loads but is wrong (a foreign array, a header claiming 10^12
  elements, float offsets, ids out of range) was a traceback, kept for every later run;
  a cache folder that cannot be written was a traceback from `datasets`;
- vectors files: a gensim pickle was refused only inside its cell, after other cells ran,
  and a 69-byte pickle made the worker allocate gigabytes first.

Refused input is one line, exit code 2, and nothing written (`_refused`).
"""

import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors
from numpy._core.multiarray import _reconstruct

from bench.cli import main
from bench.data.datasets import cache_dir, load_corpus
from bench.data.prepared import prepare_corpus
from bench.data.vocab import TokenizerConfig, VocabConfig, _cache_key
from bench.errors import BenchError
from bench.models import vectors
from bench.run.keys import cell_file_name, name_part
from tests.conftest import write_corpus

SENTENCES = "the cat sat on the mat\nthe dog sat on the log\n" * 20


def _files(folder: Path) -> dict[str, tuple[int, int] | None]:
    """Every file under `folder` with its modification time and size, and every folder (whose
    time changes with the writability check of `--out`, which leaves nothing behind)."""
    return {str(path.relative_to(folder)): None if path.is_dir() else (path.stat().st_mtime_ns, path.stat().st_size)
            for path in folder.rglob("*")}


def _refused(capsys, watched: Path, *argv: str) -> str:
    """`lm-lineage ARGV`: exit code 2, one line on stderr, and no file made, changed or lost
    under `watched`. Returns the line without its "lm-lineage: error: " prefix."""
    before = _files(watched)
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("lm-lineage: error: "), err
    assert _files(watched) == before, "a refused command must not write or remove anything"
    return err.removeprefix("lm-lineage: error: ")


def _run(out: Path, *argv: str) -> list[str]:
    return ["run", "--out", str(out), "--no-progress", "--in-process", *argv]


# --- collision-free cell names -----------------------------------------------------------------

def test_cell_names_are_injective_and_keep_plain_names():
    for plain in ("lee", "glove.6B.50d", "mine_binary"):  # registry names and vectors file stems keep their names
        assert name_part(plain) == plain
    assert cell_file_name("gensim-cbow", "lee", 0) == "gensim-cbow__lee__seed0.json"  # committed names unchanged
    parts = {name_part(value) for value in ("/x/a_b", "/x/a/b", "x_a_b", "/x/a b", "/x/a__b", "a_b+1234567890")}
    assert len(parts) == 6
    for part in parts:
        assert "__" not in part and not part.startswith(".") and "/" not in part
    # A model named like a model and corpus joined still gets its own file.
    assert cell_file_name("a__b", "c", 0) != cell_file_name("a", "b__c", 0)


@pytest.fixture
def corpora_differing_by_slash(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """/x/a_b and /x/a/b, with different text; gensim's similarity sets (no data root)."""
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    return (write_corpus(tmp_path / "x" / "a_b", SENTENCES),
            write_corpus(tmp_path / "x" / "a" / "b", SENTENCES + "a bird sat on the cat\n" * 5))


CBOW = ("--models", "gensim-cbow", "--set", "vocab.min_count=1", "--set", "train.epochs=1")


def test_two_corpora_whose_paths_differ_by_a_slash_keep_two_cells(tmp_path, capsys, corpora_differing_by_slash):
    """Run one after the other into one folder: the second used to replace the first's cell."""
    first, second = corpora_differing_by_slash
    out = tmp_path / "out"
    assert main(_run(out, *CBOW, "--corpus", str(first))) == 0, capsys.readouterr().err
    [first_cell] = (out / "cells").glob("*.json")
    kept = first_cell.read_bytes()
    assert main(_run(out, *CBOW, "--corpus", str(second))) == 0, capsys.readouterr().err
    cells = {json.loads(path.read_text())["cell"]["corpus"]: path for path in (out / "cells").glob("*.json")}
    assert set(cells) == {str(first), str(second)}
    assert first_cell.read_bytes() == kept, "the first corpus' cell was replaced"

    # A cell under its old name (`cell_path` replaced `/` by `_`) is refused until migrated.
    old_name = cells[str(first)].with_name(f"gensim-cbow__{str(first).strip('/').replace('/', '_')}__seed0.json")
    cells[str(first)].rename(old_name)
    err = _refused(capsys, tmp_path, *_run(out, *CBOW, "--corpus", str(first)))
    assert old_name.name in err and f"lm-lineage migrate {out}" in err
    assert main(["migrate", str(out)]) == 0
    assert not old_name.exists() and cells[str(first)].read_bytes() == kept  # renamed back, content as it was
    assert main(_run(out, *CBOW, "--corpus", str(first))) == 0  # a finished cell: nothing to redo
    assert cells[str(first)].read_bytes() == kept


def test_migrate_refuses_to_rename_a_cell_onto_another_file(tmp_path, capsys):
    out = tmp_path / "out"
    cell = {"schema": "lm-lineage.result/2", "cell": {"model": "m", "corpus": "/x/a_b", "seed": 0, "matrix": "q"},
            "status": "failed", "error": "x"}
    current = out / "cells" / cell_file_name("m", "/x/a_b", 0)
    current.parent.mkdir(parents=True)
    current.write_text(json.dumps(cell))
    (out / "cells" / "m__x_a_b__seed0.json").write_text(json.dumps(cell))  # a second copy under the old name
    err = _refused(capsys, tmp_path, "migrate", str(out))
    assert "m__x_a_b__seed0.json" in err and "exists already" in err


# --- verified checkpoints ----------------------------------------------------------------------

LSTM = """
[vocab]
min_count = 2
unk = "<unk>"
[model.lstm]
emb = 8
hidden = 8
layers = 1
epochs = 1
batch_size = 2
bptt = 8
"""
KINGS = "the king and the queen\nthe man and the woman\n" * 20 + "a zebra\n"


def _lstm_matrix(folder: Path, train: str) -> Path:
    corpus = write_corpus(folder / "corpus", train, validation="the king and the queen\n",
                          test="the man and the woman\n")
    path = folder / "lstm.toml"
    path.write_text(f'models = ["lstm"]\ncorpora = [{json.dumps(str(corpus))}]\n{LSTM}')
    return path


@pytest.fixture(scope="module")
def saved_lstm(tmp_path_factory) -> tuple[Path, Path]:
    """(the matrix, the checkpoint folder) of one tiny lstm cell run with --save-models."""
    folder = tmp_path_factory.mktemp("saved")
    matrix = _lstm_matrix(folder, KINGS)
    assert main(_run(folder / "out", "--matrix", str(matrix), "--save-models")) == 0
    [checkpoint] = (folder / "out" / "models").glob("lstm__*")
    return matrix, checkpoint


@pytest.fixture
def checkpoint_copy(tmp_path, saved_lstm) -> Path:
    return Path(shutil.copytree(saved_lstm[1], tmp_path / "checkpoint"))


def test_saved_checkpoint_lists_its_files_and_is_readable_like_the_rest(saved_lstm):
    checkpoint = saved_lstm[1]
    header = json.loads((checkpoint / "checkpoint.json").read_text())
    weights = checkpoint / "model.safetensors"
    assert header["files"]["model.safetensors"]["bytes"] == weights.stat().st_size
    assert len(header["files"]["model.safetensors"]["sha256"]) == 64
    assert {path.name: path.stat().st_mode & 0o777 for path in checkpoint.iterdir()} == \
        {"model.safetensors": 0o644, "checkpoint.json": 0o644}
    assert checkpoint.stat().st_mode & 0o777 == 0o755


def _flip_bytes(path: Path, count: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + count] = bytes(255 - b for b in data[middle:middle + count])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, expected", [
    (_flip_bytes, "model.safetensors: sha256 "),
    (lambda path: path.write_bytes(path.read_bytes()[:-8]), "bytes, checkpoint.json lists"),
])
def test_a_checkpoint_changed_after_saving_is_refused_before_the_run(tmp_path, capsys, saved_lstm, checkpoint_copy,
                                                                     damage, expected):
    damage(checkpoint_copy / "model.safetensors")
    err = _refused(capsys, tmp_path, *_run(tmp_path / "out", "--matrix", str(saved_lstm[0]),
                                           "--set", f"model.lstm.checkpoint={checkpoint_copy}"))
    assert expected in err and "changed after it was saved" in err
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_of_another_vocabulary_is_refused_before_the_run_naming_both_sha256(tmp_path, capsys,
                                                                                        saved_lstm):
    """Same word count, other words: the message used to give two equal counts and no hash."""
    matrix = _lstm_matrix(tmp_path, KINGS.replace("queen", "quean"))
    err = _refused(capsys, tmp_path, *_run(tmp_path / "out", "--matrix", str(matrix),
                                           "--set", f"model.lstm.checkpoint={saved_lstm[1]}"))
    assert "trained on another vocabulary" in err and err.count("sha256 ") == 2
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_that_lists_no_file_hashes_is_refused(tmp_path, capsys, saved_lstm, checkpoint_copy):
    header_path = checkpoint_copy / "checkpoint.json"
    header = json.loads(header_path.read_text())
    del header["files"]
    header_path.write_text(json.dumps({**header, "schema": "lm-lineage.checkpoint/1"}))
    err = _refused(capsys, tmp_path, *_run(tmp_path / "out", "--matrix", str(saved_lstm[0]),
                                           "--set", f"model.lstm.checkpoint={checkpoint_copy}"))
    assert "lists no sha256 of its files" in err


# --- validated token caches ----------------------------------------------------------------------

def _cache_entry(corpus: Path) -> Path:
    return cache_dir() / "tokens" / f"{_cache_key(load_corpus(str(corpus)).fingerprint, TokenizerConfig())}.npz"


def _entry_arrays(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def _huge_header(path: Path) -> None:
    """train.ids' .npy header rewritten to claim 10^12 elements (same header length)."""
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    ids = members["train.ids.npy"]
    header_end = ids.index(b"\n") + 1
    header = ids[:header_end].decode("latin-1")
    start = header.index("'shape': (") + len("'shape': (")
    end = header.index(",)", start)
    claimed = header[:start] + "1000000000000" + header[end:]
    claimed = claimed[:header_end - 1].ljust(header_end - 1) + "\n"  # the header keeps its length
    assert len(claimed) == header_end and "1000000000000" in claimed
    members["train.ids.npy"] = claimed.encode("latin-1") + ids[header_end:]
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _replace_arrays(**changes):
    def damage(path: Path) -> None:
        arrays = _entry_arrays(path)
        arrays.update({name: change(arrays) for name, change in changes.items()})
        with open(path, "wb") as handle:  # np.savez(path) would add .npz to a path of another suffix
            np.savez(handle, **arrays)

    return damage


def _plain_npy(path: Path) -> None:
    with open(path, "wb") as handle:
        np.save(handle, np.arange(10))


CACHE_DAMAGE = {
    "a plain .npy": (_plain_npy, "File is not a zip file"),
    "a header of 10^12 elements": (_huge_header, "claims 1000000000000 elements"),
    "float offsets": (_replace_arrays(**{"train.offsets": lambda a: a["train.offsets"].astype("float64")}),
                      "'train.offsets' is float64"),
    "ids out of range": (_replace_arrays(**{"train.ids": lambda a: a["train.ids"] + 1000}),
                         "'train.ids' holds ids outside the"),
    "offsets past the ids": (_replace_arrays(**{"train.offsets": lambda a: a["train.offsets"] * 2}),
                             "'train.offsets' does not run from 0"),
    "a count missing": (_replace_arrays(train_counts=lambda a: a["train_counts"][:-1]), "'train_counts' holds"),
    "a foreign array": (_replace_arrays(weights=lambda a: a["train_counts"]), "which a token cache does not hold"),
}


@pytest.mark.parametrize("damage, expected", CACHE_DAMAGE.values(), ids=CACHE_DAMAGE.keys())
def test_a_cache_entry_that_loads_but_is_wrong_is_discarded_and_rebuilt(tmp_path, capsys, damage, expected):
    corpus = write_corpus(tmp_path / "c", "alpha beta gamma\nalpha beta\n" * 5)
    first = prepare_corpus(str(corpus), None, TokenizerConfig(), VocabConfig(min_count=1))
    entry = _cache_entry(corpus)
    good = _entry_arrays(entry)
    damage(entry)
    capsys.readouterr()
    again = prepare_corpus(str(corpus), None, TokenizerConfig(), VocabConfig(min_count=1))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cache entry {entry} is unreadable" in err and expected in err, err
    assert again.vocab.words == first.vocab.words
    assert again.train.ids.tolist() == first.train.ids.tolist()
    rebuilt = _entry_arrays(entry)  # the bad entry is gone: the rebuilt one holds what the first run wrote
    assert rebuilt.keys() == good.keys() and all((rebuilt[name] == good[name]).all() for name in good)
    prepare_corpus(str(corpus), None, TokenizerConfig(), VocabConfig(min_count=1))
    assert capsys.readouterr().err == "", "the rebuilt entry is read without a word"


def test_a_cache_folder_that_cannot_be_written_is_one_line_naming_it(tmp_path, capsys, monkeypatch,
                                                                     read_only_folder):
    monkeypatch.setenv("LM_LINEAGE_CACHE", str(read_only_folder / "cache"))
    corpus = write_corpus(tmp_path / "c", SENTENCES)
    err = _refused(capsys, tmp_path, *_run(tmp_path / "out", *CBOW, "--corpus", str(corpus)))
    assert err.startswith(f"cache folder {read_only_folder / 'cache'}") and "$LM_LINEAGE_CACHE" in err
    assert not (tmp_path / "out").exists()


# --- vectors files checked before the run ----------------------------------------------------------

class _Call:
    """Pickles as a call of `function` with `args`: how a hostile file asks for an allocation."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def _hostile_pickles() -> dict[str, tuple[bytes, str]]:
    return {
        # 12 bytes stating a 2.8 GB byte string: the unpickler would allocate it before reading.
        "a 2.8 GB bytes8": (b"\x80\x04\x8e" + (2_800_000_000).to_bytes(8, "little") + b".",
                            "states more bytes than it holds"),
        "an array of 10^13 elements": (pickle.dumps(_Call(_reconstruct, np.ndarray, (10**13,), b"b"), protocol=4),
                                       "shape (10000000000000,)"),
        "KeyedVectors of 10^13 words": (pickle.dumps(_Call(KeyedVectors, 100, 10**13), protocol=4),
                                        "KeyedVectors called with arguments"),
        "ndarray called": (pickle.dumps(_Call(np.ndarray, (10**13,)), protocol=4), "numpy.ndarray called"),
    }


@pytest.mark.parametrize("case", ["a 2.8 GB bytes8", "an array of 10^13 elements", "KeyedVectors of 10^13 words",
                                  "ndarray called"])
def test_a_hostile_gensim_pickle_is_refused_before_it_allocates(tmp_path, case):
    data, expected = _hostile_pickles()[case]
    assert len(data) < 200
    path = tmp_path / "evil.kv"
    path.write_bytes(data)
    with pytest.raises(BenchError) as refused:
        vectors.check_file(path, "gensim")
    message = str(refused.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


def test_run_and_eval_vectors_refuse_a_bad_gensim_file_before_any_cell(tmp_path, capsys, monkeypatch):
    """eval-vectors used to run the reference row first and fail the file's cell (exit 1)."""
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    data, _ = _hostile_pickles()["an array of 10^13 elements"]
    evil = tmp_path / "evil.kv"
    evil.write_bytes(data)
    err = _refused(capsys, tmp_path, *_run(tmp_path / "out", *CBOW, "--vectors", str(evil)))
    assert str(evil) in err and "shape (10000000000000,)" in err
    err = _refused(capsys, tmp_path, "eval-vectors", str(evil), "--out", str(tmp_path / "scored"), "--no-progress")
    assert str(evil) in err and "shape (10000000000000,)" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "scored").exists()


def test_a_vectors_file_with_a_value_that_is_not_a_number_is_refused_before_any_cell(tmp_path, capsys,
                                                                                     monkeypatch):
    """Its structure passed the runner's check, and the read failed inside its cell (exit 1)."""
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    bad = tmp_path / "bad.txt"
    bad.write_text("2 3\nking 1 2 3\nqueen 1 x 3\n")
    err = _refused(capsys, tmp_path, *_run(tmp_path / "out", *CBOW, "--vectors", str(bad)))
    assert f"{bad}: line 3: value 'x' is not a number" in err
    assert not (tmp_path / "out").exists()

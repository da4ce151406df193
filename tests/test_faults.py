"""Fault injection: what a new user gets wrong, and what stops a run from outside.

Bad input ends with one line that names the flag, file or key and says what was expected,
exit code 2, and nothing written (no output folder, no cells, no report). A runner stopped
by SIGTERM, SIGINT or SIGKILL sent to its own PID (not its process group: its cell's worker
gets no signal of its own) leaves no process behind within seconds (neither the worker nor
multiprocessing's resource tracker), keeps the cells it finished, and a re-run goes on from
there; a worker killed on its own (the OOM killer) is a failed cell and the run goes on.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import psutil
import pytest

from bench.cli import main
from bench.run import finetune
from bench.run.config import MATRIX_DIR, load_matrix
from tests.conftest import write_corpus

ROOT = Path(__file__).resolve().parents[1]


def _files(folder: Path) -> dict[str, int]:
    """Every file and folder under `folder`, with its modification time."""
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in folder.rglob("*")}


def _refused(capsys, tmp_path: Path, *argv: str) -> str:
    """`lm-lineage ARGV` in this process: exit code 2, one line on stderr, and no file made
    or touched under tmp_path. Returns the line, without its "lm-lineage: error: " prefix."""
    before = _files(tmp_path)
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("lm-lineage: error: "), err
    assert _files(tmp_path) == before, "a refused command must not write anything"
    return err.removeprefix("lm-lineage: error: ")


def _run(tmp_path: Path, *argv: str) -> list[str]:
    return ["run", "--out", str(tmp_path / "out"), "--no-progress", *argv]


# --- empty lists -------------------------------------------------------------------------

@pytest.mark.parametrize("flag, value", [("--models", ","), ("--corpus", ""), ("--models", ""), ("--corpus", " , ")])
def test_an_empty_list_is_an_error_not_everything(tmp_path, capsys, flag, value):
    err = _refused(capsys, tmp_path, *_run(tmp_path, flag, value))
    assert err == f"{flag} {value!r}: expected a comma-separated list of names, got none"


def test_an_empty_data_root_is_an_error_not_no_data_root(tmp_path, capsys):
    err = _refused(capsys, tmp_path, *_run(tmp_path, "--models", "gensim-cbow", "--data-dir", ""))
    assert err == "--data-dir '': expected the data root folder (or no --data-dir)"


# --- output folders ----------------------------------------------------------------------

def test_out_naming_a_file_is_refused(tmp_path, capsys):
    mine = tmp_path / "notes.md"
    mine.write_text("my own notes")
    assert _refused(capsys, tmp_path, "run", "--out", str(mine)).startswith(
        f"--out {mine}: {mine} is a file; expected a folder")
    assert _refused(capsys, tmp_path, "run", "--out", str(mine / "sub")).startswith(
        f"--out {mine / 'sub'}: {mine} is a file; expected a folder")
    (tmp_path / "results").mkdir()
    assert _refused(capsys, tmp_path, "report", "--results", str(tmp_path / "results"), "--out", str(mine)).startswith(
        f"--out {mine}: {mine} is a file; expected a folder")
    assert _refused(capsys, tmp_path, "run", "--out", "").startswith("--out '': expected a folder path")
    assert mine.read_text() == "my own notes"


def test_out_on_a_read_only_file_system_is_refused(tmp_path, capsys, read_only_folder):
    for out in (read_only_folder / "run", read_only_folder / "run" / "deeper"):
        err = _refused(capsys, tmp_path, "run", "--out", str(out), "--no-progress")
        assert err.startswith(f"--out {out}: cannot write in {read_only_folder} (")
        assert err.endswith("); expected a writable folder")
    (tmp_path / "results").mkdir()
    err = _refused(capsys, tmp_path, "report", "--results", str(tmp_path / "results"),
                   "--out", str(read_only_folder / "tables"))
    assert err.startswith(f"--out {read_only_folder / 'tables'}: cannot write in {read_only_folder} (")
    err = _refused(capsys, tmp_path, "report", "--results", str(read_only_folder))  # the tables' default place
    assert err.startswith(f"--results {read_only_folder}: cannot write in {read_only_folder} (")


# --- hand-edited results --------------------------------------------------------------------

REAL_ELMO_CELL = ROOT / "results" / "elmo-more-text" / "cells" / "elmo__brown-reuters__seed0.json"


def _drop(result: dict, *path) -> None:
    *parents, last = path
    for part in parents:
        result = result[part]
    del result[last]


def _report_refused(tmp_path: Path, capsys, result: dict) -> tuple[Path, str]:
    """`report` on a folder holding `result` as its one cell: the cell's path and the refusal."""
    cell = tmp_path / "results" / "cells" / REAL_ELMO_CELL.name
    cell.parent.mkdir(parents=True)
    cell.write_text(json.dumps(result))
    # --out beside the results: the write check leaves the results folder's mtime alone
    return cell, _refused(capsys, tmp_path, "report", "--results", str(cell.parents[1]), "--out", str(tmp_path / "out"))


@pytest.mark.parametrize("path, expected", [
    (("metrics", "wsd_probe", 0, "instances"), "metrics.wsd_probe[0] lacks 'instances'; expected model, "),
    (("metrics", "wordsim", 3, "spearman"), "metrics.wordsim[3] lacks 'spearman'; expected benchmark, "),
    (("timings", "train", "wall_s"), "timings.train lacks 'wall_s'; expected device, wall_s, "),
    (("cell", "matrix"), "cell lacks 'matrix'; expected model, corpus, seed, matrix"),
    (("config", "tokenizer"), "config lacks 'tokenizer'; expected model, tokenizer, vocab, eval"),
    (("key",), "the ok result lacks 'key'; expected key, config, metrics, timings"),
])
def test_a_result_lacking_what_the_report_reads_is_named_by_file_and_key(tmp_path, capsys, path, expected):
    """A result of the right schema with a key cut out by hand: the report refuses it in one
    line naming the file and the key, instead of a KeyError traceback, and writes nothing."""
    result = json.loads(REAL_ELMO_CELL.read_text())
    _drop(result, *path)
    cell, err = _report_refused(tmp_path, capsys, result)
    assert err.startswith(f"{cell}: {expected}"), err


def test_a_metric_that_is_not_a_list_of_rows_is_refused(tmp_path, capsys):
    result = json.loads(REAL_ELMO_CELL.read_text())
    result["metrics"]["perplexity"] = {"split": "test"}
    cell, err = _report_refused(tmp_path, capsys, result)
    assert err == f"{cell}: metrics.perplexity is dict, expected a list of rows"


def test_timings_that_are_not_an_object_are_refused(tmp_path, capsys):
    result = json.loads(REAL_ELMO_CELL.read_text())
    result["timings"] = []
    cell, err = _report_refused(tmp_path, capsys, result)
    assert err == f"{cell}: timings is list, expected an object"


# --- corpora -----------------------------------------------------------------------------

@pytest.mark.parametrize("split, content, expected", [
    ("train", b"", "split 'train' is empty ({path} holds no text)"),
    ("train", b" \n\n", "split 'train' is empty ({path} holds no text)"),
    ("train", b"caf\xc3\xa9 ok\nna\xefve\n", "{path} is not UTF-8 (line 2, byte 11: invalid continuation byte); "
                                              "expected UTF-8 text"),
    ("validation", b"ok\n\xff\n", "{path} is not UTF-8 (line 2, byte 3: invalid start byte); expected UTF-8 text"),
    ("test", b"caf\xc3", "{path} is not UTF-8 (it ends inside a character); expected UTF-8 text"),
], ids=["empty", "blank", "latin-1-in-utf-8", "bad-byte", "cut-character"])
def test_empty_or_non_utf8_split_file_is_named(tmp_path, capsys, split, content, expected):
    corpus = write_corpus(tmp_path / "corpus", "the cat sat\n")
    path = corpus / f"{split}.txt"
    path.write_bytes(content)
    err = _refused(capsys, tmp_path, *_run(tmp_path, "--models", "gensim-cbow", "--corpus", str(corpus)))
    assert err == f"corpus '{corpus}': " + expected.format(path=path)


def test_hub_corpus_offline_says_how_to_allow_the_hub(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    err = _refused(capsys, tmp_path, *_run(tmp_path, "--models", "gensim-cbow", "--corpus", "wikitext-2"))
    assert err.startswith("corpus 'wikitext-2' is on the Hugging Face hub (Salesforce/wikitext wikitext-2-raw-v1)")
    assert "pass --allow-hub to download it" in err and "pass that folder as the corpus" in err


def _lm_matrix(tmp_path: Path, model: str) -> Path:
    """A matrix of one language model with the closed vocabulary LMs need."""
    path = tmp_path / "lm.toml"
    path.write_text(f'models = ["{model}"]\ncorpora = ["lee"]\n[vocab]\nmin_count = 1\nunk = "<unk>"\n')
    return path


@pytest.mark.parametrize("model, splits, missing", [
    ("kn3", ["train"], "validation and no test"),  # was: status ok and no perplexity
    ("kn3", ["train", "validation"], "test"),  # was: validation scored alone, silently
    ("rnn", ["train", "test"], "validation"),  # was: KeyError: 'validation'
    ("elmo", ["train", "validation"], "test"),
])
def test_language_model_refuses_a_corpus_without_its_splits(tmp_path, capsys, model, splits, missing):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for split in splits:
        (corpus / f"{split}.txt").write_text("the cat sat on the mat\nthe dog sat\n")
    matrix = _lm_matrix(tmp_path, model)
    before = _files(tmp_path)
    err = _refused(capsys, tmp_path, *_run(tmp_path, "--matrix", str(matrix), "--corpus", str(corpus)))
    assert err == (f"corpus '{corpus}' has no {missing} split, which the language models {model} need: expected "
                   f"train, validation and test (train.txt, validation.txt, test.txt in a corpus folder)")
    assert _files(tmp_path) == before


def test_a_word_vector_model_beside_a_language_model_does_not_lift_the_check(tmp_path, capsys):
    corpus = tmp_path / "train-only"
    corpus.mkdir()
    (corpus / "train.txt").write_text("the cat sat on the mat\n")
    err = _refused(capsys, tmp_path, *_run(tmp_path, "--matrix", "brown-lm", "--models", "gensim-cbow,kn3",
                                           "--corpus", str(corpus), "--set", "vocab.min_count=1"))
    assert err.startswith(f"corpus '{corpus}' has no validation and no test split, which the language models kn3 need")


# --- --set ---------------------------------------------------------------------------------

@pytest.mark.parametrize("assignment, expected", [
    ("vocab.colour=1", "unknown key(s) colour in [vocab]; expected some of eos, max_size, min_count, unk"),
    ("vocab.min_count=abc", "vocab.min_count: expected int, got 'abc'"),
    ("train.epochz=1", "train.epochz applies to none of the models ['gensim-cbow']"),
    ("model.gensim-cbow.dimz=3", "unknown key(s) dimz in [model.gensim-cbow]; expected some of "),
    ("model.gensim-cbow.vector_size=1.5", "model.gensim-cbow.vector_size: expected int, got 1.5"),
    ("model.bert.epochs=1", "unknown model 'bert': expected one of "),
    ("tokeniser.lowercase=false", "unknown key(s) tokeniser; expected some of corpora, description, eval, model, "
                                  "models, probe, seeds, tokenizer, train, vocab"),
])
def test_set_typos_are_blamed_on_set_not_on_the_matrix_file(tmp_path, capsys, assignment, expected):
    err = _refused(capsys, tmp_path, *_run(tmp_path, "--models", "gensim-cbow", "--set", assignment))
    assert err.startswith(f"--set {assignment}: {expected}"), err
    assert ".toml" not in err and str(MATRIX_DIR) not in err


def test_unset_drops_a_matrix_setting_so_its_default_applies():
    # TOML has no null: a cap of the matrix file is lifted with --unset, not --set ...=null.
    assert load_matrix("elmo-seeds").probe.settings["wsd"].max_train_per_word == 500
    lifted = load_matrix("elmo-seeds", unsets=["probe.wsd_max_train_per_word", "probe.wsd_max_eval_per_word"])
    wsd = lifted.probe.settings["wsd"]
    assert (wsd.max_train_per_word, wsd.max_eval_per_word) == (None, None)
    assert lifted.train_config("elmo") == load_matrix("elmo-seeds").train_config("elmo")  # the rest kept
    # --set applies after --unset, so the pair replaces a setting outright
    again = load_matrix("elmo-seeds", ["probe.wsd_max_train_per_word=7"], unsets=["probe.wsd_max_train_per_word"])
    assert again.probe.settings["wsd"].max_train_per_word == 7


@pytest.mark.parametrize("unset, expected", [
    ("probe.wsd_max_train_per_wrod", "does not set probe.wsd_max_train_per_wrod; nothing to drop"),
    ("probe", "expected section.key or model.NAME.key"),
    ("model.elmo", "expected section.key or model.NAME.key"),
    ("model.gensim-cbow.epochs", "does not set model.gensim-cbow.epochs; nothing to drop"),
])
def test_unset_of_a_setting_the_matrix_does_not_make_is_refused(tmp_path, capsys, unset, expected):
    err = _refused(capsys, tmp_path, *_run(tmp_path, "--matrix", "elmo-seeds", "--unset", unset))
    assert err.startswith((f"--unset {unset}:", f"--unset {unset!r}:")) and expected in err, err


def test_a_matrix_extends_another_table_by_table(tmp_path):
    longer, base = load_matrix("elmo-longer"), load_matrix("elmo-more-text")
    assert longer.train_config("elmo").max_minutes == 100.0 and base.train_config("elmo").max_minutes == 58.0
    assert longer.train_config("elmo").lr == base.train_config("elmo").lr  # the rest of [model.elmo] inherited
    assert (longer.probe, longer.tokenizer, longer.models) == (base.probe, base.tokenizer, base.models)
    assert longer.description != base.description
    # A .toml parent is found beside the child; a list of the child's replaces the parent's.
    (tmp_path / "parent.toml").write_text('description = "p"\nmodels = ["glove", "word2vec-sg"]\ncorpora = ["lee"]\n'
                                          '[train]\nwindow = 3\nvector_size = 20\n')
    (tmp_path / "child.toml").write_text('description = "c"\nextends = "parent.toml"\nmodels = ["glove"]\n'
                                         '[train]\nwindow = 7\n')
    child = load_matrix(str(tmp_path / "child.toml"))
    assert child.models == ["glove"] and child.train == {"window": 7, "vector_size": 20}


def test_a_matrix_unsets_what_the_matrix_it_extends_sets():
    # elmo-seeds-wsd is elmo-seeds without the WSD caps: their defaults (None: every instance) apply.
    lifted, base = load_matrix("elmo-seeds-wsd"), load_matrix("elmo-seeds")
    base_wsd, lifted_wsd = base.probe.settings["wsd"], lifted.probe.settings["wsd"]
    assert (base_wsd.max_train_per_word, base_wsd.max_eval_per_word) == (500, 200)
    assert (lifted_wsd.max_train_per_word, lifted_wsd.max_eval_per_word) == (None, None)
    assert lifted.probe.settings["pos"] == base.probe.settings["pos"]  # the POS caps kept
    assert base.probe.settings["pos"].max_train_sentences == 8000
    # elmo-seeds-wsd trains the biLMs elmo-seeds loads: its unset drops elmo-seeds' init_from and
    # finetune, and the training settings stay elmo-seeds' (a 3.0M-token budget).
    assert finetune.init_from(base, "elmo", 2) == "results/elmo-seeds-wsd/models/elmo__brown__seed2"
    assert not finetune.finetunes(base, "elmo")
    assert finetune.init_from(lifted, "elmo", 2) is None and finetune.key_block(lifted, "elmo") == {}
    assert lifted.train_config("elmo") == base.train_config("elmo")
    assert (lifted.train_config("elmo").max_tokens, lifted.train_config("elmo").max_minutes) == (3_000_000, None)
    assert lifted.seeds == base.seeds == [0, 1, 2]
    assert lifted.name == "elmo-seeds-wsd" and lifted.description != base.description


@pytest.mark.parametrize("child, expected", [
    ('description = "c"\nextends = "elmo-seeds"\nunset = ["probe.wsd_window_size"]\n',
     "unset 'probe.wsd_window_size': matrix "),
    ('description = "c"\nextends = "elmo-seeds"\nunset = ["probe.wsd_window_size"]\n',
     "elmo-seeds.toml does not set probe.wsd_window_size; nothing to drop"),
    ('description = "c"\nextends = "elmo-seeds"\nunset = "probe.wsd_window"\n',
     "unset: expected a list of settings such as"),
    ('description = "c"\nextends = "elmo-seeds"\nunset = ["probe"]\n', "expected section.key or model.NAME.key"),
    ('description = "c"\nunset = ["probe.wsd_window"]\n', "but it extends none"),
    ('description = "c"\nextends = "elmo-seeds"\nunset = ["probe.wsd_window"]\n[probe]\nwsd_window = 3\n',
     "this file also sets probe.wsd_window; expected one or the other"),
    ('extends = "elmo-more-text"\n', "has no description of its own"),
    ('description = "c"\nextends = "elmo-mroe-text"\n', "unknown matrix 'elmo-mroe-text'"),
    ('description = "c"\nextends = 3\n', "extends: expected the name of a shipped matrix or a .toml path, got 3"),
    ('description = "c"\nextends = "loop.toml"\n', "extends itself"),
    ('description = "c"\nextends = "nope.toml"\n', "extends 'nope.toml', but there is no "),
])
def test_a_bad_extends_is_refused(tmp_path, capsys, child, expected):
    (tmp_path / "loop.toml").write_text('description = "l"\nextends = "child.toml"\n')
    (tmp_path / "child.toml").write_text(child)
    err = _refused(capsys, tmp_path, *_run(tmp_path, "--matrix", str(tmp_path / "child.toml")))
    assert expected in err, err


def test_a_folder_named_like_a_shipped_matrix_does_not_hide_it(tmp_path, monkeypatch):
    """`--matrix quick` run where the default output folder's parent holds `quick/` (cd runs)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quick").mkdir()
    assert load_matrix("quick").name == "quick"


# --- list ----------------------------------------------------------------------------------

def test_list_shows_each_matrix_with_its_description(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for path in sorted(MATRIX_DIR.glob("*.toml")):
        description = tomllib.loads(path.read_text())["description"]
        assert re.search(rf"^  {re.escape(path.stem)} +{re.escape(description)}$", out, re.MULTILINE), path.stem


# --- a corpus given as any folder path -------------------------------------------------------

@pytest.mark.slow
def test_corpus_path_too_long_for_a_file_name_and_with_html_in_it(tmp_path, capsys, monkeypatch):
    """The cell file name (and the token cache's) outgrew 255 bytes after the cell ran, and
    report.md carried the name as raw HTML."""
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)  # gensim's similarity sets
    corpus = write_corpus(tmp_path.joinpath(*["d" * 100] * 3, "<b>corpus</b>"),
                          "the cat sat on the mat\nthe dog sat on the log\n" * 20)
    out = tmp_path / "out"
    code = main(_run(tmp_path, "--models", "gensim-cbow", "--corpus", str(corpus), "--in-process",
                     "--set", "vocab.min_count=1", "--set", "train.epochs=1"))
    assert code == 0, capsys.readouterr().err
    [cell] = (out / "cells").glob("*.json")
    assert len(f".{cell.name}.12345678.tmp".encode()) <= 255
    assert cell.name.startswith("gensim-cbow__") and "_b_corpus_b+" in cell.name  # a slug and a hash (issue 29)
    report = (out / "report.md").read_text()
    assert "&lt;b&gt;corpus&lt;/b&gt;" in report
    outside_code = re.sub(r"`[^`\n]*`", "", report)
    assert "<b>" not in outside_code, "a corpus name reached report.md as HTML"


# --- processes -------------------------------------------------------------------------------

MODELS = "gensim-cbow,gensim-sg"
FIRST_CELL, SECOND_CELL = "gensim-cbow__lee__seed0.json", "gensim-sg__lee__seed0.json"
TIMEOUT_S = 900  # a cell takes seconds on 2 idle cores, minutes on a loaded machine
GONE_WITHIN_S = 10  # how soon a stopped runner's processes must all be gone


def _environment(cache: Path) -> dict:
    env = {**os.environ, "LM_LINEAGE_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("LM_LINEAGE_DATA", None)  # the embedded Lee corpus and gensim's similarity sets
    return env


def _run_args(out: Path) -> list[str]:
    """The arguments of the two-cell run every test here starts, resumes or stops."""
    return ["run", "--matrix", "quick", "--models", MODELS, "--set", "train.epochs=1", "--out", str(out),
            "--no-progress"]


def _start(out: Path, env: dict, stderr, *extra: str) -> subprocess.Popen:
    """`lm-lineage run` of two cells in its own session (so that whatever is left of it can be
    found and cleaned up), with SIGINT's default disposition (a background job of a
    non-interactive shell inherits it ignored)."""
    command = [sys.executable, "-m", "bench", *_run_args(out), *extra]
    return subprocess.Popen(command, cwd=out.parent, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _is_worker(process: psutil.Process) -> bool:
    try:
        return "spawn_main" in " ".join(process.cmdline())
    except psutil.Error:  # ended meanwhile
        return False


def _kill_session(run: subprocess.Popen, others: list[psutil.Process]) -> None:
    """Whatever a failed test left running."""
    if run.poll() is None:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    for process in others:
        if _running(process):
            process.kill()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, dict]:
    """A folder where the two-cell run finished, and the environment it ran in. The run is
    made in this process (--in-process: the same cells with the same keys, without starting
    a runner and two workers); the tests stop and resume it in real processes."""
    base = tmp_path_factory.mktemp("finished")
    env = _environment(base / "cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("LM_LINEAGE_DATA", raising=False)
        patch.setenv("LM_LINEAGE_CACHE", env["LM_LINEAGE_CACHE"])
        assert main([*_run_args(base / "out"), "--in-process"]) == 0
    return base / "out", env


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL], ids=lambda s: s.name)
def test_runner_stopped_mid_cell_leaves_no_process_and_keeps_its_cells(tmp_path, finished_run, stop_signal):
    """The runner's PID alone gets the signal, in its second cell (the first is kept from a
    finished run, as a resumed run has it); its worker and multiprocessing's resource
    tracker must be gone within seconds, the first cell untouched; a re-run then finishes."""
    finished, env = finished_run
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    (out / "cells" / SECOND_CELL).unlink()
    first = out / "cells" / FIRST_CELL
    kept = (first.read_bytes(), first.stat().st_mtime_ns)
    stderr_path = tmp_path / "stderr.txt"
    descendants: list[psutil.Process] = []
    with open(stderr_path, "w") as stderr:
        run = _start(out, env, stderr)
        try:
            runner, deadline = psutil.Process(run.pid), time.monotonic() + TIMEOUT_S
            while not any(_is_worker(child) for child in runner.children()):
                assert run.poll() is None, f"the run ended before its second cell: {stderr_path.read_text()}"
                assert time.monotonic() < deadline, "no cell worker started in time"
                time.sleep(0.05)
            time.sleep(1.0)  # into the cell
            descendants = runner.children(recursive=True)
            os.kill(run.pid, stop_signal)
            code = run.wait(timeout=TIMEOUT_S)
            deadline = time.monotonic() + GONE_WITHIN_S
            while any(_running(p) for p in descendants) and time.monotonic() < deadline:
                time.sleep(0.1)
            alive = [" ".join(p.cmdline())[:120] for p in descendants if _running(p)]
        finally:
            _kill_session(run, descendants)
    assert len(descendants) >= 2, "expected the cell's worker and the resource tracker"
    assert not alive, f"left running {GONE_WITHIN_S} s after the runner stopped: {alive}"
    err = stderr_path.read_text()
    if stop_signal == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:
        assert code == 128 + stop_signal, err
        assert "; finished cells are kept, re-run to continue" in err.splitlines()[-1], err
    assert (first.read_bytes(), first.stat().st_mtime_ns) == kept
    assert not (out / "cells" / SECOND_CELL).exists()
    assert not [p for p in (out / "cells").iterdir() if p.name != FIRST_CELL], "a partial file was left"

    if stop_signal == signal.SIGKILL:  # resumed: the second cell is made, the first is not redone
        with open(stderr_path, "w") as stderr:
            rerun = _start(out, env, stderr, "--in-process")  # what a re-run skips is the point, not its worker
            try:
                assert rerun.wait(timeout=TIMEOUT_S) == 0, stderr_path.read_text()
            finally:
                _kill_session(rerun, [])
        assert sorted(p.name for p in (out / "cells").iterdir()) == [FIRST_CELL, SECOND_CELL]
        assert (first.read_bytes(), first.stat().st_mtime_ns) == kept


@pytest.mark.slow
def test_a_worker_killed_mid_cell_is_a_failed_cell_and_the_run_goes_on(tmp_path, finished_run):
    """SIGKILL to the worker alone (as the OOM killer sends it): the runner records the cell
    as failed with the reason, writes the tables and report, and exits with code 1."""
    finished, env = finished_run
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    (out / "cells" / SECOND_CELL).unlink()
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "w") as stderr:
        run = _start(out, env, stderr)
        try:
            runner, deadline = psutil.Process(run.pid), time.monotonic() + TIMEOUT_S
            while not (workers := [child for child in runner.children() if _is_worker(child)]):
                assert run.poll() is None, f"the run ended before its second cell: {stderr_path.read_text()}"
                assert time.monotonic() < deadline, "no cell worker started in time"
                time.sleep(0.05)
            workers[0].kill()
            code = run.wait(timeout=TIMEOUT_S)
        finally:
            _kill_session(run, [])
    assert code == 1, stderr_path.read_text()
    failed = json.loads((out / "cells" / SECOND_CELL).read_text())
    assert failed["status"] == "failed"
    assert failed["error"] == "the worker process died (killed by SIGKILL: out of memory, or killed from outside)"
    assert "| gensim-sg | lee | 0 | the worker process died (killed by SIGKILL" in (out / "report.md").read_text()


# The worker's tie to its parent, on its own: bench.run.worker imports only the standard
# library, so these start in a fraction of a second.
CHILD = ("import sys, time; from bench.run.worker import die_with_parent; die_with_parent(int(sys.argv[1])); "
         "print('tied', flush=True); time.sleep(600)")
PARENT = ("import os, subprocess, sys; child = subprocess.Popen([sys.executable, '-c', sys.argv[1], str(os.getpid())], "
          "stdout=subprocess.PIPE, text=True); assert child.stdout.readline() == 'tied\\n'; "
          "print(child.pid, flush=True); import time; time.sleep(600)")


def test_a_worker_dies_within_seconds_of_its_parent_s_sigkill():
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    try:
        child = psutil.Process(int(parent.stdout.readline()))
        assert _running(child)
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 5
        while _running(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(child), "the worker outlived its parent's SIGKILL"
    finally:
        os.killpg(parent.pid, signal.SIGKILL)


def test_a_worker_whose_parent_died_before_it_was_tied_ends_at_once():
    """Its parent pid is then another one (it was adopted): the pid it was given is not its parent's."""
    not_its_parent = os.getpid() + 1 if os.getpid() + 1 != os.getppid() else os.getpid() + 2
    child = subprocess.run([sys.executable, "-c", CHILD, str(not_its_parent)], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
    assert child.returncode == 1 and child.stdout == ""


@pytest.mark.parametrize("command", ["run", "eval-vectors"])
def test_an_interrupted_run_or_eval_vectors_re_renders_the_tables_of_the_cells_kept(tmp_path, capsys, monkeypatch,
                                                                                     command):
    """Both commands go through one wrapper: Ctrl-C (or SIGTERM, raised as its subclass) in
    run_matrix re-renders the output folder's tables before the exit code 130."""
    import bench.commands.run
    import bench.run.runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    rendered = []
    monkeypatch.setattr(bench.run.runner, "run_matrix", interrupted)
    monkeypatch.setattr(bench.commands.run, "render_finished_cells",
                        lambda report, out_dir: rendered.append(out_dir))
    vectors = tmp_path / "mine.txt"
    vectors.write_text("2 2\na 1 0\nb 0 1\n")
    out = tmp_path / "out"
    argv = (["run", "--matrix", "quick", "--models", "glove-6b-50d"] if command == "run"
            else ["eval-vectors", str(vectors)])
    assert main([*argv, "--out", str(out), "--no-progress"]) == 130
    assert rendered == [out]


@pytest.mark.parametrize("argv, expected", [
    (["--device", "gpu"], "--device 'gpu': expected auto, cpu, cuda or cuda:N"),
    (["--set", "model.elmo.bogus=1"], "unknown key(s) bogus in [model.elmo]"),
])
def test_elmo_quality_script_refuses_bad_input_in_one_line(capsys, argv, expected):
    """scripts/elmo_quality.py (issue 27's quality-per-token runs) refuses a bad device or setting
    before it reads any data or trains: one line naming it, exit 2."""
    from scripts.elmo_quality import main as quality_main

    assert quality_main([*argv, "--tokens", "10"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and expected in error and error.startswith("elmo_quality.py: ")

"""Output folders and settings (issues 29, 26, 28): nothing lost, nothing silently wrong.

Every command that writes claims its output before any work (`bench.run.outdir`): a folder
another command is writing is refused (its lock), a folder of the user's own files is refused,
and the committed results/ is written only when --out names it. Every setting is type-checked
on one path for matrix files and --set (`bench.run.config.matrix_from_dict`). Each refusal is
one line, exit code 2, and leaves every file as it was.
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from bench.cli import main
from bench.models.registry import KINDS, MODELS
from bench.run import outdir
from bench.run.config import SECTIONS, load_matrix
from bench.run.conform import conform, describe

ROOT = Path(__file__).resolve().parents[1]
QUICK = ROOT / "results" / "quick"  # seven committed cells: a cheap, real results folder


def _files(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder` with its bytes and modification time."""
    return {str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
            for path in folder.rglob("*") if path.is_file()}


def _refused(capsys, folder: Path, *argv: str) -> str:
    """`lm-lineage ARGV`: exit 2, one line on stderr, and every file under `folder` as it was."""
    before = _files(folder)
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("lm-lineage: error: "), err
    assert _files(folder) == before, "a refused command must not write, overwrite or remove anything"
    return err.removeprefix("lm-lineage: error: ")


def _vectors_file(path: Path) -> Path:
    path.write_text("2 3\nking 1 0 0\nqueen 0 1 0\n")  # word2vec text format
    return path


@pytest.fixture
def committed(tmp_path, monkeypatch) -> Path:
    """A stand-in for the checkout's committed results/ (a copy of results/quick), so that a
    test of the rule never risks the real reference files."""
    folder = tmp_path / "committed"
    shutil.copytree(QUICK, folder / "quick")
    monkeypatch.setattr(outdir, "COMMITTED_RESULTS", folder)
    return folder


# --- the lock ------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["run", "eval-vectors", "report"])
def test_a_second_command_into_a_locked_folder_is_refused(tmp_path, capsys, command):
    out = tmp_path / "out"
    argv = {"run": ["run", "--models", "gensim-cbow", "--no-progress", "--out", str(out)],
            "eval-vectors": ["eval-vectors", str(_vectors_file(tmp_path / "mine.txt")), "--out", str(out)],
            "report": ["report", "--results", str(QUICK / "cells"), "--out", str(out)]}[command]
    with outdir.locked(out, "--out"):  # this process is the first run; main() opens the lock anew
        err = _refused(capsys, tmp_path, *argv)
        assert _files(out) == {outdir.LOCK_FILE: _files(out)[outdir.LOCK_FILE]}
        assert (out / outdir.LOCK_FILE).read_text() == f"{os.getpid()}\n"
    assert err == (f"--out {out}: another lm-lineage process (pid {os.getpid()}) is writing this folder (its lock: "
                   f"{out / outdir.LOCK_FILE}); wait for it to end, or use another --out")
    assert not out.exists(), "the lock is released, and the folder it made removed when nothing else was written"


def test_a_live_lock_of_another_process_is_refused_and_a_killed_one_taken_over(tmp_path, capsys):
    out = tmp_path / "out"
    # A sleeping child stands for a long run: it holds the lock until it is killed.
    hold = ("import time; from pathlib import Path; from bench.run.outdir import locked\n"
            f"with locked(Path({str(out)!r}), '--out'):\n    print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        err = _refused(capsys, tmp_path, "report", "--results", str(QUICK / "cells"), "--out", str(out))
        assert f"another lm-lineage process (pid {holder.pid}) is writing this folder" in err
    finally:
        holder.kill()  # SIGKILL: no finally runs, the lock file stays with its pid
        holder.wait()
    assert (out / outdir.LOCK_FILE).read_text() == f"{holder.pid}\n"
    assert main(["report", "--results", str(QUICK / "cells"), "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip()
    assert err == (f"lm-lineage: {out / outdir.LOCK_FILE} was left by process {holder.pid}, which ended without "
                   f"releasing it; taking it over")
    assert (out / "report.md").is_file() and not (out / outdir.LOCK_FILE).exists()


def test_the_lock_is_released_on_an_error_an_interrupt_and_an_exception(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    empty_split = tmp_path / "corpus"
    empty_split.mkdir()
    for split, text in (("train", "\n"), ("validation", "a b\n"), ("test", "a c\n")):
        (empty_split / f"{split}.txt").write_text(text)
    run = ["run", "--models", "gensim-cbow", "--corpus", str(empty_split), "--no-progress", "--out", str(out)]
    assert "split 'train' is empty" in _refused(capsys, tmp_path, *run)  # refused after the lock was taken
    assert not out.exists()

    import bench.run.runner

    def interrupted(*args, **kwargs):
        (out / "matrix.json").write_text('{"matrix": {}}')  # what a run has written when Ctrl-C comes
        raise KeyboardInterrupt

    monkeypatch.setattr(bench.run.runner, "run_matrix", interrupted)
    assert main(run) == 130
    assert sorted(path.name for path in out.iterdir()) == ["matrix.json"]  # kept, without the lock

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(bench.run.runner, "run_matrix", broken)
    with pytest.raises(RuntimeError):
        main(run)
    assert not (out / outdir.LOCK_FILE).exists()


# --- whose folder ------------------------------------------------------------------------

def test_report_and_gradient_flow_refuse_a_folder_of_the_user_s_files_before_any_work(tmp_path, capsys, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("my own notes")
    (mine / "wordsim.csv").write_text("mine")
    import bench.eval.diagnostics

    monkeypatch.setattr(bench.eval.diagnostics, "gradient_flow_table", lambda *a, **k: pytest.fail("trained"))
    expected = (f"--out {mine}: the folder holds files and is not an output folder of lm-lineage (no matrix.json, "
                f"report.md or gradient_flow.csv of its own); use a new or empty folder")
    assert _refused(capsys, tmp_path, "report", "--results", str(QUICK), "--out", str(mine)) == expected
    assert _refused(capsys, tmp_path, "gradient-flow", "--seeds", "1", "--out", str(mine)) == expected


def test_gates_refuses_a_file_of_the_user_s_before_training(tmp_path, capsys, monkeypatch):
    mine = tmp_path / "gates.json"
    mine.write_text('{"my": "numbers"}')
    import bench.run.gates

    monkeypatch.setattr(bench.run.gates, "record_gates", lambda *a, **k: pytest.fail("trained"))
    assert _refused(capsys, tmp_path, "gates", "--seeds", "2", "--out", str(mine)) == (
        f"--out {mine}: the file exists and is not a record of lm-lineage (schema 'lm-lineage.quality-gates/1'); "
        f"use a new file")


def test_a_folder_of_run_folders_is_ours(tmp_path, capsys):
    gathered = tmp_path / "gathered"
    shutil.copytree(QUICK, gathered / "quick")
    (gathered / "quick" / "report.md").unlink()  # ours by its matrix.json alone
    assert main(["report", "--results", str(gathered)]) == 0
    assert (gathered / "report.md").read_text().startswith(outdir.REPORT_HEADING)


# --- the committed results/ ----------------------------------------------------------------

def test_the_committed_results_folder_is_this_checkout_s():
    assert outdir.COMMITTED_RESULTS == ROOT / "results"


def test_report_writes_into_the_committed_results_only_when_out_names_it(tmp_path, capsys, committed):
    assert _refused(capsys, tmp_path, "report", "--results", str(committed)) == (
        f"--results {committed}: {committed.resolve()} is the committed results folder of this checkout, which "
        f"lm-lineage writes only when --out names it; give --out {committed} to update the reference files, "
        f"or another --out")
    assert main(["report", "--results", str(committed), "--out", str(committed)]) == 0
    assert (committed / "report.md").stat().st_mtime_ns > (committed / "quick" / "report.md").stat().st_mtime_ns


def test_gradient_flow_and_gates_defaults_never_land_in_the_committed_results(tmp_path, capsys, committed,
                                                                              monkeypatch):
    import bench.eval.diagnostics
    import bench.run.gates

    monkeypatch.setattr(bench.eval.diagnostics, "gradient_flow_table", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr(bench.run.gates, "record_gates", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.chdir(committed)  # the defaults runs/... are relative: here they fall inside results/
    assert "is the committed results folder" in _refused(capsys, tmp_path, "gradient-flow", "--seeds", "1")
    assert "is the committed results folder" in _refused(capsys, tmp_path, "gates", "--seeds", "2")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench.run.gates, "record_gates",
                        lambda seeds: {"schema": bench.run.gates.SCHEMA, "gates": {}, "seeds": seeds})
    assert main(["gates", "--seeds", "2"]) == 0
    assert json.loads((tmp_path / "runs" / "quality_gates.json").read_text())["seeds"] == [0, 1]


# --- settings --------------------------------------------------------------------------------

@pytest.mark.parametrize("section, key, toml, expected", [
    ("vocab", "max_size", '"abc"', "expected int, got 'abc'"),
    ("vocab", "unk", "5", "expected str, got 5"),
    ("vocab", "unk", '["a"]', "expected str, got ['a']"),
    ("vocab", "eos", "{a=1}", "expected str, got {'a': 1}"),
    ("probe", "layers", '["top"]', "expected a list of int, got ['top']"),
    ("train", "epochs", "1.5", "expected int, got 1.5"),
])
def test_a_setting_of_the_wrong_type_is_one_line_from_a_file_and_from_set(tmp_path, capsys, section, key, toml,
                                                                          expected):
    matrix = tmp_path / "m.toml"
    matrix.write_text(f'models = ["gensim-cbow"]\ncorpora = ["lee"]\n[{section}]\n{key} = {toml}\n')
    out = ["--no-progress", "--out", str(tmp_path / "out")]
    from_file = _refused(capsys, tmp_path, "run", "--matrix", str(matrix), *out)
    from_set = _refused(capsys, tmp_path, "run", "--models", "gensim-cbow", "--set", f"{section}.{key}={toml}", *out)
    assert from_file == f"{matrix}: {section}.{key}: {expected}"
    assert from_set == f"--set {section}.{key}={toml}: {section}.{key}: {expected}"  # one check, one message


@pytest.mark.parametrize("seeds", ["[1, 1, -5]", "[1, 1]", "[-1]", "[]", "0", "[true]"])
def test_seeds_are_distinct_non_negative_integers(tmp_path, capsys, seeds):
    matrix = tmp_path / "m.toml"
    matrix.write_text(f'models = ["gensim-cbow"]\ncorpora = ["lee"]\nseeds = {seeds}\n')
    err = _refused(capsys, tmp_path, "run", "--matrix", str(matrix), "--out", str(tmp_path / "out"))
    assert err.startswith(f"{matrix}: seeds: expected a count >= 1 or a list of distinct non-negative integers, got ")


def test_a_matrix_of_more_than_a_thousand_cells_asks_for_yes(tmp_path, capsys, monkeypatch):
    err = _refused(capsys, tmp_path, "run", "--models", "gensim-cbow,word2vec-sg", "--seeds", "100000",
                   "--out", str(tmp_path / "out"))
    assert err == ("matrix quick: 200,000 cells (2 models x 1 corpora x 100000 seeds), more than 1,000; check its "
                   "seeds and lists, or pass --yes to run them all")
    import bench.run.runner

    ran = []
    monkeypatch.setattr(bench.run.runner, "run_matrix", lambda matrix, *a, **k: ran.append(len(matrix.cells())) or [])
    monkeypatch.setattr("bench.report.render.render", lambda out_dir: out_dir / "report.md")
    assert main(["run", "--models", "gensim-cbow", "--seeds", "1001", "--yes", "--out", str(tmp_path / "out")]) == 0
    assert ran == [1001]


def _config_classes() -> set[type]:
    classes = set(SECTIONS.values())
    for spec in (*MODELS.values(), *KINDS.values()):
        classes.update(cls for cls in (spec.config_cls, spec.train_cls) if cls is not None)
    return classes


@pytest.mark.parametrize("cls", sorted(_config_classes(), key=lambda cls: cls.__qualname__),
                         ids=lambda cls: cls.__qualname__)
def test_every_config_field_s_annotation_is_checked_and_fits_its_default(cls):
    """A new field whose annotation the check cannot read fails here, not on a user's run."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        assert describe(hints[field.name])  # raises nothing, names a type
        if field.default is not dataclasses.MISSING:
            assert conform(hints[field.name], field.default) == field.default, field.name


def test_a_valid_setting_is_conformed_to_its_field():
    matrix = load_matrix("elmo", ["model.elmo.filters=[[1, 8], [2, 8]]", "vocab.max_size=100"])
    assert matrix.model_config("elmo").filters == ((1, 8), (2, 8))  # TOML lists to the annotated tuples
    assert matrix.vocab.max_size == 100


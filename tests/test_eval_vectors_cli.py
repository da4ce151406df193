"""eval-vectors: row names (NAME=PATH, folders for repeated stems), --tasks, --no-reference,
the reference row scored once per machine, and rows that claim no training corpus or seed."""
import functools
import json

import numpy as np
import pandas as pd
import pytest
from gensim.models import KeyedVectors

import bench.models.baselines
import bench.run.executors
from bench.cli import main
from bench.errors import BenchError
from bench.run.config import vectors_names

VECTORS = "3 2\nking 1 0\nqueen 0.9 0.1\ncar 0 1\n"


def test_rows_are_named_by_stem_by_folder_where_stems_repeat_or_as_given():
    saved = ["runs/q/models/w2v__lee__seed0/vectors.bin", "runs/q/models/glove__lee__seed0/vectors.bin"]
    assert vectors_names([*saved, "other.txt", "mine=x/vectors.bin"], "eval-vectors") == [
        ("w2v__lee__seed0", saved[0]), ("glove__lee__seed0", saved[1]), ("other", "other.txt"),
        ("mine", "x/vectors.bin")]


@pytest.mark.parametrize("flag", ["eval-vectors", "--vectors"])
def test_two_rows_of_one_name_are_refused_naming_the_arguments_used(flag):
    with pytest.raises(BenchError, match=rf"^{flag} vectors=x.txt and a/vectors.bin: both rows would be named "
                                         r"'vectors'; expected distinct names: name them NAME=PATH$"):
        vectors_names(["vectors=x.txt", "a/vectors.bin"], flag)


def test_run_names_the_flag_it_was_given(tmp_path, capsys):
    (tmp_path / "x.txt").write_text(VECTORS)
    code = main(["run", "--matrix", "quick", "--models", "glove-6b-50d", "--vectors",
                 f"{tmp_path}/x.txt,x={tmp_path}/x.txt", "--out", str(tmp_path / "out")])
    assert code == 2
    assert f"--vectors {tmp_path}/x.txt and x={tmp_path}/x.txt: both rows would be named 'x'" in capsys.readouterr().err


def test_tasks_and_no_reference_score_only_what_was_asked(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)  # gensim's two similarity sets
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "vectors.txt").write_text(VECTORS)
    out = tmp_path / "out"
    assert main(["eval-vectors", f"{tmp_path}/a/vectors.txt", f"{tmp_path}/b/vectors.txt", "--tasks", "similarity",
                 "--no-reference", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert [line.split()[0] for line in printed.splitlines()[2:4]] == ["a", "b"]
    assert "glove-6b-50d" not in printed and "analogies" not in printed.splitlines()[1]
    assert sorted(path.name for path in (out / "cells").glob("*.json")) == ["a__lee__seed0.json", "b__lee__seed0.json"]
    frame = pd.read_csv(out / "eval_vectors.csv")
    assert list(frame.columns) == ["model", "task", "benchmark", "score", "metric", "items", "covered", "coverage"]
    assert set(frame["task"]) == {"similarity"} and set(frame["benchmark"]) == {"WS-353-ALL", "SIMLEX-999"}
    # king, queen and car: WS-353 has the pairs king-queen and car-... (only king-queen is covered)
    assert frame.set_index(["model", "benchmark"]).loc[("a", "WS-353-ALL"), "covered"] == 1
    cell = json.loads((out / "cells" / "a__lee__seed0.json").read_text())
    assert cell["metrics"]["analogy"] == [] and "eval_analogy" not in cell["timings"]


def test_unknown_task_is_one_line(tmp_path, capsys):
    assert main(["eval-vectors", "x.txt", "--tasks", "similarity,parsing", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == ("lm-lineage: error: --tasks similarity,parsing: unknown parsing; expected "
                                       "some of similarity, analogy\n")
    assert not (tmp_path / "o").exists()


def test_the_reference_row_is_scored_once_then_read_from_the_cache(tmp_path, capsys, monkeypatch):
    """A small stand-in for the 400k GloVe vectors, counted; the cells run in this process so
    the stand-in is the one read."""
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    loads = []

    def small_glove():
        loads.append(1)
        kv = KeyedVectors(2)
        kv.add_vectors(["king", "queen", "man", "woman"], np.eye(4, 2, dtype=np.float32) + 0.1)
        return kv

    monkeypatch.setattr(bench.models.baselines, "load_glove_6b_50d", small_glove)
    monkeypatch.setattr(bench.run.executors, "LocalExecutor",
                        functools.partial(bench.run.executors.LocalExecutor, isolate=False))
    (tmp_path / "mine.txt").write_text(VECTORS)
    first, second = tmp_path / "first", tmp_path / "second"
    for out in (first, second):
        assert main(["eval-vectors", str(tmp_path / "mine.txt"), "--tasks", "similarity", "--out", str(out),
                     "--no-progress"]) == 0, capsys.readouterr().err
    assert len(loads) == 1
    cell = "cells/glove-6b-50d__lee__seed0.json"
    assert json.loads((second / cell).read_text()) == json.loads((first / cell).read_text())
    assert "glove-6b-50d" in capsys.readouterr().out

"""The command line: bad input gives one line, exit code 2 and no files; a small run writes
results of the fixed schema and the tables."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from bench.cli import main
from bench.errors import BenchError
from bench.run.config import load_matrix
from bench.run.results import SCHEMA
from tests.conftest import write_corpus


def _fails_cleanly(capsys, out_dir, *argv):
    code = main(["run", "--out", str(out_dir), "--no-progress", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("lm-lineage: error: ")
    assert not out_dir.exists(), "a failed run must not write anything"
    return err


def test_unknown_corpus_model_matrix_and_keys(tmp_path, capsys):
    out = tmp_path / "out"
    assert "unknown corpus 'nope'" in _fails_cleanly(capsys, out, "--corpus", "nope")
    assert "unknown model 'bert'" in _fails_cleanly(capsys, out, "--models", "bert")
    assert "unknown matrix 'huge'" in _fails_cleanly(capsys, out, "--matrix", "huge")
    assert "unknown key(s) colour" in _fails_cleanly(capsys, out, "--set", "vocab.colour=1")
    assert "epochz" in _fails_cleanly(capsys, out, "--set", "train.epochz=1")
    assert "expected int" in _fails_cleanly(capsys, out, "--set", "vocab.min_count=abc")
    matrix = tmp_path / "m.toml"
    matrix.write_text('models = ["gensim-cbow"]\ncorpora = ["lee"]\ncolour = "red"\n')
    assert "unknown key(s) colour" in _fails_cleanly(capsys, out, "--matrix", str(matrix))


def test_missing_data_root_and_empty_corpus(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    out = tmp_path / "out"
    assert "data root" in _fails_cleanly(capsys, out, "--corpus", "brown")
    assert "is not a folder" in _fails_cleanly(capsys, out, "--data-dir", str(tmp_path / "missing"))
    empty = write_corpus(tmp_path / "empty", "\n")
    assert "split 'train' is empty" in _fails_cleanly(capsys, out, "--corpus", str(empty))


@pytest.mark.parametrize("line, expected", [("cat\tdog\n", "3 tab-separated"), ("cat\tdog\thigh\n", "score")])
def test_bad_similarity_file(tmp_path, capsys, line, expected):
    root = tmp_path / "root"
    (root / "wordsim").mkdir(parents=True)
    (root / "wordsim" / "EN-BAD.txt").write_text("car\tautomobile\t3.9\n" + line)
    err = _fails_cleanly(capsys, tmp_path / "out", "--data-dir", str(root))
    assert "EN-BAD.txt:2" in err


def test_cuda_without_gpu_is_refused(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert "CUDA was requested" in _fails_cleanly(capsys, tmp_path / "out", "--device", "cuda")


def test_unknown_device_precision_and_executor_are_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert "expected auto, cpu, cuda or cuda:N" in _fails_cleanly(capsys, out, "--device", "tpu")
    assert "expected auto, cpu, cuda or cuda:N" in _fails_cleanly(capsys, out, "--device", "mps")
    assert "expected fp32 or bf16" in _fails_cleanly(capsys, out, "--precision", "fp16")
    assert "--executor 'dask': expected local or ray" in _fails_cleanly(capsys, out, "--executor", "dask")
    assert "need --executor ray" in _fails_cleanly(capsys, out, "--ray-address", "localhost:6379")


def test_bf16_on_cpu_is_refused(tmp_path, capsys):
    err = _fails_cleanly(capsys, tmp_path / "out", "--device", "cpu", "--precision", "bf16")
    assert "bfloat16 autocast is for CUDA devices and this run's device is cpu" in err


def _files(folder):
    return {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in folder.rglob("*") if path.is_file()}


OUR_MATRIX = json.dumps({"matrix": {"name": "quick"}, "command": "lm-lineage run"})


@pytest.mark.parametrize("files, expected", [
    ({"matrix.json": OUR_MATRIX,
      "cells/word2vec-cbow__lee__seed0.json": json.dumps({"schema": "lm-lineage.result/0", "status": "ok"})},
     ["cells/word2vec-cbow__lee__seed0.json: schema 'lm-lineage.result/0', expected 'lm-lineage.result/2'",
      "`run --force` moves it aside"]),
    ({"matrix.json": OUR_MATRIX, "cells/gensim-cbow__lee__seed0.json": "{half a file"},
     ["cells/gensim-cbow__lee__seed0.json: not a valid JSON result", "`run --force` moves it aside"]),
    ({"matrix.json": json.dumps(["quick"])}, ["not a matrix file of lm-lineage", "use another --out"]),
    ({"report.md": "my own notes", "wordsim.csv": "mine"}, ["is not an output folder of lm-lineage (no matrix.json, report.md or gradient_flow.csv"]),
])
def test_out_folder_that_is_not_ours_or_holds_unreadable_cells_is_refused(tmp_path, capsys, files, expected):
    out = tmp_path / "out"
    for name, text in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    before = _files(out)
    assert main(["run", "--out", str(out), "--no-progress", "--models", "gensim-cbow"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(part in err for part in expected), err
    assert _files(out) == before, "nothing may be written or overwritten"


def test_report_refuses_other_schema(tmp_path, capsys):
    (tmp_path / "old.json").write_text(json.dumps({"schema": "something/0"}))
    assert main(["report", "--results", str(tmp_path), "--out", str(tmp_path / "report")]) == 2
    assert "expected 'lm-lineage.result/2'" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


def test_exit_code_and_one_line_from_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--corpus", "nope", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]


def test_layered_config_resolution():
    matrix = load_matrix("quick", ["train.epochs=3", "model.gensim-sg.workers=1"], models=["word2vec-sg", "gensim-sg"])
    ours, theirs = matrix.model_config("word2vec-sg"), matrix.model_config("gensim-sg")
    assert (ours.arch, ours.epochs, ours.window) == ("sg", 3, 5)  # preset < [train] < --set
    assert (theirs.sg, theirs.epochs, theirs.workers) == (True, 3, 1)
    with pytest.raises(BenchError, match=r"^--set model.bert.batch_size=8: unknown model 'bert'"):
        load_matrix("quick", ["model.bert.batch_size=8"], models=["gensim-sg"])
    assert load_matrix("quick", models=["gensim-sg"]).model_overrides == {}  # quick's CBOW override unused


def test_shared_train_alpha_is_word2vecs_learning_rate_not_gloves_exponent():
    matrix = load_matrix("quick", models=["word2vec-sg", "glove"])  # quick's [train] alpha = 0.025
    assert matrix.model_config("word2vec-sg").alpha == 0.025
    assert matrix.model_config("glove").alpha == 0.75  # the paper's exponent, untouched by [train]
    assert load_matrix("quick", ["model.glove.alpha=0.5"], models=["glove"]).model_config("glove").alpha == 0.5


def test_every_shipped_matrix_loads():
    from bench.models.registry import MODELS
    from bench.run.config import MATRIX_DIR

    matrices = {path.stem: load_matrix(path.stem) for path in MATRIX_DIR.glob("*.toml")}
    assert {"quick", "standard-vectors", "standard-all", "brown-lm", "gpu-full"} <= set(matrices)
    standard_all = matrices["standard-all"]
    assert set(standard_all.models) == {name for name, spec in MODELS.items() if spec.family == "embedding"}
    assert standard_all.corpora == ["offline-mix"]
    assert standard_all.model_config("glove").alpha == 0.75  # its weighting exponent, not [train]'s learning rate
    gpu_full = matrices["gpu-full"]
    assert gpu_full.corpora == ["wikitext-2", "wikitext-103", "text8", "ptb"]
    assert set(gpu_full.models) >= set(standard_all.models) | set(matrices["brown-lm"].models)


def test_list_names_everything(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("word2vec-sg", "gensim-fasttext", "offline-mix", "wikitext-2", "quick", "spearman"):
        assert name in out


@pytest.mark.slow
def test_small_run_writes_schema_and_tables_then_resumes(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)  # the embedded default: gensim's two sets
    out = tmp_path / "run"
    argv = ["run", "--models", "word2vec-cbow,gensim-cbow", "--set", "train.epochs=2", "--out", str(out),
            "--no-progress", "--in-process", "--data-dir", str(write_corpus(tmp_path / "root", "x\n").parent)]
    # a data root without wordsim/ is a clear error, not a silent fallback
    assert main(argv) == 2 and "wordsim" in capsys.readouterr().err
    argv = argv[:-2]
    assert main(argv) == 0
    cells = sorted((out / "cells").glob("*.json"))
    assert [c.name for c in cells] == ["gensim-cbow__lee__seed0.json", "word2vec-cbow__lee__seed0.json"]
    result = json.loads(cells[1].read_text())
    assert result["schema"] == SCHEMA and result["status"] == "ok"
    for key in ("metrics", "config", "dataset", "seed", "device", "versions", "git_commit", "timings"):
        assert key in result
    assert result["config"]["model"]["epochs"] == 2 and result["config"]["vocab"]["min_count"] == 2
    assert result["config"]["precision"] == "fp32" and result["device"]["precision"] == "fp32"
    assert result["dataset"]["sha256"] and result["dataset"]["vocab_size"] > 1000
    assert result["timings"]["train"]["tokens_per_s"] > 0
    wordsim = pd.read_csv(out / "wordsim.csv")
    assert set(wordsim["benchmark"]) == {"WS-353-ALL", "SIMLEX-999"}
    assert set(pd.read_csv(out / "analogy.csv")["section"]) == {"semantic", "syntactic", "total"}
    assert set(pd.read_csv(out / "throughput.csv")["phase"]) >= {"train", "eval_similarity", "eval_analogy"}
    assert "Ours against gensim" in (out / "report.md").read_text()
    stamps = [c.stat().st_mtime_ns for c in cells]
    assert main(argv) == 0  # finished cells are skipped, not redone
    assert [c.stat().st_mtime_ns for c in cells] == stamps


@pytest.mark.slow
def test_same_seed_same_cpu_gives_identical_metrics(tmp_path, monkeypatch):
    # Ours on one thread: with two, its Hogwild threads (like gensim's workers) interleave
    # their updates differently from run to run; one thread is reproducible.
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    # --device cpu: on a machine with a GPU the default device is CUDA, whose kernels need not repeat.
    argv = ["run", "--models", "word2vec-cbow,word2vec-sg", "--set", "train.epochs=2", "--no-progress", "--in-process",
            "--set", "model.word2vec-cbow.threads=1", "--set", "model.word2vec-sg.threads=1", "--device", "cpu"]
    runs = [tmp_path / "a", tmp_path / "b"]
    for out in runs:
        assert main([*argv, "--out", str(out)]) == 0
    for cell in ("word2vec-cbow__lee__seed0.json", "word2vec-sg__lee__seed0.json"):
        first, second = (json.loads((out / "cells" / cell).read_text())["metrics"] for out in runs)
        assert first == second


def test_gradient_flow_table_shows_the_vanishing_gradient(tmp_path, capsys):
    assert main(["gradient-flow", "--out", str(tmp_path), "--seeds", "1"]) == 0
    table = pd.read_csv(tmp_path / "gradient_flow.csv")
    assert list(table.columns) == ["model", "k", "grad_norm", "seed"]
    assert sorted(table["k"].unique()) == list(range(1, 51))
    far = table[table["k"] == 50].set_index("model")["grad_norm"]
    assert far["rnn"] < 1e-3 * far["lstm"]
    assert (tmp_path / "gradient_flow.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

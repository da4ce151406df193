"""The closing table of a run (bench.report.summary) and `--quiet`."""
import math

import pandas as pd

from bench.cli import main
from bench.report import summary


def _frames(**rows) -> dict[str, pd.DataFrame]:
    columns = {
        "wordsim": ["model", "corpus", "seed", "benchmark", "pairs", "oov_pairs", "spearman"],
        "analogy": ["model", "corpus", "seed", "method", "section", "accuracy"],
        "perplexity": ["model", "corpus", "seed", "split", "perplexity"],
    }
    return {name: pd.DataFrame(rows.get(name, []), columns=cols) for name, cols in columns.items()}


def test_main_scores_are_means_over_sets_then_seeds():
    frames = _frames(
        wordsim=[("w2v", "lee", 0, "A", 30, 0, 0.2), ("w2v", "lee", 0, "B", 30, 0, 0.4),
                 ("w2v", "lee", 1, "A", 30, 0, 0.6), ("w2v", "lee", 1, "B", 30, 0, 0.8),
                 ("w2v", "lee", 0, "TINY", 30, 25, 0.9)],  # 5 pairs covered: below 20, left out
        analogy=[("w2v", "lee", 0, "3cosadd", "total", 0.1), ("w2v", "lee", 1, "3cosadd", "total", 0.3),
                 ("w2v", "lee", 0, "3cosmul", "total", 0.9), ("w2v", "lee", 0, "3cosadd", "semantic", 0.9)],
        perplexity=[("kn3", "lee", 0, "test", 60.0), ("kn3", "lee", 0, "validation", 1.0)])
    table = summary.summary(frames, min_pairs=20).set_index("model")
    assert table.loc["w2v", "similarity rho"] == 0.5  # (0.3 + 0.7) / 2
    assert table.loc["w2v", "sets"] == 2 and table.loc["w2v", "seeds"] == 2
    assert math.isclose(table.loc["w2v", "analogy 3cosadd"], 0.2)
    assert table.loc["kn3", "test perplexity"] == 60.0 and math.isnan(table.loc["kn3", "similarity rho"])
    text = summary.render(table.reset_index()).splitlines()
    assert text[0].split() == ["model", "corpus", "similarity", "rho", "sets", "analogy", "3cosadd", "test",
                               "perplexity", "seeds"]
    assert text[1].split() == ["w2v", "lee", "0.500", "2", "20.0%", "–", "2"]
    assert text[2].split() == ["kn3", "lee", "–", "–", "–", "60.0", "1"]


def test_nothing_scored_says_so():
    assert summary.render(summary.summary(_frames(), 20)) == "no scores (every cell failed or none ran)"


def test_a_run_ends_with_the_table_then_the_paths_and_quiet_leaves_only_the_paths(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    argv = ["run", "--matrix", "quick", "--models", "gensim-cbow", "--set", "train.epochs=1", "--set",
            "train.vector_size=8", "--in-process", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("main scores") and lines[1].split()[:3] == ["model", "corpus", "similarity"]
    assert lines[2].split()[:2] == ["gensim-cbow", "lee"] and lines[3].startswith("results: ")
    assert main([*argv, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert [line.split(":")[0] for line in capsys.readouterr().out.splitlines()] == ["results"]

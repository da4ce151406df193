"""The report's similarity tables: own coverage against like for like, on a hand-computed example.

Three models score one 24-pair set with different coverage. Pair i has gold score i and, in a
model that covers it, cosine i/100 except where the model swaps two pairs' cosines, so every
Spearman ρ follows from 1 - 6 Σd² / (n (n² - 1)) by hand. Last, the committed results re-render
to the committed tables, number for number.
"""

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gensim.models import KeyedVectors
from scipy import stats

from bench.cli import main
from bench.eval.metrics import SimilaritySet, evaluate_similarity, pair_scores
from bench.report.sections import MIN_SCORED_PAIRS, like_for_like, own_coverage, spearman_table
from bench.report.tables import tables, write_csvs
from bench.run.results import load_results

PAIRS = 24
SET = SimilaritySet("TOY-24", "toy", [(f"a{i}", f"b{i}", float(i)) for i in range(PAIRS)])
# A model's cosine of pair i: the cosine of b_i's angle to a_i = (1, 0).
MODELS = {
    # lacks pair 22; swaps pairs 0 and 1 (Σd² = 2)
    "alpha": {"missing": {22}, "swaps": [(0, 1)]},
    # lacks pair 23; swaps 2 and 3, and 4 and 5 (Σd² = 4)
    "beta": {"missing": {23}, "swaps": [(2, 3), (4, 5)]},
    # covers every pair; swaps 0 and 21 (Σd² = 2 · 21²)
    "gamma": {"missing": set(), "swaps": [(0, 21)]},
}


def _vectors(missing: set[int], swaps: list[tuple[int, int]]) -> KeyedVectors:
    cosines = [i / 100 for i in range(PAIRS)]
    for i, j in swaps:
        cosines[i], cosines[j] = cosines[j], cosines[i]
    kv = KeyedVectors(vector_size=2)
    words = [f"a{i}" for i in range(PAIRS)] + [f"b{i}" for i in range(PAIRS) if i not in missing]
    rows = [(1.0, 0.0)] * PAIRS + [(c, math.sqrt(1 - c * c)) for i, c in enumerate(cosines) if i not in missing]
    kv.add_vectors(words, np.array(rows, dtype=np.float32))
    return kv


def _result(model: str, row: dict) -> dict:
    """A result as `tables` reads it: the cell, its status and its word-similarity rows."""
    return {"cell": {"model": model, "corpus": "toy", "seed": 0, "matrix": "m"}, "status": "ok",
            "metrics": {"wordsim": [row]}, "timings": {}}


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return tables([_result(model, evaluate_similarity(_vectors(**spec), SET)) for model, spec in MODELS.items()])


def _rho(n: int, squared_rank_differences: float) -> float:
    return 1 - 6 * squared_rank_differences / (n * (n * n - 1))


def test_intersection_spearman_by_hand(frames):
    shared, notes = like_for_like(frames["pair_scores"])
    assert notes == []
    # alpha lacks pair 22 and beta pair 23: all three cover pairs 0..21, 22 pairs.
    assert set(shared["scored"]) == {22}
    rho = dict(zip(shared["model"], shared["spearman"]))
    assert rho["alpha"] == pytest.approx(_rho(22, 2), abs=1e-12)  # 0.998871
    assert rho["beta"] == pytest.approx(_rho(22, 4), abs=1e-12)  # 0.997741
    assert rho["gamma"] == pytest.approx(_rho(22, 2 * 21 ** 2), abs=1e-12)  # 0.501976


def test_own_coverage_scores_each_model_on_its_own_pairs(frames):
    own = own_coverage(frames["wordsim"])
    rho = dict(zip(own["model"], own["spearman"]))
    assert dict(zip(own["model"], own["scored"])) == {"alpha": 23, "beta": 23, "gamma": 24}
    assert rho["alpha"] == pytest.approx(_rho(23, 2), abs=1e-12)  # pairs 0..21 and 23
    assert rho["gamma"] == pytest.approx(_rho(24, 2 * 21 ** 2), abs=1e-12)


def test_stored_pair_scores_give_back_the_rows_own_spearman(frames):
    row = evaluate_similarity(_vectors(**MODELS["alpha"]), SET)
    gold, cosine = pair_scores(row)
    assert gold.tolist() == list(range(PAIRS)) and np.isnan(cosine[22]) and cosine[1] == pytest.approx(0.0)
    covered = ~np.isnan(cosine)
    assert stats.spearmanr(gold[covered], cosine[covered]).statistic == pytest.approx(row["spearman"], abs=1e-12)


def test_tables_show_pair_counts_in_headers_and_a_dash_below_the_minimum(frames):
    shared, _ = like_for_like(frames["pair_scores"])
    table = spearman_table(shared, {"TOY-24": 22})
    assert list(table.columns) == ["model", "seeds", "TOY-24 (22)"]
    assert table["TOY-24 (22)"].tolist() == [f"{_rho(22, 2):.3f}", f"{_rho(22, 4):.3f}", f"{_rho(22, 882):.3f}"]
    # Coverage below MIN_SCORED_PAIRS: "–" and the count, never a correlation, in both tables.
    few = MIN_SCORED_PAIRS - 1
    small = SimilaritySet("TOY-SMALL", "toy", SET.pairs[:few + 1])
    sparse = tables([_result("alpha", evaluate_similarity(_vectors(**MODELS["alpha"]), small)),
                     _result("gamma", evaluate_similarity(_vectors({0}, []), small))])
    shared, _ = like_for_like(sparse["pair_scores"])
    assert set(shared["scored"]) == {few} and shared["spearman"].isna().all()
    assert spearman_table(shared, {"TOY-SMALL": few})[f"TOY-SMALL ({few})"].tolist() == [f"– ({few})"] * 2
    own = spearman_table(own_coverage(sparse["wordsim"]), {"TOY-SMALL": few + 1})
    assert own[f"TOY-SMALL ({few + 1})"].tolist() == [f"{_rho(few + 1, 2):.3f}", f"– ({few})"]


def test_cells_without_pair_scores_are_named_not_guessed(frames):
    old = frames["pair_scores"].copy()
    old.loc[old["model"] == "beta", "scores"] = None  # a result written before rows kept per-pair scores
    shared, notes = like_for_like(old)
    assert shared.empty
    assert notes == ["every set: the results of `beta` (seed 0) hold no per-pair scores (written before result "
                     "rows kept them; re-running those cells with `--force` adds them)"]


RESULTS = Path(__file__).resolve().parents[1] / "results"
TABLES = ("wordsim", "analogy", "perplexity", "throughput", "pos_probe")


def test_rerendering_the_committed_results_leaves_their_tables_unchanged(tmp_path):
    # The report's code may change how it shows numbers, never the numbers its tables hold. The
    # CSVs of every committed result as `render` writes them, without its hundred-odd figures
    # (most of a whole render's time); the test below renders a committed folder whole.
    write_csvs(tables(load_results(RESULTS)), tmp_path)
    for name in TABLES:
        committed, rendered = pd.read_csv(RESULTS / f"{name}.csv"), pd.read_csv(tmp_path / f"{name}.csv")
        shared = [column for column in committed.columns if column in rendered.columns]
        assert len(shared) >= 5, (name, shared)
        pd.testing.assert_frame_equal(committed[shared], rendered[shared], obj=f"{name}.csv")


def test_environment_names_every_command_that_made_the_cells(tmp_path):
    # standard-all's word2vec and minilm cells were re-run with --models ... --force, which
    # rewrote matrix.json; the report must still name the command behind the other cells.
    folder = RESULTS / "standard-all"
    cells = sorted((folder / "cells").glob("*.json"))
    commands = {json.loads(path.read_text())["command"] for path in cells}
    assert len(commands) >= 2
    assert main(["report", "--results", str(folder), "--out", str(tmp_path)]) == 0
    environment = (tmp_path / "report.md").read_text().split("## Environment")[1]
    listed = re.findall(r"^- matrix `standard-all`: `(.*)` \((\d+) cells?\)$", environment, flags=re.M)
    assert {command for command, _ in listed} == commands
    assert sum(int(count) for _, count in listed) == len(cells)

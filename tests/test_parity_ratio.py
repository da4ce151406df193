"""The parity table's speed row: ours / gensim training tokens/s as the median of per-seed
ratios of interleaved runs, on hand-made results whose load swings between seeds.

Seed 0 ran on a quiet machine, seed 1 while something else took half of it, seed 2 in
between: each seed's pair shares its load, so the per-seed ratios are 0.8, 0.8 and 0.9
(median 0.80, range 0.80-0.90), while a ratio of means over seeds would read
(1000 + 400 + 900) / (1250 + 500 + 1000) = 0.836.
"""

import pandas as pd
import pytest

from bench.errors import BenchError
from bench.report.studies import SPEED_TARGET, interleaved_speed_ratio, parity_section
from bench.report.tables import tables

TOKENS_PER_S = {  # (model, seed) -> training tokens/s
    ("word2vec-cbow", 0): 1000.0, ("gensim-cbow", 0): 1250.0,
    ("word2vec-cbow", 1): 400.0, ("gensim-cbow", 1): 500.0,
    ("word2vec-cbow", 2): 900.0, ("gensim-cbow", 2): 1000.0,
    ("word2vec-cbow", 3): 5000.0,  # gensim's seed 3 did not run: no pair, left out
}


def result(model: str, seed: int, tokens_per_s: float, matrix: str = "m", corpus: str = "toy",
           started: str | None = None) -> dict:
    """One cell's result as the runner writes it, reduced to what the report's tables read."""
    return {
        **({"started": started} if started else {}),
        "cell": {"model": model, "corpus": corpus, "seed": seed, "matrix": matrix},
        "status": "ok",
        "metrics": {"wordsim": [{"benchmark": "WS-353-ALL", "pairs": 353, "oov_pairs": 0,
                                 "spearman": 0.60, "pearson": 0.60}]},
        "timings": {"train": {"device": "cpu", "tokens_per_s": tokens_per_s, "wall_s": 1.0, "peak_rss_mb": 100.0}},
    }


def train_rows(results: list[dict]) -> pd.DataFrame:
    throughput = tables(results)["throughput"]
    return throughput[throughput["phase"] == "train"]


def test_median_and_range_of_per_seed_ratios():
    results = [result(model, seed, value) for (model, seed), value in TOKENS_PER_S.items()]
    speed = interleaved_speed_ratio(train_rows(results), "word2vec-cbow", "gensim-cbow")
    assert speed["pairs"] == 3
    assert speed["median"] == pytest.approx(0.8) and speed["min"] == pytest.approx(0.8)
    assert speed["max"] == pytest.approx(0.9)
    # each side's median over the three paired seeds (seed 3's 5000 is not one of them)
    assert speed["ours_tokens_per_s"] == 900.0 and speed["gensim_tokens_per_s"] == 1000.0


def test_pairs_stay_within_their_matrix():
    """Two matrices in one folder both have a seed 0: each ours run pairs with its own matrix's gensim."""
    results = [result("word2vec-cbow", 0, 1000.0, "a"), result("gensim-cbow", 0, 2000.0, "a"),
               result("word2vec-cbow", 0, 3000.0, "b"), result("gensim-cbow", 0, 1000.0, "b")]
    speed = interleaved_speed_ratio(train_rows(results), "word2vec-cbow", "gensim-cbow")
    assert (speed["pairs"], speed["min"], speed["max"], speed["median"]) == (2, 0.5, 3.0, 1.75)


def test_no_pair_and_duplicate_timings():
    lone = [result("word2vec-cbow", 0, 1000.0), result("gensim-cbow", 1, 1000.0)]
    assert interleaved_speed_ratio(train_rows(lone), "word2vec-cbow", "gensim-cbow") is None
    twice = train_rows([result("word2vec-cbow", 0, 1000.0), result("gensim-cbow", 0, 1000.0)])
    twice = pd.concat([twice, twice.iloc[:1]])
    with pytest.raises(BenchError, match="word2vec-cbow: two training timings for matrix m, corpus toy, seed 0"):
        interleaved_speed_ratio(twice, "word2vec-cbow", "gensim-cbow")


def test_parity_table_reports_the_median_ratio_its_range_and_pairs():
    results = [result(model, seed, value) for (model, seed), value in TOKENS_PER_S.items()]
    frames = tables(results)
    blocks = parity_section(frames["wordsim"], frames["throughput"])
    table = next(block for block in blocks if isinstance(block, pd.DataFrame))
    speed = table[table["measure"] == "train tokens/s"].iloc[0]
    assert speed["difference"] == "0.80× (0.80–0.90, 3 seed pairs)"
    assert (speed["ours value"], speed["gensim value"]) == ("900", "1,000")
    assert speed["met"] == ("yes" if 0.8 >= SPEED_TARGET else "no")
    assert any(isinstance(block, str) and "median over seeds" in block for block in blocks)


def test_a_pair_re_run_hours_later_is_left_out_and_named():
    """Seed 0's cells ran 10 minutes apart; seed 1's ours cell was re-run (--models ... --force)
    five hours after its gensim cell: its ratio would compare two different machine loads."""
    results = [result("word2vec-cbow", 0, 1000.0, started="2026-11-30T10:10:00+0000"),
               result("gensim-cbow", 0, 1250.0, started="2026-11-30T10:00:00+0000"),
               result("word2vec-cbow", 1, 300.0, started="2026-11-30T15:00:00+0000"),
               result("gensim-cbow", 1, 1000.0, started="2026-11-30T10:05:00+0000")]
    speed = interleaved_speed_ratio(train_rows(results), "word2vec-cbow", "gensim-cbow")
    assert (speed["pairs"], speed["apart"], speed["median"]) == (1, 1, pytest.approx(0.8))
    frames = tables(results)
    table = next(b for b in parity_section(frames["wordsim"], frames["throughput"]) if isinstance(b, pd.DataFrame))
    row = table[table["measure"] == "train tokens/s"].iloc[0]
    assert row["difference"] == "0.80× (0.80–0.80, 1 seed pair; 1 pair made over an hour apart left out)"


def test_no_interleaved_pair_gives_no_ratio_and_no_verdict():
    results = [result("word2vec-cbow", 0, 3000.0, started="2026-11-30T15:00:00+0000"),
               result("gensim-cbow", 0, 1000.0, started="2026-11-25T03:00:00+0000")]
    assert interleaved_speed_ratio(train_rows(results), "word2vec-cbow", "gensim-cbow") == {"pairs": 0, "apart": 1}
    frames = tables(results)
    table = next(b for b in parity_section(frames["wordsim"], frames["throughput"]) if isinstance(b, pd.DataFrame))
    row = table[table["measure"] == "train tokens/s"].iloc[0]
    assert (row["difference"], row["met"], row["ours value"]) == (
        "no interleaved pair; 1 pair made over an hour apart left out", "–", "–")

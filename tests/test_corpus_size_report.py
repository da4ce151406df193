"""The corpus-size study's report section (claim 4): the SG − CBOW table and three figures, from hand-made rows."""

from pathlib import Path

import pandas as pd

from bench.report import claims, corpus_size
from bench.report.markup import Figure, anchor
from bench.report.tables import tables

RESULTS = Path(__file__).resolve().parents[1] / "results"
SIZES = (250_000, 4_000_000)


def _cell(model: str, size: int, seed: int, rho: float) -> dict:
    """A corpus-size cell of `model` on the first `size` tokens: ρ on every set the study reads,
    its analogy sections and a train timing (skip-gram trains at a third of CBOW's speed)."""
    wordsim = [{"benchmark": name, "pairs": 100, "oov_pairs": 0, "spearman": rho, "pearson": rho}
               for name in corpus_size.SIZE_BENCHMARKS]
    analogy = [{"method": "3cosadd", "section": section, "questions": 100, "oov_questions": 100 - size // 100_000,
                "accuracy": rho / 2} for section in ("semantic", "syntactic", "total")]
    speed = 1e5 if model.endswith("-sg") else 3e5
    return {"cell": {"model": model, "corpus": f"offline-mix@{size}", "seed": seed, "matrix": corpus_size.MATRIX},
            "status": "ok", "metrics": {"wordsim": wordsim, "analogy": analogy},
            "dataset": {"first_tokens": size, "splits": {"train": {"tokens": size}}},
            "timings": {"train": {"device": "cpu", "wall_s": 5 * size / speed, "tokens": 5 * size,
                                  "tokens_per_s": speed, "peak_rss_mb": 400.0 + size / 1e4}}}


def _results(small_gap: float, large_gap: float) -> list[dict]:
    """Two seeds of the four models at both sizes; SG − CBOW ρ is `small_gap` on the small
    prefix and `large_gap` on the large one (ours; gensim's is 0.01 more), seed 1 at +0.02."""
    cells = []
    for seed in (0, 1):
        for size, gap in zip(SIZES, (small_gap, large_gap)):
            for implementation, extra in (("word2vec", 0.0), ("gensim", 0.01)):
                cbow = 0.2 + seed * 0.02
                cells += [_cell(f"{implementation}-cbow", size, seed, cbow),
                          _cell(f"{implementation}-sg", size, seed, cbow + gap + extra)]
    return cells


def test_the_section_shows_skipgram_against_cbow_per_size_and_three_figures():
    results = _results(-0.05, 0.03)
    blocks = corpus_size.section(results, tables(results))
    assert blocks[0] == f"## {corpus_size.HEADING}"
    table = next(block for block in blocks if isinstance(block, pd.DataFrame))
    assert list(table["prefix (first N tokens)"]) == ["250,000", "4,000,000"]
    assert list(table["SG − CBOW, ours"]) == ["-0.050 ± 0.000", "+0.030 ± 0.000"]
    assert list(table["SG − CBOW, gensim"]) == ["-0.040 ± 0.000", "+0.040 ± 0.000"]
    assert list(table["word2vec-cbow ρ"]) == ["0.210 ± 0.014"] * 2
    figures = [block for block in blocks if isinstance(block, Figure)]
    assert [figure.alt for figure in figures] == [f"{alt}, offline-mix" for alt in (
        corpus_size.SIMILARITY_FIGURE, corpus_size.ANALOGY_FIGURE, corpus_size.COST_FIGURE)]
    assert all(figure.png and figure.png.startswith(b"\x89PNG\r\n\x1a\n") for figure in figures)
    assert "2 of 100 at 0.25M tokens, 40 at 4M" in " ".join(b for b in blocks if isinstance(b, str))


def test_each_figure_counts_where_skipgram_is_ahead():
    results = _results(-0.05, 0.03)
    frames = tables(results)
    wordsim = corpus_size.sized(frames["wordsim"], results)
    values = wordsim.assign(panel=wordsim["benchmark"], value=wordsim["spearman"])
    # 4 sets x 2 sizes x 2 implementations: skip-gram behind on the small prefix, ahead on the large.
    assert corpus_size.skipgram_ahead(values) == (8, 16)
    train = corpus_size.sized(frames["throughput"], results)
    speed = train.assign(panel="speed", value=-train["tokens_per_s"])
    assert corpus_size.skipgram_ahead(speed) == (4, 4)  # skip-gram the slower everywhere
    assert corpus_size.skipgram_ahead(values[values["model"].str.endswith("-cbow")]) == (0, 0)  # nothing to compare


def test_no_corpus_size_cells_no_section():
    results = [dict(cell, cell={**cell["cell"], "matrix": "standard-vectors"}) for cell in _results(0.1, 0.1)]
    assert corpus_size.section(results, tables(results)) == []


def test_the_ledger_links_claim_4_to_the_section_the_committed_corpus_size_report_holds():
    check = next(claim for claim in claims.CLAIMS if claim.id == 4).checks[0]
    assert (check.section, check.figure) == (corpus_size.HEADING, corpus_size.SIMILARITY_FIGURE)
    report = (RESULTS / corpus_size.MATRIX / "report.md").read_text()
    assert f"\n## {corpus_size.HEADING}\n" in report
    assert f"[CBOW against skip-gram by corpus size]({anchor(corpus_size.HEADING)})" in report

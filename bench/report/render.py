"""The report, rendered from result files only (never edited by hand): `render(results_dir, out_dir)`.

It writes the CSV tables (`bench.report.tables`: one row per cell and seed), then `report.md`
(the same aggregated over seeds, mean ± sd) and `report.html` (the same sections and tables plus
the figures of `bench.report.figures` and its probe and gradient siblings, embedded, so the one
file can be mailed or archived).
`results_dir` may be one matrix's output or a folder of several (every `*.json` result below it
is read), with the gradient flow's `gradient_flow.csv` at its top level.

The report, in order: the claims ledger, a table of contents, the studies' targets on word
vectors (`bench.report.studies`), the generic sections of each result table
(`bench.report.sections`), the probes, the studies on ELMo's biLMs and the environment;
`bench.report.markup` writes the blocks as Markdown and HTML.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.eval.metrics import TABLES
from bench.report import corpus_size, sections, studies
from bench.report.claims import claims_section
from bench.report.markup import Block, contents, to_html, to_markdown
from bench.report.tables import (
    CLIPPING,
    GRADIENT_FLOW,
    GRADIENT_REGIMES,
    label_corpora_by_matrix,
    read_diagnostic,
    tables,
    write_csvs,
)
from bench.report.verdicts import Rows
from bench.run.results import load_results, write_text_atomic

# The registered metrics whose tables have sections of their own (above and in `render`); every
# other metric's table gets `sections.metric_section`.
OWN_SECTIONS = frozenset({"wordsim", "analogy", "perplexity", "pos_probe", "wsd_probe"})


def _result_sections(results: list[dict], frames: dict[str, pd.DataFrame], size_study: list[Block]) -> list[Block]:
    """The sections drawn from the result files; a required one with no input says what makes it.
    `size_study`: the corpus-size study's section (bench.report.corpus_size), after the analogies."""
    blocks: list[Block] = []
    if frames["wordsim"].empty:
        blocks += sections.absent(TABLES["wordsim"].title, "No word-similarity results in this folder: run a "
                                                           "word-vector matrix, e.g. `lm-lineage run --matrix "
                                                           "standard-vectors --out DIR`.")
    else:
        blocks += studies.parity_section(frames["wordsim"], frames["throughput"])
        blocks += studies.glove_against_skipgram_section(results)
        blocks += sections.wordsim_section(frames["wordsim"], frames["pair_scores"])
    if not frames["analogy"].empty:
        blocks += sections.analogy_section(frames["analogy"])
    blocks += size_study
    blocks += studies.analogy_speed_section(results)
    if frames["perplexity"].empty:
        blocks += sections.absent(TABLES["perplexity"].title, "No perplexity results in this folder: run a "
                                                              "language-model matrix, e.g. `lm-lineage run --matrix "
                                                              "brown-lm --out DIR`.")
    else:
        blocks += sections.perplexity_section(frames["perplexity"], frames["throughput"])
    if frames["throughput"].empty:
        blocks += sections.absent("Cost", "No timings in this folder (no cell finished): run a matrix with "
                                          "`lm-lineage run --matrix NAME --out DIR`.")
    else:
        blocks += sections.throughput_section(frames["throughput"]) + sections.quality_cost_section(frames)
    for name, table in TABLES.items():  # a metric added as one module is reported by the generic section
        if name not in OWN_SECTIONS:
            blocks += sections.metric_section(table, frames[name])
    if not frames["failed"].empty:
        blocks += ["## Failed cells", "", frames["failed"], ""]
    return blocks


def claim_rows(results_dir: Path, results: list[dict], frames: dict[str, pd.DataFrame]) -> Rows:
    """What the claims ledger reads: the results, their tables (corpora not yet labelled by
    matrix) and the gradient diagnostics under `results_dir`."""
    return Rows(results, frames, read_diagnostic(results_dir, GRADIENT_FLOW),
                read_diagnostic(results_dir, GRADIENT_REGIMES), read_diagnostic(results_dir, CLIPPING))


def render(results_dir: Path, out_dir: Path | None = None) -> Path:
    """Write the CSV tables, report.md and report.html for every result under `results_dir`."""
    out_dir = out_dir or results_dir
    results = load_results(results_dir)
    frames = tables(results)
    flow = read_diagnostic(results_dir, GRADIENT_FLOW)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csvs(frames, out_dir)
    blocks: list[Block] = ["# lm-lineage report", "",
              f"Rendered from {len(results)} result files in `{results_dir}` by `lm-lineage report`.", ""]
    blocks += claims_section(claim_rows(results_dir, results, frames))  # the claims ledger opens the report
    trained_probes = studies.probes_against_training(frames, results)  # joined on the unlabelled corpus names
    size_study = corpus_size.section(results, frames)  # so is this
    frames = label_corpora_by_matrix(frames)  # the CSVs above keep corpus and matrix apart
    body = _result_sections(results, frames, size_study)
    body += sections.gradient_flow_section(flow) + sections.layer_probe_section(frames["pos_probe"])
    body += sections.wsd_probe_section(frames["wsd_probe"], frames["pos_probe"])
    body += studies.scalar_mix_section(frames["scalar_mix"])
    body += studies.training_tokens_section(trained_probes)
    body += sections.environment_section(results)
    blocks += contents(body) + body  # after the ledger, which stays the first screen
    report = out_dir / "report.md"
    write_text_atomic(report, to_markdown(blocks))
    write_text_atomic(out_dir / "report.html", to_html(blocks))
    return report

"""The corpus-size study (claim 4: CBOW suits smaller corpora, skip-gram larger ones): its rows,
report section and figures.

The `corpus-size` matrix trains ours and gensim's CBOW and skip-gram on prefixes of one corpus
(`NAME@N`: its first N train tokens, bench.data.datasets.corpus_prefix), several seeds each. The
claim is about how the gap between the two architectures moves with the corpus' size, so every
figure puts the training tokens on a log x axis and draws the four models as two colours
(architecture) times two line styles (implementation): a reader compares a colour against the
other at each size. The claims ledger (bench.report.claims) reads the same rows for its verdict
and links to this section.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import pandas as pd
from matplotlib.figure import Figure as MplFigure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from bench.report.figures import _log_ticks, _png
from bench.report.markup import Block, Figure, mean_sd, plural

MATRIX = "corpus-size"
# The similarity sets the study reads (RW: rare words, which a small corpus sees least), with
# the names a reader knows them by.
SIZE_BENCHMARKS = {"WS-353-ALL": "WS-353", "SIMLEX-999": "SimLex-999", "MEN-TR-3k": "MEN",
                   "RW-STANFORD": "RW (rare words)"}
SG_CBOW_PAIRS = (("word2vec-sg", "word2vec-cbow"), ("gensim-sg", "gensim-cbow"))
ANALOGY_METHOD = "3cosadd"

HEADING = "CBOW against skip-gram by corpus size (mean ± sd over seeds)"
SIMILARITY_FIGURE = "Spearman ρ per similarity set against training tokens, CBOW and skip-gram"
ANALOGY_FIGURE = "Google analogy accuracy, semantic and syntactic, against training tokens"
COST_FIGURE = "training tokens/s and peak memory against training tokens"
SPEED, MEMORY = "training speed", "peak memory"  # the cost figure's panels


class _Style(NamedTuple):
    architecture: str  # "CBOW" | "skip-gram": the colour
    implementation: str  # "ours" | "gensim": the line style and marker


_STYLES = {"word2vec-cbow": _Style("CBOW", "ours"), "word2vec-sg": _Style("skip-gram", "ours"),
           "gensim-cbow": _Style("CBOW", "gensim"), "gensim-sg": _Style("skip-gram", "gensim")}
_COLORS = {"CBOW": "#4c72b0", "skip-gram": "#dd8452"}
_LINES: dict[str, tuple[Literal["-", "--"], str]] = {"ours": ("-", "o"), "gensim": ("--", "s")}  # style, marker
# Each implementation's points sit this factor left or right of their size, so the error bars
# of the two at one size do not hide each other on the log axis.
_DODGE = {"ours": 0.96, "gensim": 1.04}


def corpus_sizes(cells: list[dict]) -> pd.DataFrame:
    """model, corpus, seed, matrix and size (the `NAME@N` prefix's N tokens) of cells that read a
    corpus prefix (bench.data.datasets.corpus_prefix)."""
    return pd.DataFrame([{**{k: r["cell"][k] for k in ("model", "corpus", "seed", "matrix")},
                          "size": r["dataset"]["first_tokens"]}
                         for r in cells if r["dataset"].get("first_tokens")],
                        columns=["model", "corpus", "seed", "matrix", "size"])


def sized(frame: pd.DataFrame, results: list[dict]) -> pd.DataFrame:
    """The study's rows of one table (corpora not yet labelled by matrix) with each cell's prefix
    size, for the four models it compares."""
    cells = [r for r in results if r["status"] == "ok" and r["cell"]["matrix"] == MATRIX
             and r["cell"]["model"] in _STYLES]
    keys = ["model", "corpus", "seed", "matrix"]
    return frame[frame["matrix"] == MATRIX].merge(corpus_sizes(cells), on=keys)


def _tokens(size: float) -> str:
    return f"{size / 1e6:g}M"


def skipgram_ahead(values: pd.DataFrame) -> tuple[int, int]:
    """In how many of the (panel, size, implementation) means skip-gram is above CBOW, of how
    many that have both; (0, 0) without such a pair. `values`: panel, model, size, value rows
    (one per seed)."""
    means = values.groupby(["panel", "size", "model"])["value"].mean().unstack("model")
    gaps = [(means[sg] - means[cbow]).dropna() for sg, cbow in SG_CBOW_PAIRS if {sg, cbow} <= set(means)]
    ahead = [gap > 0 for gap in gaps if not gap.empty]
    return (int(sum(part.sum() for part in ahead)), sum(len(part) for part in ahead)) if ahead else (0, 0)


def _message(values: pd.DataFrame, what: str, sign: int = 1) -> str:
    """The figure's one point: `what` (a sentence with the count k and total n left to
    format) over skip-gram's lead on `sign` times the values, or a sentence that nothing compares."""
    ahead, means = skipgram_ahead(values.assign(value=sign * values["value"]))
    return what.format(k=ahead, n=means) if means else "no skip-gram and CBOW pair to compare"


class _Axis(NamedTuple):
    label: str  # the y axis' label
    log: bool = False  # a log y axis


def _panels(values: pd.DataFrame, axes_of: dict[str, _Axis], title: str, message: str) -> bytes | None:
    """One panel per `panel` of `values` (panel, model, size, value; one row per seed), in the
    order of `axes_of` (panel -> its y axis), two a row: each model's mean ± sd over seeds
    against the prefix size (log x), the four models in one legend under the panels. `title`
    names the matrix and corpus, `message` is the figure's one point."""
    values = values.dropna(subset=["value"])
    panels = [panel for panel in axes_of if panel in set(values["panel"])]
    if not panels:
        return None
    columns = min(2, len(panels))
    rows = -(-len(panels) // columns)
    sizes = sorted(values["size"].unique())
    figure = MplFigure(figsize=(4.0 * columns, 2.8 * rows + 1.3))
    grid = figure.subplots(rows, columns, sharex=True, squeeze=False)
    for axes, panel in zip(grid.flat, panels):
        # (model, size) x (mean, std) over seeds
        stats = values[values["panel"] == panel].groupby(["model", "size"])["value"].agg(["mean", "std"])
        for model, style in _STYLES.items():
            if model not in stats.index.get_level_values("model"):
                continue
            curve = stats.loc[model]
            line, marker = _LINES[style.implementation]
            axes.errorbar(curve.index * _DODGE[style.implementation], curve["mean"], yerr=curve["std"].fillna(0),
                          color=_COLORS[style.architecture], linestyle=line, marker=marker, markersize=4,
                          capsize=2, linewidth=1.2)
        axes.set_xscale("log")
        axes.set_xticks(sizes, [_tokens(size) for size in sizes], fontsize=8)
        axes.xaxis.set_minor_locator(NullLocator())
        if axes_of[panel].log:
            axes.set_yscale("log")
            _log_ticks(axes.yaxis)
        axes.tick_params(axis="y", labelsize=8)
        axes.set_title(panel, fontsize=9)
        axes.set_ylabel(axes_of[panel].label, fontsize=8)
        axes.grid(alpha=0.3)
    for axes in grid.flat[len(panels):]:
        axes.set_visible(False)
    for axes in grid[-1]:
        axes.set_xlabel("training tokens (corpus prefix; log)", fontsize=8)
    handles = [Line2D([], [], color=_COLORS[style.architecture], linestyle=_LINES[style.implementation][0],
                      marker=_LINES[style.implementation][1], markersize=4,
                      label=f"{style.architecture}, {style.implementation} ({model})")
               for model, style in _STYLES.items() if model in set(values["model"])]
    figure.legend(handles=handles, loc="lower center", ncol=2, fontsize=7, frameon=False)
    figure.suptitle(f"{title}\n{message}", fontsize=10)
    return _png(figure, rect=(0, 0.45 / figure.get_figheight(), 1, 1))


def similarity_figure(wordsim: pd.DataFrame, corpus: str) -> bytes | None:
    """Spearman ρ per set (a panel each) against the prefix size. `wordsim`: `sized` rows."""
    rows = wordsim[wordsim["benchmark"].isin(SIZE_BENCHMARKS)]
    values = pd.DataFrame({"panel": rows["benchmark"].map(SIZE_BENCHMARKS), "model": rows["model"],
                           "size": rows["size"], "value": rows["spearman"]})
    return _panels(values, {name: _Axis("Spearman ρ") for name in SIZE_BENCHMARKS.values()},
                   f"Word similarity against corpus size: matrix {MATRIX}, {corpus} prefixes",
                   _message(values, "skip-gram above CBOW in {k} of {n} set × size × implementation means"))


def analogy_figure(analogy: pd.DataFrame, corpus: str) -> bytes | None:
    """3CosAdd accuracy over the answered Google analogies, a panel per section (semantic,
    syntactic), against the prefix size. `analogy`: `sized` rows."""
    rows = analogy[analogy["method"] == ANALOGY_METHOD]
    values = pd.DataFrame({"panel": rows["section"], "model": rows["model"], "size": rows["size"],
                           "value": rows["accuracy"] * 100})
    values = values[values["panel"].isin(["semantic", "syntactic"])]
    return _panels(values, {section: _Axis("3CosAdd accuracy, answered (%)") for section in ("semantic", "syntactic")},
                   f"Google analogies against corpus size: matrix {MATRIX}, {corpus} prefixes",
                   _message(values, "skip-gram above CBOW in {k} of {n} section × size × implementation means"))


def cost_figure(train: pd.DataFrame, corpus: str) -> bytes | None:
    """Training tokens/s (log y) and peak memory against the prefix size: how cost grows with
    the work. `train`: `sized` throughput rows of the train phase."""
    values = pd.concat([pd.DataFrame({"panel": panel, "model": train["model"], "size": train["size"],
                                      "value": train[column]})
                        for panel, column in ((SPEED, "tokens_per_s"), (MEMORY, "peak_mem_mb"))], ignore_index=True)
    speed = values[values["panel"] == SPEED]
    return _panels(values, {SPEED: _Axis("train tokens/s (log)", log=True),
                            MEMORY: _Axis("peak resident memory (MiB)")},
                   f"Training cost against corpus size: matrix {MATRIX}, {corpus} prefixes",
                   _message(speed, "skip-gram trains fewer tokens/s than CBOW in {k} of {n} size × implementation "
                                   "means", sign=-1))


def _gap_table(wordsim: pd.DataFrame) -> pd.DataFrame:
    """One row per prefix size: each model's mean ρ over the study's sets and each
    implementation's SG − CBOW, mean ± sd over seeds."""
    per_seed = wordsim[wordsim["benchmark"].isin(SIZE_BENCHMARKS)].groupby(
        ["size", "seed", "model"])["spearman"].mean().unstack("model")  # (size, seed) x model
    rows = []
    for size, seeds in per_seed.groupby(level="size"):
        row = {"prefix (first N tokens)": f"{size:,}", "seeds": len(seeds)}
        row |= {f"{model} ρ": mean_sd(seeds[model], 3) for model in _STYLES if model in seeds}
        row |= {f"SG − CBOW, {_STYLES[sg].implementation}": _signed(seeds[sg] - seeds[cbow])
                for sg, cbow in SG_CBOW_PAIRS if {sg, cbow} <= set(seeds)}
        rows.append(row)
    return pd.DataFrame(rows)


def _signed(gaps: pd.Series) -> str:
    """A difference over seeds as `+0.044 ± 0.002`: its sign is the point."""
    text = mean_sd(gaps, 3)
    return text if text.startswith(("-", "–")) else f"+{text}"


def _answered(analogy: pd.DataFrame) -> str:
    """How many Google analogies the smallest and the largest prefix's vocabulary can answer."""
    total = analogy[(analogy["section"] == "total") & (analogy["method"] == ANALOGY_METHOD)]
    if total.empty:
        return ""
    answered = (total["questions"] - total["oov_questions"]).groupby(total["size"]).mean()
    questions = int(total["questions"].max())
    low, high = answered.index.min(), answered.index.max()
    return (f"The analogy accuracies are over the questions a prefix's vocabulary can answer: "
            f"{answered[low]:,.0f} of {questions:,} at {_tokens(low)} tokens, {answered[high]:,.0f} at "
            f"{_tokens(high)}; ")


def section(results: list[dict], frames: dict[str, pd.DataFrame]) -> list[Block]:
    """The study's section: the SG − CBOW table and the three figures per corpus whose prefixes
    it trained on; nothing when the results hold no `corpus-size` cells. `frames`: the tables of
    bench.report.tables.tables, corpora not yet labelled by matrix (the cells' corpus names)."""
    wordsim = sized(frames["wordsim"], results)
    if wordsim.empty:
        return []
    analogy = sized(frames["analogy"], results)
    throughput = sized(frames["throughput"], results)
    train = throughput[throughput["phase"] == "train"]
    lines: list[Block] = [
        f"## {HEADING}", "",
        f"Claim 4 of the note: CBOW suits smaller corpora, skip-gram larger ones. Matrix `{MATRIX}` trains ours and "
        f"gensim's CBOW and skip-gram on the first N tokens of one corpus, the same settings at every size. The "
        f"table gives each model's mean Spearman ρ over {', '.join(SIZE_BENCHMARKS.values())} and skip-gram's lead "
        f"over CBOW per implementation; the claims ledger's verdict reads the sign of that lead at the smallest and "
        f"the largest size.", ""]
    base_corpus = wordsim["corpus"].str.replace(r"@\d+$", "", regex=True)
    for corpus, rows in wordsim.groupby(base_corpus, sort=False):
        cells = rows[["model", "corpus", "seed"]].drop_duplicates()
        of_corpus = {name: frame.merge(cells, on=["model", "corpus", "seed"]) for name, frame in
                     (("analogy", analogy), ("train", train))}
        caption = f"matrix `{MATRIX}`, prefixes of `{corpus}`"
        lines += [f"### prefixes of `{corpus}` ({plural(rows['seed'].nunique(), 'seed')})", "", _gap_table(rows), "",
                  Figure(similarity_figure(rows, corpus), f"{SIMILARITY_FIGURE}, {corpus}", caption),
                  Figure(analogy_figure(of_corpus["analogy"], corpus), f"{ANALOGY_FIGURE}, {corpus}", caption),
                  _answered(of_corpus["analogy"]) + "a small prefix's accuracy rests on few questions.", "",
                  Figure(cost_figure(of_corpus["train"], corpus), f"{COST_FIGURE}, {corpus}", caption),
                  "Tokens/s counts the tokens trained on (all epochs) per wall second; peak memory is the training "
                  "process' resident set, the interpreter and libraries included. The seeds ran on a shared "
                  "machine, so the spread of tokens/s is mostly its load.", ""]
    return lines

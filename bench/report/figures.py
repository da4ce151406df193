"""The report's figures: one function per figure, pandas frames in, PNG bytes out.

Inputs are the frames `bench.report.render.tables()` builds (and the gradient_flow.csv /
pos_probe.csv frames; `quality_vs_cost` takes the table `quality_and_cost` joins from them);
each function returns None when its frame holds nothing to plot, so a report never shows
an empty image. Figures are drawn on matplotlib's Agg canvas
directly (no pyplot): no display, no global figure state, safe in any process.
"""

from __future__ import annotations

import io
from typing import Callable, NamedTuple

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator, NullFormatter

# Small on purpose: report.html embeds every figure, and should stay a few hundred KB.
SIZE_IN = (7.0, 4.0)
WIDE_IN = (9.0, 4.0)
DPI = 100


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


LabelFormat = Callable[[float, int], str]  # (tick value, position) -> label, as FuncFormatter takes


def _seconds(value: float, _position: int) -> str:
    return f"{value:g} s"  # 0.5 s, 1000 s: engineering prefixes would give 500 ms and 1 ks


def _log_ticks(axis, label_format: LabelFormat | None = None) -> None:
    """Label a log axis (after plotting) with `label_format`, by default engineering prefixes (300 k, 1 M).

    Data within two decades get labels at 1, 2 and 5 times each power of ten, wider data at
    each power only: matplotlib's default labels either crowded minor ticks or too few major ones.
    """
    low, high = axis.get_view_interval()
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if high < 100 * low else (1.0,)))
    axis.set_major_formatter(FuncFormatter(label_format) if label_format else EngFormatter())
    axis.set_minor_formatter(NullFormatter())
    axis.set_tick_params(labelsize=8)  # within one decade the locator falls back to more, closer ticks


def _labelled(frame: pd.DataFrame) -> pd.DataFrame:
    """A `label` column: the model, plus the corpus when the frame holds more than one."""
    several = frame["corpus"].nunique() > 1
    return frame.assign(label=frame["model"] + (" / " + frame["corpus"] if several else ""))


def _grouped_bars(axes, means: pd.DataFrame, sds: pd.DataFrame, ylabel: str) -> None:
    """One group of bars per row of `means` (on x), one bar per column, sd as error bars."""
    width = 0.8 / len(means.columns)
    for i, column in enumerate(means.columns):
        positions = [x + (i - (len(means.columns) - 1) / 2) * width for x in range(len(means))]
        axes.bar(positions, means[column], width, yerr=sds[column].fillna(0), capsize=2, label=str(column))
    axes.set_xticks(range(len(means)), [str(x) for x in means.index], rotation=30, ha="right", fontsize=8)
    axes.set_ylabel(ylabel)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: never over a bar


def _mean_and_sd(frame: pd.DataFrame, rows: str, columns: str, value: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean and sd over seeds of `value`, pivoted rows x columns in order of first appearance."""
    grouped = frame.groupby([rows, columns], sort=False)[value]
    row_order, column_order = list(dict.fromkeys(frame[rows])), list(dict.fromkeys(frame[columns]))
    means = grouped.mean().unstack().reindex(index=row_order, columns=column_order)
    sds = grouped.std(ddof=1).unstack().reindex(index=row_order, columns=column_order)
    return means, sds


def perplexity(frame: pd.DataFrame) -> bytes | None:
    """Validation and test perplexity per model (and corpus), mean ± sd over seeds."""
    frame = frame.dropna(subset=["perplexity"])
    if frame.empty:
        return None
    means, sds = _mean_and_sd(_labelled(frame), "label", "split", "perplexity")
    figure = Figure(figsize=SIZE_IN)
    axes = figure.add_subplot()
    _grouped_bars(axes, means, sds, "perplexity per word (lower is better)")
    axes.set_title("Perplexity per model (mean ± sd over seeds)")
    return _png(figure)


def spearman(wordsim: pd.DataFrame) -> bytes | None:
    """Spearman ρ per similarity set, one bar per model (and corpus), mean ± sd over seeds."""
    wordsim = wordsim.dropna(subset=["spearman"])
    if wordsim.empty:
        return None
    means, sds = _mean_and_sd(_labelled(wordsim), "benchmark", "label", "spearman")
    figure = Figure(figsize=WIDE_IN)
    axes = figure.add_subplot()
    _grouped_bars(axes, means, sds, "Spearman ρ (higher is better)")
    axes.set_title("Word similarity per set (mean ± sd over seeds)")
    return _png(figure)


def _point_labels(points: pd.DataFrame) -> list[str]:
    """Labels for (model, corpus, device)-indexed points: the model, plus corpus and device where they vary."""
    index = points.index.to_frame(index=False)
    varying = [level for level in ("corpus", "device") if index[level].nunique() > 1]
    return [" / ".join(parts) for parts in index[["model", *varying]].itertuples(index=False)]


def _device_kind(devices: pd.Series) -> pd.Series:
    return devices.str.split(":").str[0]  # cuda:1 and cuda are one kind of device


class _Panel(NamedTuple):
    points: pd.DataFrame
    x: str  # columns of `points`
    y: str
    xlabel: str
    ylabel: str
    title: str
    x_format: LabelFormat | None  # the log x axis' labels (None: engineering prefixes)


def _scatter(axes, panel: _Panel) -> None:
    points = panel.points
    axes.scatter(points[panel.x], points[panel.y])
    for label, x, y in zip(_point_labels(points), points[panel.x], points[panel.y]):
        axes.annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes.set_xscale("log")
    _log_ticks(axes.xaxis, panel.x_format)
    axes.set_xlabel(panel.xlabel)
    axes.set_ylabel(panel.ylabel)
    axes.set_title(panel.title, fontsize=10)


def quality_and_cost(wordsim: pd.DataFrame, perplexity: pd.DataFrame, throughput: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, corpus, device) that trained: train tokens/s and wall seconds on that
    device, with the model's mean Spearman over the similarity sets and test perplexity, each a
    mean over seeds (NaN where the model has no such number: an LM has no Spearman, a
    pretrained model no tokens/s). Devices stay apart: a GPU's speed is not a CPU's."""
    cells = ["model", "corpus"]
    train = throughput[throughput["phase"] == "train"]
    cost = train.assign(device=_device_kind(train["device"])).groupby(
        [*cells, "device"], sort=False)[["tokens_per_s", "wall_s"]].mean()
    test = perplexity[perplexity["split"] == "test"]
    quality = pd.concat([wordsim.groupby(cells, sort=False)["spearman"].mean(),
                         test.groupby(cells, sort=False)["perplexity"].mean()], axis=1)
    return cost.join(quality, on=cells)


def quality_vs_cost(table: pd.DataFrame) -> bytes | None:
    """From `quality_and_cost`: word vectors' Spearman against train tokens/s, LMs' test perplexity
    against train seconds; a panel with no points is left out."""
    panels = [
        _Panel(table.dropna(subset=["tokens_per_s", "spearman"]), "tokens_per_s", "spearman", "train tokens/s (log)",
               "mean Spearman ρ over sets", "Word vectors: similarity vs training speed", None),
        _Panel(table.dropna(subset=["wall_s", "perplexity"]), "wall_s", "perplexity", "train wall seconds (log)",
               "test perplexity (lower is better)", "Language models: perplexity vs training time", _seconds),
    ]
    panels = [panel for panel in panels if not panel.points.empty]
    if not panels:
        return None
    figure = Figure(figsize=WIDE_IN if len(panels) == 2 else SIZE_IN)
    for i, panel in enumerate(panels, start=1):
        _scatter(figure.add_subplot(1, len(panels), i), panel)
    return _png(figure)


def throughput_by_device(throughput: pd.DataFrame) -> bytes | None:
    """Train tokens/s per model (and corpus), one bar per device; the title says when only CPU ran."""
    train = throughput[throughput["phase"] == "train"].dropna(subset=["tokens_per_s"])
    if train.empty:
        return None
    train = train.assign(device=_device_kind(train["device"]))
    means, sds = _mean_and_sd(_labelled(train), "label", "device", "tokens_per_s")
    figure = Figure(figsize=SIZE_IN)
    axes = figure.add_subplot()
    _grouped_bars(axes, means, sds, "train tokens/s (log)")
    axes.set_yscale("log")
    _log_ticks(axes.yaxis)
    gpu = any(device != "cpu" for device in means.columns)
    axes.set_title("Training throughput, CPU vs GPU" if gpu
                   else "Training throughput: CPU only (no GPU results in this folder)")
    return _png(figure)


def gradient_flow(frame: pd.DataFrame) -> bytes | None:
    """|d loss_t / d h_(t-k)| against k, log scale, mean over seeds per model."""
    if frame.empty:
        return None
    curves = frame.groupby(["model", "k"], sort=False)["grad_norm"].mean().unstack(level=0)
    figure = Figure(figsize=SIZE_IN)
    axes = figure.add_subplot()
    for model in curves.columns:
        axes.plot(curves.index, curves[model], label=model)
    axes.set_yscale("log")
    axes.set_xlabel("k (steps back)")
    axes.set_ylabel("|d loss_t / d h_(t-k)| (log)")
    axes.set_title(f"Gradient flow (mean over {frame['seed'].nunique()} seed(s))")
    axes.legend()
    return _png(figure)


def layer_probe(frame: pd.DataFrame) -> bytes | None:
    """POS probe accuracy per layer, one line per model (and corpus), mean ± sd over seeds.

    Lines, not bars: accuracies sit close together near the top of the scale, and bars
    starting at zero would hide the differences between layers.
    """
    frame = frame.dropna(subset=["accuracy"])
    if frame.empty:
        return None
    means, sds = _mean_and_sd(_labelled(frame.assign(layer=frame["layer"].astype(str))), "layer", "label",
                              "accuracy")
    figure = Figure(figsize=SIZE_IN)
    axes = figure.add_subplot()
    for label in means.columns:
        axes.errorbar(range(len(means)), means[label] * 100, yerr=sds[label].fillna(0) * 100, marker="o",
                      capsize=3, label=label)
    axes.set_xticks(range(len(means)), list(means.index))
    axes.set_xlabel("layer")
    axes.set_ylabel("POS tagging accuracy (%)")
    axes.set_title("Linear POS probe per layer (mean ± sd over seeds)")
    axes.legend(fontsize=8)
    return _png(figure)

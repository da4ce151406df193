"""The report's figures: one function per figure, pandas frames in, PNG bytes out. This module
holds the machinery every figure shares (size, title, grid, ticks, model styles, the checked
PNG) and the general figures; the layer-probe figures are in `bench.report.probe_figures`, the
gradient ones in `bench.report.gradient_figures`.

Inputs are the frames `bench.report.tables.tables()` builds (`quality_vs_cost` takes the
table `quality_and_cost` joins from them). A figure of one corpus and matrix takes its
title, which names them, from its section; the cost figures take every corpus at once, one
small panel each on one shared scale. Each function returns None when its frame holds
nothing to plot, so a report never shows an empty image. Figures are drawn on matplotlib's Agg canvas directly (no pyplot): no display, no global figure
state, safe in any process. Every figure is checked once drawn (`_unreadable`): a legend
or title past the image's edge, or two labels on top of each other, is an error, not a PNG.
"""

from __future__ import annotations

import io
import itertools
import math
import textwrap
from typing import Callable, NamedTuple

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.patches import Patch
from matplotlib.text import Annotation, Text
from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import Bbox
from PIL import Image

from bench.eval.metrics import METRICS

# Small on purpose: report.html embeds every figure (a combined report has dozens), and
# should stay near a megabyte.
SIZE_IN = (7.0, 4.0)
DPI = 100
# report.html's text column is 75em (1,168 px less its padding): a wider figure would be
# scaled down in the page, and its labels with it.
MAX_WIDTH_IN = 11.5
PNG_COLORS = 128  # a palette PNG is a third of the RGBA one, and these flat plots need few colors
NOT_COMPARABLE = "#b0b0b0"  # the bars of rows whose protocol differs from the others'


def _png(figure: Figure, rect: tuple[float, float, float, float] = (0, 0, 1, 1),
         after_layout: Callable[[RendererBase], None] | None = None) -> bytes:
    """The figure as a quantized PNG, laid out within rect (figure fractions: left, bottom,
    right, top; room outside it is left to figure-level artists such as a legend below).
    `after_layout(renderer)` runs once the layout is final, for what depends on where the
    text landed (`_separate_labels`).

    Raises RuntimeError when the drawn figure cannot be read (`_unreadable`): each figure is
    sized to its data, so a cut legend or overprinted labels are a bug to see, not to ship."""
    canvas = FigureCanvasAgg(figure)
    suptitle = figure.get_suptitle()
    if suptitle:  # tight_layout leaves no room for it over the panels' own titles
        lines = suptitle.count("\n") + 1
        rect = (*rect[:3], min(rect[3], 1 - (0.15 * lines + 0.03) / figure.get_figheight()))
    figure.tight_layout(rect=rect)
    canvas.draw()
    if after_layout is not None:
        after_layout(canvas.get_renderer())
        canvas.draw()
    problems = _unreadable(figure, canvas.get_renderer())
    if problems:
        raise RuntimeError(f"figure {_figure_title(figure)!r}: {'; '.join(problems)}")
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")
    buffer = io.BytesIO()
    image.quantize(PNG_COLORS).save(buffer, format="png", optimize=True)
    return buffer.getvalue()


def _figure_title(figure: Figure) -> str:
    """The suptitle, else the first panel's title: what names the figure in an error."""
    return figure.get_suptitle() or next((axes.get_title() for axes in figure.axes if axes.get_title()),
                                         "(untitled)")


def _unreadable(figure: Figure, renderer: RendererBase) -> list[str]:
    """What makes a drawn figure unreadable: a legend or title reaching past the image's edge
    (it would be cut), two value or point labels of one panel on top of each other, or two
    upright tick labels of one axis overprinting (rotated ones, as the heatmaps', are spaced
    by their rotation: their upright boxes overlap by design)."""
    image = Bbox.from_bounds(0, 0, figure.bbox.width, figure.bbox.height).padded(1)  # display pixels
    framed: list[tuple[str, Text | Legend]] = [("legend", legend) for legend in figure.legends]
    framed += [("title", text) for text in figure.texts]  # the suptitle is one of them
    for axes in figure.axes:
        legend = axes.get_legend()
        if legend is not None:
            framed.append(("legend", legend))
        if axes.get_title():
            framed.append(("title", axes.title))
    problems = []
    for what, artist in framed:
        box = artist.get_window_extent(renderer)
        if not (image.x0 <= box.x0 and box.x1 <= image.x1 and image.y0 <= box.y0 and box.y1 <= image.y1):
            problems.append(f"a {what} reaches past the image's edge")
    clash = _first_overlap([artist for what, artist in framed if isinstance(artist, Text)], renderer)
    if clash:
        problems.append(f"titles {clash[0]!r} and {clash[1]!r} overlap")
    for axes in figure.axes:
        labels = [text for text in axes.texts if text.get_visible() and text.get_text().strip()]
        ticks = [[label for label in axis.get_ticklabels() if label.get_visible() and label.get_text()
                  and label.get_rotation() == 0] for axis in (axes.xaxis, axes.yaxis)]
        for group, what in ((labels, "labels"), (ticks[0], "x tick labels"), (ticks[1], "y tick labels")):
            clash = _first_overlap(group, renderer)
            if clash:
                problems.append(f"{what} {clash[0]!r} and {clash[1]!r} overlap in panel {axes.get_title()!r}")
    return problems


def _first_overlap(texts: list[Text], renderer: RendererBase) -> tuple[str, str] | None:
    """The first two of `texts` whose drawn boxes overlap by more than a pixel each way."""
    boxes = [text.get_window_extent(renderer).padded(-1) for text in texts]
    for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2):
        if a.overlaps(b):
            return texts[i].get_text().strip(), texts[j].get_text().strip()
    return None


def _separate_labels(labels: list[Annotation], renderer: RendererBase) -> None:
    """Move point labels (annotations placed in offset points) apart until no two overlap:
    of two overlapping labels the lower stays and the upper moves up just clear of it."""
    if not labels:
        return
    points_per_px = 72 / labels[0].figure.dpi
    for _ in range(len(labels) ** 2):  # each move clears one pair for good, below the label moved
        boxes = [label.get_window_extent(renderer) for label in labels]
        order = sorted(range(len(labels)), key=lambda i: boxes[i].y0)
        clash = next(((low, high) for low, high in itertools.combinations(order, 2)
                      if boxes[low].padded(-1).overlaps(boxes[high].padded(-1))), None)
        if clash is None:
            return
        low, high = clash
        dx, dy = labels[high].xyann
        labels[high].xyann = (dx, dy + (boxes[low].y1 - boxes[high].y0 + 1) * points_per_px)


def _title(figure: Figure, title: str, fontsize: float = 10) -> None:
    """`title` over the whole figure, wrapped at words to the figure's width."""
    figure.suptitle(_wrapped(title, figure.get_figwidth(), fontsize), fontsize=fontsize)


def _wrapped(text: str, width_in: float, fontsize: float) -> str:
    """`text` in lines that fit `width_in` inches at `fontsize` (a long path breaks anywhere)."""
    characters = int(width_in * 72 / (fontsize * 0.6)) - 4  # a character is ~0.6 em wide
    # A word longer than a line (a corpus given by its path) keeps its two ends: the table beside
    # the figure names it whole, and a title of many lines would push the plot out of the image.
    keep = max(characters, 10) // 2 - 1
    words = [word if len(word) <= 2 * keep + 1 else f"{word[:keep]}…{word[-keep:]}" for word in text.split(" ")]
    return textwrap.fill(" ".join(words), max(characters, 10), break_long_words=True, break_on_hyphens=False)


def _grid(count: int, columns: int) -> tuple[int, int]:
    """(rows, columns) of a grid of `count` panels at most `columns` wide."""
    columns = min(columns, count)
    return math.ceil(count / columns), columns


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


def _value_label(value: float) -> str:
    """Three significant digits with an engineering prefix: 1.57 M, 826 k, 2.41 k, 950."""
    for scale, prefix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if value >= scale:
            return f"{value / scale:.3g}{prefix}"
    return f"{value:.3g}"


def _model_styles(models: list[str]) -> dict[str, tuple]:
    """A (color, marker) per model, distinct within one figure: 10 colors times 4 markers."""
    colors = list(matplotlib.color_sequences["tab10"])
    markers = "osD^"
    return {model: (colors[i % len(colors)], markers[i // len(colors) % len(markers)])
            for i, model in enumerate(models)}


def similarity_heatmap(mean: pd.DataFrame, scored: pd.DataFrame, title: str) -> bytes | None:
    """Models (rows) x similarity sets (columns), each cell's Spearman ρ written in it.

    `mean`: ρ per model and set, NaN where there is none to show; `scored`: the pairs scored
    per cell (same shape), written as "– (n)" where `mean` is NaN. Column labels are shown as
    given (they carry the pair counts)."""
    if mean.empty:
        return None
    values = mean.to_numpy(dtype=float)  # (models, sets)
    width_in = min(MAX_WIDTH_IN, max(6.0, 0.75 * mean.shape[1] + 2.5))
    title = _wrapped(title, width_in, 10)
    # Three rows at least: a colorbar any shorter crowds its tick labels.
    figure = Figure(figsize=(width_in, 0.38 * max(mean.shape[0], 3) + 1.7 + 0.18 * title.count("\n")))
    axes = figure.add_subplot()
    # One fixed scale for every heatmap of the report, so colors compare across corpora.
    image = axes.imshow(np.ma.masked_invalid(values), cmap=matplotlib.colormaps["viridis"].with_extremes(bad="#eeeeee"),
                        vmin=-0.2, vmax=0.8, aspect="auto")
    for (row, column), value in np.ndenumerate(values):
        if np.isnan(value):
            count = scored.iat[row, column]
            text, color = ("–" if pd.isna(count) else f"– ({int(count)})"), "black"
        else:
            text, color = f"{value:.2f}", "black" if value > 0.45 else "white"
        axes.text(column, row, text, ha="center", va="center", fontsize=7, color=color)
    axes.set_xticks(range(mean.shape[1]), [str(c).replace(" (", "\n(") for c in mean.columns], fontsize=7,
                    rotation=45, ha="right", rotation_mode="anchor")
    axes.set_yticks(range(mean.shape[0]), list(mean.index), fontsize=8)
    _title(figure, title)
    figure.colorbar(image, ax=axes, fraction=0.03, pad=0.01).set_label("Spearman ρ", fontsize=8)
    return _png(figure)


def perplexity(frame: pd.DataFrame, title: str, apart: dict[str, str] | None = None) -> bytes | None:
    """Test perplexity per model of one corpus (mean ± sd over seeds; validation as a mark),
    best at the top, with the 5-gram Kneser-Ney baseline (`kn5`) as a reference line.

    `apart`: model -> why its perplexity is not comparable with the others' (a pretrained
    open-vocabulary LM); such a model is drawn grey at the bottom, under a rule, out of the
    ranking, and the legend says why."""
    apart = apart or {}
    frame = frame.dropna(subset=["perplexity"])
    test = frame[frame["split"] == "test"]
    if test.empty:
        return None
    grouped = test.groupby("model", sort=False)["perplexity"]
    means, sds = grouped.mean(), grouped.std(ddof=1).fillna(0)
    ranked = means.drop([model for model in apart if model in means.index]).sort_values(ascending=False)
    means = pd.concat([means[[model for model in means.index if model in apart]], ranked])  # row 0 at the bottom
    validation = frame[frame["split"] == "validation"].groupby("model")["perplexity"].mean()
    figure = Figure(figsize=(8.0, 0.32 * len(means) + 1.6))
    axes = figure.add_subplot()
    rows = range(len(means))
    colors = [NOT_COMPARABLE if model in apart else "#4c72b0" for model in means.index]
    axes.barh(rows, means, xerr=sds[means.index], capsize=2, color=colors)
    axes.scatter(validation.reindex(means.index), rows, marker="|", s=120, color="black", zorder=3,
                 label="validation")
    for row, value in zip(rows, means):
        axes.text(means.max() * 0.01, row, f"{value:.1f}", va="center", fontsize=7, color="white")
    axes.set_yticks(rows, [f"{model} (not comparable)" if model in apart else model for model in means.index],
                    fontsize=8)
    handles = [Patch(color="#4c72b0", label="test"), *axes.get_legend_handles_labels()[0]]  # and validation
    if len(means) > len(ranked) > 0:
        axes.axhline(len(means) - len(ranked) - 0.5, color="grey", linewidth=0.8)
        reasons = "; ".join(dict.fromkeys(apart[model] for model in means.index if model in apart))
        handles.append(Patch(color=NOT_COMPARABLE, label=f"not comparable:\n{reasons}"))
    if "kn5" in ranked.index:
        handles.append(axes.axvline(means["kn5"], color="#c44e52", linestyle="--", linewidth=1,
                                    label=f"KN5 test {means['kn5']:.1f}"))
    axes.set_xlim(0, means.max() * 1.15)
    axes.set_xlabel(f"perplexity per word ({METRICS['word_perplexity'].better})")
    _title(figure, title + ("" if "kn5" in ranked.index else " (no KN5 run here)"))
    axes.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return _png(figure)


def _device_kind(devices: pd.Series) -> pd.Series:
    return devices.str.split(":").str[0]  # cuda:1 and cuda are one kind of device


def _train_speeds(frame: pd.DataFrame) -> pd.DataFrame:
    """The train phase's rows that trained something (a pretrained model's have no tokens/s),
    devices by kind."""
    train = frame[frame["phase"] == "train"].dropna(subset=["tokens_per_s"])
    return train.assign(device=_device_kind(train["device"]))


def throughput(frame: pd.DataFrame, title: str) -> bytes | None:
    """Train tokens/s per model, one panel per corpus (· matrix) in the frame's order, all on
    one log scale: horizontal bars sorted by speed (fastest on top), mean ± sd over seeds, one
    bar per device kind side by side only where GPU rows exist."""
    train = _train_speeds(frame)
    if train.empty:
        return None
    grouped = train.groupby(["corpus", "model", "device"], sort=False)["tokens_per_s"]
    means, sds = grouped.mean(), grouped.std(ddof=1).fillna(0)
    corpora = list(dict.fromkeys(train["corpus"]))
    devices = sorted(set(train["device"]), key=lambda device: device != "cpu")  # CPU first, then GPU kinds
    bar_in = 0.17 * len(devices)  # the height of one model's row
    grid_rows, columns = _grid(len(corpora), 3)
    width_in = MAX_WIDTH_IN if columns == 3 else 4.0 * columns + 3.0
    titles = [_wrapped(corpus, width_in / columns - 1.2, 8) for corpus in corpora]  # 1.2: the model names
    rows = [range(row * columns, min((row + 1) * columns, len(corpora))) for row in range(grid_rows)]
    shown = [max(means[corpora[i]].index.get_level_values("model").nunique() for i in row) for row in rows]
    row_in = [0.4 + 0.14 * max(titles[i].count("\n") + 1 for i in row) + bar_in * models  # every bar as thick
              for row, models in zip(rows, shown)]
    figure = Figure(figsize=(width_in, sum(row_in) + 0.9))
    grid = figure.add_gridspec(grid_rows, columns, height_ratios=row_in)
    first: Axes | None = None
    for index, corpus in enumerate(corpora):
        axes = figure.add_subplot(grid[index // columns, index % columns], sharex=first)
        first = first or axes
        _speed_bars(axes, means[corpus].unstack().reindex(columns=devices),
                    sds[corpus].unstack().reindex(columns=devices), shown[index // columns])
        axes.set_title(titles[index], fontsize=8)
        if index + columns >= len(corpora):  # the lowest panel of its column
            axes.set_xlabel("train tokens/s (log; higher is faster)", fontsize=8)
    assert first is not None
    first.set_xscale("log")
    first.set_xlim(means.min() / 2, means.max() * 8)  # room for the value labels right of the longest bar
    _log_ticks(first.xaxis)
    for axes in figure.axes:
        axes.tick_params(axis="x", labelsize=7)
    if len(devices) > 1:
        first.legend(fontsize=7, loc="lower right")
    _title(figure, title)
    return _png(figure)


def _speed_bars(axes: Axes, means: pd.DataFrame, sds: pd.DataFrame, rows_shown: int) -> None:
    """`means` (models x device kinds, tokens/s) as bars, fastest on top, each labelled with
    its value right of its error bar; the panel has room for `rows_shown` models, the bars
    at its top."""
    order = means.max(axis=1).sort_values().index  # slowest first: barh draws row 0 at the bottom
    height = 0.8 / len(means.columns)
    for i, device in enumerate(means.columns):
        rows = [row + (i - (len(means.columns) - 1) / 2) * height for row in range(len(order))]
        values, errors = means.loc[order, device], sds.loc[order, device].fillna(0)
        axes.barh(rows, values, height, xerr=errors, capsize=2, label=device, error_kw={"elinewidth": 0.8})
        for row, value, sd in zip(rows, values, errors):
            if not pd.isna(value):
                axes.text(value + sd, row, f" {_value_label(value)}", va="center", fontsize=6.5)
    axes.set_yticks(range(len(order)), list(order), fontsize=7)
    axes.set_ylim(len(order) - rows_shown - 0.6, len(order) - 0.4)
    axes.set_xscale("log")


class Measure(NamedTuple):
    """What a quality-against-cost figure plots: columns of `quality_and_cost`'s table."""
    x: str
    y: str
    xlabel: str
    ylabel: str
    x_format: LabelFormat | None  # the log x axis' labels (None: engineering prefixes)


SIMILARITY_AGAINST_SPEED = Measure("tokens_per_s", "spearman", "train tokens/s (log)", "mean Spearman ρ over sets",
                                   None)
PERPLEXITY_AGAINST_TIME = Measure("wall_s", "perplexity", "train wall seconds (log)",
                                  f"test perplexity ({METRICS['word_perplexity'].better})", _seconds)


def quality_and_cost(wordsim: pd.DataFrame, perplexity: pd.DataFrame, throughput: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, corpus, device) that trained: train tokens/s and wall seconds on that
    device, with the model's mean Spearman over the similarity sets and test perplexity, each a
    mean over seeds (NaN where the model has no such number: an LM has no Spearman, a
    pretrained model no tokens/s: its train phase's seconds are the time it took to load).
    Devices stay apart: a GPU's speed is not a CPU's."""
    cells = ["model", "corpus"]
    train = throughput[throughput["phase"] == "train"]
    train = train.assign(device=_device_kind(train["device"]))
    cost = train.groupby([*cells, "device"], sort=False)[["tokens_per_s", "wall_s"]].mean()
    test = perplexity[perplexity["split"] == "test"]
    quality = pd.concat([wordsim.groupby(cells, sort=False)["spearman"].mean(),
                         test.groupby(cells, sort=False)["perplexity"].mean()], axis=1)
    return cost.join(quality, on=cells)


def quality_vs_cost(table: pd.DataFrame, measure: Measure, title: str) -> bytes | None:
    """`quality_and_cost` rows as one scatter panel per corpus (· matrix) holding two points or
    more (one point compares with nothing), x on a log scale, each point named by its model
    (and device where the table has several), hollow on a GPU. Only models with a training
    speed are drawn: a pretrained model trained nothing here, and its seconds are loading's.
    The panels' x axes are their own: a corpus' models are compared with each other, and one
    axis for all would crowd most panels' points into a corner to make room for the slowest."""
    points = table.dropna(subset=["tokens_per_s", measure.x, measure.y])
    corpora = [corpus for corpus, sub in points.groupby("corpus", sort=False) if len(sub) > 1]
    if not corpora:
        return None
    several_devices = points.index.get_level_values("device").nunique() > 1
    grid_rows, columns = _grid(len(corpora), 3)
    figure = Figure(figsize=(MAX_WIDTH_IN if columns == 3 else 3.9 * columns + 0.5, 2.6 * grid_rows + 0.6))
    panel_in = figure.get_figwidth() / columns - 0.6  # less the y tick labels
    labels: list[Annotation] = []
    for index, corpus in enumerate(corpora):
        axes = figure.add_subplot(grid_rows, columns, index + 1)
        own = points.xs(corpus, level="corpus")
        span = (own[measure.x].min() / 2, own[measure.x].max() * 2)  # room for the markers at both ends
        for (model, device), point in own.iterrows():
            x, y = point[measure.x], point[measure.y]
            axes.scatter(x, y, s=30, color="#4c72b0", facecolors="#4c72b0" if device == "cpu" else "none")
            # Names of points in the right third of the axis go left of them, so they stay in the panel.
            right = math.log(x / span[0]) > 0.66 * math.log(span[1] / span[0])
            name = f"{model} ({device})" if several_devices else model
            labels.append(axes.annotate(name, (x, y), xytext=(-5 if right else 5, 0), textcoords="offset points",
                                        ha="right" if right else "left", va="center", fontsize=7))
        axes.margins(y=0.25)
        axes.set_xscale("log")
        axes.set_xlim(*span)
        _log_ticks(axes.xaxis, measure.x_format)
        axes.tick_params(labelsize=7)
        axes.set_title(_wrapped(corpus, panel_in, 8), fontsize=8)
        if index % columns == 0:
            axes.set_ylabel(measure.ylabel, fontsize=7)
        if index + columns >= len(corpora):
            axes.set_xlabel(measure.xlabel, fontsize=8)
    _title(figure, title)
    return _png(figure, after_layout=lambda renderer: _separate_labels(labels, renderer))

"""The report's figures: one function per figure, pandas frames in, PNG bytes out.

Inputs are the frames `bench.report.tables.tables()` builds (and the gradient_flow.csv
frame; `quality_vs_cost` takes the table `quality_and_cost` joins from them). A figure of
one corpus and matrix takes its title, which names them, from its section; the cost figures
take every corpus at once, one small panel each on one shared scale. Each function returns
None when its frame holds nothing to plot, so a report never shows an empty image. Figures
are drawn on matplotlib's Agg canvas directly (no pyplot): no display, no global figure
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
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Annotation, Text
from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator, MaxNLocator, NullFormatter
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
    return textwrap.fill(text, max(characters, 10))


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


def gradient_flow(frame: pd.DataFrame, title: str | None = None) -> bytes | None:
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
    _title(figure, title or f"Gradient flow (mean over {frame['seed'].nunique()} seed(s))")
    axes.legend()
    return _png(figure)


def _is_layer_number(layers: pd.Series) -> pd.Series:
    return layers.astype(str).str.fullmatch(r"\d+")


def layer_probe(frame: pd.DataFrame, title: str) -> bytes | None:
    """POS probe accuracy per layer, one panel per model probed at several layers (a line over
    its numbered layers in order, its other representations, such as the scalar `mix`, as
    points right of them), with the models probed once (static vectors, the per-word
    most-frequent-tag baseline) as dashed reference lines in every panel; mean over seeds.
    Every point is labelled with its value where a panel has ten positions or fewer, else
    only the best layer and the points apart.

    Lines, not bars: accuracies sit close together near the top of the scale, and bars
    starting at zero would hide the differences between layers.
    """
    frame = frame.dropna(subset=["accuracy"])
    if frame.empty:
        return None
    frame = frame.assign(layer=frame["layer"].astype(str))
    means = frame.groupby(["model", "layer"], sort=False)["accuracy"].mean() * 100
    numbered = frame[_is_layer_number(frame["layer"])]
    layered = [model for model, layers in numbered.groupby("model", sort=False)["layer"] if layers.nunique() > 1]
    single = [model for model in dict.fromkeys(frame["model"]) if model not in layered]
    styles = _model_styles([*layered, *single])
    # As tall as the legend of the models probed once needs, 4 inches at least.
    figure = Figure(figsize=(MAX_WIDTH_IN if len(layered) > 1 else 8.0, max(4.0, 0.16 * len(single) + 1.4)))
    first: Axes | None = None
    for index, model in enumerate(layered or [None]):
        axes = figure.add_subplot(1, max(len(layered), 1), index + 1, sharey=first)
        first = first or axes
        if model is not None:
            _layer_curve(axes, means[model], styles[model][0])
            axes.set_title(model, fontsize=9)
        for reference in single:
            value = means[reference].iloc[0]
            axes.axhline(value, color=styles[reference][0], linestyle="--", linewidth=1,
                         label=f"{reference} ({means[reference].index[0]}) {value:.1f}")
        axes.set_xlabel("layer (0 = embeddings)" if model is not None else "")
        axes.tick_params(labelsize=8)
    assert first is not None
    first.set_ylabel("POS tagging accuracy (%)")
    if single:
        figure.axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False,
                               title="probed once", title_fontsize=7)
    _title(figure, title)
    return _png(figure)


def _layer_curve(axes: Axes, means: pd.Series, color) -> None:
    """One model's accuracy per layer (`means`: layer label -> percent): its numbered layers
    as a line in numeric order, the others ("mix", "static") as points past a gap on the right."""
    numbered = means[_is_layer_number(means.index.to_series()).to_numpy()]
    numbered = numbered.sort_index(key=lambda layers: layers.astype(int))
    others = means.drop(numbered.index)
    x = numbered.index.astype(int).to_numpy()
    axes.plot(x, numbered.to_numpy(), marker="o", markersize=4, color=color)
    extra_x = [x.max() + 1.5 + i * max(1.0, x.max() / 12) for i in range(len(others))]
    axes.plot(extra_x, others.to_numpy(), marker="D", linestyle="", color=color)
    few = len(x) + len(others) <= 10
    shown = [(position, value) for position, value in zip(x, numbered) if few or value == numbered.max()]
    for position, value in [*shown, *zip(extra_x, others)]:
        axes.annotate(f"{value:.1f}", (position, value), xytext=(0, 6), textcoords="offset points", ha="center",
                      fontsize=7)
    ticks = [int(t) for t in MaxNLocator(nbins=8, integer=True).tick_values(0, x.max()) if 0 <= t <= x.max()]
    axes.set_xticks([*ticks, *extra_x], [*map(str, ticks), *others.index])
    axes.set_xlim(-0.7, (extra_x[-1] if extra_x else x.max()) + 0.7)
    axes.margins(y=0.12)


def probe_depth(frame: pd.DataFrame, title: str) -> bytes | None:
    """Probe accuracy against relative depth (layer / the model's number of layers), one panel
    per task, one line per model, mean over seeds: do models of different depth put each task
    at the same relative height? `frame`: model, task, layer (numeric strings; "mix" and the
    like are left out), accuracy, seed. A model run by several matrices is labelled
    "model (matrix)": such runs share a family color (thin lines) and one legend entry."""
    frame = frame[_is_layer_number(frame["layer"])].dropna(subset=["accuracy"])
    if frame.empty:
        return None
    frame = frame.assign(layer=frame["layer"].astype(int), family=frame["model"].str.split(" (", regex=False).str[0])
    depth = frame.groupby("model")["layer"].transform("max")  # the model's number of layers (0 = embeddings)
    frame = frame.assign(relative=frame["layer"] / depth.where(depth > 0, 1))
    families = frame.groupby("family", sort=False)["model"].nunique()
    styles = _model_styles(list(families.index))
    tasks = list(dict.fromkeys(frame["task"]))
    grid_rows, columns = _grid(len(tasks), 3)
    figure = Figure(figsize=(MAX_WIDTH_IN if columns == 3 else 4.2 * columns + 2.0,
                             max(3.4 * grid_rows + 0.6, 0.16 * len(families) + 1.4)))  # room for the legend
    for index, task in enumerate(tasks):
        axes = figure.add_subplot(grid_rows, columns, index + 1)
        for (model, family), sub in frame[frame["task"] == task].groupby(["model", "family"], sort=False):
            curve = sub.groupby("relative")["accuracy"].mean() * 100
            color, marker = styles[family]
            alone = families[family] == 1
            axes.plot(curve.index, curve.values, color=color, marker=marker, markersize=3 if alone else 2,
                      linewidth=1.5 if alone else 0.8, alpha=1.0 if alone else 0.6)
        axes.set_title(task, fontsize=9)
        axes.set_xlabel("relative depth (layer / layers)", fontsize=8)
        axes.set_ylabel("probe accuracy (%)", fontsize=8)
        axes.tick_params(labelsize=8)
    handles = [Line2D([], [], color=styles[family][0], marker=styles[family][1], markersize=4,
                      label=family if count == 1 else f"{family} ({count} matrices)")
               for family, count in families.items()]
    figure.axes[-1].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    _title(figure, title)
    return _png(figure)


PROBES_AGAINST_TOKENS_TITLE = ("ELMo's layer probes against the text its biLM read "
                               "(dashes: means per matrix; lines join matrices probed alike)")


def probes_against_tokens(frame: pd.DataFrame) -> bytes | None:
    """Probe accuracy of ELMo's layers against the tokens its biLM read in training: one panel
    per task (POS, WSD by the linear probe), each seed a point (color: layer, marker: matrix,
    named in a legend under the panels with its probe slices); a line per layer joins the
    per-matrix means of the matrices probed on the same slices (probe_train, probe_eval),
    since a probe fit on more instances scores higher whatever the biLM read, and of biLMs of
    the same shape (a wider biLM is another curve, not a later point of this one). The POS
    panel marks the 95% target. `frame`: matrix, seed, biLM, tokens, task, layer, accuracy,
    probe_train, probe_eval."""
    frame = frame.dropna(subset=["accuracy", "tokens"])
    frame = frame[frame["tokens"] > 0]
    tasks = [task for task in ("POS (linear)", "WSD (linear)") if task in set(frame["task"])]
    if not tasks:
        return None
    layers = [layer for layer in ("0", "1", "2", "mix") if layer in set(frame["layer"].astype(str))]
    styles = _model_styles([f"layer {layer}" for layer in layers])
    # The matrices' points crowd one stretch of the tokens axis (four lie within 1.7M-2.9M), too
    # close for names beside them to stay readable, so each matrix gets a marker and a legend line.
    matrices = frame.groupby("matrix")["tokens"].mean().sort_values().index
    markers = dict(zip(matrices, itertools.cycle("os^DvPX*<>")))
    figure = Figure(figsize=(9.0, 5.4))
    for index, task in enumerate(tasks):
        axes = figure.add_subplot(1, len(tasks), index + 1)
        sub = frame[frame["task"] == task]
        curves = sub.groupby(["probe_train", "probe_eval", "biLM"], sort=False)
        for layer in layers:
            color, _ = styles[f"layer {layer}"]
            points = sub[sub["layer"].astype(str) == layer]
            for matrix, own in points.groupby("matrix"):
                axes.scatter(own["tokens"], own["accuracy"] * 100, color=color, marker=markers[matrix], s=16,
                             alpha=0.7)
            for number, (_, alike) in enumerate(curves):
                same = alike[alike["layer"].astype(str) == layer]
                curve = same.groupby("matrix").agg(tokens=("tokens", "mean"), accuracy=("accuracy", "mean"))
                curve = curve.sort_values("tokens")
                # A dash marks each matrix's mean, so a matrix alone on its slices still shows one.
                axes.plot(curve["tokens"], curve["accuracy"] * 100, color=color, marker="_", markersize=14,
                          label=None if number else ("scalar mix" if layer == "mix" else f"layer {layer}"))
        if task.startswith("POS"):
            axes.axhline(95, color="grey", linestyle="--", linewidth=1, label="target 95%")
        axes.set_xscale("log")
        _log_ticks(axes.xaxis)
        axes.set_xlabel("tokens read in training (log scale)")
        axes.set_ylabel(f"{task} accuracy (%)")
        axes.set_title(task, fontsize=9)
        axes.legend(fontsize=7, frameon=False)
    figure.suptitle(PROBES_AGAINST_TOKENS_TITLE, fontsize=10)
    # The matrices under both panels, fewest tokens first, each with its probe slices on the
    # tasks whose panel holds several (a probe fit on more instances scores higher).
    several = [task for task in tasks
               if frame[frame["task"] == task][["probe_train", "probe_eval"]].drop_duplicates().shape[0] > 1]
    named = []
    for matrix in matrices:
        own = frame[frame["matrix"] == matrix]
        slices = [f"{task.split()[0]} {row.probe_train:,.0f} / {row.probe_eval:,.0f}"
                  for task, row in own.groupby("task")[["probe_train", "probe_eval"]].first().iterrows()
                  if task in several]
        label = f"{matrix} ({'; '.join(slices)})" if slices else str(matrix)
        named.append(Line2D([], [], color="dimgrey", marker=markers[matrix], linestyle="", label=label))
    title = "matrix" + (" (probe train / test: POS tokens, WSD instances)" if several else "")
    figure.legend(handles=named, loc="lower center", ncol=2, fontsize=7, frameon=False, title=title, title_fontsize=7)
    rows = (len(named) + 1) // 2 + 1  # the legend's lines, its title included
    return _png(figure, rect=(0, (rows * 0.16 + 0.1) / figure.get_figheight(), 1, 1))


def _regime_label(cell: str, radius: float) -> str:
    return f"Elman RNN, ρ = {radius:g} at init" if cell == "rnn" else {"lstm": "LSTM", "gru": "GRU"}.get(cell, cell)


def gradient_regimes(frame: pd.DataFrame) -> bytes | None:
    """|d loss_t / d h_(t-k)| against k (log), at initialisation and after training side by side:
    the Elman RNN at each recurrent spectral radius (blues, darker = larger), LSTM and GRU
    dashed; geometric mean over seeds. `frame`: `bench.eval.diagnostics.REGIME_COLUMNS` rows."""
    if frame.empty:
        return None
    states = [state for state in ("init", "trained") if state in set(frame["state"])]
    radii = sorted(frame.loc[frame["cell"] == "rnn", "radius"].unique())
    blues = matplotlib.colormaps["Blues"]
    colors = {radius: blues(0.35 + 0.65 * i / max(len(radii) - 1, 1)) for i, radius in enumerate(radii)}
    gated_colors = {"lstm": "#dd8452", "gru": "#55a868"}
    figure = Figure(figsize=(10.0, 4.2))
    shared = None
    for index, state in enumerate(states):
        axes = figure.add_subplot(1, len(states), index + 1, sharey=shared)
        shared = shared or axes
        rows = frame[frame["state"] == state]
        for (cell, radius), curve in rows.groupby(["cell", "radius"], sort=False, dropna=False):
            means = np.exp(np.log(curve["grad_norm"]).groupby(curve["k"]).mean())  # geometric mean over seeds
            style = ({"color": colors[radius]} if cell == "rnn"
                     else {"color": gated_colors.get(cell, "grey"), "linestyle": "--"})
            axes.plot(means.index, means.values, label=_regime_label(cell, radius), **style)
        axes.set_yscale("log")
        axes.set_xlabel("k: steps back")
        axes.set_ylabel("|d loss_t / d h_(t-k)| (log)")
        trained = rows["train_steps"].max()
        axes.set_title("at initialisation" if state == "init" else f"after {trained} training steps on Brown",
                       fontsize=9)
    figure.axes[0].legend(fontsize=7, loc="upper left", frameon=False)
    figure.suptitle("How far back gradients reach: the Elman RNN by recurrent spectral radius ρ, LSTM and GRU "
                    f"(mean over {frame['seed'].nunique()} seed(s))", fontsize=10)
    return _png(figure)


def clipping(frame: pd.DataFrame) -> bytes | None:
    """The Elman RNN's training loss (top) and gradient norm before clipping (bottom, log) per
    step, with and without gradient-norm clipping, one line per run and seed. `frame`:
    `bench.eval.diagnostics.CLIPPING_COLUMNS` rows."""
    if frame.empty:
        return None
    figure = Figure(figsize=(7.0, 5.6))
    loss_axes = figure.add_subplot(2, 1, 1)
    norm_axes = figure.add_subplot(2, 1, 2, sharex=loss_axes)
    colors = {True: "#4c72b0", False: "#c44e52"}
    for (clip, seed), run in frame.groupby(["clip", "seed"]):
        run = run.sort_values("step")
        label: str | None = f"clipped at norm {clip:g}" if clip > 0 else "no clipping"
        label = label if seed == frame["seed"].min() else None  # one legend entry per setting
        loss_axes.plot(run["step"], run["loss"], color=colors[clip > 0], linewidth=1, label=label)
        norm_axes.plot(run["step"], run["grad_norm"], color=colors[clip > 0], linewidth=1)
    start = frame.sort_values("step").groupby(["clip", "seed"])["loss"].first().mean()
    loss_axes.axhline(start, color="grey", linestyle=":", linewidth=1, label=f"loss at step 1 ({start:.2f})")
    loss_axes.set_ylabel("training loss (nats/token)")
    loss_axes.legend(fontsize=7, frameon=False)
    norm_axes.set_yscale("log")
    norm_axes.set_ylabel("gradient norm\nbefore clipping (log)")
    norm_axes.set_xlabel("training step (SGD, truncated BPTT)")
    lr = frame["lr"].iloc[0]
    loss_axes.set_title(f"Elman RNN on Brown, SGD lr {lr:g}: loss and gradient norm with and without clipping",
                        fontsize=10)
    return _png(figure)


def scalar_mix_weights(frame: pd.DataFrame) -> bytes | None:
    """The learned scalar-mix weight of each layer against relative depth, one panel per task
    (POS, WSD), one line per model and mix (solid: plain, dashed: layer-normalised), mean over
    seeds. A weight is drawn as s_l * (number of layers mixed), so 1 is the uniform mix whatever
    the model's depth, and a task whose mix favours higher layers rises to the right.
    `frame`: the report's `scalar_mix` table (model, task, mix, layers, weights, seed, matrix); a
    model run by several matrices gets a line per matrix."""
    if frame.empty:
        return None
    several = frame.groupby("model")["matrix"].transform("nunique") > 1  # a model of several matrices: one line each
    frame = frame.assign(model=frame["model"].where(~several, frame["model"] + " (" + frame["matrix"] + ")"))
    points = pd.DataFrame([{"model": row.model, "task": row.task, "mix": row.mix, "seed": row.seed,
                            "relative": layer / max(max(row.layers), 1), "weight": weight * len(row.layers)}
                           for row in frame.itertuples() for layer, weight in zip(row.layers, row.weights)])
    tasks = list(dict.fromkeys(points["task"]))
    styles = _model_styles(list(dict.fromkeys(points["model"])))
    figure = Figure(figsize=(9.0, 3.6))
    panels = figure.subplots(1, len(tasks), sharey=True, squeeze=False)[0]
    for axes, task in zip(panels, tasks):
        for (model, mix), sub in points[points["task"] == task].groupby(["model", "mix"], sort=False):
            curve = sub.groupby("relative")["weight"].mean()
            color, marker = styles[model]
            axes.plot(curve.index, curve.values, color=color, marker=marker, markersize=3,
                      linestyle="--" if mix.endswith("-ln") else "-", label=f"{model} ({mix})")
        axes.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
        axes.set_title(task, fontsize=10)
        axes.set_xlabel("relative depth (0 = embeddings)")
    panels[0].set_ylabel("weight × layers mixed (1 = uniform)")
    figure.suptitle("Where each task's scalar mix puts its weight (mean over seeds)", fontsize=10)
    panels[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return _png(figure)

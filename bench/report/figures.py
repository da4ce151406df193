"""The report's figures: one function per figure, pandas frames in, PNG bytes out.

Inputs are the frames `bench.report.tables.tables()` builds (and the gradient_flow.csv
frame; `quality_vs_cost` takes the table `quality_and_cost` joins from them),
cut by the report to one corpus and matrix: one set of figures per table, each with few
enough rows to read. Each function returns None when its frame holds nothing to plot, so a
report never shows an empty image. Figures are drawn on matplotlib's Agg canvas directly
(no pyplot): no display, no global figure state, safe in any process.
"""

from __future__ import annotations

import io
import itertools
from typing import Callable, NamedTuple

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter, FuncFormatter, LogLocator, NullFormatter
from PIL import Image

# Small on purpose: report.html embeds every figure (a combined report has dozens), and
# should stay near a megabyte.
SIZE_IN = (7.0, 4.0)
DPI = 100
PNG_COLORS = 128  # a palette PNG is a third of the RGBA one, and these flat plots need few colors


def _png(figure: Figure, rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> bytes:
    """The figure as a quantized PNG, laid out within rect (figure fractions: left, bottom,
    right, top; room outside it is left to figure-level artists such as a legend below)."""
    canvas = FigureCanvasAgg(figure)
    figure.tight_layout(rect=rect)
    canvas.draw()
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")
    buffer = io.BytesIO()
    image.quantize(PNG_COLORS).save(buffer, format="png", optimize=True)
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
    figure = Figure(figsize=(max(6.0, 0.75 * mean.shape[1] + 2.5), 0.38 * mean.shape[0] + 1.9))
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
    axes.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axes, fraction=0.03, pad=0.01).set_label("Spearman ρ", fontsize=8)
    return _png(figure)


def perplexity(frame: pd.DataFrame) -> bytes | None:
    """Test perplexity per model of one corpus (mean ± sd over seeds; validation as a mark),
    best at the top, with the 5-gram Kneser-Ney baseline (`kn5`) as a reference line."""
    frame = frame.dropna(subset=["perplexity"])
    test = frame[frame["split"] == "test"]
    if test.empty:
        return None
    grouped = test.groupby("model", sort=False)["perplexity"]
    means, sds = grouped.mean().sort_values(ascending=False), grouped.std(ddof=1).fillna(0)
    validation = frame[frame["split"] == "validation"].groupby("model")["perplexity"].mean()
    figure = Figure(figsize=(7.0, 0.32 * len(means) + 1.6))
    axes = figure.add_subplot()
    rows = range(len(means))
    axes.barh(rows, means, xerr=sds[means.index], capsize=2, color="#4c72b0", label="test")
    axes.scatter(validation.reindex(means.index), rows, marker="|", s=120, color="black", zorder=3,
                 label="validation")
    for row, value in zip(rows, means):
        axes.text(means.max() * 0.01, row, f"{value:.1f}", va="center", fontsize=7, color="white")
    axes.set_yticks(rows, list(means.index), fontsize=8)
    if "kn5" in means.index:
        axes.axvline(means["kn5"], color="#c44e52", linestyle="--", linewidth=1,
                     label=f"KN5 test {means['kn5']:.1f}")
    axes.set_xlim(0, means.max() * 1.15)
    axes.set_xlabel("perplexity per word (lower is better)")
    axes.set_title("Perplexity per model" + ("" if "kn5" in means.index else " (no KN5 run here)"), fontsize=10)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return _png(figure)


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


def _scatter(axes, panel: _Panel, styles: dict[str, tuple]) -> None:
    """One point per (model, device); a legend, not labels beside the points, names the models,
    so no two names can overlap however close their points sit."""
    devices = panel.points.index.get_level_values("device")
    several = len(set(devices)) > 1
    for (model, device), point in panel.points.iterrows():
        color, marker = styles[model]
        axes.scatter(point[panel.x], point[panel.y], color=color, marker=marker, s=40,
                     label=f"{model} ({device})" if several else model,
                     facecolors="none" if device != "cpu" else color)
    axes.set_xscale("log")
    _log_ticks(axes.xaxis, panel.x_format)
    axes.set_xlabel(panel.xlabel, fontsize=8)
    axes.set_ylabel(panel.ylabel, fontsize=8)
    axes.set_title(panel.title, fontsize=9)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)


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
    """From `quality_and_cost` rows of one corpus: word vectors' Spearman against train tokens/s,
    LMs' test perplexity against train seconds; a panel with no points is left out."""
    table = table.droplevel("corpus") if "corpus" in table.index.names else table
    panels = [
        _Panel(table.dropna(subset=["tokens_per_s", "spearman"]), "tokens_per_s", "spearman", "train tokens/s (log)",
               "mean Spearman ρ over sets", "Word vectors: similarity vs training speed", None),
        _Panel(table.dropna(subset=["wall_s", "perplexity"]), "wall_s", "perplexity", "train wall seconds (log)",
               "test perplexity (lower is better)", "Language models: perplexity vs training time", _seconds),
    ]
    panels = [panel for panel in panels if not panel.points.empty]
    if not panels:
        return None
    styles = _model_styles(list(dict.fromkeys(table.index.get_level_values("model"))))
    figure = Figure(figsize=(5.5 * len(panels) + 1.5, 3.6))
    for i, panel in enumerate(panels, start=1):
        _scatter(figure.add_subplot(1, len(panels), i), panel, styles)
    return _png(figure)


def throughput(frame: pd.DataFrame) -> bytes | None:
    """Train tokens/s per model of one corpus, horizontal bars sorted by speed (fastest on top),
    mean ± sd over seeds; one bar per device kind side by side only where GPU rows exist."""
    train = frame[frame["phase"] == "train"].dropna(subset=["tokens_per_s"])
    if train.empty:
        return None
    train = train.assign(device=_device_kind(train["device"]))
    grouped = train.groupby(["model", "device"], sort=False)["tokens_per_s"]
    means, sds = grouped.mean().unstack(), grouped.std(ddof=1).unstack().fillna(0)
    order = means.max(axis=1).sort_values().index  # slowest first: barh draws row 0 at the bottom
    devices = sorted(means.columns, key=lambda device: device != "cpu")  # CPU first, then GPU kinds
    means, sds = means.loc[order, devices], sds.reindex(index=order, columns=devices)
    figure = Figure(figsize=(7.0, (0.3 if len(devices) == 1 else 0.5) * len(order) + 1.6))
    axes = figure.add_subplot()
    height = 0.8 / len(devices)
    for i, device in enumerate(devices):
        rows = [row + (i - (len(devices) - 1) / 2) * height for row in range(len(order))]
        axes.barh(rows, means[device], height, xerr=sds[device], capsize=2, label=device)
        for row, value, sd in zip(rows, means[device], sds[device]):
            if not pd.isna(value):  # right of the error bar
                axes.text(value + sd, row, f"  {_value_label(value)}", va="center", fontsize=7)
    axes.set_yticks(range(len(order)), list(order), fontsize=8)
    axes.set_xscale("log")
    low, high = means.min().min(), means.max().max()
    axes.set_xlim(low / 2, high * 6)  # room for the value labels right of the longest bar
    _log_ticks(axes.xaxis)
    axes.set_xlabel("train tokens/s (log; higher is faster)")
    gpu = len(devices) > 1 or devices != ["cpu"]
    axes.set_title("Training throughput" + (", CPU and GPU side by side" if gpu else ": CPU only"), fontsize=10)
    if len(devices) > 1:
        axes.legend(fontsize=7, loc="lower right")
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
    """POS probe accuracy per layer for the models probed at several layers (lines), with the
    models probed once (static vectors, the per-word most-frequent-tag baseline) as dashed
    reference lines; mean over seeds.

    Lines, not bars: accuracies sit close together near the top of the scale, and bars
    starting at zero would hide the differences between layers.
    """
    frame = frame.dropna(subset=["accuracy"])
    if frame.empty:
        return None
    frame = frame.assign(layer=frame["layer"].astype(str))
    means = frame.groupby(["model", "layer"], sort=False)["accuracy"].mean() * 100
    layered = [model for model in dict.fromkeys(frame["model"])
               if frame[frame["model"] == model]["layer"].nunique() > 1]
    single = [model for model in dict.fromkeys(frame["model"]) if model not in layered]
    layers = list(dict.fromkeys(frame[frame["model"].isin(layered)]["layer"])) or ["(one vector per word)"]
    styles = _model_styles([*layered, *single])
    figure = Figure(figsize=SIZE_IN)
    axes = figure.add_subplot()
    for model in layered:
        curve = means[model].reindex(layers)
        axes.plot(range(len(layers)), curve, marker="o", color=styles[model][0], label=model)
        for x, value in enumerate(curve):
            axes.annotate(f"{value:.1f}", (x, value), xytext=(0, 5), textcoords="offset points", ha="center",
                          fontsize=7)
    for model in single:
        value = means[model].iloc[0]
        layer = means[model].index[0]
        axes.axhline(value, color=styles[model][0], linestyle="--", linewidth=1,
                     label=f"{model} ({layer}) {value:.1f}")
    axes.set_xticks(range(len(layers)), layers)
    axes.set_xlim(-0.5, len(layers) - 0.5)
    axes.set_xlabel("layer")
    axes.set_ylabel("POS tagging accuracy (%)")
    axes.set_title("Linear POS probe per layer (mean over seeds)", fontsize=10)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return _png(figure)


def probe_depth(frame: pd.DataFrame) -> bytes | None:
    """Probe accuracy against relative depth (layer / the model's number of layers), one line
    per model and task, mean over seeds: do models of different depth put each task at the
    same relative height? `frame`: model, task, layer (numeric strings; "mix" and the like are
    left out), accuracy, seed. Color per model, line style per task."""
    frame = frame[frame["layer"].astype(str).str.fullmatch(r"\d+")].dropna(subset=["accuracy"])
    if frame.empty:
        return None
    frame = frame.assign(layer=frame["layer"].astype(int))
    depth = frame.groupby("model")["layer"].transform("max")  # the model's number of layers (0 = embeddings)
    frame = frame.assign(relative=frame["layer"] / depth.where(depth > 0, 1))
    styles = _model_styles(list(dict.fromkeys(frame["model"])))
    dashes = ["-", "--", ":", "-."]
    tasks = list(dict.fromkeys(frame["task"]))
    figure = Figure(figsize=(9.0, 4.0))
    axes = figure.add_subplot()
    for (model, task), sub in frame.groupby(["model", "task"], sort=False):
        curve = sub.groupby("relative")["accuracy"].mean() * 100
        color, marker = styles[model]
        axes.plot(curve.index, curve.values, color=color, marker=marker, markersize=3,
                  linestyle=dashes[tasks.index(task) % len(dashes)], label=f"{model}: {task}")
    axes.set_xlabel("relative depth (layer / number of layers; 0 = embeddings)")
    axes.set_ylabel("probe accuracy (%)")
    axes.set_title("Layer-wise probes against relative depth (mean over seeds)", fontsize=10)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return _png(figure)


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
    figure.suptitle("ELMo's layer probes against the text its biLM read "
                    "(dashes: means per matrix; lines join matrices probed alike)", fontsize=10)
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

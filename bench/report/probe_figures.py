"""The report's layer-probe figures, drawn with `bench.report.figures`' machinery (size, title,
checked PNG): POS accuracy per layer and model (`layer_probe`), probe accuracy against relative
depth per task (`probe_depth`), ELMo's layer probes against the tokens its biLM read
(`probes_against_tokens`), and where each task's learned scalar mix puts its weight
(`scalar_mix_weights`). Inputs are the frames of `bench.report.tables.tables()` and the
studies; each function returns None when its frame holds nothing to plot.
"""

from __future__ import annotations

import itertools

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from bench.report.figures import MAX_WIDTH_IN, _grid, _log_ticks, _model_styles, _png, _title


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
    panel marks the 95% target. `frame`: model, matrix, seed, biLM, tokens, task, layer, accuracy,
    probe_train, probe_eval."""
    frame = frame.dropna(subset=["accuracy", "tokens"])
    frame = frame[frame["tokens"] > 0]
    # A matrix of several biLM models (elmo-finetune's fine-tuned biLM and its control) is one
    # run per model: their means are two points, not one halfway between.
    several_models = frame.groupby("matrix")["model"].transform("nunique") > 1
    frame = frame.assign(matrix=frame["matrix"].where(~several_models, frame["matrix"] + " · " + frame["model"]))
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

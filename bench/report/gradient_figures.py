"""The report's gradient figures, drawn with `bench.report.figures`' machinery (size, title,
checked PNG): how far back gradients reach per model (`gradient_flow`), the Elman RNN by
recurrent spectral radius against the gated cells (`gradient_regimes`), and training with and
without gradient-norm clipping (`clipping`). Inputs are the CSV frames `lm-lineage gradient-flow`
writes (`bench.eval.diagnostics`); each function returns None when its frame holds nothing to plot.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench.report.figures import SIZE_IN, _png, _title


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

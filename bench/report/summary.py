"""The closing table of a run: one line per model and corpus, its main score per task.

Like lm-evaluation-harness's last screen: enough to read the outcome without opening the
report. The main scores are the mean Spearman rho over the similarity sets a model covers
well enough to correlate, 3CosAdd accuracy on the Google analogies, test perplexity, and the
best layer's probe accuracy; each aggregated over seeds as its metric declares
(bench.eval.metrics: the mean). The report has the rest.
"""
from __future__ import annotations

import pandas as pd

from bench.eval.metrics import METRICS, Metric

KEYS = ["model", "corpus"]


def _over_seeds(frame: pd.DataFrame, value: str, metric: Metric, column: str) -> pd.DataFrame:
    """(model, corpus) -> `value` aggregated over the seeds as `metric` declares, as `column`."""
    return frame.groupby(KEYS, sort=False)[value].agg(metric.aggregation).rename(column).to_frame()


def summary(frames: dict[str, pd.DataFrame], min_pairs: int) -> pd.DataFrame:
    """The main score per model, corpus and task, from `bench.report.tables.tables`' frames;
    an empty frame when the run scored nothing. `min_pairs`: fewer covered pairs give no rho."""
    parts = []
    wordsim = frames["wordsim"]
    wordsim = wordsim[wordsim["pairs"] - wordsim["oov_pairs"] >= min_pairs]
    if len(wordsim):
        per_seed = wordsim.groupby([*KEYS, "seed"], sort=False).agg(rho=("spearman", "mean"),
                                                                     sets=("benchmark", "nunique")).reset_index()
        sets = per_seed.groupby(KEYS, sort=False)["sets"].max()
        parts.append(_over_seeds(per_seed, "rho", METRICS["spearman"], "similarity rho").join(sets.rename("sets")))
    analogy = frames["analogy"]
    analogy = analogy[(analogy["section"] == "total") & (analogy["method"] == "3cosadd")]
    if len(analogy):
        parts.append(_over_seeds(analogy, "accuracy", METRICS["analogy_accuracy"], "analogy 3cosadd"))
    perplexity = frames["perplexity"]
    perplexity = perplexity[perplexity["split"] == "test"]
    if len(perplexity):
        parts.append(_over_seeds(perplexity, "perplexity", METRICS["word_perplexity"], "test perplexity"))
    for name, metric, label in (("pos_probe", "pos_accuracy", "POS probe (best layer)"),
                                ("wsd_probe", "wsd_accuracy", "WSD probe (best layer)")):
        probe = frames.get(name)
        if probe is None or not len(probe):
            continue
        probe = probe.rename(columns={"corpus": "probe_corpus", "train_corpus": "corpus"})
        if name == "wsd_probe":  # one accuracy per word: the layer's mean over words
            probe = probe.groupby([*KEYS, "seed", "layer"], sort=False)["accuracy"].mean().reset_index()
        best = probe.groupby([*KEYS, "seed"], sort=False)["accuracy"].max().reset_index()
        parts.append(_over_seeds(best, "accuracy", METRICS[metric], label))
    if not parts:
        return pd.DataFrame()
    table = pd.concat(parts, axis=1)
    seeds = pd.concat([frames[name][[*KEYS, "seed"]] for name in ("wordsim", "analogy", "perplexity")])
    return table.join(seeds.groupby(KEYS, sort=False)["seed"].nunique().rename("seeds")).reset_index()


# How each column is shown; a missing score (a model without that task) is a dash.
_FORMATS = {
    "similarity rho": "{:.3f}".format,
    "sets": "{:.0f}".format,
    "analogy 3cosadd": lambda v: f"{100 * v:.1f}%",
    "test perplexity": "{:.1f}".format,
    "POS probe (best layer)": lambda v: f"{100 * v:.1f}%",
    "WSD probe (best layer)": lambda v: f"{100 * v:.1f}%",
    "seeds": "{:.0f}".format,
}


def render(table: pd.DataFrame) -> str:
    """The table as aligned text: rho to 3 places, accuracies in percent, perplexity to 1."""
    if table.empty:
        return "no scores (every cell failed or none ran)"
    shown = table.copy()
    for column, show in _FORMATS.items():
        if column in shown:
            shown[column] = [("–" if pd.isna(value) else show(value)) for value in shown[column]]
    return shown.to_string(index=False)

"""Word-sense probe accuracy: the `wsd_probe` rows of the `wsd` probe task (bench.eval.tasks.wsd),
one per model, layer, classifier and ambiguous word (and `all` of them, micro-averaged), and
the references' without a model (`WsdProbeRow`, `TABLE`)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.eval.metrics._schema import Metric, RowTable, measured, renamed, stored

WSD_ACCURACY = Metric("wsd_accuracy", "higher", "fraction",
                      "fraction of held-out instances of an ambiguous word whose sense a classifier on frozen "
                      "representations of the target (or a baseline) gets right")


@dataclass(kw_only=True)
class WsdProbeRow:
    """One representation's classifier on the test instances of one word (or all words)."""

    model: str  # the probed model, or the reference's name
    probe_corpus: str = renamed("corpus")  # the sense-tagged corpus; the table's train_corpus is the cell's
    layer: str  # "0" .. "N", "mix", "bag-of-context", or "-" for a reference
    word: str  # the ambiguous word, or `all` (micro-averaged)
    method: str  # the classifier, "linear" or "centroid"; a reference: its name, as in `model`
    accuracy: float = measured(WSD_ACCURACY)
    instances: int  # the word's test instances
    train_instances: int = renamed("probe_train")  # the probe's whole train slice, every word
    eval_instances: int = renamed("probe_eval")  # and test slice
    correct: int | None = stored()
    # A learned scalar mix's row (layer "mix", "mix-ln") holds its weights (bench.eval.probe.mix_fields);
    # a mix row of a result made before they were stored holds none.
    mix_layers: list | None = stored("mix")
    mix_weights: list | None = stored("mix")
    mix_gamma: float | None = stored("mix")
    mix_centre: float | None = stored("mix")
    mix_s2_minus_s1: float | None = stored("mix")  # None unless layers 1 and 2 are mixed


TABLE = RowTable("wsd_probe", WsdProbeRow, title="Word-sense probe and layers against depth",
                 score="accuracy in percent", cell_corpus="train_corpus", repeated_rows=True)

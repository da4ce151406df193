"""Part-of-speech probe accuracy: the `pos_probe` rows of the `pos` probe task
(bench.eval.tasks.pos), one per model and layer, and the most-frequent-tag baseline's
(`PosProbeRow`, `TABLE`)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.eval.metrics._schema import Metric, RowTable, measured, renamed, stored

POS_ACCURACY = Metric("pos_accuracy", "higher", "fraction",
                      "fraction of held-out tokens whose part-of-speech tag a linear probe on frozen representations "
                      "(or a baseline) gets right")


@dataclass(kw_only=True)
class PosProbeRow:
    """One representation (a layer, their mix, static vectors or a baseline) probed on one tagged corpus."""

    model: str  # the probed model, or the baseline's name
    probe_corpus: str = renamed("corpus")  # the tagged corpus; the table's train_corpus is the cell's
    layer: str  # "0" .. "N", "mix", "static", or a baseline's ("per-word")
    accuracy: float = measured(POS_ACCURACY)
    train_tokens: int = renamed("probe_train")  # the probe's whole train slice
    eval_tokens: int = renamed("probe_eval")  # and test slice, as a matrix's caps set them
    eval_split: str | None = stored()
    n_tags: int | None = stored()
    # A learned scalar mix's row (layer "mix", "mix-ln") holds its weights (bench.eval.probe.mix_fields);
    # a mix row of a result made before they were stored holds none.
    mix_layers: list | None = stored("mix")
    mix_weights: list | None = stored("mix")
    mix_gamma: float | None = stored("mix")
    mix_centre: float | None = stored("mix")
    mix_s2_minus_s1: float | None = stored("mix")  # None unless layers 1 and 2 are mixed


TABLE = RowTable("pos_probe", PosProbeRow, title="Layer probe: linear POS tagging accuracy per layer",
                 score="percent", cell_corpus="train_corpus", repeated_rows=True)

"""Claim 9 in the ledger: the fine-tuned biLM's WSD accuracy above both the pre-trained one and the
control, seed by seed, recomputed from hand-made rows of the elmo-finetune matrix."""

import pytest

from bench.report.claim_rules import CONTROL, FINETUNE_MATRIX, FINETUNED, PRETRAINED, finetuning_helps
from bench.report.tables import tables
from bench.report.verdicts import DOES_NOT_HOLD, HOLDS, MIXED, NOT_RUN, Rows, Verdict

# Accuracy of the scalar mix (linear probe, all words) per model: the fine-tuned biLM ahead of both
# (the claim), behind the control, or behind the model it started from.
AHEAD = {PRETRAINED: 0.70, FINETUNED: 0.76, CONTROL: 0.60}
BEHIND_CONTROL = {PRETRAINED: 0.70, FINETUNED: 0.72, CONTROL: 0.74}
BEHIND_PRETRAINED = {PRETRAINED: 0.78, FINETUNED: 0.72, CONTROL: 0.60}


def _cell(model: str, seed: int, wsd_mix: float, pos_mix: float = 0.9, tokens: float = 400_000.0) -> dict:
    """One elmo-finetune cell with its WSD and POS probe rows: layer 1 at 0.5 (never the one the
    rule reads) and the scalar mix at the given accuracy."""
    wsd = [{"model": model, "probe_corpus": "senseval2", "layer": layer, "word": "all", "method": "linear",
            "accuracy": accuracy, "instances": 3045, "train_instances": 12180, "eval_instances": 3045}
           for layer, accuracy in (("1", 0.5), ("mix", wsd_mix))]
    pos = [{"model": model, "probe_corpus": "brown-pos", "layer": layer, "accuracy": accuracy, "train_tokens": 100,
            "eval_tokens": 50} for layer, accuracy in (("1", 0.5), ("mix", pos_mix))]
    return {"cell": {"model": model, "corpus": "senseval2-train-text", "seed": seed, "matrix": FINETUNE_MATRIX},
            "status": "ok", "metrics": {"wsd_probe": wsd, "pos_probe": pos},
            "dataset": {"splits": {"train": {"tokens": 430_000}}}, "config": {"model": {}},
            "timings": {"train": {"device": "cpu", "wall_s": 450.0, "tokens": tokens, "tokens_per_s": tokens / 450,
                                  "peak_rss_mb": 100.0}}}


def _verdict(*per_seed: dict[str, float]) -> Verdict:
    cells = [_cell(model, seed, accuracy) for seed, accuracies in enumerate(per_seed)
             for model, accuracy in accuracies.items()]
    return finetuning_helps(Rows(cells, tables(cells), None))


@pytest.mark.parametrize("per_seed, outcome, holds_in", [
    ((AHEAD, AHEAD, AHEAD), HOLDS, 3),
    ((AHEAD, BEHIND_CONTROL, AHEAD), MIXED, 2),
    ((BEHIND_PRETRAINED, AHEAD, BEHIND_CONTROL), MIXED, 1),
    ((BEHIND_CONTROL, BEHIND_PRETRAINED, BEHIND_CONTROL), DOES_NOT_HOLD, 0),
])
def test_the_verdict_counts_the_seeds_where_fine_tuning_beats_both(per_seed, outcome, holds_in):
    verdict = _verdict(*per_seed)
    assert (verdict.outcome, verdict.holds_in, verdict.runs) == (outcome, holds_in, 3)


def test_the_effects_are_the_mix_gaps_in_points_and_the_scale_the_tokens_read():
    verdict = _verdict(AHEAD, AHEAD)
    assert verdict.effect.startswith("WSD fine-tuned − pre-trained, points +6.00 ± 0.00; "
                                     "WSD fine-tuned − control, points +16.00 ± 0.00; POS fine-tuned − pre-trained")
    assert verdict.scale == ("fine-tuned: 0.40M tokens read in training; control: 0.40M tokens read in training; "
                             "senseval2-train-text, 0.43M tokens")


def test_without_a_seed_of_all_three_biLMs_it_is_not_run_and_names_the_command():
    partial = {PRETRAINED: 0.7, FINETUNED: 0.76}  # no control
    control_only = {CONTROL: 0.6}  # all three models, never in one seed
    for verdict in (_verdict(), _verdict(partial, partial), _verdict(partial, control_only)):
        assert verdict.outcome == NOT_RUN
        assert verdict.command == "lm-lineage run --matrix elmo-finetune --out results/elmo-finetune"
        assert "--save-models" in verdict.why

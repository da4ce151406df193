"""Claim 8's weights in the ledger and the report: the verdicts flip with hand-made mix rows."""

from __future__ import annotations

import pytest

from bench.eval.probe import mix_fields
from bench.report import claim_rules, studies, verdicts
from bench.report.markup import Figure
from bench.report.tables import tables
from bench.report.verdicts import DOES_NOT_HOLD, HOLDS, MIXED, NOT_RUN


def _mix_cell(model: str, matrix: str, seed: int, pos: list[float], wsd: list[float]) -> dict:
    """One cell whose POS and WSD probes (micro-averaged) learned these weights for layers 0.. in both mixes."""
    layers = list(range(len(pos)))

    def mixes(weights: list[float]) -> list[dict]:
        return [{"layer": mix, "accuracy": 0.9, **mix_fields(weights, 1.5, layers)} for mix in ("mix", "mix-ln")]

    return {"cell": {"model": model, "corpus": "toy", "seed": seed, "matrix": matrix}, "status": "ok",
            "metrics": {"pos_probe": [{"model": model, "probe_corpus": "brown-pos", "train_tokens": 100,
                                       "eval_tokens": 50, **row} for row in mixes(pos)],
                        "wsd_probe": [{"model": model, "probe_corpus": "senseval2", "word": word, "method": "linear",
                                       "instances": 10, "train_instances": 40, "eval_instances": 20, **row}
                                      for word in ("hard", "all") for row in mixes(wsd)]},
            "timings": {"train": {"device": "cpu", "wall_s": 1.0, "tokens": 1000, "tokens_per_s": 1000.0,
                                  "peak_rss_mb": 1.0}}}


LOW, HIGH = [0.2, 0.5, 0.3], [0.2, 0.3, 0.5]  # s2 − s1 = −0.2 (E[layer] 1.1) and +0.2 (E[layer] 1.3)


def _rows(cells: list[dict]) -> verdicts.Rows:
    return verdicts.Rows(cells, tables(cells), None)


@pytest.mark.parametrize("rule, matrix, runs_per_seed", [
    (claim_rules.mix_centre_higher_for_word_sense, claim_rules.MIX_MATRIX, 2),  # 2 mixes per seed
    (claim_rules.mix_centre_higher_for_word_sense, claim_rules.ELMO_MATRIX, 2),
    (claim_rules.mix_layer_two_for_word_sense, claim_rules.ELMO_MATRIX, 2),
])
def test_the_weight_rules_flip_with_the_weights(rule, matrix, runs_per_seed):
    model = "elmo" if matrix == claim_rules.ELMO_MATRIX else "minilm"

    def verdict(per_seed: tuple[bool, ...]) -> verdicts.Verdict:
        # The claim: WSD's mix higher up (HIGH) than POS's (LOW); the reverse where it fails.
        return rule(_rows([_mix_cell(model, matrix, seed, LOW if ok else HIGH, HIGH if ok else LOW)
                           for seed, ok in enumerate(per_seed)]))

    for per_seed, outcome, holds_in in (((True, True), HOLDS, 2), ((False, False), DOES_NOT_HOLD, 0),
                                        ((True, False), MIXED, 1)):
        result = verdict(per_seed)
        runs = runs_per_seed * len(per_seed)
        assert (result.outcome, result.holds_in, result.runs) == (outcome, holds_in * runs_per_seed, runs), result
        assert f"{model} mix" in result.effect and f"{model} mix-ln" in result.effect and " ± " in result.effect
    missing = rule(_rows([]))
    assert missing.outcome == NOT_RUN and missing.command.startswith("lm-lineage ") and missing.why


def test_the_effects_are_the_gaps_by_hand():
    cells = [_mix_cell("elmo", claim_rules.ELMO_MATRIX, seed, LOW, HIGH) for seed in range(2)]
    centre = claim_rules.mix_centre_higher_for_word_sense(_rows(cells))
    assert "elmo mix: E[layer] WSD − POS +0.20" in centre.effect  # 1.3 − 1.1 in both seeds
    assert centre.unit == "model × mix × seed" and "elmo layers 0–2" in centre.scale
    layer_two = claim_rules.mix_layer_two_for_word_sense(_rows(cells))
    assert "elmo mix: WSD s2 − s1 +0.20" in layer_two.effect
    assert "elmo mix-ln: POS s2 − s1 -0.20" in layer_two.effect


def test_a_transformer_alone_does_not_judge_elmos_layer_two():
    cells = [_mix_cell("minilm", claim_rules.MIX_MATRIX, seed, LOW, HIGH) for seed in range(2)]
    assert claim_rules.mix_layer_two_for_word_sense(_rows(cells)).outcome == NOT_RUN
    assert claim_rules.mix_centre_higher_for_word_sense(_rows(cells)).outcome == HOLDS


def test_report_section_lists_every_seed_and_their_mean():
    cells = [_mix_cell("elmo", claim_rules.ELMO_MATRIX, seed, LOW, HIGH) for seed in range(2)]
    blocks = studies.scalar_mix_section(tables(cells)["scalar_mix"])
    assert blocks[0] == f"## {studies.MIX_SECTION}"
    figure = next(block for block in blocks if isinstance(block, Figure))
    assert figure.png is not None and figure.alt == studies.MIX_FIGURE
    table = next(block for block in blocks if hasattr(block, "columns"))
    assert len(table) == 2 * 2 * 3  # task x mix x (2 seeds and their mean)
    pos = table[(table["task"] == "POS") & (table["mix"] == "mix")]
    assert list(pos["seed"]) == ["0", "1", "mean ± sd"]
    assert list(pos["s_l (layer 0 first)"]) == ["0.20 0.50 0.30"] * 3
    assert list(pos["E[layer]"]) == ["1.10", "1.10", "1.10 ± 0.00"] and pos["s2 − s1"].iloc[0] == "-0.200"
    assert studies.scalar_mix_section(tables([])["scalar_mix"]) == []


def test_a_result_made_before_rows_stored_their_mix_gives_its_pos_weights_from_the_training_record():
    cell = _mix_cell("elmo", "elmo", 0, LOW, HIGH)
    old_pos = [{key: value for key, value in row.items() if not key.startswith("mix_")}
               for row in cell["metrics"]["pos_probe"] if row["layer"] == "mix"]
    cell["metrics"] = {"pos_probe": old_pos}  # as POS cells stored it before: the weights apart, no WSD mix
    cell["training"] = {"probe_scalar_mix": {"weights": [0.6, 0.3, 0.1], "gamma": 0.8}}
    cell["config"] = {"probe": {"layers": [0, 2, 1]}}
    (row,) = tables([cell])["scalar_mix"].itertuples()
    assert (row.task, row.mix, row.layers, row.weights, row.gamma) == ("POS", "mix", (0, 2, 1), (0.6, 0.3, 0.1), 0.8)
    assert row.centre == pytest.approx(0.3 * 2 + 0.1) and row.s2_minus_s1 == pytest.approx(0.2)

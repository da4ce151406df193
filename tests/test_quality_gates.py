"""Quality gates: each model's small fixed-seed run must not be worse than its recorded seed spread.

`results/quality_gates.json` holds every gate's values over seeds 0..4 (`lm-lineage gates`);
bench/run/gates.py states the tolerance rule. A gate test fails when seed 0 now lands on the
worse side of the recorded mean by more than the tolerance.
"""

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.run import gates

RECORD = Path(__file__).resolve().parents[1] / "results" / "quality_gates.json"
RECORD_COMMAND = "lm-lineage gates --seeds 5 --out results/quality_gates.json"


@pytest.fixture(scope="module")
def recorded() -> dict:
    if not RECORD.is_file():
        pytest.fail(f"{RECORD} is missing: record the gates with `{RECORD_COMMAND}`")
    return json.loads(RECORD.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("gate", list(gates.GATES.values()), ids=list(gates.GATES))
def test_quality_gate(gate, recorded):
    record = recorded["gates"].get(gate.model)
    assert record is not None, f"{RECORD.name} has no gate {gate.model}: re-record with `{RECORD_COMMAND}`"
    assert record["settings"] == gate.settings(), (
        f"gate {gate.model}'s settings changed since {RECORD.name} was recorded: re-record with `{RECORD_COMMAND}`")
    value = gates.run_gate(gate, seed=0).value
    mean, sd = record["mean"], record["sd"]
    sign = ">=" if gate.direction == "higher" else "<="
    assert gates.passes(gate, value, mean, sd), (
        f"{gate.model}: {gate.measure} at seed 0 is {value:.4g}; recorded {mean:.4g} ± {sd:.2g} over "
        f"{len(record['values'])} seeds needs {sign} {gates.limit(gate, mean, sd):.4g}. If the change is "
        f"meant to move this number, re-record with `{RECORD_COMMAND}`")


def test_tolerance_is_three_sd_with_a_floor_and_one_sided():
    spearman, perplexity = gates.GATES["word2vec-cbow"], gates.GATES["lstm"]
    assert gates.tolerance(spearman, mean=0.2, sd=0.0) == pytest.approx(0.02)  # the absolute floor
    assert gates.tolerance(spearman, mean=0.2, sd=0.05) == pytest.approx(0.15)
    assert gates.tolerance(perplexity, mean=300.0, sd=0.0) == pytest.approx(6.0)  # 2% of the mean
    assert gates.tolerance(perplexity, mean=300.0, sd=10.0) == pytest.approx(30.0)
    # Worse by more than the tolerance fails; better by any amount passes.
    assert not gates.passes(spearman, 0.17, mean=0.2, sd=0.0)
    assert gates.passes(spearman, 0.19, mean=0.2, sd=0.0) and gates.passes(spearman, 0.9, mean=0.2, sd=0.0)
    assert not gates.passes(perplexity, 307.0, mean=300.0, sd=0.0)
    assert gates.passes(perplexity, 305.0, mean=300.0, sd=0.0) and gates.passes(perplexity, 50.0, mean=300.0, sd=0.0)


def test_gates_command_needs_two_seeds(tmp_path, capsys):
    out = tmp_path / "gates.json"
    assert main(["gates", "--seeds", "1", "--out", str(out)]) == 2
    assert "--seeds must be >= 2" in capsys.readouterr().err
    assert not out.exists()

"""Both regimes of the gradient problem (bench.eval.diagnostics): the spectral-radius
rescaling, a hand-computed gradient curve, the three verdict functions on hand-made rows,
and one tiny real run on Brown through the CLI's code path."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from bench.cli import main
from bench.eval import diagnostics
from bench.eval.diagnostics import (
    CLIPPING_COLUMNS,
    REGIME_COLUMNS,
    GradientRegimesConfig,
    Verdict,
    clipping_prevents_divergence,
    explodes_above_one,
    gated_cells_keep_gradients,
    set_spectral_radius,
    spectral_radius,
)
from bench.report import gradient_figures
from impl.rnn import RNNLM, RNNLMConfig, gradient_flow

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("radius", [0.5, 1.0, 2.0])
def test_set_spectral_radius_rescales_to_the_largest_absolute_eigenvalue(radius):
    matrix = torch.randn(16, 16, generator=torch.Generator().manual_seed(0))
    eigenvectors_before = torch.linalg.eig(matrix.double()).eigenvectors
    set_spectral_radius(matrix, radius)
    assert spectral_radius(matrix) == pytest.approx(radius, rel=1e-5)
    # A rescaling only: the eigenvectors stay, so the matrix is a multiple of the original.
    assert torch.allclose(torch.linalg.eig(matrix.double()).eigenvectors.abs(), eigenvectors_before.abs(), atol=1e-6)
    assert spectral_radius(torch.diag(torch.tensor([0.5, -3.0, 2.0]))) == pytest.approx(3.0)


@pytest.mark.parametrize("radius", [0.5, 1.5])
def test_a_linear_rnn_with_w_r_times_identity_has_gradient_norm_r_to_the_k(radius):
    """With zero input weights and biases the Elman state stays exactly 0, so tanh' = 1 and
    d h_t / d h_(t-1) = W_hh = r I: the gradient k steps back is r^k times d loss_t / d h_t.
    At h_t = 0 the logits are 0, so d loss_t / d h_t = D^T (1/V - onehot(y)) by hand."""
    vocab, hidden = 7, 5
    torch.manual_seed(0)
    model = RNNLM(RNNLMConfig(cell="rnn", emb=4, hidden=hidden, layers=1, dropout=0.0), vocab)
    with torch.no_grad():
        model.rnn.weight_ih_l0.zero_()
        model.rnn.bias_ih_l0.zero_()
        model.rnn.bias_hh_l0.zero_()
        model.rnn.weight_hh_l0.copy_(radius * torch.eye(hidden))
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 6]])  # (1, max_k + 2); the target is 6
    norms = gradient_flow(model, ids, max_k=10)
    at_t = model.decoder.weight.detach().T @ (torch.full((vocab,), 1 / vocab) - torch.eye(vocab)[6])  # (hidden,)
    expected = [radius ** k * at_t.norm().item() for k in range(1, 11)]
    assert norms == pytest.approx(expected, rel=1e-5)


def _curve_rows(cell: str, radius: float, state: str, factor: float, seed: int, max_k: int = 50) -> list[dict]:
    """A network's rows whose gradient norm is factor^k exactly."""
    return [{"cell": cell, "radius": radius, "state": state, "train_steps": 0 if state == "init" else 10,
             "train_loss": math.nan, "spectral_radius": radius, "k": k, "grad_norm": factor ** k, "seed": seed}
            for k in range(1, max_k + 1)]


def _regimes(factors: dict[tuple[str, float], float], seeds=(0, 1), state: str = "init") -> pd.DataFrame:
    rows = [row for seed in seeds for (cell, radius), factor in factors.items()
            for row in _curve_rows(cell, radius, state, factor, seed)]
    return pd.DataFrame(rows, columns=REGIME_COLUMNS)


def test_explodes_above_one_reads_each_radius_growth_factor():
    exploding = _regimes({("rnn", 0.5): 0.5, ("rnn", 1.0): 0.95, ("rnn", 1.5): 1.1, ("rnn", 2.0): 1.3})
    verdict = explodes_above_one(exploding)
    assert verdict == Verdict(True, pytest.approx(1.1), pytest.approx(0.0), 2, 2)
    # Radius 2 saturating to a shrinking curve in one seed: mixed, 1 of 2 seeds.
    saturated = pd.concat([_regimes({("rnn", 0.5): 0.5, ("rnn", 2.0): 1.3}, seeds=(0,)),
                           _regimes({("rnn", 0.5): 0.5, ("rnn", 2.0): 0.9}, seeds=(1,))])
    verdict = explodes_above_one(saturated)
    assert (verdict.holds, verdict.seeds_holding, verdict.seeds) == (False, 1, 2)
    assert verdict.effect == pytest.approx(1.1) and verdict.sd == pytest.approx(math.sqrt(0.08))
    with pytest.raises(ValueError, match="radii both above and below 1"):
        explodes_above_one(_regimes({("rnn", 2.0): 1.3}))
    with pytest.raises(ValueError, match="none with state 'init'"):
        explodes_above_one(_regimes({("rnn", 0.5): 0.5, ("rnn", 2.0): 1.3}, state="trained"))


def test_gated_cells_keep_gradients_in_orders_of_magnitude_over_the_vanishing_elman_rnn():
    # At k = 50, retention = factor^49: Elman 0.5 -> 1.8e-15, LSTM 0.9 -> 5.7e-3, GRU 0.8 -> 1.8e-5.
    alive = _regimes({("rnn", 0.5): 0.5, ("rnn", 2.0): 1.5, ("lstm", math.nan): 0.9, ("gru", math.nan): 0.8},
                     state="trained")
    verdict = gated_cells_keep_gradients(alive)
    assert verdict.holds and verdict.seeds_holding == 2
    assert verdict.effect == pytest.approx(49 * math.log10(0.8 / 0.5))  # the worse gated cell, GRU
    # The exploding radius 2 keeps more than any gated cell, and is not the reference.
    vanishing = _regimes({("rnn", 0.5): 0.9, ("lstm", math.nan): 0.9, ("gru", math.nan): 0.8}, state="trained")
    verdict = gated_cells_keep_gradients(vanishing)
    assert not verdict.holds and verdict.effect == pytest.approx(49 * math.log10(0.8 / 0.9))
    with pytest.raises(ValueError, match="no k=60"):
        gated_cells_keep_gradients(alive, k=60)


def _run(clip: float, losses: list[float], seed: int = 0) -> list[dict]:
    return [{"clip": clip, "lr": 1.0, "step": step, "loss": loss, "grad_norm": 1.0, "seed": seed}
            for step, loss in enumerate(losses, start=1)]


def test_clipping_prevents_divergence_when_only_the_unclipped_run_ends_above_its_start():
    learning = [8.5] + [6.0] * 20
    rising = [8.5] + [20.0] * 20
    rows = pd.DataFrame(_run(0, rising) + _run(1.0, learning), columns=CLIPPING_COLUMNS)
    verdict = clipping_prevents_divergence(rows)
    assert verdict == Verdict(True, pytest.approx(14.0), verdict.sd, 1, 1) and math.isnan(verdict.sd)
    both_learn = clipping_prevents_divergence(pd.DataFrame(_run(0, learning) + _run(1.0, learning)))
    assert not both_learn.holds and both_learn.effect == pytest.approx(0.0)
    nan_run = clipping_prevents_divergence(pd.DataFrame(_run(0, [8.5, 30.0, math.nan]) + _run(1.0, learning)))
    assert nan_run.holds and nan_run.effect == math.inf
    with pytest.raises(ValueError, match="a run with clip 0 and one with clip > 0"):
        clipping_prevents_divergence(pd.DataFrame(_run(1.0, learning)))


@pytest.mark.data  # the regimes read Brown (GradientRegimesConfig.corpus)
def test_a_tiny_real_run_measures_both_regimes_and_draws_them(data_root):
    config = GradientRegimesConfig(radii=(0.5, 2.0), vocab_size=300, emb=16, hidden=16, max_k=12, windows=4,
                                   batch_size=4, bptt=8, train_steps=3, clip_steps=12)
    prepared = diagnostics.prepare_regime_corpus(config, data_root)
    regimes = diagnostics.gradient_regimes_table(config, prepared, [0])
    assert list(regimes.columns) == REGIME_COLUMNS
    assert len(regimes) == 4 * 2 * 12  # (rnn 0.5, rnn 2, lstm, gru) x (init, trained) x k
    init = regimes[(regimes["state"] == "init") & (regimes["cell"] == "rnn")]
    assert init.groupby("radius")["spectral_radius"].first().to_dict() == pytest.approx({0.5: 0.5, 2.0: 2.0})
    assert (regimes[regimes["state"] == "trained"]["train_steps"] == 3).all()
    assert explodes_above_one(regimes).holds  # radius 0.5 shrinks and 2 grows, even this small
    clipping = diagnostics.clipping_table(config, prepared, [0])
    assert list(clipping.columns) == CLIPPING_COLUMNS
    clipped = clipping[clipping["clip"] == 1.0]
    assert len(clipped) == 12 and np.isfinite(clipped["loss"]).all()
    for png in (gradient_figures.gradient_regimes(regimes), gradient_figures.clipping(clipping)):
        assert png.startswith(PNG)


def test_gradient_flow_refuses_negative_regime_seeds_before_any_work(tmp_path, capsys):
    out = tmp_path / "flow"
    assert main(["gradient-flow", "--out", str(out), "--regime-seeds", "-1"]) == 2
    assert capsys.readouterr().err == "lm-lineage: error: --regime-seeds must be >= 0, got -1\n"
    assert not out.exists()

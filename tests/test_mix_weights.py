"""Claim 8's measurement: ELMo's layer-normalised scalar mix and what a probe's mix rows record
(bench.eval.probe.mix_fields), checked by hand on tiny tensors."""

from __future__ import annotations

import pytest
import torch

from bench.eval.probe import fit_linear_probe, mean_mix_fields, mix_fields
from impl.elmo import ScalarMix

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_layer_norm_mix_normalises_each_layer_over_its_real_positions_only():
    mix = ScalarMix(2, layer_norm=True)
    layers = torch.tensor([[[1.0, 3.0], [5.0, 7.0], [100.0, -100.0]],
                           [[0.0, 0.0], [0.0, 4.0], [9.0, 9.0]]])  # (2 layers, 3 positions, D = 2)
    mask = torch.tensor([True, True, False])  # the third position is padding
    # Layer 0's real units 1, 3, 5, 7: mean 4, variance 5; layer 1's 0, 0, 0, 4: mean 1, variance 3.
    expected = 0.5 * (layers[0] - 4) / 5 ** 0.5 + 0.5 * (layers[1] - 1) / 3 ** 0.5  # equal weights, gamma 1
    torch.testing.assert_close(mix(layers, mask)[:2], expected[:2])
    # Scaling one layer by 1000 changes nothing once it is normalised; the plain mix follows the scale.
    scaled = layers * torch.tensor([1000.0, 1.0]).view(2, 1, 1)
    torch.testing.assert_close(mix(scaled, mask)[:2], expected[:2])
    assert not torch.allclose(ScalarMix(2)(scaled)[:2], ScalarMix(2)(layers)[:2])


def test_layer_norm_mix_refuses_a_mask_of_the_wrong_shape_and_a_non_bool_flag():
    with pytest.raises(ValueError, match=r"mask of shape \(2,\) for layers of shape \(2, 3, 4\); expected \(3,\)"):
        ScalarMix(2, layer_norm=True)(torch.zeros(2, 3, 4), torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"^layer_norm=1: expected a bool$"):
        ScalarMix(2, layer_norm=1)  # type: ignore[arg-type]


def test_mix_fields_by_hand():
    fields = mix_fields([0.5, 0.2, 0.3], 1.5, [0, 1, 2])
    assert fields["mix_centre"] == pytest.approx(0.2 + 2 * 0.3)
    assert fields["mix_s2_minus_s1"] == pytest.approx(0.1) and fields["mix_gamma"] == 1.5
    picked = mix_fields([0.6, 0.4], 1.0, [2, 0])  # layers as `[probe] layers` picks them: no layer 1
    assert picked["mix_centre"] == pytest.approx(1.2) and picked["mix_s2_minus_s1"] is None
    mean = mean_mix_fields([mix_fields([1.0, 0.0], 1.0, [1, 2]), mix_fields([0.0, 1.0], 3.0, [1, 2])])
    assert mean["mix_weights"] == [0.5, 0.5] and mean["mix_gamma"] == 2.0 and mean["mix_centre"] == 1.5
    with pytest.raises(ValueError, match="2 mix weights for 3 layers"):
        mix_fields([0.5, 0.5], 1.0, [0, 1, 2])


def test_the_layer_norm_mix_weights_a_quiet_informative_layer_over_a_loud_noisy_one():
    # Layer 0 is loud noise (scale 100), layer 1 a quiet copy of the label (scale 0.1).
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (400,), generator=generator)
    noise = 100 * torch.randn(400, 1, 4, generator=generator)
    signal = 0.1 * (torch.nn.functional.one_hot(labels, 4).float() + 0.1 * torch.randn(400, 4, generator=generator))
    features = torch.cat([noise, signal.unsqueeze(1)], dim=1)  # (N, 2 layers, D = 4)
    accuracy, probe = fit_linear_probe(features[:300], labels[:300], features[300:], labels[300:], epochs=10, lr=0.05,
                                       seed=0, device="cpu", batch_size=50, mix_layer_norm=True)
    weights, _ = probe.weights()
    assert accuracy > 0.9 and weights[1] > weights[0]
    with pytest.raises(ValueError, match="mix_layer_norm needs layered features"):
        fit_linear_probe(features[:, 0], labels, features[:, 0], labels, epochs=1, lr=0.1, seed=0, device="cpu",
                         mix_layer_norm=True)

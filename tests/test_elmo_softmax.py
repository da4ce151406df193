"""The biLM's full softmax without its (B, T, V) logits (issue 27): `softmax_cross_entropy_sum`
scores only the scored positions, block by block, and makes the gradient in the same pass;
the loss and every gradient are those of F.cross_entropy over the logits."""

import pytest
import torch
import torch.nn.functional as F

from impl import _softmax
from impl._softmax import IGNORE, softmax_cross_entropy_sum
from impl.elmo import ELMo, ELMoConfig, batch_char_ids, bilm_targets

pytestmark = [pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN"),
              pytest.mark.usefixtures("one_torch_thread")]

# fp32 matmuls where the losses are compared with the logits' exactly.
TINY = dict(char_dim=4, max_chars=8, filters=((1, 4), (2, 4), (3, 8)), highway_layers=1, projection_dim=8,
            hidden=12, layers=2, dropout=0.0, softmax_precision="fp32")


def ragged_batch(vocab_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Linear]:
    """hidden (5, 9, 6) and targets (5, 9) whose rows end in IGNORE padding of different
    lengths (one row all IGNORE), and an output layer over vocab_size words."""
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.randn(5, 9, 6, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, vocab_size, (5, 9), generator=generator)
    for row, length in enumerate((9, 4, 0, 7, 1)):
        targets[row, length:] = IGNORE
    layer = torch.nn.Linear(6, vocab_size, dtype=torch.float64)
    return hidden, targets, layer


@pytest.mark.parametrize("block", [1, 3, 256])  # blocks that cut the scored positions unevenly, and one block
def test_the_loss_and_its_gradients_are_the_logits_cross_entropys(monkeypatch, block):
    monkeypatch.setattr(_softmax, "SOFTMAX_BLOCK", block)
    hidden, targets, layer = ragged_batch(vocab_size=13, seed=0)
    params = [hidden.requires_grad_(), layer.weight, layer.bias]
    upstream = 0.37  # the gradient that reaches the loss: the result's gradients scale with it

    expected = F.cross_entropy(layer(hidden).flatten(0, 1), targets.flatten(), ignore_index=IGNORE,
                               reduction="sum")
    expected_grads = torch.autograd.grad(expected * upstream, params)
    loss = softmax_cross_entropy_sum(hidden, targets, layer.weight, layer.bias)
    grads = torch.autograd.grad(loss * upstream, params)

    torch.testing.assert_close(loss, expected)
    for name, got, want in zip(("hidden", "weight", "bias"), grads, expected_grads):
        torch.testing.assert_close(got, want, msg=f"gradient of {name}")
    assert torch.all(grads[0][targets == IGNORE] == 0)  # padding and unscored positions get none


def test_without_a_gradient_it_scores_alone_and_refuses_a_backward():
    hidden, targets, layer = ragged_batch(vocab_size=13, seed=1)
    expected = F.cross_entropy(layer(hidden).flatten(0, 1), targets.flatten(), ignore_index=IGNORE,
                               reduction="sum")
    with torch.no_grad():
        torch.testing.assert_close(softmax_cross_entropy_sum(hidden, targets, layer.weight, layer.bias), expected)
    frozen = softmax_cross_entropy_sum(hidden.detach(), targets, layer.weight.detach(), layer.bias.detach())
    assert not frozen.requires_grad


def test_the_biLM_losses_are_those_of_its_logits_in_training_and_in_evaluation():
    torch.manual_seed(0)
    model = ELMo(ELMoConfig(**TINY), vocab_size=11)
    chars = batch_char_ids([["the", "cat", "sat"], ["a", "dog"], ["a"]], max_chars=8)  # (3, 5, 8)
    targets = bilm_targets(torch.tensor([[9, 1, 2, 3, 10], [9, 4, 5, 10, IGNORE], [9, 4, 10, IGNORE, IGNORE]]))
    for training in (True, False):
        out = model.train(training)(chars, *targets, logits=True)
        for name, direction in zip(("fwd", "bwd"), targets):
            full = F.cross_entropy(out[f"logits_{name}"].flatten(0, 1), direction.flatten(), ignore_index=IGNORE)
            torch.testing.assert_close(out[f"loss_{name}"], full)
    assert model(chars, *targets)["logits_fwd"] is None  # made only when asked


def test_a_sampled_softmax_in_training_refuses_to_make_logits():
    model = ELMo(ELMoConfig(**TINY, softmax_samples=4), vocab_size=11).train()
    with pytest.raises(ValueError, match="sampled softmax makes no logits"):
        model(batch_char_ids([["a"]], max_chars=8), logits=True)


def test_bf16_matmuls_stay_within_bf16_rounding_of_the_fp32_loss_and_gradients():
    hidden, targets, layer = ragged_batch(vocab_size=13, seed=2)
    hidden, layer = hidden.float().requires_grad_(), layer.float()
    params = [hidden, layer.weight, layer.bias]
    exact = softmax_cross_entropy_sum(hidden, targets, layer.weight, layer.bias)
    exact_grads = torch.autograd.grad(exact, params)
    rounded = softmax_cross_entropy_sum(hidden, targets, layer.weight, layer.bias, torch.bfloat16)
    rounded_grads = torch.autograd.grad(rounded, params)
    assert rounded.dtype == torch.float32 and rounded != exact  # the matmuls did round
    torch.testing.assert_close(rounded, exact, rtol=1e-2, atol=0)  # bf16 keeps 8 significant bits
    for name, got, want in zip(("hidden", "weight", "bias"), rounded_grads, exact_grads):
        assert (got - want).norm() < 2e-2 * want.norm(), f"gradient of {name}"


@pytest.mark.parametrize("field, default", [("softmax_precision", "bf16"), ("lstm_precision", "fp32")])
def test_a_bf16_precision_applies_to_training_only(field, default):
    """bf16 matmuls (the training softmax's, or the biLSTM's under autocast) round a training
    step's numbers only: in evaluation the biLM is the fp32 one to the bit."""
    torch.manual_seed(0)
    model = ELMo(ELMoConfig(**{**TINY, field: "bf16"}), vocab_size=11)
    assert getattr(ELMoConfig(), field) == default
    chars = batch_char_ids([["the", "cat", "sat"], ["a", "dog"]], max_chars=8)
    targets = bilm_targets(torch.tensor([[9, 1, 2, 3, 10], [9, 4, 5, 10, IGNORE]]))
    fp32 = ELMo(ELMoConfig(**TINY), vocab_size=11)
    fp32.load_state_dict(model.state_dict())
    model.eval(), fp32.eval()
    torch.testing.assert_close(model(chars, *targets)["loss"], fp32(chars, *targets)["loss"], rtol=0, atol=0)
    torch.testing.assert_close(model.representations(chars), fp32.representations(chars), rtol=0, atol=0)
    model.train(), fp32.train()
    rounded, exact = model(chars, *targets)["loss"], fp32(chars, *targets)["loss"]
    assert rounded != exact and rounded.dtype == torch.float32
    torch.testing.assert_close(rounded, exact, rtol=2e-2, atol=0)  # 8 significant bits, not another model
    rounded.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match=rf"^ELMoConfig\.{field}='fp16': expected one of fp32, bf16$"):
        ELMoConfig(**{field: "fp16"})


# The adaptive softmax (Grave et al. 2017): 11 softmax ids, ranked by a frequency order that is
# not the id order, a head over the 3 most frequent and two tail clusters [3, 6) and [6, 11).
ORDER = torch.tensor([9, 10, 4, 1, 0, 2, 3, 5, 6, 7, 8])  # frequency rank -> softmax id
ADAPTIVE = {**TINY, "softmax_cutoffs": (3, 6), "softmax_div_value": 2.0}


def _adaptive_biLM(order: torch.Tensor = ORDER) -> ELMo:
    torch.manual_seed(0)
    return ELMo(ELMoConfig(**ADAPTIVE), vocab_size=11, frequency_order=order)


def test_the_adaptive_softmax_is_a_distribution_whose_cross_entropy_is_the_loss():
    model = _adaptive_biLM()
    assert isinstance(model.softmax, torch.nn.AdaptiveLogSoftmaxWithLoss)
    assert model.adaptive_rank[9] == 0 and model.adaptive_rank[8] == 10  # the head's first class is the most frequent id
    chars = batch_char_ids([["the", "cat", "sat"], ["a", "dog"], ["a"]], max_chars=8)  # (3, 5, 8)
    targets = bilm_targets(torch.tensor([[9, 1, 2, 3, 10], [9, 4, 5, 10, IGNORE], [9, 4, 10, IGNORE, IGNORE]]))
    for training in (True, False):
        out = model.train(training)(chars, *targets, logits=True)
        torch.testing.assert_close(out["logits_fwd"].exp().sum(-1), torch.ones(3, 5))  # normalized over 11 ids
        for name, direction in zip(("fwd", "bwd"), targets):
            full = F.cross_entropy(out[f"logits_{name}"].flatten(0, 1), direction.flatten(), ignore_index=IGNORE)
            torch.testing.assert_close(out[f"loss_{name}"], full)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a bf16 run: the adaptive softmax stays fp32
        assert model(chars, *targets)["loss"].dtype == torch.float32


def test_the_adaptive_softmax_keeps_its_classes_with_its_weights():
    model = _adaptive_biLM().eval()
    chars = batch_char_ids([["the", "cat", "sat"]], max_chars=8)
    targets = bilm_targets(torch.tensor([[9, 1, 2, 3, 10]]))
    reloaded = _adaptive_biLM(order=torch.arange(11)).eval()  # built from another corpus's counts
    reloaded.load_state_dict(model.state_dict())
    assert torch.equal(reloaded.adaptive_rank, model.adaptive_rank)
    torch.testing.assert_close(reloaded(chars, *targets)["loss"], model(chars, *targets)["loss"], rtol=0, atol=0)
    assert "adaptive_rank" not in ELMo(ELMoConfig(**TINY), vocab_size=11).state_dict()  # a full softmax's stays as saved


@pytest.mark.parametrize("settings, message", [
    ({"softmax_cutoffs": (6, 3)}, r"softmax_cutoffs=\(6, 3\): expected strictly increasing ints >= 1"),
    ({"softmax_cutoffs": (0,)}, r"softmax_cutoffs=\(0,\): expected strictly increasing ints >= 1"),
    ({"softmax_cutoffs": (3,), "softmax_samples": 4}, r"softmax_samples=4: expected 0 with softmax_cutoffs"),
    ({"softmax_div_value": 0.5}, r"softmax_div_value=0.5: expected a number >= 1"),
])
def test_bad_adaptive_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        ELMoConfig(**{**TINY, **settings})
    with pytest.raises(ValueError, match=r"softmax_cutoffs=\[3, 11\]: expected every cutoff < the 11 softmax ids"):
        ELMo(ELMoConfig(**{**TINY, "softmax_cutoffs": (3, 11)}), vocab_size=11)

"""impl._lstmp: both directions' LSTMP layer in one Function, against torch's nn.LSTM."""

import pytest
import torch
import torch.nn as nn

from impl._lstmp import lstmp_pair
from impl.elmo import ELMo, ELMoConfig, batch_char_ids, bilm_targets

D, H = 6, 10  # projection and cells: nn.LSTM(D, H, proj_size=D), as ELMo builds its layers


def _two_lstms(dtype: torch.dtype) -> tuple[nn.LSTM, nn.LSTM]:
    torch.manual_seed(0)
    return (nn.LSTM(D, H, batch_first=True, proj_size=D).to(dtype),
            nn.LSTM(D, H, batch_first=True, proj_size=D).to(dtype))


def _outputs_and_gradients(run, x, weights, lstms):
    out = run(x)  # (2, B, T, D)
    params = [x, *lstms[0].parameters(), *lstms[1].parameters()]
    return out, torch.autograd.grad((out * weights).sum(), params)


def test_the_pair_is_two_nn_lstms_to_rounding_in_values_and_every_gradient():
    """In float64 the hand-written backward pass agrees with autograd through nn.LSTM to 1e-12:
    the same arithmetic (gates, cell, projection), not an approximation of it."""
    lstms = _two_lstms(torch.float64)
    x = torch.randn(2, 3, 5, D, dtype=torch.float64, requires_grad=True)  # (2, B, T, D)
    weights = torch.randn(2, 3, 5, D, dtype=torch.float64)  # a loss that weighs every output differently
    ours = _outputs_and_gradients(lambda x: lstmp_pair(x, *lstms, torch.float64), x, weights, lstms)
    torch_s = _outputs_and_gradients(lambda x: torch.stack([lstms[0](x[0])[0], lstms[1](x[1])[0]]), x, weights, lstms)
    torch.testing.assert_close(ours[0], torch_s[0], rtol=0, atol=1e-12)
    for got, want in zip(ours[1], torch_s[1], strict=True):  # x, then each LSTM's four weights and two biases
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_bf16_matmuls_round_the_pair_but_keep_its_state_and_output_in_the_input_dtype():
    lstms = _two_lstms(torch.float32)
    x = torch.randn(2, 4, 7, D, requires_grad=True)
    weights = torch.randn(2, 4, 7, D)
    exact = _outputs_and_gradients(lambda x: lstmp_pair(x, *lstms, torch.float32), x, weights, lstms)
    rounded = _outputs_and_gradients(lambda x: lstmp_pair(x, *lstms, torch.bfloat16), x, weights, lstms)
    assert rounded[0].dtype == torch.float32 and not torch.equal(rounded[0], exact[0])  # the matmuls did round
    torch.testing.assert_close(rounded[0], exact[0], rtol=0, atol=2e-2)  # 8 significant bits, not another layer
    for got, want in zip(rounded[1], exact[1], strict=True):
        assert got.dtype == torch.float32 and (got - want).norm() < 3e-2 * want.norm()


TINY = dict(char_dim=4, max_chars=8, filters=((1, 4), (2, 4), (3, 8)), highway_layers=1, projection_dim=8,
            hidden=12, layers=2, dropout=0.0)


@pytest.mark.parametrize("training", [False, True])
def test_elmo_on_a_cpu_runs_its_biLSTM_as_pairs_with_nn_lstms_arithmetic(monkeypatch, training):
    """The CPU path (both directions per call; a padded row's backward LM reads its real words
    only, as before) gives the loss, the layers and every gradient of the nn.LSTM path that ELMo
    takes on a GPU."""
    torch.manual_seed(0)
    model = ELMo(ELMoConfig(**TINY), vocab_size=11).train(training)
    chars = batch_char_ids([["the", "cat", "sat", "down"], ["a", "dog"]], max_chars=8)  # (2, 6, 8): one padded row
    targets = bilm_targets(torch.tensor([[9, 1, 2, 3, 6, 10], [9, 4, 5, 10, -100, -100]]))

    def run():
        model.zero_grad()
        loss = model(chars, *targets)["loss"]
        loss.backward()
        return loss, model.representations(chars), [p.grad.clone() for p in model.parameters()]

    assert model._pairs_on(chars.device)
    pairs = run()
    monkeypatch.setattr(ELMo, "_pairs_on", lambda self, device: False)
    monkeypatch.setattr(ELMo, "_pair_stack", lambda self, x: pytest.fail("the pair path ran"))
    lstms = run()
    torch.testing.assert_close(pairs[0], lstms[0], rtol=0, atol=1e-6)
    torch.testing.assert_close(pairs[1], lstms[1], rtol=0, atol=1e-6)
    for got, want in zip(pairs[2], lstms[2], strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5)

"""The faster ELMo training step (issue 27): what it computes once instead of per token is
exactly what it computed per token."""

import pytest
import torch
import torch.nn.functional as F

from impl.elmo import ELMo, ELMoConfig, batch_char_ids, bilm_targets

pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")

TINY = dict(char_dim=4, max_chars=8, filters=((1, 4), (2, 4), (3, 8)), highway_layers=2, projection_dim=8,
            hidden=12, layers=2)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def encode_every_position(model: ELMo, chars: torch.Tensor) -> torch.Tensor:
    """The token encoder's arithmetic applied to every position, repeats and padding included:
    chars (B, T, C) -> (B, T, D)."""
    encoder = model.token_encoder
    x = encoder.embed(chars.flatten(0, 1)).transpose(1, 2)  # (B*T, char_dim, C)
    pooled = torch.cat([conv(x).amax(dim=-1) for conv in encoder.convs], dim=-1)  # (B*T, n_filters)
    return encoder.proj(encoder.highway(F.relu(pooled))).view(*chars.shape[:2], -1)


def test_each_distinct_word_encoded_once_gives_the_per_position_vectors_and_gradients():
    torch.manual_seed(0)
    model = ELMo(ELMoConfig(**TINY), vocab_size=7)
    # "the" four times, "cat" twice, <S> and </S> three times each, four padding words: 7 distinct
    # rows (the, cat, a, dog, <S>, </S>, padding) of 18 positions.
    chars = batch_char_ids([["the", "cat", "the", "a"], ["the", "cat", "the"], ["dog"]], max_chars=8)  # (3, 6, 8)
    assert torch.unique(chars.flatten(0, 1), dim=0).shape[0] == 7
    weights = torch.randn(3, 6, 8)  # a loss that weighs every position differently

    per_position = encode_every_position(model, chars)
    (per_position * weights).sum().backward()
    expected_grads = {name: p.grad.clone() for name, p in model.token_encoder.named_parameters()}
    model.zero_grad()

    once_per_word = model.token_encoder(chars)
    (once_per_word * weights).sum().backward()
    torch.testing.assert_close(once_per_word, per_position)
    for name, p in model.token_encoder.named_parameters():
        torch.testing.assert_close(p.grad, expected_grads[name], msg=f"gradient of {name}")

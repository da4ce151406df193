"""The faster ELMo training step (issue 27): what it computes once instead of per token is
exactly what it computed per token, and the sampled softmax's proposal follows the targets'
frequencies."""

import pytest
import torch
import torch.nn.functional as F

from bench.data.prepared import prepare_corpus
from bench.data.vocab import TokenizerConfig, VocabConfig
from bench.train.bilm import BiLMData
from impl import elmo
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


def test_the_sampled_softmax_draws_ids_by_their_frequency_rank(monkeypatch):
    """With a frequency order the log-uniform proposal ranks the ids by it: the most frequent
    id is drawn most and its expected count is the largest, whatever its id."""
    vocab_size = 40
    order = torch.arange(vocab_size).flip(0)  # id 39 is the most frequent, id 0 the least
    torch.manual_seed(0)
    model = ELMo(ELMoConfig(**TINY, softmax_samples=4000), vocab_size, frequency_order=order).train()
    seen = {}

    def record(hidden, targets, weight, bias, samples, log_expected):
        seen.update(samples=samples, log_expected=log_expected)
        return torch.zeros(())

    monkeypatch.setattr(elmo, "sampled_softmax_loss", record)
    chars = batch_char_ids([["the", "cat"]], max_chars=8)
    model(chars, *bilm_targets(torch.tensor([[38, 1, 2, 39]])))
    counts = torch.bincount(seen["samples"], minlength=vocab_size)  # (V,)
    assert counts.argmax() == 39 and counts[39] > counts[20] > counts[0]
    assert seen["log_expected"].argmax() == 39 and seen["log_expected"].argmin() == 0
    with pytest.raises(ValueError, match="permutation of the 40 softmax ids"):
        ELMo(ELMoConfig(**TINY), vocab_size, frequency_order=torch.zeros(vocab_size))


def test_the_biLM_ranks_sentence_boundaries_and_unknown_words_by_their_counts(tmp_path):
    """<unk>, <S> and </S> come last in the softmax ids but are frequent targets."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for split in ("train", "validation", "test"):
        (folder / f"{split}.txt").write_text("the cat sat\nthe cat sat\nthe rare1 rare2\n")
    prepared = prepare_corpus(str(folder), None, TokenizerConfig(pattern=r"\S+"),
                              VocabConfig(min_count=2, unk="<unk>"))
    data = BiLMData(prepared, max_chars=8)
    the, unk = prepared.vocab.words.index("the"), prepared.vocab.unk_id
    assert unk == 3 and (data.bos_id, data.eos_id) == (4, 5)  # the, cat, sat, then <unk>, <S>, </S>
    # Target counts: the, <S>, </S> 3 each; cat, sat, <unk> (rare1, rare2) 2 each; ties by id.
    assert data.frequency_order().tolist() == [the, 4, 5, 1, 2, 3]

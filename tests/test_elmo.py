"""ELMo biLM: shapes, direction separation, character ids, ScalarMix, a tiny training run."""

import math

import pytest
import torch
import torch.nn.functional as F

from impl._softmax import log_uniform_log_prob, log_uniform_sample, sampled_softmax_loss
from impl.elmo import (
    BOS,
    EOS,
    IGNORE,
    ELMo,
    ELMoConfig,
    ScalarMix,
    batch_char_ids,
    bilm_targets,
    char_ids,
)

# PyTorch's oneDNN LSTM has no projection; its default kernel is used, which is what we want.
pytestmark = [pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN"),
              pytest.mark.usefixtures("one_torch_thread")]

TINY = dict(char_dim=4, max_chars=8, filters=((1, 4), (2, 4), (3, 8)), highway_layers=1, projection_dim=8,
            hidden=12, layers=2)


def tiny_model(vocab_size=11, **overrides) -> ELMo:
    torch.manual_seed(0)
    return ELMo(ELMoConfig(**{**TINY, **overrides}), vocab_size)


def test_shapes():
    model = tiny_model()
    chars = batch_char_ids([["the", "cat", "sat"], ["a", "dog"]], max_chars=8)
    assert chars.shape == (2, 5, 8)  # <S> w1 w2 w3 </S>
    word_ids = torch.tensor([[9, 1, 2, 3, 10], [9, 4, 5, 10, IGNORE]])
    out = model(chars, *bilm_targets(word_ids), logits=True)
    assert out["logits_fwd"].shape == out["logits_bwd"].shape == (2, 5, 11)
    for key in ("loss_fwd", "loss_bwd", "loss"):
        assert out[key].shape == () and torch.isfinite(out[key])
    torch.testing.assert_close(out["loss"], (out["loss_fwd"] + out["loss_bwd"]) / 2)
    assert model(chars)["loss"] is None
    assert model(chars, targets_fwd=bilm_targets(word_ids)[0])["loss_bwd"] is None

    layers = model.eval().representations(chars)
    assert layers.shape == (3, 2, 5, 16)  # L + 1 layers, 2D = 16
    # Layer 0 is the token encoder output, twice.
    x = model.token_encoder(chars)
    torch.testing.assert_close(layers[0], torch.cat([x, x], dim=-1))
    mix = ScalarMix(3)
    assert mix(layers).shape == (2, 5, 16)
    with pytest.raises(ValueError, match="expected 3 layers"):
        mix(layers[:2])


def test_bilm_targets_shift_both_ways():
    fwd, bwd = bilm_targets(torch.tensor([[1, 2, 3, 4], [1, 2, IGNORE, IGNORE]]))
    assert fwd.tolist() == [[2, 3, 4, IGNORE], [2, IGNORE, IGNORE, IGNORE]]
    # The padding after a row's last word (2) is no position of the backward LM.
    assert bwd.tolist() == [[IGNORE, 1, 2, 3], [IGNORE, 1, IGNORE, IGNORE]]


def test_forward_lm_never_sees_later_tokens_and_backward_never_earlier():
    model = tiny_model().eval()
    words = "we saw the old man walk slowly down the long road home".split()
    t = 5
    chars = batch_char_ids([words], max_chars=8, boundaries=False)  # (1, 12, 8)
    reference = model(chars, logits=True)

    later = chars.clone()
    later[0, t + 3] = char_ids(["zebra"], 8)[0]
    changed = model(later, logits=True)
    assert torch.equal(changed["logits_fwd"][:, :t + 1], reference["logits_fwd"][:, :t + 1])
    assert not torch.equal(changed["logits_fwd"][:, t + 3], reference["logits_fwd"][:, t + 3])
    assert not torch.equal(changed["logits_bwd"][:, t], reference["logits_bwd"][:, t])  # the other way it shows

    earlier = chars.clone()
    earlier[0, t - 3] = char_ids(["zebra"], 8)[0]
    changed = model(earlier, logits=True)
    assert torch.equal(changed["logits_bwd"][:, t:], reference["logits_bwd"][:, t:])
    assert not torch.equal(changed["logits_bwd"][:, t - 3], reference["logits_bwd"][:, t - 3])
    assert not torch.equal(changed["logits_fwd"][:, t], reference["logits_fwd"][:, t])


def test_right_padding_does_not_reach_the_backward_lm():
    model = tiny_model().eval()
    short, long = ["a", "short", "one"], ["a", "much", "longer", "sentence", "here"]
    batch = model.representations(batch_char_ids([short, long], max_chars=8))  # (3, 2, 7, 16)
    alone = model.representations(batch_char_ids([short], max_chars=8))  # (3, 1, 5, 16)
    torch.testing.assert_close(batch[:, 0, :5], alone[:, 0])
    holes = batch_char_ids([short, long], max_chars=8)
    holes[1, 2] = 0  # a padding word between real words
    with pytest.raises(ValueError, match="padding words"):
        model(holes)


def test_char_ids_by_hand():
    ids = char_ids(["ab", "é", "abcdef", BOS, EOS, ""], max_chars=6)
    assert ids.tolist() == [
        [257, ord("a") + 1, ord("b") + 1, 258, 0, 0],
        [257, 0xC3 + 1, 0xA9 + 1, 258, 0, 0],  # UTF-8 bytes of é
        [257, ord("a") + 1, ord("b") + 1, ord("c") + 1, ord("d") + 1, 258],  # cut to max_chars - 2 bytes
        [257, 259, 258, 0, 0, 0],
        [257, 260, 258, 0, 0, 0],
        [257, 258, 0, 0, 0, 0],
    ]
    with pytest.raises(ValueError, match=r"^max_chars=2: expected an int >= 3$"):
        char_ids(["a"], 2)


def test_scalar_mix_with_equal_weights_is_gamma_times_mean():
    mix = ScalarMix(4)
    with torch.no_grad():
        mix.gamma.fill_(2.5)
    layers = torch.randn(4, 3, 5, 6)
    torch.testing.assert_close(mix(layers), 2.5 * layers.mean(dim=0))
    with torch.no_grad():
        mix.weights.copy_(torch.tensor([0.0, 0.0, 50.0, 0.0]))  # softmax puts ~all weight on layer 2
    torch.testing.assert_close(mix(layers), 2.5 * layers[2], atol=1e-4, rtol=1e-4)


def _tiny_batch():
    """Three sentences as (chars, (targets_fwd, targets_bwd), vocab size)."""
    sentences = [["the", "cat", "sat"], ["the", "dog", "ran", "far"], ["a", "cat", "ran"]]
    vocab = {w: i for i, w in enumerate(sorted({w for s in sentences for w in s} | {BOS, EOS}))}
    chars = batch_char_ids(sentences, max_chars=8)
    rows = [[BOS, *s, EOS] for s in sentences]
    word_ids = torch.full(chars.shape[:2], IGNORE)
    for b, row in enumerate(rows):
        word_ids[b, :len(row)] = torch.tensor([vocab[w] for w in row])
    return chars, bilm_targets(word_ids), len(vocab)


def _train_tiny(steps: int = 60, **overrides) -> tuple[ELMo, list[float]]:
    chars, targets, vocab_size = _tiny_batch()
    model = tiny_model(vocab_size=vocab_size, dropout=0.0, **overrides)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        loss = model(chars, *targets)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model, losses


def test_tiny_training_run_lowers_the_loss():
    _, losses = _train_tiny()
    assert losses[-1] < 0.3 * losses[0]


def test_sampled_softmax_with_every_id_once_and_no_correction_is_the_full_cross_entropy():
    torch.manual_seed(0)
    hidden, weight, bias = torch.randn(2, 3, 4), torch.randn(6, 4), torch.randn(6)
    targets = torch.tensor([[1, 5, IGNORE], [0, IGNORE, 3]])
    full = F.cross_entropy((hidden @ weight.T + bias).flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
    # The target's own draw is an accidental hit and dropped; the other 5 ids are its negatives.
    sampled = sampled_softmax_loss(hidden, targets, weight, bias, torch.arange(6), torch.zeros(6))
    torch.testing.assert_close(sampled, full)


def test_sampled_softmax_by_hand():
    # One position, target 0 (logit 1, expected count 1), candidates [2, 0, 2] with logits 0 and
    # log expected count log 2: the hit on id 0 is dropped, id 2 counts twice as e^(0 - log 2).
    hidden, weight, bias = torch.ones(1, 1), torch.tensor([[1.0], [5.0], [0.0]]), torch.zeros(3)
    log_expected = torch.tensor([0.0, 0.0, math.log(2)])
    loss = sampled_softmax_loss(hidden, torch.tensor([0]), weight, bias, torch.tensor([2, 0, 2]), log_expected)
    expected = -math.log(math.e / (math.e + 2 * 0.5))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_log_uniform_sampler_draws_its_stated_distribution():
    vocab_size = 10
    probs = log_uniform_log_prob(torch.arange(vocab_size), vocab_size).exp()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert probs[0].item() == pytest.approx(math.log(2) / math.log(11), rel=1e-6)  # log(2/1) / log(V + 1)
    torch.manual_seed(0)
    draws = log_uniform_sample(200_000, vocab_size, "cpu")
    assert draws.min() >= 0 and draws.max() < vocab_size
    frequencies = torch.bincount(draws, minlength=vocab_size).double() / len(draws)
    assert torch.allclose(frequencies, probs.double(), atol=0.005)  # 3 standard errors at p = 0.29 is 0.003


def test_sampled_softmax_trains_and_evaluation_stays_exact():
    chars, targets, vocab_size = _tiny_batch()
    model, _ = _train_tiny(steps=200, softmax_samples=4)
    train_out = model(chars, *targets)
    assert train_out["logits_fwd"] is None and torch.isfinite(train_out["loss"])
    eval_out = model.eval()(chars, *targets, logits=True)  # the full softmax, as evaluation always is
    full = F.cross_entropy(eval_out["logits_fwd"].flatten(0, 1), targets[0].flatten(), ignore_index=IGNORE)
    torch.testing.assert_close(eval_out["loss_fwd"], full)
    untrained = tiny_model(vocab_size=vocab_size, dropout=0.0).eval()(chars, *targets)["loss"]
    # Scored on 4 draws of 11 ids a step, the full softmax learned too (0.56 nats from 2.24;
    # the full softmax's own 60 steps reach 0.42).
    assert eval_out["loss"] < 0.35 * untrained


def test_any_word_gets_a_finite_vector():
    model = tiny_model().eval()
    vectors = model.word_vectors(["zyxwvut", "", "naïve", "a" * 100, "日本語", BOS])
    assert vectors.shape == (6, 8) and torch.isfinite(vectors).all()


def test_bad_config_raises():
    with pytest.raises(ValueError, match=r"^ELMoConfig\.projection_dim=64: expected <= hidden=32$"):
        ELMoConfig(projection_dim=64, hidden=32)
    with pytest.raises(ValueError, match=r"^ELMoConfig\.highway_layers=-1: expected an int >= 0$"):
        ELMoConfig(highway_layers=-1)
    with pytest.raises(ValueError, match=r"^ELMoConfig\.softmax_samples=-5: expected an int >= 0$"):
        ELMoConfig(softmax_samples=-5)
    with pytest.raises(ValueError, match="filter width"):
        ELMoConfig(max_chars=4, filters=((5, 8),))
    assert ELMoConfig(filters=[[1, 4], [2, 4]]).filters == ((1, 4), (2, 4))
    with pytest.raises(ValueError, match="vocab_size"):
        ELMo(ELMoConfig(**TINY), 0)


def test_no_projection_when_hidden_equals_projection_dim():
    model = tiny_model(hidden=8)
    assert model.forward_lstms[0].proj_size == 0
    assert model(batch_char_ids([["a", "b"]], max_chars=8), logits=True)["logits_fwd"].shape == (1, 4, 11)

"""Bengio et al. (2003) NNLM: the classic toy example, shapes, parameter counts, windows."""

import numpy as np
import pytest
import torch

from bench.train.lm import LMTrainConfig, evaluate_perplexity, nnlm_windows, train_lm
from impl.nnlm import NNLM, NNLMConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOY = ["I like milk", "I love hot-pot", "I hate coffee", "I want sing", "I am sleep", "I go home",
       "Love you forever"]


def test_toy_sentences_predict_their_last_word():
    words = list(dict.fromkeys(w for sentence in TOY for w in sentence.split()))
    index = {w: i for i, w in enumerate(words)}
    contexts = torch.tensor([[index[w] for w in s.split()[:2]] for s in TOY])  # (7, 2)
    targets = torch.tensor([index[s.split()[2]] for s in TOY])  # (7,)
    torch.manual_seed(0)
    model = NNLM(NNLMConfig(n=3, m=2, h=10), len(words))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(600):  # all seven are right from epoch 150 on (checked up to 5000)
        order = torch.randperm(len(TOY), generator=generator)
        for batch in order.split(4):
            _, loss = model(contexts[batch], targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    logits, _ = model(contexts)
    predicted = [words[i] for i in logits.argmax(-1).tolist()]
    assert " ".join(predicted) == "milk hot-pot coffee sing sleep home forever"


def test_shapes_and_loss():
    model = NNLM(NNLMConfig(n=4, m=3, h=5), vocab_size=11)
    context = torch.randint(0, 11, (6, 3))
    logits, loss = model(context)
    assert logits.shape == (6, 11) and loss is None
    logits, loss = model(context, torch.randint(0, 11, (6,)))
    assert loss.shape == () and torch.isfinite(loss)
    with pytest.raises(ValueError, match=r"context must be \(batch, 3\)"):
        model(torch.zeros(6, 2, dtype=torch.long))


def test_parameter_counts_by_hand():
    # V=10, n=3, m=4, h=5: C 10*4 + H 8*5 + d 5 + U 5*10 + b 10 = 145, plus W 8*10 = 80 when direct.
    def count(**kwargs):
        return sum(p.numel() for p in NNLM(NNLMConfig(n=3, m=4, **kwargs), 10).parameters())

    assert count(h=5, direct=True) == 225
    # The paper's formula: |V|(1 + nm + h) + h(1 + (n-1)m) = 10 * 18 + 5 * 9.
    assert count(h=5, direct=True) == 10 * (1 + 3 * 4 + 5) + 5 * (1 + 2 * 4)
    assert count(h=5, direct=False) == 145
    assert count(h=0, direct=True) == 10 * 4 + 8 * 10 + 10


@pytest.mark.parametrize("kwargs, message", [
    ({"n": 1}, r"^NNLMConfig\.n=1: expected an int >= 2"),
    ({"n": 3.0}, r"^NNLMConfig\.n=3\.0: expected an int >= 2"),
    ({"m": 0}, r"^NNLMConfig\.m=0: expected an int >= 1$"),
    ({"h": -1}, r"^NNLMConfig\.h=-1: expected an int >= 0"),
    ({"h": 0, "direct": False}, r"^NNLMConfig\.direct=False: expected True when h=0"),
    ({"dropout": 1.0}, r"^NNLMConfig\.dropout=1\.0: expected a number in \[0, 1\)$"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NNLMConfig(**kwargs)


def test_windows_pad_before_the_stream_start():
    contexts, targets = nnlm_windows(np.array([5, 6, 7], dtype=np.int32), context_size=2, start_id=9)
    assert contexts.tolist() == [[9, 9], [9, 5], [5, 6]]
    assert targets.tolist() == [5, 6, 7]


def test_uniform_nnlm_has_perplexity_equal_to_vocab_size():
    model = NNLM(NNLMConfig(n=3, m=4, h=5), vocab_size=13)
    with torch.no_grad():
        for layer in (model.W, model.U):
            layer.weight.zero_()
    ids = np.random.default_rng(0).integers(0, 13, size=50).astype(np.int32)
    result = evaluate_perplexity(model, ids, torch.device("cpu"), start_id=12, batch_size=8)
    assert result["perplexity"] == pytest.approx(13, rel=1e-6)
    assert result["scored_tokens"] == 50 and "id 12" in result["context"]


def test_train_lm_learns_a_repeating_stream():
    ids = np.tile(np.arange(7, dtype=np.int32), 40)  # 0..6 repeated: each token fixes the next
    torch.manual_seed(0)
    model = NNLM(NNLMConfig(n=3, m=8, h=16), vocab_size=8)
    before = evaluate_perplexity(model, ids[:70], torch.device("cpu"), start_id=7, batch_size=32)["perplexity"]
    result = train_lm(model, ids, ids[:70], LMTrainConfig(lr=1e-2, batch_size=16, epochs=3), torch.device("cpu"),
                      seed=0, start_id=7)
    assert [row["epoch"] for row in result["history"]] == [1, 2, 3]
    assert result["best_valid_perplexity"] < min(2.0, before)
    after = evaluate_perplexity(model, ids[:70], torch.device("cpu"), start_id=7, batch_size=32)["perplexity"]
    assert after == pytest.approx(result["best_valid_perplexity"])  # the best state is the one kept

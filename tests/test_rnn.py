"""RNN language models (Elman, LSTM, GRU), the gradient-flow diagnostic and the LM loops."""

import numpy as np
import pytest
import torch

from bench.errors import BenchError
from bench.train.lm import LMTrainConfig, batchify, bptt_batches, evaluate_perplexity, train_lm
from impl.rnn import RNNLM, RNNLMConfig, gradient_flow

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CPU = torch.device("cpu")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_shapes_for_every_cell(cell):
    model = RNNLM(RNNLMConfig(cell=cell, emb=6, hidden=8, layers=2), vocab_size=17)
    ids = torch.randint(0, 17, (3, 5))
    logits, loss, state = model(ids)
    assert logits.shape == (3, 5, 17) and loss is None
    for s in state if cell == "lstm" else (state,):
        assert s.shape == (2, 3, 8)
    _, loss, _ = model(ids, torch.randint(0, 17, (3, 5)), state)
    assert loss.shape == () and torch.isfinite(loss)
    initial = model.init_state(3, CPU)
    assert (type(initial) is tuple) == (cell == "lstm")


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_carried_state_equals_one_long_call(cell):
    torch.manual_seed(0)
    model = RNNLM(RNNLMConfig(cell=cell, emb=6, hidden=8, layers=2, dropout=0.5), vocab_size=17).eval()
    ids = torch.randint(0, 17, (2, 12))
    whole, _, _ = model(ids)
    first, _, state = model(ids[:, :5])
    second, _, _ = model(ids[:, 5:], state=state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)


def test_tie_weights_shares_one_tensor():
    model = RNNLM(RNNLMConfig(emb=8, hidden=8, tie_weights=True), vocab_size=17)
    assert model.decoder.weight is model.embed.weight
    assert sum(p.numel() for p in model.parameters()) < sum(
        p.numel() for p in RNNLM(RNNLMConfig(emb=8, hidden=8), vocab_size=17).parameters())
    with pytest.raises(ValueError, match=r"^RNNLMConfig\.tie_weights=True: expected False unless emb == hidden"):
        RNNLMConfig(emb=8, hidden=16, tie_weights=True)
    with pytest.raises(ValueError, match=r"^RNNLMConfig\.cell='transformer': expected one of rnn, lstm, gru$"):
        RNNLMConfig(cell="transformer")
    with pytest.raises(ValueError, match=r"^RNNLMConfig\.layers=0: expected an int >= 1$"):
        RNNLMConfig(layers=0)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_uniform_model_has_perplexity_equal_to_vocab_size(batch_size):
    model = RNNLM(RNNLMConfig(cell="gru", emb=6, hidden=8, layers=1), vocab_size=23)
    with torch.no_grad():
        model.decoder.weight.zero_()
        model.decoder.bias.zero_()
    ids = np.random.default_rng(0).integers(0, 23, size=100).astype(np.int32)
    result = evaluate_perplexity(model, ids, CPU, start_id=22, batch_size=batch_size, bptt=7)
    assert result["perplexity"] == pytest.approx(23, rel=1e-6)
    # batch 1: start id + 100 tokens, every token scored; batch 3: 3 rows of 33, 32 targets each.
    assert result["scored_tokens"] == (100 if batch_size == 1 else 96)
    assert ("every token scored" in result["context"]) == (batch_size == 1)


def test_lstm_carries_gradient_further_back_than_elman_rnn():
    ids = torch.randint(0, 50, (4, 60), generator=torch.Generator().manual_seed(0))
    far = {}
    for cell in ("rnn", "lstm"):
        torch.manual_seed(0)
        model = RNNLM(RNNLMConfig(cell=cell, emb=64, hidden=64, layers=2), vocab_size=50)
        norms = gradient_flow(model, ids, max_k=50)
        assert len(norms) == 50 and all(n > 0 for n in norms)
        assert model.training and all(p.grad is None for p in model.parameters())  # no side effects
        far[cell] = norms[-1]
    assert far["rnn"] < 1e-3 * far["lstm"]
    with pytest.raises(ValueError, match="at least max_k \\+ 2"):
        gradient_flow(model, ids[:, :51], max_k=50)


def test_batchify_and_bptt_by_hand():
    data = batchify(np.arange(11, dtype=np.int32), batch_size=2)  # 5 steps per row, token 10 dropped
    assert data.tolist() == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    batches = [(x.tolist(), y.tolist()) for x, y in bptt_batches(data, bptt=3)]
    assert batches == [([[0, 1, 2], [5, 6, 7]], [[1, 2, 3], [6, 7, 8]]),
                       ([[3], [8]], [[4], [9]])]
    with pytest.raises(BenchError, match="too short for batch size 6"):
        batchify(np.arange(11, dtype=np.int32), batch_size=6)


def test_train_lm_learns_and_keeps_history():
    ids = np.tile(np.arange(9, dtype=np.int32), 60)  # a cycle: each token fixes the next
    torch.manual_seed(0)
    model = RNNLM(RNNLMConfig(cell="lstm", emb=16, hidden=16, layers=1, dropout=0.0), vocab_size=10)
    result = train_lm(model, ids, ids[:90], LMTrainConfig(lr=3e-2, batch_size=4, bptt=10, epochs=3), CPU,
                      seed=0, start_id=9)
    history = result["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3] and result["stopped"] == "epochs"
    assert set(history[0]) >= {"train_loss", "valid_perplexity", "lr", "seconds", "tokens_per_s"}
    assert history[0]["train_tokens"] == 4 * (135 - 1)  # 540 tokens in 4 rows of 135
    assert result["best_valid_perplexity"] < 2.0


def test_train_lm_stops_on_the_time_budget():
    ids = np.tile(np.arange(9, dtype=np.int32), 60)
    model = RNNLM(RNNLMConfig(cell="rnn", emb=8, hidden=8, layers=1), vocab_size=10)
    config = LMTrainConfig(batch_size=4, bptt=10, epochs=5, max_minutes=1e-9)
    result = train_lm(model, ids, ids[:90], config, CPU, seed=0, start_id=9)
    assert result["stopped"] == "time budget"
    assert len(result["history"]) == 1 and not result["history"][0]["complete"]
    assert result["history"][0]["train_tokens"] == 4 * 10  # one step, then the budget check


@pytest.mark.slow
@pytest.mark.data
def test_small_lstm_lowers_ptb_sample_validation_perplexity(data_root):
    from bench.data.prepared import prepare_corpus
    from bench.data.vocab import TokenizerConfig, VocabConfig

    prepared = prepare_corpus("ptb-sample", data_root, TokenizerConfig(lowercase=False, pattern=r"\S+"),
                              VocabConfig(min_count=1, unk="<unk>", eos="</s>"))
    vocab_size = len(prepared.vocab)
    valid = prepared.streams["validation"].ids
    torch.manual_seed(0)
    model = RNNLM(RNNLMConfig(cell="lstm", emb=64, hidden=64, layers=1, dropout=0.0), vocab_size)
    eos = prepared.vocab.eos_id
    before = evaluate_perplexity(model, valid, CPU, start_id=eos, batch_size=1)["perplexity"]
    assert before == pytest.approx(vocab_size, rel=0.05)  # small init: near uniform
    result = train_lm(model, prepared.train.ids, valid, LMTrainConfig(lr=3e-3, batch_size=32, epochs=1), CPU,
                      seed=0, start_id=eos)
    after = evaluate_perplexity(model, valid, CPU, start_id=eos, batch_size=1)
    assert after["perplexity"] == pytest.approx(result["best_valid_perplexity"])
    assert after["perplexity"] < before / 5
    assert after["scored_tokens"] == len(valid)

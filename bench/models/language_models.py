"""The language models the suite trains and scores, as builds of the one contract
(bench.models.contract: `build(ctx) -> Trained`): interpolated Kneser-Ney, the neural LMs that
bench.train.lm's loop trains (NNLM, RNN/LSTM/GRU, and through `neural_lm` a user's module),
Bengio et al.'s NNLM + kn5 mix and ELMo's biLM.

A neural build with `ctx.checkpoint` loads saved weights (bench.models.checkpoints) instead of
training: its record's history is then empty. The biLM's build also reads `ctx.init_from`:
saved weights trained further on the cell's corpus (bench.run.finetune).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from bench.data.prepared import PreparedCorpus
from bench.errors import BenchError
from bench.models import checkpoints
from bench.models.contract import BuildContext, TrainedLM, TrainedNeuralLM
from bench.train import bilm, lm
from impl import kneser_ney, nnlm


def start_id(prepared: PreparedCorpus) -> int:
    """The id read before a split's first token: the sentence end when sentences end in
    one (so the first sentence looks like every later one), else the unknown-word id."""
    vocab = prepared.vocab
    if vocab.unk_id is None:
        raise BenchError("language models need a closed vocabulary: set vocab.unk (e.g. \"<unk>\")")
    return vocab.eos_id if vocab.eos_id is not None else vocab.unk_id


def kneser_ney_lm(ctx: BuildContext) -> TrainedLM:
    """Interpolated modified Kneser-Ney, counted on the train split (no seed, no device: numpy)."""
    prepared = ctx.prepared
    model = kneser_ney.KneserNey(ctx.config).fit(prepared.train.ids, len(prepared.vocab))
    return TrainedLM(lambda split: kneser_ney.evaluate(model, prepared.streams[split].ids), prepared.train.n_tokens,
                     {"discounts": model.discounts.tolist(), "fallback_orders": model.fallback_orders})


def _train_neural(make_model: Callable, ctx: BuildContext) -> tuple[torch.nn.Module, dict]:
    """The model trained by bench.train.lm's loop, or with `ctx.checkpoint` its saved weights
    (then nothing is trained: the record's history is empty)."""
    prepared = ctx.prepared
    torch.manual_seed(ctx.seed)  # the initialization; train_lm seeds the data order and dropout
    model = make_model(ctx.config, len(prepared.vocab)).to(ctx.device)
    if ctx.checkpoint is not None:
        record = {"history": [], **checkpoints.load_module(model, ctx.checkpoint, prepared, "model")}
    else:
        record = lm.train_lm(model, prepared.train.ids, prepared.streams["validation"].ids, ctx.train_config,
                             ctx.device, seed=ctx.seed, start_id=start_id(prepared), progress=ctx.progress,
                             precision=ctx.precision)
    record["parameters"] = sum(p.numel() for p in model.parameters())
    return model, record


def _trained_tokens(record: dict) -> int:
    return sum(row["train_tokens"] for row in record["history"])


def neural_lm(make_model: Callable[..., torch.nn.Module]) -> Callable[[BuildContext], TrainedNeuralLM]:
    """The build of a network `make_model(config, vocab_size)` makes: trained by bench.train.lm's
    loop (or loaded from a checkpoint), scored by its perplexity evaluation."""

    def build(ctx: BuildContext) -> TrainedNeuralLM:
        model, record = _train_neural(make_model, ctx)
        recurrent = model.context_kind == "recurrent"
        train_config, prepared = ctx.train_config, ctx.prepared

        def score(split: str) -> dict:
            return lm.evaluate_perplexity(model, prepared.streams[split].ids, ctx.device, start_id=start_id(prepared),
                                          bptt=train_config.bptt,
                                          batch_size=train_config.eval_batch_size if recurrent else 1024,
                                          precision=ctx.precision)

        return TrainedNeuralLM(score, _trained_tokens(record), record, model)

    return build


def nnlm_mix(ctx: BuildContext) -> TrainedNeuralLM:
    """Bengio et al.'s "mix": p = λ p_NNLM + (1 - λ) p_KN5, λ chosen on validation. Its
    checkpoint is the NNLM's (kn5 and λ are fitted again, deterministically)."""
    model, record = _train_neural(nnlm.NNLM, ctx)
    prepared, device, precision = ctx.prepared, ctx.device, ctx.precision
    kn5 = kneser_ney.KneserNey(kneser_ney.KNConfig(order=5)).fit(prepared.train.ids, len(prepared.vocab))
    first = start_id(prepared)

    def mixed_log_probs(ids: np.ndarray, weight: float) -> np.ndarray:  # (N,)
        neural = lm.window_log_probs(model, ids, device, start_id=first, batch_size=1024, precision=precision)
        with np.errstate(divide="ignore"):  # log(0) at the grid's ends is -inf, which logaddexp handles
            return np.logaddexp(np.log(weight) + neural, np.log1p(-weight) + kn5.log_prob(ids))

    valid = prepared.streams["validation"].ids
    neural_valid = lm.window_log_probs(model, valid, device, start_id=first, batch_size=1024,
                                       precision=precision)  # (N,)
    kn_valid = kn5.log_prob(valid)  # (N,)
    grid = np.linspace(0.0, 1.0, 101)
    with np.errstate(divide="ignore"):
        mean_log_prob = [np.logaddexp(np.log(w) + neural_valid, np.log1p(-w) + kn_valid).mean() for w in grid]
    weight = float(grid[int(np.argmax(mean_log_prob))])
    record["mixture_weight_nnlm"] = weight

    def score(split: str) -> dict:
        ids = prepared.streams[split].ids
        nll = float(-mixed_log_probs(ids, weight).sum())
        return {"perplexity": float(np.exp(nll / len(ids))), "nll_sum": nll, "scored_tokens": len(ids),
                "context": f"NNLM ({model.context_size} previous tokens) and kn5 (4 previous tokens), "
                           f"weight {weight:.2f} on the NNLM chosen on validation; every token scored"}

    return TrainedNeuralLM(score, _trained_tokens(record) + prepared.train.n_tokens, record, model)


def elmo_bilm(ctx: BuildContext) -> bilm.TrainedBiLM:
    """bilm.build_elmo; with `ctx.checkpoint` the saved biLM (nothing trained); with
    `ctx.init_from` the saved biLM trained further on the corpus (bench.run.finetune:
    fine-tuning), its record naming the checkpoint it started from. Both need the corpus
    numericalized with the saved vocabulary."""
    prepared, config, train_config, device = ctx.prepared, ctx.config, ctx.train_config, ctx.device
    saved = ctx.checkpoint or ctx.init_from
    if saved is None:
        return bilm.build_elmo(prepared, config, train_config, ctx.seed, device, ctx.precision)
    data = bilm.BiLMData(prepared, config.max_chars)
    torch.manual_seed(ctx.seed)  # nothing is initialized at random, but dropout in training draws from it
    # The sampled softmax's proposal (impl.elmo) is not saved: it ranks this corpus's targets.
    model = bilm.ELMo(config, data.softmax_size, data.frequency_order()).to(device)
    loaded = checkpoints.load_module(model, saved, prepared, "model")
    if ctx.init_from is None:
        record = {"history": [], **loaded}
    else:
        record = {**bilm.train_bilm(model, data, train_config, device, seed=ctx.seed, progress=ctx.progress,
                                    precision=ctx.precision), "init_from": loaded["checkpoint"]}
    record.update(parameters=sum(p.numel() for p in model.parameters()), softmax_size=data.softmax_size)
    return bilm.TrainedBiLM(model, data, config, train_config, device, ctx.precision, record)


def elmo_layer_count(config: bilm.BiLMConfig, where: str) -> int:
    """The layers ELMo's probes see, from its config alone (no weights read)."""
    return config.layers + 1  # the token layer, then one per biLSTM layer

"""The language models the suite trains and scores, adapted to the registry's `lm` and `bilm`
contracts (bench.models.registry): interpolated Kneser-Ney, the neural LMs that
bench.train.lm's loop trains (NNLM, RNN/LSTM/GRU, and through `neural_lm` a user's module),
Bengio et al.'s NNLM + kn5 mix and ELMo's biLM; and `TrainedLM`, what an `lm` build returns.

A neural build with `checkpoint` loads saved weights (bench.models.checkpoints) instead of
training: its record's history is then empty. The biLM's build also takes `init_from`: saved
weights trained further on the cell's corpus (bench.run.finetune).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from bench.data.prepared import PreparedCorpus
from bench.errors import BenchError
from bench.models import checkpoints
from bench.train import bilm, lm
from impl import kneser_ney, nnlm


@dataclass
class TrainedLM:
    """A fitted language model: `score(split)` -> perplexity dict of that split.

    The dict has perplexity, nll_sum, scored_tokens and context; an open-vocabulary model
    also gives its own tokenization, vocab_rule, vocab_size and unk_rate, which replace
    the corpus vocabulary's in the perplexity row.
    """

    score: Callable[[str], dict]
    train_tokens: int  # tokens processed in training (all epochs), for tokens/s
    training: dict  # the training record (history, best epoch, stopping reason); {} if none
    module: torch.nn.Module | None = None  # the trained network, for `run --save-models`; None: nothing to save


def start_id(prepared: PreparedCorpus) -> int:
    """The id read before a split's first token: the sentence end when sentences end in
    one (so the first sentence looks like every later one), else the unknown-word id."""
    vocab = prepared.vocab
    if vocab.unk_id is None:
        raise BenchError("language models need a closed vocabulary: set vocab.unk (e.g. \"<unk>\")")
    return vocab.eos_id if vocab.eos_id is not None else vocab.unk_id


def kneser_ney_lm(prepared: PreparedCorpus, config: kneser_ney.KNConfig, train_config, seed: int,
                  device: torch.device) -> TrainedLM:
    """Interpolated modified Kneser-Ney, counted on the train split (no seed, no device: numpy)."""
    model = kneser_ney.KneserNey(config).fit(prepared.train.ids, len(prepared.vocab))
    return TrainedLM(lambda split: kneser_ney.evaluate(model, prepared.streams[split].ids), prepared.train.n_tokens,
                     {"discounts": model.discounts.tolist(), "fallback_orders": model.fallback_orders})


def _train_neural(make_model: Callable, prepared: PreparedCorpus, config, train_config: lm.LMTrainConfig,
                  seed: int, device: torch.device, precision: str,
                  checkpoint: str | None = None) -> tuple[torch.nn.Module, dict]:
    """The model trained by bench.train.lm's loop, or with `checkpoint` its saved weights
    (then nothing is trained: the record's history is empty)."""
    torch.manual_seed(seed)  # the initialization; train_lm seeds the data order and dropout
    model = make_model(config, len(prepared.vocab)).to(device)
    if checkpoint is not None:
        record = {"history": [], **checkpoints.load_module(model, checkpoint, prepared, "model")}
        record["parameters"] = sum(p.numel() for p in model.parameters())
        return model, record
    record = lm.train_lm(model, prepared.train.ids, prepared.streams["validation"].ids, train_config, device,
                         seed=seed, start_id=start_id(prepared), progress=prepared.progress, precision=precision)
    record["parameters"] = sum(p.numel() for p in model.parameters())
    return model, record


def _trained_tokens(record: dict) -> int:
    return sum(row["train_tokens"] for row in record["history"])


def neural_lm(make_model: Callable[..., torch.nn.Module]) -> Callable:
    """The `lm` build of a network `make_model(config, vocab_size)` makes: trained by
    bench.train.lm's loop (or loaded from a checkpoint), scored by its perplexity evaluation."""

    def build(prepared: PreparedCorpus, config, train_config: lm.LMTrainConfig, seed: int, device: torch.device,
              precision: str, checkpoint: str | None = None):
        model, record = _train_neural(make_model, prepared, config, train_config, seed, device, precision,
                                      checkpoint)
        recurrent = model.context_kind == "recurrent"

        def score(split: str) -> dict:
            return lm.evaluate_perplexity(model, prepared.streams[split].ids, device, start_id=start_id(prepared),
                                          bptt=train_config.bptt,
                                          batch_size=train_config.eval_batch_size if recurrent else 1024,
                                          precision=precision)

        return TrainedLM(score, _trained_tokens(record), record, model)

    return build


def nnlm_mix(prepared: PreparedCorpus, config: nnlm.NNLMConfig, train_config: lm.LMTrainConfig, seed: int,
              device: torch.device, precision: str, checkpoint: str | None = None) -> TrainedLM:
    """Bengio et al.'s "mix": p = λ p_NNLM + (1 - λ) p_KN5, λ chosen on validation. Its
    checkpoint is the NNLM's (kn5 and λ are fitted again, deterministically)."""
    model, record = _train_neural(nnlm.NNLM, prepared, config, train_config, seed, device, precision, checkpoint)
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

    return TrainedLM(score, _trained_tokens(record) + prepared.train.n_tokens, record, model)


def elmo_bilm(prepared: PreparedCorpus, config: bilm.BiLMConfig, train_config: lm.LMTrainConfig, seed: int,
              device: torch.device, precision: str, checkpoint: str | None = None,
              init_from: str | None = None) -> bilm.TrainedBiLM:
    """bilm.build_elmo; with `checkpoint` the saved biLM (nothing trained); with `init_from` the
    saved biLM trained further on `prepared` (bench.run.finetune: fine-tuning), its record
    naming the checkpoint it started from. Both need `prepared` numericalized with the saved
    vocabulary."""
    saved = checkpoint or init_from
    if saved is None:
        return bilm.build_elmo(prepared, config, train_config, seed, device, precision)
    data = bilm.BiLMData(prepared, config.max_chars)
    torch.manual_seed(seed)  # nothing is initialized at random, but dropout in training draws from it
    # The sampled softmax's proposal (impl.elmo) is not saved: it ranks this corpus's targets.
    model = bilm.ELMo(config, data.softmax_size, data.frequency_order()).to(device)
    loaded = checkpoints.load_module(model, saved, prepared, "model")
    if init_from is None:
        record = {"history": [], **loaded}
    else:
        record = {**bilm.train_bilm(model, data, train_config, device, seed=seed, progress=prepared.progress,
                                    precision=precision), "init_from": loaded["checkpoint"]}
    record.update(parameters=sum(p.numel() for p in model.parameters()), softmax_size=data.softmax_size)
    return bilm.TrainedBiLM(model, data, config, train_config, device, precision, record)


def elmo_layer_count(config: bilm.BiLMConfig, where: str) -> int:
    """The layers ELMo's probes see, from its config alone (no weights read)."""
    return config.layers + 1  # the token layer, then one per biLSTM layer

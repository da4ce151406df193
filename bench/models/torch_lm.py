"""Your own PyTorch language model: the `torch-lm` kind.

`[model.NAME] kind = "torch-lm"`, `module = "package.module:Class"`, `kwargs = {...}`: the
suite builds `Class(vocab_size, **kwargs)`, trains it with bench.train.lm's loop on the
corpus' ids and scores it under the recurrent perplexity protocol of `lstm` (the split
read `bptt` tokens at a time). The contract, token ids in and logits out:

    forward(ids)          ids (B, T) int64 -> logits (B, T, vocab_size), a stateless module
    init_state(B, device) -> state, and forward(ids, state) -> (logits, state): a stateful one

A stateful module's state (a tensor or a tuple of tensors) is carried from one `bptt`
chunk to the next and detached in between, as the LSTM's is; a stateless module reads
each chunk alone, which the perplexity rows' `context` states. `package.module` must be
importable (installed, or on PYTHONPATH). `check` builds the class once and runs it on a
(2, 3) batch before a run writes anything: a module that does not import, a class that is
not an nn.Module or logits of the wrong shape are one line and exit code 2.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.errors import BenchError
from bench.models.contract import BuildContext, TrainedNeuralLM
from bench.models.language_models import neural_lm

CHECK_VOCAB = 11  # the vocabulary size `check` builds the class with
CHECK_IDS_SHAPE = (2, 3)


@dataclass(frozen=True)
class TorchLMConfig:
    module: str = ""  # "package.module:Class"
    kwargs: dict = field(default_factory=dict)  # passed to Class(vocab_size, **kwargs)

    def __post_init__(self):
        package, _, name = self.module.partition(":") if isinstance(self.module, str) else ("", "", "")
        if not package or not name.isidentifier():
            raise ValueError(f"module: expected \"package.module:Class\", got {self.module!r}")
        if not isinstance(self.kwargs, dict):
            raise ValueError(f"kwargs: expected a table of keyword arguments, got {self.kwargs!r}")


def load_class(config: TorchLMConfig, where: str) -> type[nn.Module]:
    module_name, _, class_name = config.module.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # anything the user's module raises on import: reported, not a traceback
        raise BenchError(f"{where}.module {config.module!r}: {module_name} fails to import "
                         f"({type(exc).__name__}: {exc})") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise BenchError(f"{where}.module {config.module!r}: {module_name} has no {class_name}")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise BenchError(f"{where}.module {config.module!r}: {class_name} is not a torch.nn.Module subclass")
    return cls


class ContractLM(nn.Module):
    """The user's module under bench.train.lm's recurrent contract:
    forward(ids, targets, state) -> (logits (B, T, V), mean loss or None, state)."""

    context_kind = "recurrent"

    def __init__(self, inner: nn.Module, vocab_size: int):
        super().__init__()
        self.inner = inner
        self.vocab_size = vocab_size
        self.stateful = callable(getattr(inner, "init_state", None))

    def init_state(self, batch_size: int, device: torch.device | str):
        if self.stateful:
            init_state = getattr(self.inner, "init_state")  # the user's method; nn.Module's typing knows none
            return init_state(batch_size, device)
        # The loop detaches the state between chunks: an empty tensor stands for "no state".
        return torch.zeros(0, device=device)

    def forward(self, ids: torch.Tensor, targets: torch.Tensor | None = None, state=None):
        if self.stateful:
            logits, state = self.inner(ids, state)
        else:
            logits = self.inner(ids)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten()) if targets is not None else None
        return logits, loss, state


def make_model(config: TorchLMConfig, vocab_size: int, where: str = "model") -> ContractLM:
    cls = load_class(config, where)
    try:
        inner = cls(vocab_size, **config.kwargs)
    except Exception as exc:
        raise BenchError(f"{where}: {config.module}({vocab_size}, **{config.kwargs}) fails "
                         f"({type(exc).__name__}: {exc})") from exc
    return ContractLM(inner, vocab_size)


def check(config: TorchLMConfig, where: str) -> None:
    """Build the class with a small vocabulary and run one (2, 3) batch: the logits must be (2, 3, V)."""
    model = make_model(config, CHECK_VOCAB, where)
    ids = torch.randint(0, CHECK_VOCAB, CHECK_IDS_SHAPE)
    try:
        with torch.no_grad():
            logits, _, _ = model(ids, None, model.init_state(CHECK_IDS_SHAPE[0], "cpu"))
    except Exception as exc:
        raise BenchError(f"{where}: {config.module} fails on token ids of shape {CHECK_IDS_SHAPE} "
                         f"({type(exc).__name__}: {exc})") from exc
    expected = (*CHECK_IDS_SHAPE, CHECK_VOCAB)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != expected:
        got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise BenchError(f"{where}: {config.module} returned {got} for token ids of shape {CHECK_IDS_SHAPE}; "
                         f"expected logits of shape {expected} (batch, time, vocab_size={CHECK_VOCAB})")


def build(ctx: BuildContext) -> TrainedNeuralLM:
    """The kind's build: the module trained and scored like `lstm` (or loaded from `ctx.checkpoint`)."""
    trained = neural_lm(make_model)(ctx)
    if trained.module.stateful:
        return trained
    bptt = ctx.train_config.bptt

    def score(split: str) -> dict:  # the loop's context line assumes a carried state, which this module lacks
        return {**trained.score(split),
                "context": f"bptt={bptt}: the split read in chunks of {bptt} tokens, each without what came before "
                           f"(the module keeps no state); every token scored"}

    return dataclasses.replace(trained, score=score)

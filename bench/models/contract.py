"""The build contract every model follows: `build(ctx: BuildContext) -> Trained`, and
`ModelSpec`, the registry's entry that carries a model's build.

One signature for every model, built in, user-defined (`kind =`) or a plugin's: the context
carries everything a build may read (the prepared corpus, the resolved configs, seed, device,
precision, a checkpoint to load or to train further), and what comes back declares what it can do by the
protocols it satisfies. The cell (bench.run.cell) asks those questions, never the model's
family or its config classes:

- every `Trained` has a training record and the tokens its training processed;
- `HasVectors`: it is one set of word vectors (a word2vec, a GloVe file, an encoder's words),
  scored on similarity and analogies and probed as static vectors;
- `HasTypeVectors`: it derives named sets of type-level vectors (the biLM's contextual and
  token-encoder vectors), each scored as its own row;
- `ScoresText`: it gives the perplexity of a split of the corpus it was built on, under one
  or more readings (the biLM: forward, backward and their mean);
- `HasLayers`: it gives per-layer features of sentences, probed layer by layer;
- `HasModule`: it holds a trained torch module, which `run --save-models` saves.

A reading or vector set named "" is the model's own; any other name is appended to the model's
(`row_name`): the biLM's "token" vectors are the rows of `elmo-token`.

The structural protocols are runtime-checkable, so a model needs no base class: any object
with the members satisfies them (bench.train.bilm.TrainedBiLM does, without importing this
module). `TrainedVectors`, `TrainedLM` and `TrainedNeuralLM` are the ready-made ones the
built-in adapters return.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from gensim.models import KeyedVectors

from bench.data.prepared import PreparedCorpus


@dataclass(frozen=True)
class BuildContext:
    """What a build reads. It does not save: the cell saves what a build returns after scoring
    it (bench.models.checkpoints), so saving stays out of the timed training phase."""

    prepared: PreparedCorpus  # the corpus tokenized, with its vocabulary and id streams per split
    config: Any  # the model's resolved settings (its spec's config_cls)
    train_config: Any  # the training loop's resolved settings (its spec's train_cls); None without a loop
    seed: int
    device: torch.device  # where the model runs: the CPU for a model whose spec has runs_on_device=False
    precision: str = "fp32"  # "fp32" or "bf16" (autocast on CUDA), honoured by the specs with autocast=True
    checkpoint: str | None = None  # saved weights to load instead of training (specs with checkpoints=True)
    init_from: str | None = None  # saved weights to train further (fine-tuning, bench.run.finetune)

    @property
    def progress(self) -> bool:
        """Whether to draw progress bars (the run's --progress, which the prepared corpus carries)."""
        return self.prepared.progress


@runtime_checkable
class Trained(Protocol):
    """What every build returns."""

    @property
    def training(self) -> dict:
        """The training record (history, best epoch, stopping reason, parameters); {} if none."""

    @property
    def train_tokens(self) -> int | None:
        """Tokens processed in training, all epochs (for tokens/s); None: not counted."""


@runtime_checkable
class HasVectors(Protocol):
    @property
    def vectors(self) -> KeyedVectors:
        """One vector per word type: the model's own rows."""


@runtime_checkable
class HasTypeVectors(Protocol):
    def type_vectors(self, extra_words: list[str]) -> dict[str, KeyedVectors]:
        """The type-level vector sets it derives, by name ("" = the model's own, see `row_name`);
        `extra_words`: the evaluation sets' words, for a set that can give any word a vector."""


@runtime_checkable
class ScoresText(Protocol):
    def perplexity(self, split: str) -> dict[str, dict]:
        """One split's perplexity per reading ("" = the model's own, see `row_name`); each is
        perplexity, nll_sum, scored_tokens and context, and every reading scores the same
        tokens. An open-vocabulary model also gives its tokenization, vocab_rule, vocab_size
        and unk_rate, which replace the corpus vocabulary's in the perplexity row."""


@runtime_checkable
class HasLayers(Protocol):
    @property
    def n_layers(self) -> int:
        """Layers per word, layer 0 first."""

    def featurize(self, sentences: list[list[str]]) -> list[torch.Tensor]:
        """Per sentence (len, n_layers * D): the layers side by side (bench.eval.probe's featurizer)."""


@runtime_checkable
class HasModule(Protocol):
    @property
    def module(self) -> torch.nn.Module:
        """The trained network, as `run --save-models` saves it and `checkpoint =` loads it."""


def row_name(model: str, reading: str) -> str:
    """The model a row of `reading` (a perplexity reading or a vector set) belongs to."""
    return f"{model}-{reading}" if reading else model


@dataclass(frozen=True)
class TrainedVectors:
    """Word vectors: what an embedding model's build returns (HasVectors)."""

    vectors: KeyedVectors
    train_tokens: int | None  # corpus tokens times epochs; None for vectors read, not trained
    training: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainedLM:
    """A fitted language model of one reading (ScoresText): `score(split)` -> that split's perplexity
    dict (see `ScoresText.perplexity`)."""

    score: Callable[[str], dict]
    train_tokens: int
    training: dict

    def perplexity(self, split: str) -> dict[str, dict]:
        return {"": self.score(split)}


@dataclass(frozen=True)
class TrainedNeuralLM(TrainedLM):
    """A language model that is a torch module (ScoresText and HasModule)."""

    module: torch.nn.Module


@dataclass(frozen=True)
class ModelSpec:
    """A model as the registry lists it: its build, and what the runner needs to know before
    anything is built (bench.models.registry's docstring says what each field is for)."""

    name: str
    family: str  # "embedding" | "lm" | "bilm": listings, cell keys, run checks; no cell dispatch
    config_cls: type  # the model's own settings
    build: Callable[[BuildContext], Trained]  # this module's contract
    description: str
    trains: bool = True  # False: pretrained, deterministic, seeds are irrelevant
    runs_on_device: bool = True  # False: a CPU-only library (gensim, numpy n-grams)
    preset: dict = field(default_factory=dict)  # fixed config fields that define the variant
    train_cls: type | None = None  # the training loop's settings, when the harness trains the model
    autocast: bool = False  # its build honours the run's precision ("bf16": autocast in bench.train.lm's loops)
    check: Callable | None = None  # pretrained: (config, where) -> None, raises BenchError if unloadable
    files: Callable | None = None  # (config) -> {name: {path, sha256, ...}}: the files the model reads
    checkpoints: bool = False  # build loads ctx.checkpoint, saved weights (bench.models.checkpoints), not training
    encoder: Callable | None = None  # pretrained transformer: (config, device) -> hf_encoder.LayeredEncoder
    layer_count: Callable | None = None  # layered model: (config, where) -> the layers its probes see, no weights read
    warm_up: Callable | None = None  # (config, device): compile what build runs, before its timed region

"""Pre-train, then fine-tune: a biLM that starts from a saved one (`run --save-models`) and reads
the cell's corpus through the saved one's vocabulary.

Two settings of a `[model.NAME]` table whose model is a biLM (`elmo`, or `kind = "elmo"`):

    init_from = "runs/elmo-seeds-wsd/models/elmo__brown__seed{seed}"   # a checkpoint folder
    finetune = true     # default: train it further on the cell's corpus, for the training budget;
                        # false: probe it as pre-trained (nothing trained), on the same corpus

Unlike `checkpoint =`, which loads a model into the corpus it was trained on and skips training,
`init_from` reads *another* corpus with it. The softmax a biLM was pre-trained with predicts the
ids of its own vocabulary, so the cell's corpus is numericalized with that vocabulary (its words
in the saved id order; every other word -> <unk>), never with the corpus's own vocabulary rule.
A checkpoint records only its vocabulary's size and sha256, so the words are rebuilt from the
corpus it names (`vocab_corpus`: a fine-tuned biLM's is the one it was pre-trained on) with this
matrix's [tokenizer] and [vocab] and checked against that sha256 (`pretrained_vocab`): a
checkpoint trained under other settings is a one-line error.

`{seed}` in the path (the only placeholder) is the cell's seed, so each seed of a matrix starts
from its own pre-trained model. The cell key holds the sha256 of the weights of every seed's
checkpoint (`key_block`): replacing one is another cell, whatever its path.
"""

from __future__ import annotations

import dataclasses
import string
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from bench.data.prepared import PreparedCorpus, prepare_corpus
from bench.data.vocab import TokenizerConfig, Vocab, VocabConfig
from bench.errors import BenchError
from bench.models import checkpoints

if TYPE_CHECKING:
    from bench.models.registry import ModelSpec


class Matrix(Protocol):
    """What this module reads of a `bench.run.config.Matrix` (which imports this module to check
    its [model] tables, so it is named here by its fields rather than imported)."""

    models: list[str]
    seeds: list[int]
    tokenizer: TokenizerConfig
    vocab: VocabConfig
    model_overrides: dict[str, dict]

    def model_config(self, name: str) -> Any: ...

INIT_FROM, FINETUNE = "init_from", "finetune"
SEED_FIELD = "seed"


def settings(spec: ModelSpec) -> set[str]:
    """The [model.NAME] keys of this module that a model takes: a biLM's only (its build
    takes `init_from`)."""
    return {INIT_FROM, FINETUNE} if spec.family == "bilm" and spec.checkpoints else set()


def check_table(model: str, values: dict, where: str) -> None:
    """At matrix load (no file read, so a matrix whose checkpoints are not made yet still
    loads): `init_from` a path with no placeholder but {seed}, `finetune` a bool beside it,
    and not both `init_from` and `checkpoint`."""
    where = f"{where}: [model.{model}]"
    if FINETUNE in values and INIT_FROM not in values:
        raise BenchError(f"{where} finetune: applies to a model with init_from; expected init_from = \"DIR\" too")
    if INIT_FROM not in values:
        return
    path = values[INIT_FROM]
    if not isinstance(path, str) or not path:
        raise BenchError(f"{where} init_from: expected the folder of a saved biLM, got {path!r}")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(path) if name is not None}
    except ValueError as exc:
        raise BenchError(f"{where} init_from {path!r}: {exc}; expected a path, with {{seed}} where the seed "
                         f"goes") from exc
    if fields - {SEED_FIELD}:
        raise BenchError(f"{where} init_from {path!r}: unknown placeholder(s) "
                         f"{', '.join(sorted(repr(f) for f in fields - {SEED_FIELD}))}; expected only {{seed}}")
    if not isinstance(values.get(FINETUNE, True), bool):
        raise BenchError(f"{where} finetune: expected true or false, got {values[FINETUNE]!r}")
    if "checkpoint" in values:
        raise BenchError(f"{where}: both checkpoint and init_from; expected one (checkpoint: load and skip "
                         f"training; init_from: start from it on this corpus)")


def init_from(matrix: Matrix, model: str, seed: int) -> str | None:
    """The checkpoint folder the model's cell of `seed` starts from, or None."""
    template = matrix.model_overrides.get(model, {}).get(INIT_FROM)
    return None if template is None else template.format(seed=seed)


def starts_from_saved(matrix: Matrix, model: str) -> bool:
    """Whether the model's cells start from a saved biLM (`init_from`), whose vocabulary they read."""
    return INIT_FROM in matrix.model_overrides.get(model, {})


def finetunes(matrix: Matrix, model: str) -> bool:
    """Whether a model with init_from trains on its corpus (else it is probed as pre-trained)."""
    return bool(matrix.model_overrides.get(model, {}).get(FINETUNE, True))


def _starting_points(matrix: Matrix) -> list[tuple[str, int, str]]:
    """(model, seed, checkpoint folder) of every cell that starts from a saved biLM."""
    return [(model, seed, path) for model in matrix.models for seed in matrix.seeds
            if (path := init_from(matrix, model, seed)) is not None]


def pretrained_vocab(path: str, tokenizer: TokenizerConfig, vocab_config: VocabConfig, data_root: Path | None,
                     where: str) -> tuple[Vocab, str]:
    """The vocabulary the checkpoint at `path` was trained on, and the corpus it came from:
    rebuilt from that corpus with these settings, checked against the checkpoint's sha256."""
    header = checkpoints.read_header(path, where, INIT_FROM)
    corpus = header.get("vocab_corpus", header.get("corpus"))  # checkpoints saved before vocab_corpus: the same
    if not isinstance(corpus, str):
        raise BenchError(f"{where}.init_from {path}: its {checkpoints.CONFIG} names no corpus; expected a biLM "
                         f"saved by `run --save-models`")
    vocab = prepare_corpus(corpus, data_root, tokenizer, vocab_config).vocab
    saved, rebuilt = header.get("vocab") or {}, checkpoints.vocab_words_identity(vocab.words)
    if saved != rebuilt:
        raise BenchError(f"{where}.init_from {path}: its vocabulary ({saved.get('size')} words, sha256 "
                         f"{str(saved.get('sha256'))[:12]}...) is not the one corpus '{corpus}' gives under this "
                         f"matrix's [tokenizer] and [vocab] ({rebuilt['size']} words, sha256 "
                         f"{rebuilt['sha256'][:12]}...); expected the settings it was pre-trained with")
    return vocab, corpus


def check_starting_points(matrix: Matrix, data_root: Path | None) -> None:
    """Before a run writes anything: every seed's checkpoint exists with the files it lists, holds
    a biLM of this model's config, and its vocabulary is rebuilt as it was trained."""
    for model, seed, path in _starting_points(matrix):
        where = f"model.{model} (seed {seed})"
        checkpoints.check_config(path, matrix.model_config(model), where, INIT_FROM)
        pretrained_vocab(path, matrix.tokenizer, matrix.vocab, data_root, where)


def key_block(matrix: Matrix, model: str) -> dict:
    """What the cell key holds of `init_from`: the path as written, whether it trains, and the
    sha256 of every seed's weights ({} for a model without init_from)."""
    template = matrix.model_overrides.get(model, {}).get(INIT_FROM)
    if template is None:
        return {}
    weights = {str(seed): checkpoints.identity(template.format(seed=seed), f"model.{model}", INIT_FROM)["sha256"]
               for seed in matrix.seeds}
    return {INIT_FROM: {"path": template, FINETUNE: finetunes(matrix, model), "sha256": weights}}


def through_vocab(prepared: PreparedCorpus, vocab: Vocab, vocab_corpus: str) -> PreparedCorpus:
    """`prepared` numericalized with another corpus's vocabulary (a pre-trained model's): ids are
    that vocabulary's, words outside it -> its <unk>; the counts are this corpus's train counts.
    The tokenized text (which the biLM's char-CNN reads) is unchanged."""
    specials = {vocab.config.unk, vocab.config.eos}
    index = {word: i for i, word in enumerate(vocab.words) if word not in specials}
    type_to_id = np.array([index.get(word, -1) for word in prepared.tokenized.types], dtype=np.int64)  # (types,)
    remapped = Vocab(vocab.words, np.zeros(len(vocab), dtype=np.int64), vocab.config, type_to_id)
    streams, unk_rates = {}, {}
    for split, stream in prepared.tokenized.splits.items():
        streams[split], unk_rates[split] = remapped.numericalize(stream)
    remapped.counts = np.bincount(streams["train"].ids, minlength=len(vocab)).astype(np.int64)  # (V,)
    return dataclasses.replace(prepared, vocab=remapped, streams=streams, unk_rates=unk_rates,
                               fingerprint={**prepared.fingerprint, "vocabulary_of": vocab_corpus},
                               _sentences=None)

"""The model registry: name -> family, config dataclass and how to build it.

One contract per family. The `embedding` family builds a gensim `KeyedVectors` from
the prepared corpus; the runner scores it with the word-vector metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from gensim.models import KeyedVectors

from bench import baselines
from bench.prepared import PreparedCorpus
from impl import word2vec


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    config_cls: type
    # (prepared corpus, model config, seed, device) -> vectors
    build: Callable[[PreparedCorpus, object, int, torch.device], KeyedVectors]
    description: str
    trains: bool = True  # False: pretrained, deterministic, seeds are irrelevant
    runs_on_device: bool = True  # False: a CPU-only library (gensim)
    preset: dict = field(default_factory=dict)  # fixed config fields that define the variant


def _ours(prepared: PreparedCorpus, config: word2vec.Word2VecConfig, seed: int, device: torch.device):
    train = prepared.train
    return word2vec.train_word2vec(train.ids, train.offsets, prepared.vocab.words, prepared.vocab.counts,
                                   config, seed=seed, device=device, progress=prepared.progress)


def _gensim_w2v(prepared: PreparedCorpus, config, seed: int, device: torch.device):
    return baselines.train_gensim_word2vec(prepared.train_sentences(), config, seed)


def _gensim_ft(prepared: PreparedCorpus, config, seed: int, device: torch.device):
    return baselines.train_gensim_fasttext(prepared.train_sentences(), config, seed)


def _glove(prepared: PreparedCorpus, config, seed: int, device: torch.device):
    return baselines.load_glove_6b_50d()


def _minilm(prepared: PreparedCorpus, config, seed: int, device: torch.device):
    # Scored over the corpus vocabulary, like the models trained on it.
    return baselines.minilm_word_vectors(prepared.vocab.words, config, device)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec("word2vec-cbow", "embedding", word2vec.Word2VecConfig, _ours,
                  "ours: Word2Vec CBOW (Mikolov et al. 2013), PyTorch", preset={"arch": "cbow"}),
        ModelSpec("word2vec-sg", "embedding", word2vec.Word2VecConfig, _ours,
                  "ours: Word2Vec skip-gram (Mikolov et al. 2013), PyTorch", preset={"arch": "sg"}),
        ModelSpec("gensim-cbow", "embedding", baselines.GensimWord2VecConfig, _gensim_w2v,
                  "gensim Word2Vec CBOW", runs_on_device=False, preset={"sg": False}),
        ModelSpec("gensim-sg", "embedding", baselines.GensimWord2VecConfig, _gensim_w2v,
                  "gensim Word2Vec skip-gram", runs_on_device=False, preset={"sg": True}),
        ModelSpec("gensim-fasttext", "embedding", baselines.GensimFastTextConfig, _gensim_ft,
                  "gensim FastText (CBOW, char n-grams 3-6)", runs_on_device=False),
        ModelSpec("glove-6b-50d", "embedding", baselines.GloveFileConfig, _glove,
                  "pretrained GloVe 6B 50d (Pennington et al. 2014), 400k words", trains=False,
                  runs_on_device=False),
        ModelSpec("minilm", "embedding", baselines.MiniLMConfig, _minilm,
                  "pretrained all-MiniLM-L6-v2, a word's vector = mean-pooled output for the word alone",
                  trains=False),
    ]
}

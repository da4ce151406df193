"""One build contract (bench.models.contract, issue 26): a new model in an existing family is
its trainer (what an `impl/` file holds) and one registry line, and the cell scores it by what
the built model declares it can do, never by its family."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from gensim.models import KeyedVectors

from bench.cli import main
from bench.models import contract, registry
from bench.models import language_models as lms
from bench.models.registry import ModelSpec
from bench.run.cell import run_cell
from bench.run.config import load_matrix

CPU = torch.device("cpu")


# --- what two impl/ files would hold: a count-vector trainer and a bigram LM ---------------------


@dataclass
class CountVectorsConfig:
    vector_size: int = 16  # the most frequent words, whose co-occurrence counts make a word's vector
    window: int = 2


def train_count_vectors(ids: np.ndarray, offsets: np.ndarray, words: list[str], counts: np.ndarray,
                        config: CountVectorsConfig, *, seed: int, device, progress: bool) -> KeyedVectors:
    """Each word's vector: log(1 + its co-occurrences with the `vector_size` most frequent words
    within `window` tokens), the vocabulary coming most frequent first (word2vec's signature;
    one stream, sentence bounds ignored)."""
    table = np.zeros((len(words), config.vector_size))  # (V, D)
    for shift in range(1, config.window + 1):
        for left, right in ((ids[:-shift], ids[shift:]), (ids[shift:], ids[:-shift])):
            frequent = right < config.vector_size
            np.add.at(table, (left[frequent], right[frequent]), 1.0)
    vectors = KeyedVectors(config.vector_size)
    vectors.add_vectors(list(words), np.log1p(table).astype(np.float32))
    return vectors


@dataclass
class BigramConfig:
    dim: int = 8


class BigramLM(nn.Module):
    """The next token from the current one alone: an embedding and a linear map, read by
    bench.train.lm's recurrent loop with an empty state (a bigram carries nothing across)."""

    context_kind = "recurrent"

    def __init__(self, config: BigramConfig, vocab_size: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, config.dim)
        self.out = nn.Linear(config.dim, vocab_size)

    def init_state(self, batch_size: int, device) -> torch.Tensor:
        return torch.zeros(0, device=device)

    def forward(self, ids: torch.Tensor, targets: torch.Tensor | None = None, state=None):
        logits = self.out(self.embed(ids))  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten()) if targets is not None else None
        return logits, loss, state


# --- their registry lines -------------------------------------------------------------------------


@pytest.fixture
def toy_models(monkeypatch):
    """Both toys in the registry's table for one test, as one line each in BUILT_IN."""
    lines = [
        ModelSpec("toy-counts", "embedding", CountVectorsConfig,
                  registry.impl_vectors(train_count_vectors, registry.one_pass),
                  "toy: log co-occurrence counts with the most frequent words", runs_on_device=False),
        ModelSpec("toy-bigram", "lm", BigramConfig, lms.neural_lm(BigramLM), "toy: a bigram LM",
                  **registry.TRAINED_BY_LM_LOOP),
    ]
    for spec in lines:
        monkeypatch.setitem(registry.BUILT_IN, spec.name, spec)


def test_a_new_model_in_each_family_runs_through_the_cell(tmp_path, toy_models, monkeypatch, capsys, one_torch_thread):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)  # the embedded corpus and gensim's similarity sets
    matrix = tmp_path / "toys.toml"
    matrix.write_text('description = "t"\nmodels = ["toy-counts", "toy-bigram"]\ncorpora = ["lee"]\nseeds = 1\n'
                      '[vocab]\nmax_size = 400\nunk = "<unk>"\n[eval]\ntasks = ["similarity"]\n'
                      '[model.toy-bigram]\nepochs = 1\nlr = 0.01\nbatch_size = 64\neval_batch_size = 16\n')
    out = tmp_path / "out"
    argv = ["run", "--matrix", str(matrix), "--out", str(out), "--no-progress", "--in-process", "--save-models"]
    assert main(argv) == 0, capsys.readouterr().err
    cells = {path.name.split("__")[0]: json.loads(path.read_text()) for path in (out / "cells").glob("*.json")}
    assert {name: cell["status"] for name, cell in cells.items()} == {"toy-counts": "ok", "toy-bigram": "ok"}

    counts, bigram = cells["toy-counts"], cells["toy-bigram"]
    vocab_size = counts["dataset"]["vocab_size"]
    # The vectors are scored (gensim's two similarity sets) and described; their train phase read the corpus once.
    assert {row["benchmark"] for row in counts["metrics"]["wordsim"]} == {"WS-353-ALL", "SIMLEX-999"}
    assert all(-1 <= row["spearman"] <= 1 and row["oov_pairs"] < row["pairs"] for row in counts["metrics"]["wordsim"])
    assert counts["vectors"] == {"words": vocab_size, "dims": 16}
    assert counts["timings"]["train"]["tokens"] == counts["dataset"]["splits"]["train"]["tokens"]
    assert set(counts["metric_defs"]) >= {"spearman", "pearson"} and "word_perplexity" not in counts["metric_defs"]
    assert counts["device"]["precision"] == "fp32"

    # The LM is trained by the suite's loop for one epoch and scored on both held-out splits,
    # better than a uniform guess over the vocabulary.
    assert [row["split"] for row in bigram["metrics"]["perplexity"]] == ["validation", "test"]
    assert all(1 < row["perplexity"] < vocab_size and "model" not in row for row in bigram["metrics"]["perplexity"])
    assert len(bigram["training"]["history"]) == 1
    assert bigram["training"]["parameters"] == vocab_size * 8 + 8 * vocab_size + vocab_size
    assert list(bigram["metric_defs"]) == ["word_perplexity"] and "vectors" not in bigram

    # Each saved what it can: the vectors as word2vec binary, the network as safetensors.
    assert set(counts["saved"]["files"]) == {"vectors.bin"} and "model.safetensors" in bigram["saved"]["files"]
    saved = KeyedVectors.load_word2vec_format(str(out / "models" / "toy-counts__lee__seed0" / "vectors.bin"),
                                              binary=True)
    assert len(saved) == vocab_size


def _broken(ctx: contract.BuildContext) -> KeyedVectors:
    """A build under the old embedding contract: bare vectors, no record."""
    return KeyedVectors(4)


def test_a_build_that_returns_no_trained_model_fails_its_cell_with_one_reason(tmp_path, monkeypatch):
    monkeypatch.delenv("LM_LINEAGE_DATA", raising=False)
    monkeypatch.setitem(registry.BUILT_IN, "toy-broken",
                        ModelSpec("toy-broken", "embedding", CountVectorsConfig, _broken, "toy", runs_on_device=False))
    matrix = tmp_path / "broken.toml"
    matrix.write_text('description = "t"\nmodels = ["toy-broken"]\ncorpora = ["lee"]\nseeds = 1\n')
    result = run_cell(load_matrix(str(matrix)), "toy-broken", "lee", 0, None, CPU, False, "test")
    assert result["status"] == "failed"
    assert result["error"] == ("TypeError: toy-broken: its build returned KeyedVectors; expected a Trained "
                               "(bench.models.contract), with a training record and train_tokens")


def test_the_ready_made_results_declare_exactly_their_capabilities():
    vectors = contract.TrainedVectors(KeyedVectors(4), train_tokens=None)
    counted = contract.TrainedLM(lambda split: {}, train_tokens=0, training={})
    neural = contract.TrainedNeuralLM(lambda split: {"perplexity": 2.0}, 10, {"history": []}, nn.Linear(2, 2))
    capabilities = (contract.HasVectors, contract.ScoresText, contract.HasModule)
    assert all(isinstance(trained, contract.Trained) for trained in (vectors, counted, neural))
    assert [isinstance(vectors, capability) for capability in capabilities] == [True, False, False]
    assert [isinstance(counted, capability) for capability in capabilities] == [False, True, False]
    assert [isinstance(neural, capability) for capability in capabilities] == [False, True, True]
    assert neural.perplexity("test") == {"": {"perplexity": 2.0}}  # one reading: the model's own rows

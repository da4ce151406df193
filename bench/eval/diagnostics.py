"""The vanishing-gradient diagnostic across recurrent cells, as a table.

For each cell (Elman RNN, LSTM) and seed, a freshly initialized LM reads windows of real
text and `impl.rnn.gradient_flow` gives the norm of d loss_t / d h_{t-k}, k = 1..max_k:
how much the loss at step t can still learn from the state k steps back. The Elman RNN's
curve falls off exponentially; the LSTM's cell state keeps far gradients alive (Hochreiter
& Schmidhuber 1997; Bengio, Simard & Frasconi 1994).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from bench.data.prepared import prepare_corpus
from bench.data.vocab import TokenizerConfig, VocabConfig
from impl.rnn import RNNLM, RNNLMConfig, gradient_flow


@dataclass(frozen=True)
class GradientFlowConfig:
    corpus: str = "lee"
    cells: tuple[str, ...] = ("rnn", "lstm")
    emb: int = 128
    hidden: int = 128
    max_k: int = 50
    windows: int = 32  # text windows of max_k + 2 tokens, averaged over


def gradient_flow_table(config: GradientFlowConfig, seeds: list[int], data_dir=None,
                        device: torch.device = torch.device("cpu")) -> pd.DataFrame:
    """Rows (model, k, grad_norm, seed) for every cell and seed."""
    prepared = prepare_corpus(config.corpus, data_dir, TokenizerConfig(lowercase=False, pattern=r"\S+"),
                              VocabConfig(min_count=1, unk="<unk>"))
    stream = prepared.train.ids.astype(np.int64)
    length = config.max_k + 2
    rows = []
    for seed in seeds:
        generator = np.random.default_rng(seed)
        starts = generator.integers(0, len(stream) - length, config.windows)
        ids = torch.from_numpy(np.stack([stream[s:s + length] for s in starts])).to(device)  # (windows, length)
        for cell in config.cells:
            torch.manual_seed(seed)
            model = RNNLM(RNNLMConfig(cell=cell, emb=config.emb, hidden=config.hidden, layers=1, dropout=0.0),
                          len(prepared.vocab)).to(device)
            for k, norm in enumerate(gradient_flow(model, ids, config.max_k), start=1):
                rows.append({"model": cell, "k": k, "grad_norm": norm, "seed": seed})
    return pd.DataFrame(rows, columns=["model", "k", "grad_norm", "seed"])

"""An lm-lineage plugin with one model: a bigram LM that lm-lineage trains and scores
(kind "torch-lm": token ids (B, T) in, logits (B, T, vocab) out)."""

import torch.nn as nn


class BigramLM(nn.Module):
    def __init__(self, vocab_size: int, dim: int = 32):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.out = nn.Linear(dim, vocab_size)

    def forward(self, ids):  # (B, T) -> (B, T, vocab_size): the next token from the current one alone
        return self.out(self.embed(ids))


def bigram() -> dict:
    """The entry point: the model's spec, a torch-lm with its fixed settings."""
    return {"name": "example-bigram", "kind": "torch-lm", "module": "lm_lineage_example:BigramLM",
            "kwargs": {"dim": 32}, "description": "example plugin: a bigram LM (embedding -> linear)"}

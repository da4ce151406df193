"""The neural probabilistic language model of Bengio, Ducharme, Vincent & Jauvin (2003),
"A Neural Probabilistic Language Model", JMLR 3:1137-1155.

Each of the n-1 previous words is looked up in a shared table C (|V| x m); the rows are
concatenated into x and the next word gets the scores

    y = b + W x + U tanh(d + H x)        P(w_t | context) = softmax(y)

with W the optional direct connections from the embeddings to the output and h = 0
meaning no hidden layer (then y = b + W x). The parameter count is the paper's
|V|(1 + nm + h) + h(1 + (n-1)m), minus |V|(n-1)m without direct connections.

What differs from the paper:
- training is plain minibatch backprop on one machine (the paper used asynchronous
  parallel SGD with a 1/(1 + rt) learning-rate decay and weight decay on weights only);
  the optimizer lives in the training loop, not here;
- optional dropout on x and on the hidden layer (dropout came a decade later; default 0);
- no interpolation with a smoothed trigram model (the paper's "mix" column);
- initialization is PyTorch's default for each layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from impl._checks import check_int, is_bool, is_int, is_num, need, need_ints


@dataclass
class NNLMConfig:
    n: int = 5  # model order: n-1 context words predict the n-th
    m: int = 60  # embedding dimensions (the columns of C)
    h: int = 50  # hidden units; 0 = no hidden layer
    direct: bool = True  # direct connections W from x to the output
    dropout: float = 0.0  # on x and on the hidden activations; not in the paper

    def __post_init__(self):
        need(self, is_int(self.n) and self.n >= 2, "n", "an int >= 2 (at least one context word)")
        need_ints(self, "m")
        need(self, is_int(self.h) and self.h >= 0, "h", "an int >= 0 (0 = no hidden layer)")
        need(self, is_bool(self.direct), "direct", "a bool")
        need(self, self.h > 0 or self.direct, "direct",
             "True when h=0: without a hidden layer or direct connections, the output would be the bias alone")
        need(self, is_num(self.dropout) and 0.0 <= self.dropout < 1.0, "dropout", "a number in [0, 1)")


class NNLM(nn.Module):
    # The training loop feeds this model fixed windows of n-1 previous tokens.
    context_kind = "window"

    def __init__(self, config: NNLMConfig, vocab_size: int):
        super().__init__()
        check_int("vocab_size", vocab_size)
        self.config = config
        self.vocab_size = vocab_size
        x_dim = (config.n - 1) * config.m
        self.C = nn.Embedding(vocab_size, config.m)
        self.drop = nn.Dropout(config.dropout)
        # H carries the hidden bias d; U has none, b is the one output bias.
        self.H = nn.Linear(x_dim, config.h) if config.h > 0 else None
        self.U = nn.Linear(config.h, vocab_size, bias=False) if config.h > 0 else None
        self.W = nn.Linear(x_dim, vocab_size, bias=False) if config.direct else None
        self.b = nn.Parameter(torch.zeros(vocab_size))

    @property
    def context_size(self) -> int:
        return self.config.n - 1

    def forward(self, context: torch.Tensor, targets: torch.Tensor | None = None):
        """context: (B, n-1) token ids, oldest first; targets: (B,) or None.

        Returns logits (B, V) and the mean cross-entropy (None without targets).
        """
        if context.dim() != 2 or context.shape[1] != self.context_size:
            raise ValueError(f"context must be (batch, {self.context_size}), got {tuple(context.shape)}")
        x = self.drop(self.C(context).flatten(1))  # (B, n-1, m) -> (B, (n-1) m)
        logits = self.b.expand(x.shape[0], -1)  # (B, V)
        if self.W is not None:
            logits = logits + self.W(x)
        if self.H is not None and self.U is not None:  # both or neither (config.h > 0)
            logits = logits + self.U(self.drop(torch.tanh(self.H(x))))  # hidden: (B, h)
        loss = F.cross_entropy(logits, targets) if targets is not None else None
        return logits, loss

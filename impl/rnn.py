"""Recurrent language models: the Elman RNN LM of Mikolov, Karafiát, Burget, Černocký &
Khudanpur (2010), "Recurrent neural network based language model", with the LSTM
(Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000) and GRU
(Cho et al. 2014) as drop-in cells.

    e_t = C[w_t]          h_t = cell(e_t, h_{t-1})          P(w_{t+1} | w_<=t) = softmax(D h_t + b)

Dropout follows Zaremba, Sutskever & Vinyals (2014), "Recurrent Neural Network
Regularization": only on the non-recurrent connections (embeddings -> first layer,
between layers, top layer -> output), never on the recurrent state. `tie_weights`
shares the embedding table with the output matrix (Press & Wolf 2017; Inan et al. 2017).

What differs from the papers:
- Mikolov et al. use a sigmoid hidden layer, one layer, plain SGD with truncated BPTT and
  dynamic evaluation (the model keeps learning on the test data); here the Elman cell is
  PyTorch's tanh `nn.RNN`, any depth, and evaluation is static;
- the cells are PyTorch's `nn.RNN` / `nn.LSTM` / `nn.GRU` with their default
  initialization (uniform in +-1/sqrt(hidden); Zaremba et al. use +-0.05 for everything),
  except the LSTM's forget-gate bias, which starts at 1 (see `_open_forget_gates`); the
  embedding and output layers are uniform in +-0.1 with a zero output bias.

`gradient_flow` measures how far back the loss gradient reaches (Bengio, Simard &
Frasconi 1994; Hochreiter 1991): the norm of d loss_t / d h_{t-k} for k = 1..max_k.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from impl._checks import check_int, is_bool, is_num, need, need_ints

CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

# An LSTM's state is (h, c), each (layers, B, hidden); the RNN's and GRU's is h alone.
State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


@dataclass
class RNNLMConfig:
    cell: str = "lstm"  # "rnn" (Elman, tanh) | "lstm" | "gru"
    emb: int = 200  # embedding dimensions
    hidden: int = 200  # hidden units per layer
    layers: int = 2
    dropout: float = 0.2  # on non-recurrent connections only (Zaremba et al. 2014)
    tie_weights: bool = False  # output matrix = embedding table; needs emb == hidden

    def __post_init__(self):
        need(self, self.cell in CELLS, "cell", f"one of {', '.join(CELLS)}")
        need_ints(self, "emb", "hidden", "layers")
        need(self, is_num(self.dropout) and 0.0 <= self.dropout < 1.0, "dropout", "a number in [0, 1)")
        need(self, is_bool(self.tie_weights), "tie_weights", "a bool")
        need(self, not self.tie_weights or self.emb == self.hidden, "tie_weights",
             f"False unless emb == hidden (emb={self.emb}, hidden={self.hidden})")


class RNNLM(nn.Module):
    # The training loop feeds this model contiguous sequences and carries the state.
    context_kind = "recurrent"

    def __init__(self, config: RNNLMConfig, vocab_size: int):
        super().__init__()
        check_int("vocab_size", vocab_size)
        self.config = config
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, config.emb)
        self.drop = nn.Dropout(config.dropout)
        extra = {"nonlinearity": "tanh"} if config.cell == "rnn" else {}
        # nn.RNN/LSTM/GRU apply their dropout between layers only, which is Zaremba's scheme.
        self.rnn = CELLS[config.cell](config.emb, config.hidden, config.layers, batch_first=True,
                                      dropout=config.dropout if config.layers > 1 else 0.0, **extra)
        self.decoder = nn.Linear(config.hidden, vocab_size)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        if config.cell == "lstm":
            self._open_forget_gates()
        if config.tie_weights:
            self.decoder.weight = self.embed.weight  # (V, hidden) == (V, emb): one tensor

    def _open_forget_gates(self) -> None:
        # Forget-gate bias 1 (Gers et al. 2000; Jozefowicz et al. 2015): with PyTorch's near-zero
        # bias the gate starts near 0.5 and the cell state halves every step, so at
        # initialization the gradient 50 steps back is no larger than the Elman RNN's
        # (1e-12 to 1e-11 for both, 2 layers of 200); with bias 1 it is about 5e-5.
        # Gates are stacked (input, forget, cell, output) along dim 0 of each bias.
        hidden = self.config.hidden
        with torch.no_grad():
            for name, bias in self.rnn.named_parameters():
                if name.startswith("bias_"):
                    # Two biases per layer (bias_ih, bias_hh) add up: 1 in one, 0 in the other.
                    bias[hidden:2 * hidden] = 1.0 if name.startswith("bias_ih") else 0.0

    def init_state(self, batch_size: int, device: torch.device | str) -> State:
        """The zero state for a batch: (layers, B, hidden), a pair of them for the LSTM."""
        h = torch.zeros(self.config.layers, batch_size, self.config.hidden, device=device)
        return (h, torch.zeros_like(h)) if self.config.cell == "lstm" else h

    def forward(self, ids: torch.Tensor, targets: torch.Tensor | None = None, state: State | None = None):
        """ids: (B, T) token ids; targets: (B, T) next tokens or None; state: from a previous
        call (None = zero state).

        Returns logits (B, T, V), the mean cross-entropy over all B*T positions (None
        without targets) and the new state. The state is not detached: truncated BPTT
        detaches it between batches.
        """
        x = self.drop(self.embed(ids))  # (B, T, emb)
        out, state = self.rnn(x, state)  # out: (B, T, hidden), the top layer at every step
        logits = self.decoder(self.drop(out))  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten()) if targets is not None else None
        return logits, loss, state


def gradient_flow(model: RNNLM, ids: torch.Tensor, max_k: int = 50) -> list[float]:
    """Norms of d loss_t / d h_{t-k} for k = 1..max_k, averaged over the batch.

    ids: (B, T) with T >= max_k + 2; ids[:, :-1] are the inputs, loss_t is the
    cross-entropy of predicting ids[:, -1] at the last step t, and h_{t-k} is the
    top-layer hidden state k steps earlier. Dropout is off while measuring. The cell
    runs one step at a time so every step's state is a separate node of the graph;
    gradients are taken with autograd.grad, so the parameters' .grad stay untouched.
    """
    batch_size, length = ids.shape
    if length < max_k + 2:
        raise ValueError(f"ids must have at least max_k + 2 = {max_k + 2} steps, got {length}")
    was_training = model.training
    model.eval()
    with torch.enable_grad():
        state = model.init_state(batch_size, ids.device)
        x = model.embed(ids[:, :-1])  # (B, T-1, emb)
        hidden_states = []  # per step: (layers, B, hidden), the h that feeds the next step
        for t in range(length - 1):
            out, state = model.rnn(x[:, t:t + 1], state)  # out: (B, 1, hidden)
            hidden_states.append(state[0] if isinstance(state, tuple) else state)
        logits = model.decoder(out[:, 0])  # (B, V)
        # Summed, not averaged: each example's gradient is then d loss_t(example) / d h(example).
        loss = F.cross_entropy(logits, ids[:, -1], reduction="sum")
        # hidden_states[-1] is h_t; h_{t-k} is hidden_states[-1 - k].
        earlier = [hidden_states[-1 - k] for k in range(1, max_k + 1)]
        grads = torch.autograd.grad(loss, earlier)
    model.train(was_training)
    return [g[-1].norm(dim=-1).mean().item() for g in grads]  # top layer: (B, hidden) -> (B,) -> mean

"""Training and evaluation loops of the language-model family (impl.nnlm, impl.rnn).

A model says how it reads a split through its `context_kind`:

- "window" (NNLM): every position t of a split is one example, its context the
  `context_size` tokens before it. Positions before the split's first token are padded
  with `start_id`; the callers pass the vocabulary's sentence-end id (`Vocab.eos_id`),
  so the first sentence looks like every later one, which follows a `</s>`. Sentence
  ends are ordinary tokens: the split is one stream, as in Bengio et al. (2003).
- "recurrent" (RNN LMs): the split is cut into `batch_size` contiguous rows (Zaremba et
  al. 2014) and read `bptt` steps at a time; the state is carried from one batch to the
  next and detached in between (truncated backpropagation through time).

Evaluation protocol (`evaluate_perplexity`): perplexity = exp(nll_sum / scored_tokens),
natural log, static model. Window models score every token of the split. Recurrent
models read `start_id` followed by the split; with batch_size 1 this is one sequence
from a zero state, the state carried across the whole split, and every token is scored,
the same tokens as a window model scores. With batch_size > 1 each row starts from a
zero state and the first token of each row and the remainder are not scored; the
returned `context` and `scored_tokens` say so.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from bench.errors import BenchError
from bench.timing import synchronize
from impl._checks import is_int, is_num, need, need_ints

CONTEXT_KINDS = ("window", "recurrent")
PRECISIONS = ("fp32", "bf16")


@dataclass
class LMTrainConfig:
    optimizer: str = "adam"  # "adam" | "sgd"
    lr: float = 1e-3
    batch_size: int = 20  # windows per step (NNLM) or contiguous rows (RNN LMs)
    bptt: int = 35  # truncated-BPTT length; recurrent models only
    epochs: int = 10
    clip: float = 0.25  # max global gradient norm; 0 = no clipping
    lr_decay: float = 0.25  # lr *= lr_decay after an epoch that does not improve validation perplexity
    patience: int = 2  # stop after this many consecutive epochs without improvement
    weight_decay: float = 0.0
    max_minutes: float | None = None  # time budget for the whole call, validation included
    # Token budget: stop once the batches read hold at least this many training tokens (all epochs);
    # unlike max_minutes, where it stops does not depend on the machine's speed or load.
    max_tokens: int | None = None
    eval_batch_size: int = 1  # validation rows for recurrent models (1: state carried across the split)

    def __post_init__(self):
        need(self, self.optimizer in ("adam", "sgd"), "optimizer", "'adam' or 'sgd'")
        need_ints(self, "batch_size", "bptt", "epochs", "eval_batch_size", "patience")
        need(self, is_num(self.lr) and self.lr > 0, "lr", "a number > 0")
        need(self, is_num(self.clip) and self.clip >= 0, "clip", "a number >= 0 (0 = no clipping)")
        need(self, is_num(self.lr_decay) and 0 < self.lr_decay <= 1, "lr_decay", "a number in (0, 1]")
        need(self, is_num(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "a number >= 0")
        need(self, self.max_minutes is None or (is_num(self.max_minutes) and self.max_minutes > 0), "max_minutes",
             "a number > 0, or unset")
        need(self, self.max_tokens is None or (is_int(self.max_tokens) and self.max_tokens >= 1), "max_tokens",
             "an int >= 1, or unset")


def autocast(device: torch.device, precision: str):
    """The context the forward passes run in: fp32 as is, or bf16 autocast on CUDA.

    bf16 keeps fp32's exponent range, so no loss scaling is needed; autocast itself keeps
    softmax and cross-entropy in fp32. Backward passes run outside it, as torch advises.
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    raise ValueError(f"precision {precision!r} on {device.type}: expected fp32, or bf16 on CUDA")


def batchify(stream_ids: np.ndarray, batch_size: int) -> torch.Tensor:
    """Cut a stream into batch_size contiguous rows: (batch_size, n_steps), remainder dropped.

    Row r is stream_ids[r * n_steps:(r + 1) * n_steps], so reading the columns left to
    right walks batch_size independent parts of the stream in parallel.
    """
    n_steps = len(stream_ids) // batch_size
    if n_steps < 2:
        raise BenchError(f"a stream of {len(stream_ids)} tokens is too short for batch size {batch_size}: "
                         f"each row needs at least 2 tokens")
    ids = torch.from_numpy(np.asarray(stream_ids[:batch_size * n_steps], dtype=np.int64))
    return ids.view(batch_size, n_steps)


def bptt_batches(data: torch.Tensor, bptt: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, targets), each (B, T <= bptt), over a batchified stream (B, N).

    targets are inputs shifted by one step; the last batch may be shorter. Every column
    but the first is a target exactly once.
    """
    n_steps = data.shape[1]
    for start in range(0, n_steps - 1, bptt):
        length = min(bptt, n_steps - 1 - start)
        yield data[:, start:start + length], data[:, start + 1:start + 1 + length]


def nnlm_windows(stream_ids: np.ndarray, context_size: int, start_id: int,
                 device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Every position of a stream as an example: contexts (N, context_size), targets (N,).

    contexts[t] = the context_size tokens before t, oldest first, with start_id before
    the stream's start. contexts is a strided view of one padded copy of the stream on
    `device`, so it costs N + context_size ids of memory, not N * context_size.
    """
    targets = torch.from_numpy(np.asarray(stream_ids, dtype=np.int64)).to(device)
    start = torch.full((context_size,), start_id, dtype=torch.int64, device=device)
    padded = torch.cat([start, targets])  # (N + c,)
    return padded[:-1].unfold(0, context_size, 1), targets  # unfold: (N, c) view, row t = padded[t:t + c]


def _detach(state):
    # LSTM state is (h, c); RNN and GRU state is h.
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def _context_kind(model: nn.Module) -> str:
    kind = getattr(model, "context_kind", None)
    if kind not in CONTEXT_KINDS:
        raise TypeError(f"{type(model).__name__}.context_kind must be one of {CONTEXT_KINDS}, got {kind!r}")
    return kind


@torch.no_grad()
def evaluate_perplexity(model: nn.Module, ids: np.ndarray, device: torch.device, *, start_id: int,
                        batch_size: int, bptt: int = 35, precision: str = "fp32") -> dict:
    """Perplexity of a split under the protocol in the module docstring.

    batch_size: windows per forward call for window models (no effect on the result);
    contiguous rows for recurrent models (1 = the whole split as one sequence).
    bptt: steps per forward call for recurrent models (no effect on the result, since
    the state is carried; it bounds memory). precision: see `autocast`. Returns
    perplexity, nll_sum (nats), scored_tokens and a one-line description of the context
    the model had.
    """
    if _context_kind(model) == "window":
        size = model.context_size
        nll = -window_log_probs(model, ids, device, start_id=start_id, batch_size=batch_size,
                                precision=precision).sum()
        context = (f"{size} previous tokens; the {size} positions before the split's first token "
                   f"are id {start_id}; every token scored")
        return {"perplexity": math.exp(nll / len(ids)), "nll_sum": float(nll), "scored_tokens": len(ids),
                "context": context}
    was_training = model.training
    model.eval()
    nll_sum = torch.zeros((), dtype=torch.float64, device=device)
    data = batchify(np.concatenate([[start_id], ids]), batch_size).to(device)  # (B, N_row)
    init_state = getattr(model, "init_state")  # a recurrent model's contract method; nn.Module's typing knows none
    state = init_state(batch_size, device)
    for inputs, targets in bptt_batches(data, bptt):
        with autocast(device, precision):
            logits, _, state = model(inputs, None, state)  # (B, T, V)
            nll_sum += F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum").double()
    scored = batch_size * (data.shape[1] - 1)
    if batch_size == 1:
        context = (f"bptt={bptt}, batch 1: state carried across the whole split from a zero state "
                   f"and id {start_id}; every token scored")
    else:
        context = (f"bptt={bptt}, split cut into {batch_size} contiguous rows, state carried along each "
                   f"row from a zero state; {len(ids) - scored} of {len(ids)} tokens not scored "
                   f"(row starts and remainder)")
    model.train(was_training)
    nll = nll_sum.item()
    return {"perplexity": math.exp(nll / scored), "nll_sum": nll, "scored_tokens": scored, "context": context}


@torch.no_grad()
def window_log_probs(model: nn.Module, ids: np.ndarray, device: torch.device, *, start_id: int,
                     batch_size: int, precision: str = "fp32") -> np.ndarray:
    """Natural-log probability of every token of a split under a window model: (N,) float64.

    The context of token t is the model's context_size previous tokens, start_id before
    the split's first token. Per-token values let callers interpolate models (nnlm-mix).
    """
    was_training = model.training
    model.eval()
    context_size: int = getattr(model, "context_size")  # a window model's contract attribute (module docstring)
    contexts, targets = nnlm_windows(ids, context_size, start_id, device)  # (N, c), (N,)
    parts = []
    for start in range(0, len(targets), batch_size):
        with autocast(device, precision):
            logits, _ = model(contexts[start:start + batch_size])  # (b, V)
            parts.append(-F.cross_entropy(logits, targets[start:start + batch_size], reduction="none").double())
    model.train(was_training)
    return torch.cat(parts).cpu().numpy()


def _make_optimizer(model: nn.Module, config: LMTrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        # fused: one pass over all parameters instead of a dozen foreach passes; the same update to
        # float rounding, about 2x faster on ELMo's 5.4M parameters (issue 27).
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    return torch.optim.SGD(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _step(model: nn.Module, loss: torch.Tensor, optimizer: torch.optim.Optimizer, clip: float) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()


def _window_epoch(model, train_ids, config, device, optimizer, generator, start_id, budget_spent, progress,
                  precision):
    """One pass over all windows in a fresh random order. Returns (loss tensor sum, tokens, finished)."""
    contexts, targets = nnlm_windows(train_ids, model.context_size, start_id, device)  # (N, c), (N,)
    order = torch.randperm(len(targets), generator=generator).to(device)
    loss_sum = torch.zeros((), device=device)
    tokens = 0
    for start in tqdm(range(0, len(order), config.batch_size), desc="train", unit="batch", disable=not progress,
                      leave=False):
        batch = order[start:start + config.batch_size]  # (b,) positions
        with autocast(device, precision):
            _, loss = model(contexts[batch], targets[batch])
        _step(model, loss, optimizer, config.clip)
        loss_sum += loss.detach() * len(batch)
        tokens += len(batch)
        if budget_spent(tokens):
            return loss_sum, tokens, False
    return loss_sum, tokens, True


def _recurrent_epoch(model, train_ids, config, device, optimizer, budget_spent, progress, precision):
    """One pass over the batchified split with truncated BPTT. Returns (loss tensor sum, tokens, finished)."""
    data = batchify(train_ids, config.batch_size).to(device)  # (B, N)
    state = model.init_state(config.batch_size, device)
    loss_sum = torch.zeros((), device=device)
    tokens = 0
    n_batches = math.ceil((data.shape[1] - 1) / config.bptt)
    for inputs, targets in tqdm(bptt_batches(data, config.bptt), total=n_batches, desc="train", unit="batch",
                                disable=not progress, leave=False):
        # Carry the state's values but cut the graph: gradients stop at the batch boundary.
        with autocast(device, precision):
            _, loss, state = model(inputs, targets, _detach(state))
        _step(model, loss, optimizer, config.clip)
        loss_sum += loss.detach() * targets.numel()
        tokens += targets.numel()
        if budget_spent(tokens):
            return loss_sum, tokens, False
    return loss_sum, tokens, True


def train_lm(model: nn.Module, train_ids: np.ndarray, valid_ids: np.ndarray, config: LMTrainConfig,
             device: torch.device, *, seed: int, start_id: int, progress: bool = False,
             precision: str = "fp32") -> dict:
    """Train on train_ids, validate on valid_ids after every epoch, keep the best state (see `fit`).

    seed drives the window order and dropout; the caller seeds the initialization.
    precision: the forward passes' (training and validation), see `autocast`.
    """
    kind = _context_kind(model)
    generator = torch.Generator().manual_seed(seed)

    def run_epoch(optimizer: torch.optim.Optimizer, budget_spent: Callable[[int], bool]):
        if kind == "window":
            return _window_epoch(model, train_ids, config, device, optimizer, generator, start_id, budget_spent,
                                 progress, precision)
        return _recurrent_epoch(model, train_ids, config, device, optimizer, budget_spent, progress, precision)

    def validate() -> dict:
        return evaluate_perplexity(model, valid_ids, device, start_id=start_id, bptt=config.bptt,
                                   batch_size=config.eval_batch_size if kind == "recurrent" else config.batch_size,
                                   precision=precision)

    return fit(model, run_epoch, validate, config, device, seed=seed, progress=progress)


class Budget:
    """When `fit` stops mid-epoch: config.max_minutes from the call's start (validation
    included), or config.max_tokens training tokens read over all epochs."""

    def __init__(self, config: LMTrainConfig):
        self.deadline = None if config.max_minutes is None else time.perf_counter() + 60 * config.max_minutes
        self.max_tokens = config.max_tokens
        self.tokens_before = 0  # training tokens of the epochs already run
        self.stopped_by: str | None = None  # "token budget" | "time budget" once spent

    def spent(self, epoch_tokens: int) -> bool:
        """Whether to stop now, epoch_tokens being those read so far in the current epoch."""
        if self.max_tokens is not None and self.tokens_before + epoch_tokens >= self.max_tokens:
            self.stopped_by = "token budget"
        elif self.deadline is not None and time.perf_counter() > self.deadline:
            self.stopped_by = "time budget"
        return self.stopped_by is not None


def fit(model: nn.Module, run_epoch: Callable, validate: Callable[[], dict], config: LMTrainConfig,
        device: torch.device, *, seed: int, progress: bool = False) -> dict:
    """The epoch loop of every LM the harness trains: one training pass, then validation.

    run_epoch(optimizer, budget_spent) makes one pass over the training data, calling
    budget_spent(tokens read so far in this epoch) after every step and stopping when it
    says True, and returns (loss tensor sum, tokens, finished); validate() returns at least
    {"perplexity", "context"} of the validation split.

    An epoch that does not lower the best validation perplexity multiplies the lr by
    lr_decay (the weights are not rolled back); `patience` such epochs in a row stop
    training. The budgets (`Budget`: max_minutes, max_tokens) are checked after every step:
    when one is spent the epoch ends there, is validated and recorded as incomplete, and
    training stops. The model ends with the parameters of its best validation epoch.

    Returns {"history": one row per epoch, "best_epoch", "best_valid_perplexity",
    "stopped": "epochs" | "patience" | "time budget" | "token budget", "valid_context"}.
    """
    torch.manual_seed(seed)
    model.to(device)
    optimizer = _make_optimizer(model, config)
    lr = config.lr
    budget = Budget(config)
    history: list[dict] = []
    best_perplexity, best_epoch, best_state = math.inf, None, None
    stopped, bad_epochs = "epochs", 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        synchronize(device)
        started = time.perf_counter()
        loss_sum, tokens, finished = run_epoch(optimizer, budget.spent)
        budget.tokens_before += tokens
        synchronize(device)
        seconds = time.perf_counter() - started
        valid = validate()
        history.append({"epoch": epoch, "train_loss": loss_sum.item() / tokens,
                        "valid_perplexity": valid["perplexity"], "lr": lr, "seconds": seconds,
                        "tokens_per_s": tokens / seconds, "train_tokens": tokens, "complete": finished})
        if progress:
            print(f"epoch {epoch}: train loss {history[-1]['train_loss']:.4f}, "
                  f"valid ppl {valid['perplexity']:.2f}, lr {lr:g}, {seconds:.1f}s")
        if valid["perplexity"] < best_perplexity:
            best_perplexity, best_epoch, bad_epochs = valid["perplexity"], epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad_epochs += 1
            lr *= config.lr_decay
            for group in optimizer.param_groups:
                group["lr"] = lr
        if not finished:
            assert budget.stopped_by is not None, "run_epoch stopped before its end with no budget spent"
            stopped = budget.stopped_by
            break
        if bad_epochs >= config.patience:
            stopped = "patience"
            break
    if best_state is None:
        raise BenchError(f"training diverged: validation perplexity is {history[-1]['valid_perplexity']} "
                         f"after every epoch; lower train.lr (now {config.lr})")
    model.load_state_dict(best_state)
    return {"history": history, "best_epoch": best_epoch, "best_valid_perplexity": best_perplexity,
            "stopped": stopped, "valid_context": valid["context"]}

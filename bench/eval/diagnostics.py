"""The gradient diagnostics of recurrent cells, as tables: vanishing, exploding, clipping.

For each cell (Elman RNN, LSTM) and seed, a freshly initialized LM reads windows of real
text and `impl.rnn.gradient_flow` gives the norm of d loss_t / d h_{t-k}, k = 1..max_k:
how much the loss at step t can still learn from the state k steps back. The Elman RNN's
curve falls off exponentially; the LSTM's cell state keeps far gradients alive (Hochreiter
& Schmidhuber 1997; Bengio, Simard & Frasconi 1994).

Both regimes (claim 2 of the reading note: plain RNNs suffer from vanishing *and* exploding
gradients): an Elman RNN's Jacobian d h_t / d h_(t-1) is diag(tanh'(.)) W_hh, so how far a
gradient reaches is set by W_hh's spectral radius rho (Pascanu, Mikolov & Bengio 2013): below
1 the product of k Jacobians shrinks like rho^k, above 1 it can grow until tanh saturates.
`gradient_regimes_table` sets rho at initialisation, measures the curve, trains briefly on
Brown and measures again, LSTM and GRU beside it; `clipping_table` trains the Elman RNN at a
learning rate where it diverges, with and without gradient-norm clipping. The verdict
functions (`explodes_above_one`, `gated_cells_keep_gradients`, `clipping_prevents_divergence`)
turn those rows into a claims ledger's verdicts.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from bench.data.prepared import prepare_corpus
from bench.data.vocab import TokenizerConfig, VocabConfig
from bench.train.lm import _detach, batchify, bptt_batches
from impl.rnn import RNNLM, RNNLMConfig, gradient_flow


def _windows(stream: np.ndarray, max_k: int, windows: int, seed: int) -> torch.Tensor:
    """`windows` random windows of a stream, max_k + 2 tokens each (seeded): (windows, max_k + 2)."""
    length = max_k + 2
    starts = np.random.default_rng(seed).integers(0, len(stream) - length, windows)
    return torch.from_numpy(np.stack([stream[s:s + length] for s in starts]))


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
    rows = []
    for seed in seeds:
        ids = _windows(stream, config.max_k, config.windows, seed).to(device)  # (windows, max_k + 2)
        for cell in config.cells:
            torch.manual_seed(seed)
            model = RNNLM(RNNLMConfig(cell=cell, emb=config.emb, hidden=config.hidden, layers=1, dropout=0.0),
                          len(prepared.vocab)).to(device)
            for k, norm in enumerate(gradient_flow(model, ids, config.max_k), start=1):
                rows.append({"model": cell, "k": k, "grad_norm": norm, "seed": seed})
    return pd.DataFrame(rows, columns=["model", "k", "grad_norm", "seed"])


# gradient_regimes.csv, one row per network, state and k: cell (rnn | lstm | gru); radius: the Elman
# RNN's W_hh spectral radius set at init (empty for gated cells); state (init | trained); train_steps
# and train_loss (nats/token, the mean of the last LAST_STEPS batches; empty at init);
# spectral_radius: W_hh's at that state (empty for gated cells); k: steps back; grad_norm: the mean
# over windows of |d loss_t / d h_(t-k)| (L2 over hidden units; the loss in nats; higher = more of
# the gradient reaches k steps back); seed.
REGIME_COLUMNS = ["cell", "radius", "state", "train_steps", "train_loss", "spectral_radius", "k", "grad_norm", "seed"]
# clipping.csv, one row per training step: clip (max global gradient norm, 0 = none); lr (SGD); step
# (1-based); loss: the step's batch cross-entropy (nats/token, lower is better); grad_norm: the
# global L2 norm of all parameters' gradients before clipping; seed.
CLIPPING_COLUMNS = ["clip", "lr", "step", "loss", "grad_norm", "seed"]
LAST_STEPS = 10  # a training's loss is the mean of its last steps' batch losses


@dataclass(frozen=True)
class GradientRegimesConfig:
    corpus: str = "brown"
    radii: tuple[float, ...] = (0.5, 1.0, 1.5, 2.0)  # the Elman RNN's recurrent spectral radius at init
    gated: tuple[str, ...] = ("lstm", "gru")  # beside it, each with its own initialisation
    vocab_size: int = 5000  # the most frequent train words, the rest <unk>: the softmax dominates a step's cost
    emb: int = 128
    hidden: int = 128
    max_k: int = 50
    windows: int = 32  # text windows of max_k + 2 tokens, averaged over
    batch_size: int = 20  # contiguous rows of the train split, truncated BPTT as in bench.train.lm
    bptt: int = 35
    train_steps: int = 100  # the short training before the "trained" curves
    train_lr: float = 3e-3  # Adam
    train_clip: float = 1.0  # so the radius-2 network trains rather than diverges
    clip_steps: int = 150  # the clipping experiment: SGD on the Elman RNN at its default init
    clip_lr: float = 1.0  # where it diverges without clipping on Brown (3 and 10 do too; 1 is the mildest)
    clip: float = 1.0  # max global gradient norm of the clipped run


class Verdict(NamedTuple):
    """One claim's verdict over seeds: `holds` in every seed (`seeds_holding` of `seeds`), and
    its effect size, mean and sample sd over seeds (NaN for one seed)."""
    holds: bool
    effect: float
    sd: float
    seeds: int
    seeds_holding: int


def spectral_radius(matrix: torch.Tensor) -> float:
    """The largest |eigenvalue| of a square matrix."""
    return torch.linalg.eigvals(matrix.detach().double()).abs().max().item()


def set_spectral_radius(matrix: torch.Tensor, radius: float) -> None:
    """Rescale a square matrix in place so its spectral radius is `radius` (eigenvectors kept)."""
    with torch.no_grad():
        matrix.mul_(radius / spectral_radius(matrix))


def prepare_regime_corpus(config: GradientRegimesConfig, data_dir=None):
    """The corpus both regimes read, with the config's capped vocabulary."""
    return prepare_corpus(config.corpus, data_dir, TokenizerConfig(lowercase=False, pattern=r"\S+"),
                          VocabConfig(min_count=1, max_size=config.vocab_size, unk="<unk>"))


def regime_model(config: GradientRegimesConfig, vocab_size: int, seed: int, cell: str,
                 radius: float | None = None) -> RNNLM:
    """A seeded single-layer LM; the Elman RNN's W_hh rescaled to `radius` (None: the cell's own init).
    The global torch generator is left as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = RNNLM(RNNLMConfig(cell=cell, emb=config.emb, hidden=config.hidden, layers=1, dropout=0.0),
                      vocab_size)
    if radius is not None:
        set_spectral_radius(model.rnn.weight_hh_l0, radius)
    return model


def train_steps(model: RNNLM, train: torch.Tensor, steps: int, bptt: int, optimizer: torch.optim.Optimizer,
                clip: float) -> list[tuple[float, float]]:
    """Up to `steps` truncated-BPTT steps over a batchified stream `train` (B, N), the state carried.

    Returns (batch loss in nats per token, global gradient norm before clipping) per step; clip
    0 = none. Stops after the first non-finite loss: every update past it is NaN.
    """
    state = model.init_state(train.shape[0], train.device)
    log = []
    for inputs, targets in itertools.islice(bptt_batches(train, bptt), steps):  # each (B, <= bptt)
        _, loss, state = model(inputs, targets, _detach(state))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = nn.utils.clip_grad_norm_(model.parameters(), clip if clip > 0 else math.inf)
        optimizer.step()
        log.append((loss.item(), norm.item()))
        if not math.isfinite(log[-1][0]):
            break
    return log


def gradient_regimes_table(config: GradientRegimesConfig, prepared, seeds: list[int]) -> pd.DataFrame:
    """REGIME_COLUMNS rows: for every network (the Elman RNN at each radius, each gated cell)
    and seed, |d loss_t / d h_(t-k)| for k = 1..max_k at init and after config.train_steps of
    Adam on the train split (the same text windows for both). `radius` is the Elman RNN's set
    at init (NaN for gated cells), `spectral_radius` its W_hh's at that state; `train_loss` the
    mean batch loss of the last LAST_STEPS steps (NaN at init)."""
    stream = prepared.train.ids.astype(np.int64)
    train = batchify(stream, config.batch_size)  # (B, N)
    networks = [("rnn", radius) for radius in config.radii] + [(cell, None) for cell in config.gated]
    rows = []
    for seed in seeds:
        ids = _windows(stream, config.max_k, config.windows, seed)  # (windows, max_k + 2)
        for cell, radius in networks:
            model = regime_model(config, len(prepared.vocab), seed, cell, radius)
            record = {"cell": cell, "radius": math.nan if radius is None else radius, "seed": seed}
            rows += _curve(model, ids, config.max_k, {**record, "state": "init", "train_steps": 0,
                                                      "train_loss": math.nan})
            optimizer = torch.optim.Adam(model.parameters(), lr=config.train_lr)
            log = train_steps(model, train, config.train_steps, config.bptt, optimizer, config.train_clip)
            losses = [loss for loss, _ in log[-LAST_STEPS:]]
            rows += _curve(model, ids, config.max_k, {**record, "state": "trained", "train_steps": len(log),
                                                      "train_loss": float(np.mean(losses))})
    return pd.DataFrame(rows, columns=REGIME_COLUMNS)


def _curve(model: RNNLM, ids: torch.Tensor, max_k: int, record: dict) -> list[dict]:
    radius = spectral_radius(model.rnn.weight_hh_l0) if model.config.cell == "rnn" else math.nan
    return [{**record, "spectral_radius": radius, "k": k, "grad_norm": norm}
            for k, norm in enumerate(gradient_flow(model, ids, max_k), start=1)]


def clipping_table(config: GradientRegimesConfig, prepared, seeds: list[int]) -> pd.DataFrame:
    """CLIPPING_COLUMNS rows: the Elman RNN (its default init) trained by SGD at config.clip_lr
    for config.clip_steps, without clipping (clip 0) and with config.clip, from the same init
    per seed; loss and pre-clipping gradient norm per step (a run stops at a non-finite loss)."""
    train = batchify(prepared.train.ids.astype(np.int64), config.batch_size)  # (B, N)
    rows = []
    for seed in seeds:
        for clip in (0.0, config.clip):
            model = regime_model(config, len(prepared.vocab), seed, "rnn")
            optimizer = torch.optim.SGD(model.parameters(), lr=config.clip_lr)
            log = train_steps(model, train, config.clip_steps, config.bptt, optimizer, clip)
            rows += [{"clip": clip, "lr": config.clip_lr, "step": step, "loss": loss, "grad_norm": norm, "seed": seed}
                     for step, (loss, norm) in enumerate(log, start=1)]
    return pd.DataFrame(rows, columns=CLIPPING_COLUMNS)


def _growth_factor(curve: pd.Series) -> float:
    """The mean factor per step back of a gradient-norm curve indexed by k: (g_K / g_1)^(1 / (K - 1))."""
    first, last = curve.index.min(), curve.index.max()
    return (curve[last] / curve[first]) ** (1.0 / (last - first))


def _verdict(per_seed: pd.DataFrame) -> Verdict:
    """From one row per seed with columns `holds` (bool) and `effect` (float). An infinite
    effect (a gradient that underflowed to 0) has no spread: sd NaN, without a warning."""
    effects = per_seed["effect"]
    spread = float(effects.std(ddof=1)) if len(per_seed) > 1 and np.isfinite(effects).all() else math.nan
    return Verdict(bool(per_seed["holds"].all()), float(effects.mean()), spread, len(per_seed),
                   int(per_seed["holds"].sum()))


def _state_rows(regimes: pd.DataFrame, state: str) -> pd.DataFrame:
    rows = regimes[regimes["state"] == state]
    if rows.empty:
        raise ValueError(f"gradient regime rows: none with state {state!r}; expected 'init' or 'trained' rows")
    return rows


def explodes_above_one(regimes: pd.DataFrame, state: str = "init") -> Verdict:
    """"Plain RNN gradients vanish below spectral radius 1 and explode above it", from
    REGIME_COLUMNS rows of the Elman RNN at `state`.

    Per seed, each radius' growth factor per step back, (g_K / g_1)^(1/(K-1)) over its k = 1..K
    (a linear RNN with W = r I has exactly r): the seed holds when every radius above 1 grows
    (> 1) and every radius below 1 shrinks (< 1); radius 1 itself is not judged. Effect: the
    smallest growth factor among the radii above 1 (per step back; > 1 means exploding).
    """
    elman = _state_rows(regimes, state)
    elman = elman[elman["cell"] == "rnn"]
    per_seed = []
    for seed, rows in elman.groupby("seed"):
        factors = {radius: _growth_factor(curve.set_index("k")["grad_norm"])
                   for radius, curve in rows.groupby("radius")}
        above = [factor for radius, factor in factors.items() if radius > 1]
        below = [factor for radius, factor in factors.items() if radius < 1]
        if not (above and below):
            raise ValueError(f"gradient regime rows, seed {seed}: expected Elman RNN (cell 'rnn') rows at radii "
                             f"both above and below 1, got radii {sorted(factors)}")
        per_seed.append({"holds": all(f > 1 for f in above) and all(f < 1 for f in below), "effect": min(above)})
    return _verdict(pd.DataFrame(per_seed))


def _retention(curve: pd.DataFrame, k: int) -> float:
    """g_k / g_1 of one network's rows: the share of the one-step-back gradient left k steps back."""
    norms = curve.set_index("k")["grad_norm"]
    if k not in norms.index:
        raise ValueError(f"gradient regime rows: no k={k} (max k {norms.index.max()}); expected curves reaching it")
    return norms[k] / norms[1]


def gated_cells_keep_gradients(regimes: pd.DataFrame, k: int = 50, state: str = "trained",
                               orders: float = 2.0) -> Verdict:
    """"LSTM and GRU keep gradients alive k steps back where the plain RNN's vanish", from
    REGIME_COLUMNS rows at `state`.

    Per seed, each network's retention g_k / g_1; the reference is the best-keeping Elman RNN
    among those set to a radius below 1 (the vanishing regime; radii above 1 keep gradients by
    exploding them, which is no fix). Effect: log10(retention of the worse gated cell /
    the reference's), in orders of magnitude; the seed holds when it is at least `orders`.
    """
    rows = _state_rows(regimes, state)
    per_seed = []
    for seed, seed_rows in rows.groupby("seed"):
        vanishing = seed_rows[(seed_rows["cell"] == "rnn") & (seed_rows["radius"] < 1)]
        gated = seed_rows[seed_rows["cell"] != "rnn"]
        if vanishing.empty or gated.empty:
            raise ValueError(f"gradient regime rows, seed {seed}: expected Elman RNN rows at a radius below 1 and "
                             f"gated-cell (lstm, gru) rows")
        reference = max(_retention(curve, k) for _, curve in vanishing.groupby("radius"))
        worst_gated = min(_retention(curve, k) for _, curve in gated.groupby("cell"))
        with np.errstate(divide="ignore"):  # a float32 gradient can underflow to 0: log10 -inf, effect +-inf
            effect = float(np.log10(worst_gated) - np.log10(reference))
        per_seed.append({"holds": effect >= orders, "effect": effect})
    return _verdict(pd.DataFrame(per_seed))


def _diverged(run: pd.DataFrame) -> bool:
    """A training run (its CLIPPING_COLUMNS rows) diverged: a non-finite loss, or its final loss
    (the mean of its last LAST_STEPS steps) above its first step's."""
    losses = run.sort_values("step")["loss"].to_numpy()
    return not np.isfinite(losses).all() or losses[-LAST_STEPS:].mean() > losses[0]


def _final_loss(run: pd.DataFrame) -> float:
    losses = run.sort_values("step")["loss"].to_numpy()
    return losses[-LAST_STEPS:].mean() if np.isfinite(losses).all() else math.inf


def clipping_prevents_divergence(clipping: pd.DataFrame) -> Verdict:
    """"Gradient-norm clipping prevents divergence", from CLIPPING_COLUMNS rows.

    Per seed, the unclipped run (clip 0) and the clipped one (the largest clip): the seed holds
    when the unclipped run diverged (`_diverged`) and the clipped one did not. Effect: final
    loss without clipping minus with it, in nats per token (inf where the unclipped loss
    became non-finite).
    """
    per_seed = []
    for seed, runs in clipping.groupby("seed"):
        if not ((runs["clip"] == 0).any() and (runs["clip"] > 0).any()):
            raise ValueError(f"clipping rows, seed {seed}: expected a run with clip 0 and one with clip > 0")
        unclipped, clipped = runs[runs["clip"] == 0], runs[runs["clip"] == runs["clip"].max()]
        per_seed.append({"holds": _diverged(unclipped) and not _diverged(clipped),
                         "effect": _final_loss(unclipped) - _final_loss(clipped)})
    return _verdict(pd.DataFrame(per_seed))

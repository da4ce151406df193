"""Quality gates: small fixed-seed runs whose metric must not get worse than its seed spread.

Each gate trains one of our models on the embedded Lee corpus (gensim's test data, so no
data root is needed) through the runner's own cell code (`bench.run.cell.run_cell`) with
settings small enough to take seconds on 2 CPU cores, and reads one number: Spearman on
WS-353-ALL (gensim's bundled file) for word vectors, test perplexity for language models.

`lm-lineage gates --seeds 5 --out results/quality_gates.json` records every gate over seeds
0..N-1 (per-seed values, mean, sample sd, settings). tests/test_quality_gates.py runs each
gate at seed 0 and fails when its metric is worse than the recorded mean by more than

    tolerance = max(3 * sd, floor)

One-sided: only the worse direction fails (lower Spearman, higher perplexity); a better
value passes, and re-recording the file then tightens the gate. The floors keep gates whose
seeds barely differ (kn3 and svd-ppmi are deterministic, sd = 0) from failing on
last-digit drift between machines and library builds.

Gates run on the CPU with one torch thread: the recorded spread is then reproduced exactly
by the same code on the same machine, and an overloaded 2-core machine does not stall in
torch's busy-waiting thread pool.
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from bench.errors import BenchError
from bench.eval.metrics import METRICS
from bench.models.registry import MODELS
from bench.run.cell import run_cell
from bench.run.config import matrix_from_dict
from bench.run.results import command_line, device_info, git_commit, library_versions

SCHEMA = "lm-lineage.quality-gates/1"
CORPUS = "lee"
SIMILARITY_SET = "WS-353-ALL"  # gensim's wordsim353.tsv, scored without a data root
LM_SPLIT = "test"
SPREAD_FACTOR = 3.0  # tolerance in sample standard deviations over the recorded seeds
# The smallest tolerance per metric: absolute for Spearman, a fraction of the mean for perplexity.
FLOORS = {"spearman": ("absolute", 0.02), "word_perplexity": ("relative", 0.02)}
TOLERANCE_RULE = (f"fail when the seed-0 value is worse than the recorded mean by more than "
                  f"max({SPREAD_FACTOR:g} * sd, floor), sd over the recorded seeds; one-sided (only lower "
                  f"Spearman or higher perplexity fails); floor {FLOORS['spearman'][1]:g} Spearman, "
                  f"{FLOORS['word_perplexity'][1]:.0%} of the mean perplexity")

_WORD_VOCAB = {"min_count": 2}  # as the quick matrix
# The language models need <unk>; the 2,000 most frequent words keep each softmax small.
_LM_VOCAB = {"min_count": 2, "max_size": 2000, "unk": "<unk>", "eos": "</s>"}
_RNN_SETTINGS = {"emb": 64, "hidden": 64, "layers": 1, "dropout": 0.0, "optimizer": "adam", "lr": 3e-3,
                 "batch_size": 20, "bptt": 35, "epochs": 2}


@dataclass(frozen=True)
class Gate:
    model: str  # a name in bench.models.registry.MODELS; also the gate's name
    vocab: dict  # [vocab] table of the gate's matrix
    train: dict  # [train] table: the model's (and its training loop's) settings
    reads: str | None = None  # the perplexity row's model where a cell writes several (elmo: elmo-mean)

    @property
    def metric(self) -> str:
        return "spearman" if MODELS[self.model].family == "embedding" else "word_perplexity"

    @property
    def measure(self) -> str:
        """The number read from the cell, in words."""
        if self.metric == "spearman":
            return f"{SIMILARITY_SET} Spearman"
        return f"{LM_SPLIT} perplexity" + (f" of {self.reads}" if self.reads else "")

    @property
    def direction(self) -> str:
        return METRICS[self.metric].direction

    def settings(self) -> dict:
        """What the recorded values were made with: a changed gate needs a new recording."""
        return {"corpus": CORPUS, "vocab": self.vocab, "train": self.train}


GATES: dict[str, Gate] = {
    gate.model: gate
    for gate in [
        # Lee is small: word2vec needs many epochs (and skip-gram a larger step) before
        # WS-353 rises clearly above its seed noise (CBOW, seeds 0-2: 20 epochs 0.12 +- 0.03,
        # 30 epochs 0.21 +- 0.03). `threads: 1` keeps word2vec's and GloVe's own thread
        # settings to one thread too.
        Gate("word2vec-cbow", _WORD_VOCAB, {"vector_size": 50, "epochs": 30, "batch_size": 2048, "threads": 1}),
        Gate("word2vec-sg", _WORD_VOCAB, {"vector_size": 50, "epochs": 10, "alpha": 0.05, "threads": 1}),
        # x_max stays at the paper's 100: with 10, rare pairs weigh more and WS-353 is seed
        # noise (0.01 +- 0.11 over 5 seeds); 25 dimensions, window 5 give 0.16 +- 0.02.
        Gate("glove", _WORD_VOCAB, {"vector_size": 25, "window": 5, "epochs": 25, "batch_size": 8192, "threads": 1}),
        Gate("svd-ppmi", _WORD_VOCAB, {"vector_size": 50, "window": 5}),
        Gate("kn3", _LM_VOCAB, {}),
        Gate("nnlm-mlp1", _LM_VOCAB, {"n": 4, "m": 30, "h": 50, "optimizer": "adam", "lr": 3e-3,
                                      "batch_size": 256, "epochs": 2}),
        Gate("rnn", _LM_VOCAB, _RNN_SETTINGS),
        Gate("lstm", _LM_VOCAB, _RNN_SETTINGS),
        Gate("gru", _LM_VOCAB, _RNN_SETTINGS),
        # A Lee line is a whole document; 16 of them per batch.
        Gate("elmo", _LM_VOCAB, {"char_dim": 8, "max_chars": 12, "filters": [[1, 16], [2, 16], [3, 32]],
                                 "highway_layers": 1, "projection_dim": 32, "hidden": 64, "layers": 1,
                                 "dropout": 0.0, "optimizer": "adam", "lr": 3e-3, "batch_size": 16, "epochs": 2},
             reads="elmo-mean"),
    ]
}


@dataclass
class GateRun:
    value: float
    seconds: float
    config: dict  # the cell's resolved config (model, train, tokenizer, vocab, eval)


@contextmanager
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run_gate(gate: Gate, seed: int) -> GateRun:
    """One seed of a gate: a runner cell on the CPU, reduced to the gate's number."""
    matrix = matrix_from_dict({"models": [gate.model], "corpora": [CORPUS], "seeds": [seed], "vocab": gate.vocab,
                               "train": gate.train}, f"gate-{gate.model}", f"quality gate {gate.model}")
    started = time.perf_counter()
    with _one_torch_thread():
        result = run_cell(matrix, gate.model, CORPUS, seed, None, torch.device("cpu"), False, command_line())
    seconds = time.perf_counter() - started
    if result["status"] != "ok":
        raise BenchError(f"quality gate {gate.model} (seed {seed}) failed: {result['error']}")
    if gate.metric == "spearman":
        value = next(row["spearman"] for row in result["metrics"]["wordsim"] if row["benchmark"] == SIMILARITY_SET)
    else:
        value = next(row["perplexity"] for row in result["metrics"]["perplexity"]
                     if row["split"] == LM_SPLIT and row.get("model") == gate.reads)
    return GateRun(value, seconds, result["config"])


def tolerance(gate: Gate, mean: float, sd: float) -> float:
    kind, floor = FLOORS[gate.metric]
    return max(SPREAD_FACTOR * sd, floor if kind == "absolute" else floor * mean)


def limit(gate: Gate, mean: float, sd: float) -> float:
    """The worst value that still passes."""
    allowed = tolerance(gate, mean, sd)
    return mean - allowed if gate.direction == "higher" else mean + allowed


def passes(gate: Gate, value: float, mean: float, sd: float) -> bool:
    bound = limit(gate, mean, sd)
    return value >= bound if gate.direction == "higher" else value <= bound


def record_gates(seeds: list[int], report=print) -> dict:
    """Run every gate over `seeds`; the payload of results/quality_gates.json.

    `report` gets one line per gate as it finishes.
    """
    if len(seeds) < 2:
        raise BenchError(f"quality gates need at least 2 seeds (the tolerance is their spread), got {len(seeds)}")
    gates = {}
    for gate in GATES.values():
        runs = [run_gate(gate, seed) for seed in seeds]
        values = [run.value for run in runs]
        mean, sd = statistics.fmean(values), statistics.stdev(values)
        gates[gate.model] = {
            "model": gate.model, "metric": gate.metric, "measure": gate.measure, "direction": gate.direction,
            "seeds": seeds, "values": values, "mean": mean, "sd": sd,
            "tolerance": tolerance(gate, mean, sd), "limit": limit(gate, mean, sd),
            "seconds": [run.seconds for run in runs],
            "settings": gate.settings(), "config": runs[0].config,
        }
        bound = "at least" if gate.direction == "higher" else "at most"
        report(f"{gate.model}: {gate.measure} {mean:.4g} ± {sd:.2g} over {len(seeds)} seeds; "
               f"seed 0 must be {bound} {gates[gate.model]['limit']:.4g} "
               f"({statistics.fmean(run.seconds for run in runs):.1f} s per seed)")
    return {"schema": SCHEMA, "tolerance_rule": TOLERANCE_RULE, "command": command_line(),
            "git_commit": git_commit(), "versions": library_versions(),
            "device": device_info(torch.device("cpu"), 1), "gates": gates}

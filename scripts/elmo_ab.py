"""Interleaved A/B benchmark of the `elmo` matrix's biLM training speed: two code trees and/or
two configurations, timed in turns so that a shared machine's swings hit both alike.

    # today's code (a tree exported from main) against this tree, both as the matrix says:
    git archive main | tar -x -C /tmp/elmo-main
    python scripts/elmo_ab.py --a-tree /tmp/elmo-main --rounds 8 --seconds 20
    # one tree, two configurations:
    python scripts/elmo_ab.py --a-set model.elmo.softmax_samples=0 --b-set model.elmo.softmax_samples=1024

Each side is a worker process (this file with --worker) that imports `bench` from its tree,
builds the matrix's biLM on its corpus (the elmo cell's training loop, `bench.train.bilm`;
`--a-set` / `--b-set` apply `lm-lineage run --set` settings to one side) and, after one
untimed warm-up slice, trains on command for about --seconds at a time while the other
waits. The rounds alternate which side goes first (A B, B A, A B, ...). A slice's speed is
the words of the batches it trained over its wall seconds, and over the CPU seconds of its
process (with --threads 1 the work itself: on a machine shared by many processes the wall
figure is mostly the wait for a core); the ratio of a round is B's over A's. Printed: every
round, then the median and min-max range of both ratios and each side's median speeds.
Only these ratios compare: a single tokens/s figure moves 2x with the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def elmo_cell(matrix_name: str, settings: list[str], data_root: str | None):
    """(model config, training config, BiLMData) of a matrix's elmo model on its first corpus,
    with `--set`-style settings applied, as `lm-lineage run` resolves them. Imports `bench`
    lazily: a worker first puts its own tree on the path."""
    from bench.data.prepared import prepare_corpus
    from bench.run.config import load_matrix
    from bench.train import bilm

    matrix = load_matrix(matrix_name, settings, models=["elmo"])
    config, train_config = matrix.model_config("elmo"), matrix.train_config("elmo")
    prepared = prepare_corpus(matrix.corpora[0], data_root, matrix.tokenizer, matrix.vocab)
    return config, train_config, bilm.BiLMData(prepared, config.max_chars)


def worker(args) -> int:
    """Train on command: each stdin line "run SECONDS" trains about that long and answers a JSON
    line {"words", "seconds", "cpu_seconds"}; "quit" ends. Answers "ready" once built and warmed up."""
    import numpy as np
    import torch

    from bench.train import bilm, lm

    if args.threads is not None:
        torch.set_num_threads(args.threads)  # this throwaway process only
    config, train_config, data = elmo_cell(args.matrix, args.set, args.data)
    device = torch.device("cpu")
    torch.manual_seed(0)
    if hasattr(data, "frequency_order"):  # as build_elmo
        model = bilm.ELMo(config, data.softmax_size, data.frequency_order()).train()
    else:  # a tree from before issue 27: the sampled softmax's proposal follows the ids' order
        model = bilm.ELMo(config, data.softmax_size).train()
    optimizer = lm._make_optimizer(model, train_config)
    rng = np.random.default_rng(0)

    def train(seconds: float) -> dict:
        started, cpu_started = time.perf_counter(), time.process_time()
        deadline = started + seconds
        words = 0
        while time.perf_counter() < deadline:  # a slice may cross an epoch's end
            # The budget callback takes the epoch's words since the token budget (issue 27), none before.
            _, read, _ = bilm._train_epoch(model, data, train_config, device, optimizer, rng,
                                           lambda *_: time.perf_counter() > deadline, False, "fp32")
            words += read
        return {"words": words, "seconds": time.perf_counter() - started,
                "cpu_seconds": time.process_time() - cpu_started}

    train(args.seconds)  # warm-up: allocator, caches, lazy initialization
    print("ready", flush=True)
    for line in sys.stdin:
        command = line.split()
        if command == ["quit"]:
            break
        print(json.dumps(train(float(command[1]))), flush=True)
    return 0


class Side:
    """A worker process of one side."""

    def __init__(self, name: str, tree: Path, settings: list[str], args):
        self.name = name
        command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--tree", str(tree),
                   "--matrix", args.matrix, "--seconds", str(args.seconds)]
        command += [part for setting in settings for part in ("--set", setting)]
        if args.threads is not None:
            command += ["--threads", str(args.threads)]
        if args.data:
            command += ["--data", args.data]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        cwd=tree)
        self.speeds: list[float] = []  # tokens per wall second, one per slice
        self.cpu_speeds: list[float] = []  # tokens per CPU second of the worker process

    def wait_ready(self) -> None:
        line = self.process.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"worker {self.name} failed to start (said {line!r}); see its stderr above")

    def run(self, seconds: float) -> None:
        """Train one slice; its speeds go on the lists."""
        self.process.stdin.write(f"run {seconds}\n")
        self.process.stdin.flush()
        slice_ = json.loads(self.process.stdout.readline())
        self.speeds.append(slice_["words"] / slice_["seconds"])
        self.cpu_speeds.append(slice_["words"] / slice_["cpu_seconds"])

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write("quit\n")
            self.process.stdin.flush()
        self.process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a-tree", type=Path, default=ROOT, help="tree whose bench side A imports (default: this)")
    parser.add_argument("--b-tree", type=Path, default=ROOT, help="tree whose bench side B imports (default: this)")
    parser.add_argument("--a-set", action="append", default=[], metavar="KEY=VALUE", help="a setting of side A")
    parser.add_argument("--b-set", action="append", default=[], metavar="KEY=VALUE", help="a setting of side B")
    parser.add_argument("--matrix", default="elmo", help="matrix whose elmo model and corpus are trained")
    parser.add_argument("--rounds", type=int, default=8, help="timed slices per side")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of a slice")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of both sides (default: torch's)")
    parser.add_argument("--data", default=os.environ.get("LM_LINEAGE_DATA"), help="the data root")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--set", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        sys.path.insert(0, str(args.tree.resolve()))
        return worker(args)

    sides = [Side("A", args.a_tree.resolve(), args.a_set, args), Side("B", args.b_tree.resolve(), args.b_set, args)]
    try:
        for side in sides:
            side.wait_ready()
        a, b = sides
        ratios, cpu_ratios = [], []
        for round_ in range(args.rounds):
            order = (a, b) if round_ % 2 == 0 else (b, a)
            for side in order:
                side.run(args.seconds)
            ratios.append(b.speeds[-1] / a.speeds[-1])
            cpu_ratios.append(b.cpu_speeds[-1] / a.cpu_speeds[-1])
            print(f"round {round_ + 1} ({order[0].name} first): A {a.speeds[-1]:.0f} tokens/s "
                  f"({a.cpu_speeds[-1]:.0f} per CPU s), B {b.speeds[-1]:.0f} ({b.cpu_speeds[-1]:.0f}), "
                  f"B/A {ratios[-1]:.2f} (CPU {cpu_ratios[-1]:.2f})", flush=True)
    finally:
        for side in sides:
            side.close()
    print(f"A: {args.a_tree} {' '.join(args.a_set)}\nB: {args.b_tree} {' '.join(args.b_set)}")
    for what, rs, side_a, side_b in (("tokens/s", ratios, a.speeds, b.speeds),
                                     ("tokens per CPU s", cpu_ratios, a.cpu_speeds, b.cpu_speeds)):
        print(f"B/A {what} over {args.rounds} interleaved rounds of {args.seconds:g} s: median "
              f"{statistics.median(rs):.2f}, range {min(rs):.2f}-{max(rs):.2f}; medians A "
              f"{statistics.median(side_a):.0f}, B {statistics.median(side_b):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Step-interleaved A/B of two versions of `impl/elmo.py` in one process: both biLMs start from
the same weights and take the same batches of the `elmo` matrix, step by step (A B, B A, ...),
so a shared machine's swings, and the batches' lengths, hit both alike.

    mkdir -p runs/elmo-main && git archive main impl | tar -x -C runs/elmo-main        # the version to compare against
    python scripts/elmo_step_ab.py --a-elmo runs/elmo-main/impl/elmo.py --threads 1 --steps 60

Side A is built from the `ELMo` class of the file --a-elmo names (loaded as a module of its own),
side B from this tree's `impl.elmo`; everything else (data, batches, training step: forward,
backward, clipping, Adam) is this tree's `bench.train`. Each side has its own optimizer. A step
is timed from its forward to the optimizer's update, batching left out. Printed: B's speed over
A's for the whole run (total time) and the median and interquartile range of the per-step ratios,
in wall and in CPU seconds. A setting (--set) that side A's file does not know is ignored
there: `--set model.elmo.softmax_cutoffs=[2000,6000]` against a file without the adaptive
softmax times the full softmax (A) against the adaptive one (B). `scripts/elmo_ab.py` compares whole trees in slices instead; this
finer interleaving needs both versions in one process, so it only compares the model file.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from elmo_ab import elmo_cell  # noqa: E402

from bench.train import bilm, lm  # noqa: E402


def load_elmo_module(path: Path):
    """The file at `path` as a module of its own (it imports `impl._checks` from this tree)."""
    spec = importlib.util.spec_from_file_location("elmo_under_test_a", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def quartiles(values: list[float]) -> str:
    q1, median, q3 = statistics.quantiles(values, n=4)
    return f"median {median:.3f}, interquartile range {q1:.3f}-{q3:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a-elmo", type=Path, required=True, help="the impl/elmo.py of side A")
    parser.add_argument("--matrix", default="elmo", help="matrix whose elmo model and corpus are trained")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting of both sides")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per side first")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--data", default=os.environ.get("LM_LINEAGE_DATA"), help="the data root")
    args = parser.parse_args(argv)
    if not args.a_elmo.is_file():
        raise SystemExit(f"--a-elmo {args.a_elmo}: no such file")
    if args.threads is not None:
        torch.set_num_threads(args.threads)  # this throwaway process only
    config, train_config, data = elmo_cell(args.matrix, args.set, args.data)
    torch.manual_seed(0)
    model_b = bilm.ELMo(config, data.softmax_size, data.frequency_order()).train()
    elmo_a = load_elmo_module(args.a_elmo)
    try:
        model_a = elmo_a.ELMo(config, data.softmax_size, data.frequency_order()).train()
    except TypeError:  # a file from before the sampled softmax's frequency order (issue 27)
        model_a = elmo_a.ELMo(config, data.softmax_size).train()
    # Both start from B's weights; with --set options that A's file does not know (a softmax it
    # does not have), A keeps its own initialization of the weights B lacks, and says which.
    missing, unexpected = model_a.load_state_dict(model_b.state_dict(), strict=False)
    if missing or unexpected:
        print(f"A keeps its own {', '.join(missing) or 'nothing'}; B's {', '.join(unexpected) or 'nothing'} unused by A")
    sides = {"A": (model_a, lm._make_optimizer(model_a, train_config)),
             "B": (model_b, lm._make_optimizer(model_b, train_config))}
    sentences = data.sentences("train")
    batches = list(bilm.length_batches([len(s.rows) for s in sentences], train_config.batch_size,
                                       np.random.default_rng(0)))
    if len(batches) < args.warmup + args.steps:
        raise SystemExit(f"--steps {args.steps}: the corpus has {len(batches)} batches")

    def step(name: str, chars, targets) -> tuple[float, float]:
        model, optimizer = sides[name]
        started, cpu_started = time.perf_counter(), time.process_time()
        loss = model(chars, *targets)["loss"]
        lm._step(model, loss, optimizer, train_config.clip)
        return time.perf_counter() - started, time.process_time() - cpu_started

    seconds: dict[str, list[float]] = {"A": [], "B": []}
    cpu_seconds: dict[str, list[float]] = {"A": [], "B": []}
    for i, batch in enumerate(batches[:args.warmup + args.steps]):
        chars, ids = data.batch([sentences[j] for j in batch])
        targets = data.targets(ids, scoring=False)
        for name in ("A", "B") if i % 2 == 0 else ("B", "A"):
            wall, cpu = step(name, chars, targets)
            if i >= args.warmup:
                seconds[name].append(wall)
                cpu_seconds[name].append(cpu)
    print(f"A: {args.a_elmo}\nB: {ROOT / 'impl' / 'elmo.py'}\n{args.steps} steps a side, torch threads "
          f"{torch.get_num_threads()}, settings {args.set or 'none'}")
    for what, timed in (("wall", seconds), ("CPU", cpu_seconds)):
        per_step = [a / b for a, b in zip(timed["A"], timed["B"])]
        print(f"B/A speed ({what} seconds): whole run {sum(timed['A']) / sum(timed['B']):.3f}; per step "
              f"{quartiles(per_step)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

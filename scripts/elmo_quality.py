"""Validation perplexity of the `elmo` matrix's biLM after a fixed number of training tokens:
quality per token read, for comparing training configurations at one token budget.

    python scripts/elmo_quality.py --tokens 300000                                   # the matrix
    python scripts/elmo_quality.py --tokens 300000 --set model.elmo.softmax_samples=0  # another config

The biLM is built and trained as the elmo cell does (`bench.train.bilm`: initialization
seeded, then the sentence order and dropout from the same seed, its training loop and
optimizer) until the batches it has read hold at least --tokens words, then the whole
validation split (or its first --valid-sentences sentences) is scored with the full softmax
(`evaluate_bilm`, elmo-mean). Two
configurations compare at the same --tokens and --seed. Printed as one markdown table row:
settings, tokens read, steps, elmo-mean / forward / backward validation perplexity, and the
training tokens/s (a loaded machine moves that figure; only interleaved runs compare speed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.errors import BenchError  # noqa: E402
from bench.run.executors import resolve_device  # noqa: E402
from bench.train import bilm, lm  # noqa: E402
from scripts.elmo_ab import elmo_cell  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--matrix", default="elmo", help="matrix whose elmo model and corpus are trained")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a matrix setting, as `lm-lineage run --set` (repeatable)")
    parser.add_argument("--tokens", type=int, default=300_000, help="training words to read, then validate")
    parser.add_argument("--valid-sentences", type=int, default=None,
                        help="score only the first N validation sentences (default: all; a cap for a loaded machine)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda[:N] or auto: quality per token read on a GPU compares configurations there only "
                             "(cuDNN's biLSTM, not the CPU's pairs)")
    parser.add_argument("--data", default=os.environ.get("LM_LINEAGE_DATA"), help="the data root")
    args = parser.parse_args(argv)

    try:  # a bad --device, --set or data root: one line and exit 2, before any training
        device = resolve_device(args.device)
        config, train_config, data = elmo_cell(args.matrix, args.set, args.data)
    except BenchError as exc:
        print(f"elmo_quality.py: {exc}", file=sys.stderr)
        return 2
    torch.manual_seed(args.seed)  # the initialization, as build_elmo
    model = bilm.ELMo(config, data.softmax_size, data.frequency_order()).to(device)
    torch.manual_seed(args.seed)  # dropout, as lm.fit
    optimizer = lm._make_optimizer(model, train_config)
    rng = np.random.default_rng(args.seed)  # the sentence order, as train_bilm
    read = {"words": 0, "steps": 0}
    batch = data.batch

    def counted_batch(sentences):
        read["words"] += sum(len(s.rows) for s in sentences)
        read["steps"] += 1
        return batch(sentences)

    data.batch = counted_batch  # counts what the training loop reads; validation reads after the budget
    started = time.perf_counter()
    print(f"training to {args.tokens:,} tokens", file=sys.stderr, flush=True)
    while read["words"] < args.tokens:
        model.train()
        bilm._train_epoch(model, data, train_config, device, optimizer, rng, lambda _: read["words"] >= args.tokens,
                          False, "fp32")
    seconds = time.perf_counter() - started
    words, steps = read["words"], read["steps"]
    if args.valid_sentences is not None:
        data.sentences("validation")[args.valid_sentences:] = []  # the cached split, cut for this run only
    scores = bilm.evaluate_bilm(model, data, "validation", device, batch_size=train_config.batch_size)
    settings = " ".join(args.set) or "(the matrix as committed)"
    valid = f"{scores['mean']['scored_tokens']:,}"
    print("| settings | tokens read | steps | validation tokens | valid ppl elmo-mean | forward | backward "
          "| train tokens/s |")
    print(f"| {settings} | {words:,} | {steps:,} | {valid} | {scores['mean']['perplexity']:.2f} | "
          f"{scores['forward']['perplexity']:.2f} | {scores['backward']['perplexity']:.2f} | "
          f"{words / seconds:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

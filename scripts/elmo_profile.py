"""Where an ELMo training step spends its time, on the `elmo` matrix's shapes (Brown, its
vocabulary, its batches), by torch.profiler.

    python scripts/elmo_profile.py                            # the elmo matrix as committed
    python scripts/elmo_profile.py --set model.elmo.softmax_samples=0 --threads 2 --steps 40

A step is the training loop's own (bench.train.bilm: a batch of similar-length Brown
sentences, the biLM's loss, backward, gradient clipping, Adam), cut into parts that each
run under a torch.profiler `record_function` label:

- batching: the char ids and softmax ids of the batch (`BiLMData.batch`, the targets);
- char-CNN: character embedding, convolutions, max-pool, relu (forward and backward);
- highway + projection: the token encoder's highway layers and its projection to D;
- biLSTM: the four LSTMP layers (two per direction);
- softmax + loss: everything after the LSTMs (the backward LM's re-reversal, dropout, the
  softmax or sampled softmax and its cross-entropy), forward and backward;
- optimizer: gradient clipping and the Adam step.

The backward pass is split the same way without changing its arithmetic: forward hooks cut
the autograd graph at the part boundaries (each boundary's output goes on as a detached
leaf), and the backward pass runs part by part from the loss down, handing each part the
gradient its leaf collected. Printed: each part's share of the profiled steps' total
(forward, backward, both), and the tokens (words of the batch) per second of those steps.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.train import bilm, lm  # noqa: E402
from scripts.elmo_ab import elmo_cell  # noqa: E402

PARTS = ("batching", "char-CNN", "highway + projection", "biLSTM", "softmax + loss", "optimizer")


class CutGraph:
    """Forward hooks on an ELMo that label its forward parts and cut the autograd graph at
    the parts' boundaries, so that `backward` can run (and label) the parts one at a time."""

    def __init__(self, model: bilm.ELMo):
        self.cuts: list[tuple[str, torch.Tensor, torch.Tensor]] = []  # (part, original output, its leaf)
        self.range = None
        encoder = model.token_encoder
        lstms = [*model.forward_lstms, *model.backward_lstms]
        self.handles = [
            encoder.register_forward_pre_hook(lambda module, args: self.enter("char-CNN")),
            encoder.highway.register_forward_pre_hook(self.highway_input),
            encoder.register_forward_hook(lambda module, args, out: self.cut("highway + projection", out)),
            *[lstm.register_forward_pre_hook(lambda module, args: self.enter("biLSTM")) for lstm in lstms],
            *[lstm.register_forward_hook(self.lstm_output) for lstm in lstms],
        ]
        if hasattr(model, "_pair_stack"):  # on a CPU the biLSTM runs as impl._lstmp pairs, not as the nn.LSTMs
            pair_stack = model._pair_stack

            def labelled_pair_stack(x):
                self.enter("biLSTM")
                # Each layer's pair (2, B, T, D) cut; the loss reads the top one, whose backward
                # runs through the layers below (their own cuts get no gradient).
                return [self.cut("biLSTM", out) for out in pair_stack(x)]

            model._pair_stack = labelled_pair_stack  # until remove()
        self.model = model

    def remove(self) -> None:
        """Take the hooks and the labelled pair stack off the model."""
        for handle in self.handles:
            handle.remove()
        self.model.__dict__.pop("_pair_stack", None)

    def enter(self, part: str) -> None:
        """Close the open forward range and open `part`'s."""
        self.exit()
        self.range = record_function(f"forward {part}")
        self.range.__enter__()

    def exit(self) -> None:
        if self.range is not None:
            self.range.__exit__(None, None, None)
            self.range = None

    def cut(self, part: str, out: torch.Tensor) -> torch.Tensor:
        """End `part` at out: what follows reads a leaf copy; the softmax part runs after."""
        leaf = out.detach().requires_grad_()
        self.cuts.append((part, out, leaf))
        self.enter("softmax + loss")
        return leaf

    def highway_input(self, module, args):
        leaf = self.cut("char-CNN", args[0])
        self.enter("highway + projection")
        return (leaf,)

    def lstm_output(self, module, args, out):
        output, state = out
        return self.cut("biLSTM", output), state

    def backward(self, loss: torch.Tensor) -> None:
        """loss.backward(), one part at a time: the last cut first, each from its leaf's gradient."""
        self.exit()
        with record_function("backward softmax + loss"):
            loss.backward()
        for part, out, leaf in reversed(self.cuts):
            if leaf.grad is not None:
                with record_function(f"backward {part}"):
                    out.backward(leaf.grad)
        self.cuts.clear()


def profiled_steps(model, data, train_config, batches, device) -> tuple[profile, int, float]:
    """Run one training step per batch under the profiler. Returns (profiler, words, seconds)."""
    optimizer = lm._make_optimizer(model, train_config)
    sentences = data.sentences("train")
    cut = CutGraph(model)
    words = 0
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        started = time.perf_counter()
        for batch in batches:
            chosen = [sentences[i] for i in batch]
            with record_function("batching"):
                chars, ids = data.batch(chosen)
                targets = data.targets(ids.to(device), scoring=False)
            loss = model(chars.to(device), *targets)["loss"]
            cut.backward(loss)
            with record_function("optimizer"):
                if train_config.clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), train_config.clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            words += sum(len(s.rows) for s in chosen)
        seconds = time.perf_counter() - started
    cut.remove()
    return prof, words, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--matrix", default="elmo", help="matrix whose elmo model and corpus are profiled")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a matrix setting, as `lm-lineage run --set` (repeatable)")
    parser.add_argument("--steps", type=int, default=30, help="profiled training steps (after --warmup)")
    parser.add_argument("--warmup", type=int, default=5, help="unprofiled steps first")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--data", default=os.environ.get("LM_LINEAGE_DATA"), help="the data root")
    args = parser.parse_args(argv)

    config, train_config, data = elmo_cell(args.matrix, args.set, args.data)
    device = torch.device("cpu")
    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        torch.manual_seed(0)
        model = bilm.ELMo(config, data.softmax_size, data.frequency_order()).train()
        sentences = data.sentences("train")
        batches = bilm.length_batches([len(s.rows) for s in sentences], train_config.batch_size,
                                      np.random.default_rng(0))
        profiled_steps(model, data, train_config, batches[:args.warmup], device)
        prof, words, seconds = profiled_steps(model, data, train_config,
                                              batches[args.warmup:args.warmup + args.steps], device)
    finally:
        torch.set_num_threads(threads)

    totals = {event.key: event.cpu_time_total for event in prof.key_averages()}  # microseconds
    # Batching and the optimizer have no backward pass: their time is in the forward column.
    rows = {part: (totals.get(f"forward {part}", totals.get(part, 0.0)), totals.get(f"backward {part}", 0.0))
            for part in PARTS}
    whole = sum(f + b for f, b in rows.values())
    print(f"matrix {args.matrix} {' '.join(args.set)}: {args.steps} steps, {words} words, "
          f"{words / seconds:.0f} tokens/s under the profiler, torch threads "
          f"{args.threads if args.threads is not None else threads}; softmax size {data.softmax_size}, "
          f"batch {train_config.batch_size} sentences")
    print("| part | forward | backward | share of the step |")
    print("|---|---:|---:|---:|")
    for part, (forward, backward) in rows.items():
        print(f"| {part} | {forward / whole:.1%} | {backward / whole:.1%} | {(forward + backward) / whole:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

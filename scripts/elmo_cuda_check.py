"""The ELMo biLM on a CUDA device against the CPU: on a CPU the biLSTM runs as `impl._lstmp`
pairs, on a GPU as torch's nn.LSTMs (cuDNN), so the two paths must compute the same model.
Needs torch and numpy only (it imports `impl`, not `bench`), so it runs on a bare GPU machine:

    python scripts/elmo_cuda_check.py            # checks, then step timings; exits 1 on a failed check

Checks, on the `elmo` matrix's architecture (512 filters, 2 layers of 512 cells projected to
128, the adaptive softmax at 2,000 and 6,000 with full-width tails) over a 14,116-id softmax
and a batch of 32 random sentences of 5-40 words (right-padded), from the same weights:
- fp32 (TF32 off): the loss, every layer's representations (eval) and every gradient (train,
  dropout off) on the GPU within 1e-4 relative of the CPU's;
- lstm_precision = "bf16" on the GPU (autocast over the nn.LSTMs): the training loss within
  bf16 rounding (2e-2) of fp32's, gradients finite; evaluation bit for bit the fp32 model's;
- the caller's bf16 autocast (a harness run with --precision bf16): loss and gradients finite.
Then the training step's time (forward, backward, clipping, Adam; CUDA synchronized; 10 warm-up
steps, median of 50) on the GPU in fp32 and with lstm_precision = "bf16", in tokens per second.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from impl.elmo import IGNORE, ELMo, ELMoConfig, batch_char_ids, bilm_targets  # noqa: E402

V = 14_116
MATRIX = dict(softmax_cutoffs=(2000, 6000), softmax_div_value=1.0)


def batch(generator: torch.Generator, rows: int = 32) -> tuple[torch.Tensor, list[torch.Tensor], int]:
    """Char ids (B, T, C), both targets (B, T) and the word count of `rows` random sentences."""
    lengths = torch.randint(5, 41, (rows,), generator=generator).sort(descending=True).values.tolist()
    ids = [torch.randint(V - 3, (n,), generator=generator).tolist() for n in lengths]
    chars = batch_char_ids([[f"w{i}" for i in sentence] for sentence in ids], ELMoConfig().max_chars)
    word_ids = torch.full(chars.shape[:2], IGNORE, dtype=torch.long)  # (B, T) with <S> and </S>
    for row, sentence in enumerate(ids):
        word_ids[row, :len(sentence) + 2] = torch.tensor([V - 2, *sentence, V - 1])
    return chars, list(bilm_targets(word_ids)), sum(lengths)


def relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.double().cpu() - want.double().cpu()).norm() / want.double().cpu().norm().clamp_min(1e-30))


def loss_and_grads(model: ELMo, chars, targets, device, autocast: bool = False):
    model.zero_grad()
    with torch.autocast(device.type, torch.bfloat16, enabled=autocast):
        loss = model(chars.to(device), *[t.to(device) for t in targets])["loss"]
    loss.backward()
    return loss.detach(), {name: p.grad.detach().clone() for name, p in model.named_parameters()}


def checks() -> list[str]:
    failures = []
    cuda = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False  # exact fp32 on both sides (this throwaway process)
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    cpu_model = ELMo(ELMoConfig(dropout=0.0, **MATRIX), V).train()
    gpu_model = ELMo(ELMoConfig(dropout=0.0, **MATRIX), V).to(cuda).train()
    gpu_model.load_state_dict(cpu_model.state_dict())
    chars, targets, _ = batch(torch.Generator().manual_seed(1))
    assert cpu_model._pairs_on(torch.device("cpu")) and not gpu_model._pairs_on(cuda)

    cpu_loss, cpu_grads = loss_and_grads(cpu_model, chars, targets, torch.device("cpu"))
    gpu_loss, gpu_grads = loss_and_grads(gpu_model, chars, targets, cuda)
    worst = max(relative(gpu_grads[name], cpu_grads[name]) for name in cpu_grads)
    print(f"fp32 train: loss CPU {cpu_loss.item():.6f} GPU {gpu_loss.item():.6f}; worst gradient relative error {worst:.2e}")
    if relative(gpu_loss, cpu_loss) > 1e-4 or worst > 1e-4:
        failures.append("fp32: the GPU's loss or gradients differ from the CPU's by more than 1e-4")
    with torch.no_grad():
        cpu_layers = cpu_model.eval().representations(chars)
        gpu_layers = gpu_model.eval().representations(chars.to(cuda))
    error = relative(gpu_layers, cpu_layers)
    print(f"fp32 eval: representations {tuple(cpu_layers.shape)}, relative error {error:.2e}")
    if error > 1e-4:
        failures.append("fp32: the GPU's representations differ from the CPU's by more than 1e-4")

    bf16_model = ELMo(ELMoConfig(dropout=0.0, lstm_precision="bf16", **MATRIX), V).to(cuda)
    bf16_model.load_state_dict(cpu_model.state_dict())
    bf16_loss, bf16_grads = loss_and_grads(bf16_model.train(), chars, targets, cuda)
    finite = all(torch.isfinite(g).all() for g in bf16_grads.values())
    print(f"lstm_precision bf16 train on the GPU: loss {bf16_loss.item():.6f} (fp32 {gpu_loss.item():.6f}), grads finite {finite}")
    if relative(bf16_loss, gpu_loss) > 2e-2 or not finite:
        failures.append("lstm_precision bf16 on the GPU: loss beyond bf16 rounding of fp32's, or a gradient not finite")
    with torch.no_grad():
        same = torch.equal(bf16_model.eval().representations(chars.to(cuda)), gpu_layers)
    print(f"lstm_precision bf16 eval on the GPU: representations equal to fp32's bit for bit: {same}")
    if not same:
        failures.append("lstm_precision bf16: evaluation on the GPU is not the fp32 model's")

    auto_loss, auto_grads = loss_and_grads(gpu_model.train(), chars, targets, cuda, autocast=True)
    finite = torch.isfinite(auto_loss) and all(torch.isfinite(g).all() for g in auto_grads.values())
    print(f"caller's bf16 autocast on the GPU: loss {auto_loss.item():.6f}, finite {bool(finite)}")
    if not finite or relative(auto_loss, gpu_loss) > 5e-2:
        failures.append("the caller's bf16 autocast on the GPU: loss not finite or far from fp32's")
    return failures


def step_timings() -> None:
    cuda = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True  # the default a user's run gets
    torch.backends.cudnn.allow_tf32 = True
    generator = torch.Generator().manual_seed(2)
    batches = [batch(generator) for _ in range(12)]
    for name, settings in (("fp32", {}), ("lstm_precision bf16", {"lstm_precision": "bf16"})):
        torch.manual_seed(0)
        model = ELMo(ELMoConfig(**MATRIX, **settings), V).to(cuda).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
        seconds, words = [], []
        for i in range(60):
            chars, targets, n_words = batches[i % len(batches)]
            chars, targets = chars.to(cuda), [t.to(cuda) for t in targets]
            torch.cuda.synchronize()
            started = time.perf_counter()
            loss = model(chars, *targets)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            torch.cuda.synchronize()
            if i >= 10:
                seconds.append(time.perf_counter() - started)
                words.append(n_words)
        median = statistics.median(seconds)
        print(f"GPU step, {name}: median {median * 1e3:.1f} ms [{min(seconds) * 1e3:.1f}, {max(seconds) * 1e3:.1f}], "
              f"{statistics.mean(words) / median:,.0f} words/s, peak memory "
              f"{torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB")


def main() -> int:
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 2
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    failures = checks()
    step_timings()
    for failure in failures:
        print("FAILED:", failure)
    print("all checks passed" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""The training losses of ELMo's softmax (impl.elmo) beside the adaptive one torch has: the
sampled softmax of Jean, Cho, Memisevic & Bengio (2015) over a log-uniform proposal, as bilm-tf
trains it, and the full softmax's summed cross-entropy made block by block without its (N, V)
logits (issue 27). Both take hidden states (..., D), targets (...) with IGNORE where nothing is
scored, and the output layer's weight (V, D) and bias (V,).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE = -100  # target id that the losses skip (F.cross_entropy's default ignore_index)


def log_uniform_sample(n_samples: int, vocab_size: int, device: torch.device | str) -> torch.Tensor:
    """n_samples ids (K,) drawn with replacement from P(k) = log((k + 2) / (k + 1)) / log(V + 1),
    k = 0..V-1: the Zipfian proposal of bilm-tf's sampler, by inverting its CDF."""
    u = torch.rand(n_samples, device=device, dtype=torch.float64)  # (K,)
    ids = torch.floor(torch.exp(u * math.log(vocab_size + 1))).long() - 1
    return ids.clamp_(0, vocab_size - 1)  # guards a rounding of exp() up to V + 1


def log_uniform_log_prob(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """log P(k) of `log_uniform_sample`'s proposal, same shape as ids."""
    k = ids.double()
    return (torch.log(torch.log1p(1.0 / (k + 1.0))) - math.log(math.log(vocab_size + 1))).float()


def sampled_softmax_loss(hidden: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                         samples: torch.Tensor, log_expected: torch.Tensor) -> torch.Tensor:
    """Mean sampled-softmax cross-entropy (Jean et al. 2015) over the scored positions.

    hidden (..., D) and targets (...) with IGNORE where nothing is scored; weight (V, D) and
    bias (V,) the output layer; samples (K,) candidate ids and log_expected (V,) the log of
    each id's expected count among them (log K + log Q(id) for K draws from Q). Each
    position's logits are its target's and the K candidates', each minus its log expected
    count; a candidate equal to the target (an accidental hit) is dropped. With every id
    sampled once and log_expected = 0 this is exactly the full softmax's cross-entropy.
    """
    scored = targets != IGNORE
    h, y = hidden[scored], targets[scored]  # (N, D), (N,)
    true_logits = (h * weight[y]).sum(-1) + bias[y] - log_expected[y]  # (N,)
    sampled_logits = h @ weight[samples].T + bias[samples] - log_expected[samples]  # (N, K)
    sampled_logits = sampled_logits.masked_fill(samples[None, :] == y[:, None], float("-inf"))
    logits = torch.cat([true_logits[:, None], sampled_logits], dim=1)  # (N, 1 + K): the target is class 0
    return F.cross_entropy(logits, torch.zeros_like(y))


# Positions per block of `softmax_cross_entropy_sum`: a (256, 14k) fp32 block of logits is
# 14 MB, which stays in a CPU's last-level cache through the passes over it; whole (N, V)
# logits do not, and on a 2-core machine each pass over them from memory took as long as
# the matmul that made them (issue 27, results/README.md).
SOFTMAX_BLOCK = 256


class _SoftmaxCrossEntropySum(torch.autograd.Function):
    """sum_i -log softmax(W h_i + b)[y_i] over rows i, and, when a gradient is wanted, its
    gradient computed in the same pass over each block of rows (see
    `softmax_cross_entropy_sum`); backward only scales it by the incoming gradient."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, targets: torch.Tensor,
                matmul_dtype: torch.dtype, with_grad: bool) -> torch.Tensor:
        # hidden (N, D), weight (V, D), bias (V,) of one dtype, fp32 or wider; targets (N,) softmax
        # ids, none IGNORE.
        weight_mm = weight.to(matmul_dtype)  # (V, D): the matmuls' copy, weight itself when the same dtype
        bias_mm = bias.to(matmul_dtype)  # (V,)
        nll = hidden.new_zeros((), dtype=torch.float64)  # summed in double: N terms of a few nats each
        # One set of (block, V) buffers for all blocks: a fresh 14 MB tensor per op and block came
        # from newly mapped pages, and their page faults took a sixth of the softmax's time (issue 27).
        width = min(SOFTMAX_BLOCK, hidden.shape[0])
        logits_mm = hidden.new_empty((width, weight.shape[0]), dtype=matmul_dtype)  # the matmul's output
        same_dtype = matmul_dtype == weight.dtype
        logits_buffer = logits_mm if same_dtype else torch.empty_like(logits_mm, dtype=weight.dtype)
        probs_buffer = torch.empty_like(logits_buffer)
        if with_grad:
            grad_hidden = torch.empty_like(hidden)  # (N, D)
            grad_weight = torch.zeros_like(weight)  # (V, D)
            grad_bias = torch.zeros_like(bias)  # (V,)
        for start in range(0, hidden.shape[0], SOFTMAX_BLOCK):
            rows = slice(start, start + SOFTMAX_BLOCK)
            h, y = hidden[rows].to(matmul_dtype), targets[rows]  # (n, D), (n,)
            n = len(y)
            logits = torch.addmm(bias_mm, h, weight_mm.t(), out=logits_mm[:n])  # (n, V)
            if not same_dtype:
                logits = logits_buffer[:n].copy_(logits)  # in weight's dtype again (exact from bf16)
            target_logit = logits.gather(1, y[:, None]).squeeze(1)  # (n,)
            top_logit = logits.amax(dim=1)  # (n,)
            # One fused kernel, a third of logsumexp's time.
            probs = torch.ops.aten._softmax.out(logits, 1, False, out=probs_buffer[:n])  # (n, V)
            # log Z = top_logit - log p(top): the top word's probability is at least 1/V, so its
            # log is as exact as a logsumexp, where the target's own could underflow to 0. The
            # largest probability is the top word's, and amax finds it 15x faster than max's index.
            log_norm = top_logit - probs.amax(dim=1).log()  # (n,)
            nll += (log_norm - target_logit).sum()
            if with_grad:
                # d nll_i / d logits_i = softmax_i - onehot(y_i), made in place of the probabilities.
                probs[torch.arange(n, device=y.device), y] -= 1.0
                grad_bias += probs.sum(dim=0)
                grad_logits = probs if same_dtype else logits_mm[:n].copy_(probs)  # (n, V)
                grad_hidden[rows] = torch.mm(grad_logits, weight_mm)
                grad_weight += torch.mm(grad_logits.t(), h)  # (V, D), accumulated in fp32 over the blocks
        if with_grad:
            ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        ctx.with_grad = with_grad
        return nll.to(weight.dtype)

    @staticmethod
    def backward(ctx, grad_nll: torch.Tensor):
        if not ctx.with_grad:
            raise RuntimeError("softmax_cross_entropy_sum was called without a gradient (no_grad or no "
                               "input requiring one), so it has none to give")
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        return grad_hidden * grad_nll, grad_weight * grad_nll, grad_bias * grad_nll, None, None, None


def softmax_cross_entropy_sum(hidden: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor,
                              bias: torch.Tensor, matmul_dtype: torch.dtype | None = None) -> torch.Tensor:
    """The summed cross-entropy of the full softmax over the scored positions: the value and
    gradients of F.cross_entropy(F.linear(hidden, weight, bias), targets, reduction="sum",
    ignore_index=IGNORE), made without its (..., V) logits.

    hidden (..., D), targets (...) with IGNORE where nothing is scored; weight (V, D) and
    bias (V,) the output layer. Only the scored positions are gathered (a sentence batch's
    padding and each row's unpredicted end are not), and they are taken SOFTMAX_BLOCK rows
    at a time: a block's logits are made, normalized and, in training, turned into their
    gradient softmax - onehot, which is multiplied out into the gradients of hidden, weight
    and bias while it is still in cache. The separate log-softmax, its backward and the
    (N, V) tensors between them, which cost as much as the matmuls on a 2-core CPU, are
    gone; the matmuls (3 of N x D x V) are the same. The gradient is the loss's own when
    backward comes (it is linear in the incoming gradient), so a caller that does not call
    backward after a forward with grad enabled has paid for it in vain.

    Everything is computed in the widest of the inputs' dtypes and fp32 (autocast, which
    would round the logits, is switched off here), except the three matmuls' inputs and the
    logits they make when matmul_dtype says so: bfloat16 runs them at about twice fp32's
    speed on a CPU with AVX512-BF16, its products summed in fp32, its logits rounded to 8
    significant bits.
    """
    dtype = torch.promote_types(torch.promote_types(hidden.dtype, weight.dtype), torch.float32)
    scored = targets != IGNORE
    h, y = hidden[scored].to(dtype), targets[scored]  # (N, D), (N,)
    with_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (h, weight, bias))
    with torch.autocast(hidden.device.type, enabled=False):
        return _SoftmaxCrossEntropySum.apply(h, weight.to(dtype), bias.to(dtype), y, matmul_dtype or dtype,
                                             with_grad)

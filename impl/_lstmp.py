"""One layer of ELMo's biLSTM on a CPU: the forward and the backward LM's LSTMP layers (Sak,
Senior & Beaufays 2014: LSTM cells whose output is projected) run as one autograd Function
with a hand-written backward pass. The arithmetic is `torch.nn.LSTM(proj_size=P)`'s, gate
for gate, so its outputs and gradients agree with two nn.LSTMs to float rounding
(`tests/test_lstmp.py`); what differs is how the work is laid out for two CPU cores (issue 27):

- the two directions run side by side (batched matmuls over a leading dim of 2), so every
  per-step matmul and elementwise op is twice as large and there are half as many;
- the weight gradients are not accumulated step by step from (B x .) slivers, as autograd
  does through nn.LSTM's per-step graph, but made after the recurrence by one matmul over
  all T x B rows each (dW_ih, dW_hh, dW_hr, and dx), where the CPU runs near its peak;
- no autograd graph per step: the backward pass is one loop over the saved activations.

`dtype` is the matmuls' precision (torch.bfloat16 for ELMoConfig.lstm_precision = "bf16");
the gates, the cell state and every sum of the recurrence stay in the input's dtype (fp32),
where autocast would keep the cell state in bf16 too.
"""

from __future__ import annotations

import torch


class LSTMPPair(torch.autograd.Function):
    """x (2, B, T, D): the two directions' inputs, each read left to right from a zero state;
    w_ih (2, 4H, D), w_hh (2, 4H, P), w_hr (2, P, H), bias (2, 4H) = b_ih + b_hh, the gates
    stacked (input, forget, cell, output) as nn.LSTM stacks them. Returns h (2, B, T, P)."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, w_hr, bias, dtype: torch.dtype):
        two, batch, steps, _ = x.shape
        hidden = w_hr.shape[2]
        state = x.dtype
        w_ih_c, w_hh_c, w_hr_c = w_ih.to(dtype), w_hh.to(dtype), w_hr.to(dtype)
        # Rows in (t, b) order, so that step t's rows are one contiguous block per direction.
        x_rows = x.transpose(1, 2).reshape(two, steps * batch, -1).to(dtype)  # (2, T*B, D)
        pre = torch.baddbmm(bias.to(dtype)[:, None], x_rows, w_ih_c.transpose(1, 2))  # (2, T*B, 4H)
        pre = pre.view(two, steps, batch, 4 * hidden).to(state)
        act = x.new_empty(steps, two, batch, 4 * hidden)  # sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
        cells = x.new_zeros(steps + 1, two, batch, hidden)  # cells[t + 1] = c_t; cells[0] = c_{-1} = 0
        tanh_c = x.new_empty(steps, two, batch, hidden)
        cell_out = x.new_empty(steps, two, batch, hidden, dtype=dtype)  # o * tanh(c): the projection's input
        h = x.new_zeros(steps + 1, two, batch, w_hr.shape[1], dtype=dtype)  # h[t + 1] = h_t; h[0] = 0
        w_hh_t, w_hr_t = w_hh_c.transpose(1, 2), w_hr_c.transpose(1, 2)
        g_slice = slice(2 * hidden, 3 * hidden)
        for t in range(steps):
            gates = pre[:, t] + torch.bmm(h[t], w_hh_t)  # (2, B, 4H)
            a = act[t]
            torch.sigmoid(gates, out=a)
            torch.tanh(gates[..., g_slice], out=a[..., g_slice])
            i, f, g, o = a.chunk(4, dim=-1)
            torch.addcmul(f * cells[t], i, g, out=cells[t + 1])
            torch.tanh(cells[t + 1], out=tanh_c[t])
            torch.mul(o, tanh_c[t], out=cell_out[t])
            torch.bmm(cell_out[t], w_hr_t, out=h[t + 1])
        ctx.save_for_backward(x_rows, w_ih_c, w_hh_c, w_hr_c, act, cells, tanh_c, cell_out, h)
        return h[1:].permute(1, 2, 0, 3).to(state)  # (2, B, T, P)

    @staticmethod
    def backward(ctx, d_out):
        x_rows, w_ih_c, w_hh_c, w_hr_c, act, cells, tanh_c, cell_out, h = ctx.saved_tensors
        steps, two, batch, gates_dim = act.shape
        dtype, state = w_hh_c.dtype, act.dtype
        d_out = d_out.permute(2, 0, 1, 3).to(state)  # (T, 2, B, P)
        d_gates = act.new_empty(steps, two, batch, gates_dim, dtype=dtype)  # d loss / d pre-activation
        d_h = act.new_empty(steps, two, batch, h.shape[-1], dtype=dtype)  # d loss / d h_t, all paths
        d_pre = act.new_empty(two, batch, gates_dim)  # one step's, in the state's dtype
        d_i, d_f, d_g, d_o = d_pre.chunk(4, dim=-1)
        d_h_next = torch.zeros_like(d_out[0])  # (2, B, P): from step t + 1 through w_hh
        d_c_next = torch.zeros_like(cells[0])  # (2, B, H): from step t + 1 through the forget gate
        for t in range(steps - 1, -1, -1):
            d_h_t = d_out[t] + d_h_next
            d_h[t] = d_h_t
            d_cell_out = torch.bmm(d_h[t], w_hr_c).to(state)  # (2, B, H)
            i, f, g, o = act[t].chunk(4, dim=-1)
            tc = tanh_c[t]
            d_c = torch.addcmul(d_c_next, d_cell_out * o, 1 - tc * tc)
            torch.mul(d_c * g, i * (1 - i), out=d_i)
            torch.mul(d_c * cells[t], f * (1 - f), out=d_f)
            torch.mul(d_c * i, 1 - g * g, out=d_g)
            torch.mul(d_cell_out * tc, o * (1 - o), out=d_o)
            d_gates[t] = d_pre
            d_c_next = d_c * f
            d_h_next = torch.bmm(d_gates[t], w_hh_c).to(state)
        # The weights' gradients over all T*B rows at once, rows in (t, b) order as x_rows.
        rows = steps * batch
        d_gate_rows = d_gates.transpose(0, 1).reshape(two, rows, gates_dim)  # (2, T*B, 4H)
        h_prev = h[:-1].transpose(0, 1).reshape(two, rows, -1)  # (2, T*B, P): h_{t-1}
        d_w_hh = torch.bmm(d_gate_rows.transpose(1, 2), h_prev).to(state)  # (2, 4H, P)
        d_w_hr = torch.bmm(d_h.transpose(0, 1).reshape(two, rows, -1).transpose(1, 2),
                           cell_out.transpose(0, 1).reshape(two, rows, -1)).to(state)  # (2, P, H)
        d_w_ih = torch.bmm(d_gate_rows.transpose(1, 2), x_rows).to(state)  # (2, 4H, D)
        d_bias = d_gate_rows.sum(dim=1, dtype=state)  # (2, 4H)
        d_x = torch.bmm(d_gate_rows, w_ih_c).view(two, steps, batch, -1).transpose(1, 2).to(state)  # (2, B, T, D)
        return d_x, d_w_ih, d_w_hh, d_w_hr, d_bias, None


def lstmp_pair(x: torch.Tensor, forward: torch.nn.Module, backward: torch.nn.Module, dtype: torch.dtype) -> torch.Tensor:
    """h (2, B, T, P) of two one-layer nn.LSTM(proj_size=P) modules (their weights, their
    arithmetic) reading x (2, B, T, D): x[0] by `forward`, x[1] by `backward`, from zero states."""
    def both(name: str) -> torch.Tensor:
        return torch.stack([forward.get_parameter(name), backward.get_parameter(name)])

    bias = both("bias_ih_l0") + both("bias_hh_l0")  # (2, 4H)
    with torch.autocast(x.device.type, enabled=False):  # the precision is `dtype`'s, not the caller's autocast's
        return LSTMPPair.apply(x, both("weight_ih_l0"), both("weight_hh_l0"), both("weight_hr_l0"), bias, dtype)

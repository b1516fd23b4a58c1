"""Hand-written backpropagation through time for one layer of the scratch cells.

Autograd records every small tensor operation of the time loop and replays each one
backwards; on a CPU that bookkeeping, not the arithmetic, dominates a step of a small
recurrent layer. The functions here run the same equations as
:mod:`seqlm.cells.scratch` in one :class:`torch.autograd.Function` per layer:

* the forward loop writes each step's activations into preallocated buffers and keeps
  them for the backward pass;
* everything that does not depend on the incoming gradient (the derivatives of the
  activations) is computed for all time steps at once, before the backward loop;
* the backward loop then does a few elementwise operations and one matrix product per
  step, and the weight gradients come from one large product over all steps.

The gates are still explicit tensor code (no torch recurrent module, no fused cell
kernel). Gate order follows torch (LSTM: i, f, g, o; GRU: r, z, n). Each function takes
the input's share of the gates for every step, ``x_gates`` shaped ``(T, B, G * H)``
(computed by the caller with autograd, so the input weights get their gradient there),
the initial state and the recurrent weights ``W_h`` shaped ``(H, G * H)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable


def _tanh_(x: torch.Tensor) -> torch.Tensor:
    """tanh in place as ``2 sigmoid(2x) - 1``: on the CPU torch's sigmoid is several
    times cheaper than its tanh (and as accurate, to float rounding)."""
    return x.mul_(2).sigmoid_().mul_(2).sub_(1)


class LSTMLayer(torch.autograd.Function):
    """One LSTM layer; ``x_gates`` already includes both biases."""

    @staticmethod
    def forward(ctx: Any, x_gates: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
                W_h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        T, B, G = x_gates.shape
        H = G // 4
        gates = torch.empty_like(x_gates)  # activated i, f, g, o of every step
        hs = x_gates.new_empty(T + 1, B, H)  # hs[0] = h0, hs[t + 1] = output of step t
        cs = x_gates.new_empty(T + 1, B, H)
        tanh_c = x_gates.new_empty(T, B, H)
        hs[0] = h0
        cs[0] = c0
        # Per-step views made once: slicing inside the loop costs more than the maths
        # of these small tensors.
        g_all = gates.unbind(0)
        i_, f_, cell_, o_ = (gates[..., k * H:(k + 1) * H].unbind(0) for k in range(4))
        x_, h_, c_, tc_ = x_gates.unbind(0), hs.unbind(0), cs.unbind(0), tanh_c.unbind(0)
        # With tanh as 2 sigmoid(2x) - 1 (see _tanh_), one sigmoid covers all four gates.
        for t in range(T):
            torch.addmm(x_[t], h_[t], W_h, out=g_all[t])
            cell_[t].mul_(2)
            g_all[t].sigmoid_()
            cell_[t].mul_(2).sub_(1)
            torch.mul(f_[t], c_[t], out=c_[t + 1])
            c_[t + 1].addcmul_(i_[t], cell_[t])
            torch.mul(c_[t + 1], 2, out=tc_[t]).sigmoid_().mul_(2).sub_(1)  # tanh
            torch.mul(o_[t], tc_[t], out=h_[t + 1])
        ctx.save_for_backward(gates, hs, cs, tanh_c, W_h)
        return hs[1:], hs[T].clone(), cs[T].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor | None, grad_hT: torch.Tensor | None,
                 grad_cT: torch.Tensor | None):
        gates, hs, cs, tanh_c, W_h = ctx.saved_tensors
        T, B, G = gates.shape
        H = G // 4
        i, f, g, o = (gates[..., k * H:(k + 1) * H] for k in range(4))
        # d(gate pre-activation) = upstream * partner * activation derivative; the
        # partner and derivative do not depend on the gradient, so take them for all
        # steps now: upstream is dc for i, f, g and dh for o.
        local = torch.empty_like(gates)
        torch.mul(g, i * (1 - i), out=local[..., :H])
        torch.mul(cs[:-1], f * (1 - f), out=local[..., H:2 * H])
        torch.mul(i, 1 - g * g, out=local[..., 2 * H:3 * H])
        torch.mul(tanh_c, o * (1 - o), out=local[..., 3 * H:])
        dh_to_dc = o * (1 - tanh_c * tanh_c)
        grad_out = grad_out if grad_out is not None else hs.new_zeros(T, B, H)
        dh = grad_out[T - 1] if grad_hT is None else grad_out[T - 1] + grad_hT
        dc = torch.zeros_like(dh) if grad_cT is None else grad_cT
        W_hT = W_h.t().contiguous()
        d_gates = torch.empty_like(gates)
        dg4 = d_gates.view(T, B, 4, H)
        local4 = local.view(T, B, 4, H)
        dg_ifg, dg_o = dg4[:, :, :3].unbind(0), dg4[:, :, 3].unbind(0)
        local_ifg, local_o = local4[:, :, :3].unbind(0), local4[:, :, 3].unbind(0)
        dg_, go_, f_, to_dc = d_gates.unbind(0), grad_out.unbind(0), f.unbind(0), dh_to_dc.unbind(0)
        for t in range(T - 1, -1, -1):
            dc = torch.addcmul(dc, dh, to_dc[t])
            torch.mul(local_ifg[t], dc.unsqueeze(1), out=dg_ifg[t])
            torch.mul(local_o[t], dh, out=dg_o[t])
            dc = dc * f_[t]
            dh = torch.addmm(go_[t - 1], dg_[t], W_hT) if t > 0 else dg_[t] @ W_hT
        flat = d_gates.view(T * B, G)
        grad_W_h = hs[:-1].reshape(T * B, H).t() @ flat
        return d_gates, dh, dc, grad_W_h


class GRULayer(torch.autograd.Function):
    """One GRU layer; ``x_gates`` includes the input bias, ``b_h`` is passed apart
    because the reset gate multiplies ``h W_hn + b_hn``."""

    @staticmethod
    def forward(ctx: Any, x_gates: torch.Tensor, h0: torch.Tensor, W_h: torch.Tensor,
                b_h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T, B, G = x_gates.shape
        H = G // 3
        rz = x_gates.new_empty(T, B, 2 * H)  # activated r, z
        n = x_gates.new_empty(T, B, H)
        h_n = x_gates.new_empty(T, B, H)  # h W_hn + b_hn, which r multiplies
        hs = x_gates.new_empty(T + 1, B, H)
        hs[0] = h0
        hg = x_gates.new_empty(B, G)
        for t in range(T):
            torch.addmm(b_h, hs[t], W_h, out=hg)
            torch.add(x_gates[t, :, :2 * H], hg[:, :2 * H], out=rz[t]).sigmoid_()
            h_n[t] = hg[:, 2 * H:]
            _tanh_(torch.addcmul(x_gates[t, :, 2 * H:], rz[t, :, :H], h_n[t], out=n[t]))
            torch.lerp(n[t], hs[t], rz[t, :, H:], out=hs[t + 1])
        ctx.save_for_backward(rz, n, h_n, hs, W_h)
        return hs[1:], hs[T].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor | None, grad_hT: torch.Tensor | None):
        rz, n, h_n, hs, W_h = ctx.saved_tensors
        T, B, H = n.shape
        r, z = rz[..., :H], rz[..., H:]
        # Per unit of dh: the gradient reaching each pre-activation (x side) and the
        # recurrent product's output (h side); all independent of dh.
        d_n = (1 - z) * (1 - n * n)
        local_x = torch.cat([d_n * h_n * r * (1 - r), (hs[:-1] - n) * z * (1 - z), d_n], -1)
        local_h = torch.cat([local_x[..., :2 * H], d_n * r], -1)
        grad_out = grad_out if grad_out is not None else hs.new_zeros(T, B, H)
        dh = grad_out[T - 1] if grad_hT is None else grad_out[T - 1] + grad_hT
        W_hT = W_h.t().contiguous()
        dhs = torch.empty_like(n)  # the full dh of every step
        d_hg = torch.empty(T, B, 3 * H, dtype=n.dtype, device=n.device)
        for t in range(T - 1, -1, -1):
            dhs[t] = dh
            torch.mul(local_h[t].view(B, 3, H), dh.unsqueeze(1), out=d_hg[t].view(B, 3, H))
            dh = torch.addmm(dh * z[t], d_hg[t], W_hT)
            if t > 0:
                dh += grad_out[t - 1]
        d_x = (local_x.view(T, B, 3, H) * dhs.unsqueeze(2)).view(T, B, 3 * H)
        flat = d_hg.view(T * B, 3 * H)
        grad_W_h = hs[:-1].reshape(T * B, H).t() @ flat
        return d_x, dh, grad_W_h, flat.sum(0)


class RNNLayer(torch.autograd.Function):
    """One tanh RNN layer; ``x_gates`` already includes both biases."""

    @staticmethod
    def forward(ctx: Any, x_gates: torch.Tensor, h0: torch.Tensor,
                W_h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T, B, H = x_gates.shape
        hs = x_gates.new_empty(T + 1, B, H)
        hs[0] = h0
        for t in range(T):
            _tanh_(torch.addmm(x_gates[t], hs[t], W_h, out=hs[t + 1]))
        ctx.save_for_backward(hs, W_h)
        return hs[1:], hs[T].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor | None, grad_hT: torch.Tensor | None):
        hs, W_h = ctx.saved_tensors
        T = hs.shape[0] - 1
        local = 1 - hs[1:] * hs[1:]
        grad_out = grad_out if grad_out is not None else torch.zeros_like(hs[1:])
        dh = grad_out[T - 1] if grad_hT is None else grad_out[T - 1] + grad_hT
        W_hT = W_h.t().contiguous()
        d_pre = torch.empty_like(local)
        for t in range(T - 1, -1, -1):
            torch.mul(dh, local[t], out=d_pre[t])
            dh = torch.addmm(grad_out[t - 1], d_pre[t], W_hT) if t > 0 else d_pre[t] @ W_hT
        H = hs.shape[-1]
        grad_W_h = hs[:-1].reshape(-1, H).t() @ d_pre.view(-1, H)
        return d_pre, dh, grad_W_h

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
the initial state and the recurrent weights ``W_h`` shaped ``(H, G * H)``, and
optionally ``product_dtype``: the dtype of the recurrent products (bfloat16 under
``--precision bf16``; buffers, state and elementwise work stay in ``x_gates``' dtype).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

#: Multiply-adds per step below which a lower-precision product does not pay for the
#: two conversions it adds per step: on a Zen 4 CPU, batch 32 and hidden 256, bfloat16
#: made the RNN's 2.1M-multiply-add step 13% slower and the GRU's (6.3M) and LSTM's
#: (8.4M) steps 7% and 10% faster.
MIN_LOW_PRECISION_WORK = 4_000_000


class _Products:
    """The per-step recurrent product ``add + h @ W``, optionally in a lower precision.

    With ``dtype`` (bfloat16 under ``--precision bf16``) the two factors are rounded to
    it and multiplied there, where the processor is faster (about a third less time per
    product on a CPU with bfloat16 dot products, tensor cores on a GPU), while ``add``,
    the result and everything elementwise stay in the buffers' precision. Products
    smaller than :data:`MIN_LOW_PRECISION_WORK` stay in the buffers' precision.
    """

    def __init__(self, W: torch.Tensor, dtype: torch.dtype | None, rows: int) -> None:
        self.W = W
        self.low = None
        if dtype not in (None, W.dtype) and rows * W.numel() >= MIN_LOW_PRECISION_WORK:
            self.low = W.to(dtype)
        #: The dtype the products are taken in, None for the buffers' own.
        self.dtype = None if self.low is None else dtype
        if self.low is not None:
            self.h = W.new_empty(rows, W.shape[0], dtype=dtype)
            self.product = W.new_empty(rows, W.shape[1], dtype=dtype)

    def __call__(self, add: torch.Tensor, h: torch.Tensor,
                 out: torch.Tensor | None = None) -> torch.Tensor:
        if self.low is None:
            return torch.addmm(add, h, self.W, out=out)
        self.h.copy_(h)
        torch.mm(self.h, self.low, out=self.product)
        return torch.add(add, self.product, out=out)


def _weight_grad(inputs: torch.Tensor, grads: torch.Tensor,
                 dtype: torch.dtype | None) -> torch.Tensor:
    """``inputs^T @ grads`` over all steps at once, in ``dtype`` where one is given."""
    if dtype in (None, grads.dtype):
        return inputs.t() @ grads
    return (inputs.to(dtype).t() @ grads.to(dtype)).to(grads.dtype)


def _one(like: torch.Tensor) -> torch.Tensor:
    """A 0-d tensor holding 1, for the per-step ``x - 1``.

    A Python number in a tensor operation is wrapped into a tensor and converted at
    every call, which costs more than the arithmetic on these small tensors; doubling is
    written ``x + x`` (exact, like ``2 x``) for the same reason.
    """
    return torch.ones((), dtype=like.dtype, device=like.device)


def _tanh_(x: torch.Tensor, one: torch.Tensor) -> torch.Tensor:
    """tanh in place as ``2 sigmoid(2x) - 1``: on the CPU torch's sigmoid is several
    times cheaper than its tanh (and as accurate, to float rounding)."""
    return x.add_(x).sigmoid_().add_(x).sub_(one)


class LSTMLayer(torch.autograd.Function):
    """One LSTM layer; ``x_gates`` already includes both biases."""

    @staticmethod
    def forward(ctx: Any, x_gates: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
                W_h: torch.Tensor, product_dtype: torch.dtype | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
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
        products, one = _Products(W_h, product_dtype, B), _one(x_gates)
        # With tanh as 2 sigmoid(2x) - 1 (see _tanh_), one sigmoid covers all four gates.
        for t in range(T):
            products(x_[t], h_[t], out=g_all[t])
            cell_[t].add_(cell_[t])
            g_all[t].sigmoid_()
            cell_[t].add_(cell_[t]).sub_(one)
            torch.mul(f_[t], c_[t], out=c_[t + 1])
            c_[t + 1].addcmul_(i_[t], cell_[t])
            torch.add(c_[t + 1], c_[t + 1], out=tc_[t]).sigmoid_()  # tanh, as in _tanh_
            tc_[t].add_(tc_[t]).sub_(one)
            torch.mul(o_[t], tc_[t], out=h_[t + 1])
        ctx.save_for_backward(gates, hs, cs, tanh_c, W_h)
        ctx.product_dtype = products.dtype  # None where the products stayed full
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
        # Each factor is written as x - x y with one addcmul (x(1 - y) would take two
        # operations over all steps); h = o tanh(c) is already there from the forward.
        local = torch.empty_like(gates)
        ig = i * g
        torch.addcmul(ig, ig, i, value=-1, out=local[..., :H])  # g i (1 - i)
        fc = f * cs[:-1]
        torch.addcmul(fc, fc, f, value=-1, out=local[..., H:2 * H])  # c f (1 - f)
        torch.addcmul(i, ig, g, value=-1, out=local[..., 2 * H:3 * H])  # i (1 - g^2)
        h = hs[1:]
        torch.addcmul(h, h, o, value=-1, out=local[..., 3 * H:])  # tanh(c) o (1 - o)
        dh_to_dc = torch.addcmul(o, h, tanh_c, value=-1)  # o (1 - tanh(c)^2)
        grad_out = grad_out if grad_out is not None else hs.new_zeros(T, B, H)
        dh = grad_out[T - 1] if grad_hT is None else grad_out[T - 1] + grad_hT
        dc = torch.zeros_like(dh) if grad_cT is None else grad_cT
        products = _Products(W_h.t().contiguous(), ctx.product_dtype, B)
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
            dh = products(go_[t - 1] if t > 0 else torch.zeros_like(dh), dg_[t])
        flat = d_gates.view(T * B, G)
        grad_W_h = _weight_grad(hs[:-1].reshape(T * B, H), flat, ctx.product_dtype)
        return d_gates, dh, dc, grad_W_h, None


class GRULayer(torch.autograd.Function):
    """One GRU layer; ``x_gates`` includes the input bias, ``b_h`` is passed apart
    because the reset gate multiplies ``h W_hn + b_hn``."""

    @staticmethod
    def forward(ctx: Any, x_gates: torch.Tensor, h0: torch.Tensor, W_h: torch.Tensor,
                b_h: torch.Tensor, product_dtype: torch.dtype | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor]:
        T, B, G = x_gates.shape
        H = G // 3
        rz = x_gates.new_empty(T, B, 2 * H)  # activated r, z
        n = x_gates.new_empty(T, B, H)
        hg = x_gates.new_empty(T, B, G)  # h W_h + b_h of every step; r multiplies its n part
        hs = x_gates.new_empty(T + 1, B, H)
        hs[0] = h0
        # tanh(a) = 2 sigmoid(2a) - 1 (see _tanh_): doubling the input's n share once
        # here lets one addcmul per step give 2a directly.
        x_n2 = x_gates[..., 2 * H:] * 2
        x_rz_, hg_, rz_ = x_gates[..., :2 * H].unbind(0), hg.unbind(0), rz.unbind(0)
        hg_rz_, hg_n_ = hg[..., :2 * H].unbind(0), hg[..., 2 * H:].unbind(0)
        r_, z_, n_, h_, x_n2_ = (rz[..., :H].unbind(0), rz[..., H:].unbind(0), n.unbind(0),
                                 hs.unbind(0), x_n2.unbind(0))
        products, one = _Products(W_h, product_dtype, B), _one(x_gates)
        for t in range(T):
            products(b_h, h_[t], out=hg_[t])
            torch.add(x_rz_[t], hg_rz_[t], out=rz_[t]).sigmoid_()
            torch.addcmul(x_n2_[t], r_[t], hg_n_[t], value=2, out=n_[t])
            n_[t].sigmoid_().add_(n_[t]).sub_(one)
            torch.lerp(n_[t], h_[t], z_[t], out=h_[t + 1])
        ctx.save_for_backward(rz, n, hg, hs, W_h)
        ctx.product_dtype = products.dtype  # None where the products stayed full
        return hs[1:], hs[T].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor | None, grad_hT: torch.Tensor | None):
        rz, n, hg, hs, W_h = ctx.saved_tensors
        T, B, H = n.shape
        r, z, h_n = rz[..., :H], rz[..., H:], hg[..., 2 * H:]
        # Per unit of dh (the gradient reaching a step's output), what reaches each part
        # of the recurrent product h W_h + b_h; none of it depends on dh:
        #   n: (1 - z)(1 - n^2) r,  r: (1 - z)(1 - n^2) h_n r (1 - r),  z: (h - n) z (1 - z)
        # The input's share gets the same for r and z, and (1 - z)(1 - n^2) for n.
        d_n = torch.mul(n, n).neg_().add_(1)
        d_n.addcmul_(d_n, z, value=-1)  # (1 - z)(1 - n^2)
        local = torch.empty(T, B, 3 * H, dtype=n.dtype, device=n.device)
        torch.mul(d_n, h_n, out=local[..., :H]).mul_(torch.addcmul(r, r, r, value=-1))
        torch.sub(hs[:-1], n, out=local[..., H:2 * H]).mul_(torch.addcmul(z, z, z, value=-1))
        torch.mul(d_n, r, out=local[..., 2 * H:])
        grad_out = grad_out if grad_out is not None else hs.new_zeros(T, B, H)
        dh = grad_out[T - 1] if grad_hT is None else grad_out[T - 1] + grad_hT
        products = _Products(W_h.t().contiguous(), ctx.product_dtype, B)
        dhs = torch.empty_like(n)  # the full dh of every step
        d_hg = torch.empty(T, B, 3 * H, dtype=n.dtype, device=n.device)
        local_, d_hg_ = local.view(T, B, 3, H).unbind(0), d_hg.unbind(0)
        d_hg3_, z_, go_, dhs_ = d_hg.view(T, B, 3, H).unbind(0), z.unbind(0), \
            grad_out.unbind(0), dhs.unbind(0)
        for t in range(T - 1, -1, -1):
            dhs_[t].copy_(dh)
            torch.mul(local_[t], dh.unsqueeze(1), out=d_hg3_[t])
            carried = torch.addcmul(go_[t - 1], dh, z_[t]) if t > 0 else dh * z_[t]
            dh = products(carried, d_hg_[t])
        flat = d_hg.view(T * B, 3 * H)
        grad_W_h = _weight_grad(hs[:-1].reshape(T * B, H), flat, ctx.product_dtype)
        grad_b_h = flat.sum(0)
        # The input's share differs from the recurrent product's only in the n part
        # (no factor r): overwrite that part, the weight gradients being taken.
        torch.mul(d_n, dhs, out=d_hg[..., 2 * H:])
        return d_hg, dh, grad_W_h, grad_b_h, None


class RNNLayer(torch.autograd.Function):
    """One tanh RNN layer; ``x_gates`` already includes both biases."""

    @staticmethod
    def forward(ctx: Any, x_gates: torch.Tensor, h0: torch.Tensor, W_h: torch.Tensor,
                product_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        T, B, H = x_gates.shape
        hs = x_gates.new_empty(T + 1, B, H)
        hs[0] = h0
        products, one = _Products(W_h, product_dtype, B), _one(x_gates)
        for t in range(T):
            _tanh_(products(x_gates[t], hs[t], out=hs[t + 1]), one)
        ctx.save_for_backward(hs, W_h)
        ctx.product_dtype = products.dtype  # None where the products stayed full
        return hs[1:], hs[T].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor | None, grad_hT: torch.Tensor | None):
        hs, W_h = ctx.saved_tensors
        T = hs.shape[0] - 1
        local = 1 - hs[1:] * hs[1:]
        grad_out = grad_out if grad_out is not None else torch.zeros_like(hs[1:])
        dh = grad_out[T - 1] if grad_hT is None else grad_out[T - 1] + grad_hT
        products = _Products(W_h.t().contiguous(), ctx.product_dtype, hs.shape[1])
        d_pre = torch.empty_like(local)
        for t in range(T - 1, -1, -1):
            torch.mul(dh, local[t], out=d_pre[t])
            dh = products(grad_out[t - 1] if t > 0 else torch.zeros_like(dh), d_pre[t])
        H = hs.shape[-1]
        grad_W_h = _weight_grad(hs[:-1].reshape(-1, H), d_pre.view(-1, H), ctx.product_dtype)
        return d_pre, dh, grad_W_h, None

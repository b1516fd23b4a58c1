"""LSTM, GRU and RNN written out gate by gate with plain tensor operations.

These follow the seed's from-scratch LSTM: weights drawn from N(0, 0.01^2), zero biases,
one explicit loop over time steps. They never call torch's recurrent modules or fused
cell functions. Three things make them fast without hiding the algorithm:

* each layer keeps its gates' weights side by side in one input matrix ``W_x`` and one
  recurrent matrix ``W_h``, so one product serves every gate;
* the input products of all time steps are computed in one matrix product before the
  loop, leaving one recurrent product per step;
* by default each layer's time loop runs inside a hand-written backward pass
  (:mod:`seqlm.cells.fused`), which computes the same gradients as autograd with far
  fewer recorded operations. ``fused=False`` runs the plain autograd loop below
  instead (needed for gradients of gradients). Under autocast (``--precision bf16``)
  the fused pass still runs: its buffers, state and elementwise work stay float32 and
  only its recurrent products use bfloat16 (the plain loop, op by op in bfloat16, is
  several times slower).

Gate order and equations follow torch's documentation (LSTM: input, forget, cell,
output; GRU: reset, update, new, with the reset gate applied to ``W_hn h + b_hn``), so a
scratch cell loaded with a torch module's weights computes the same function.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from seqlm.cells import call_fused, check_dropout, check_flag, fused
from seqlm.cells.dropout import SequenceDropout
from seqlm.interfaces import RecurrentCell, State


def _normal(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) * 0.01)


def _zeros(*shape: int) -> nn.Parameter:
    return nn.Parameter(torch.zeros(*shape))


class _ScratchCell(RecurrentCell):
    """Stacked layers of one gated recurrence; subclasses write the step.

    ``dropout`` applies between stacked layers, with one mask per sequence where
    ``locked_dropout`` is true; ``weight_dropout`` zeroes that fraction of each layer's
    recurrent matrix ``W_h`` during training, one mask per batch shared by every time
    step (DropConnect, as in AWD-LSTM).
    """

    num_gates: ClassVar[int]
    state_count: ClassVar[int] = 1  # 2 for LSTM's (h, c)
    #: ``forward`` also takes int64 token ids shaped ``(num_steps, batch)`` in place of
    #: their one-hot vectors; :class:`seqlm.model.rnn.RNNModel` then skips building them.
    accepts_token_ids: ClassVar[bool] = True
    supports_bf16 = True
    #: Whether ``b_h`` simply adds to the gates, so the fused pass can fold it into the
    #: input's share (not so for the GRU, whose reset gate multiplies it).
    fold_b_h: ClassVar[bool] = True

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
        fused: bool = True, weight_dropout: float = 0.0, locked_dropout: bool = False,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers)
        check_flag("fused", fused)
        check_dropout("dropout", dropout)
        check_flag("locked_dropout", locked_dropout)
        check_dropout("weight_dropout", weight_dropout)
        self.fused = fused
        self.weight_dropout = float(weight_dropout)
        gates = self.num_gates * hidden_size
        self.W_x = nn.ParameterList(
            _normal(input_size if layer == 0 else hidden_size, gates)
            for layer in range(num_layers)
        )
        self.W_h = nn.ParameterList(_normal(hidden_size, gates) for _ in range(num_layers))
        self.b_x = nn.ParameterList(_zeros(gates) for _ in range(num_layers))
        self.b_h = nn.ParameterList(_zeros(gates) for _ in range(num_layers))
        self.dropout = (SequenceDropout(dropout, locked=locked_dropout) if dropout > 0
                        else nn.Identity())

    def begin_state(self, batch_size: int, device: torch.device | str) -> State:
        """Zeros shaped ``(num_layers, batch, hidden)``, as torch's modules use."""
        shape = (self.num_layers, batch_size, self.hidden_size)
        dtype = self.W_h[0].dtype  # the weights' (float32 under autocast too)
        states = tuple(torch.zeros(shape, device=device, dtype=dtype)
                       for _ in range(self.state_count))
        return states if self.state_count > 1 else states[0]

    def forward(self, inputs: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Run every layer over ``(num_steps, batch, input_size)`` inputs (or token ids).

        Under autocast the fused pass keeps its buffers, state and elementwise work in
        float32 and takes its recurrent products in autocast's dtype; it returns float32
        outputs (the plain loop, ``fused=False``, follows autocast op by op).
        """
        if self.fused:
            return call_fused(self._forward, inputs, state)
        return self._forward(inputs, state)

    def _forward(self, inputs: torch.Tensor, state: State,
                 product_dtype: torch.dtype | None = None) -> tuple[torch.Tensor, State]:
        states = state if isinstance(state, tuple) else (state,)
        layer_input = inputs
        finals: list[tuple[torch.Tensor, ...]] = []
        for layer in range(self.num_layers):
            if layer > 0:
                layer_input = self.dropout(layer_input)
            layer_state = tuple(s[layer] for s in states)
            fast = self.fused
            W_h = self.W_h[layer]
            if self.training and self.weight_dropout > 0:
                # DropConnect: one mask on the recurrent weights for all time steps.
                W_h = F.dropout(W_h, self.weight_dropout)
            # Biases the fused pass can add before the loop join the input's share.
            bias = self.b_x[layer] + self.b_h[layer] if fast and self.fold_b_h else self.b_x[layer]
            if layer == 0 and not layer_input.is_floating_point():
                # Token ids: a one-hot vector times W_x is the row of W_x it selects.
                x_gates = F.embedding(layer_input, self.W_x[0] + bias)
            else:
                # One product for every time step and gate at once.
                x_gates = torch.addmm(bias, layer_input.flatten(0, 1), self.W_x[layer])
                x_gates = x_gates.view(*layer_input.shape[:2], -1)
            if fast:
                layer_input, layer_state = self.fused_layer(
                    x_gates, layer_state, W_h, self.b_h[layer], product_dtype)
            else:
                outputs = []
                for x_t in x_gates:
                    layer_state = self.step(x_t, layer_state, W_h, self.b_h[layer])
                    outputs.append(layer_state[0])
                layer_input = torch.stack(outputs)
            finals.append(layer_state)
        new_state = tuple(torch.stack(parts) for parts in zip(*finals, strict=True))
        return layer_input, new_state if self.state_count > 1 else new_state[0]

    def step(
        self, x_gates: torch.Tensor, state: tuple[torch.Tensor, ...], W_h: torch.Tensor,
        b_h: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        """One time step of one layer, given the input's share of the gates."""
        raise NotImplementedError

    def fused_layer(
        self, x_gates: torch.Tensor, state: tuple[torch.Tensor, ...], W_h: torch.Tensor,
        b_h: torch.Tensor, product_dtype: torch.dtype | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """All time steps of one layer at once: ``(outputs, final state)``.

        ``x_gates`` already holds ``b_h`` when the class sets :attr:`fold_b_h`;
        ``product_dtype`` (e.g. bfloat16) is the dtype of the recurrent products.
        """
        raise NotImplementedError


class ScratchLSTM(_ScratchCell):
    """LSTM from scratch: input, forget and output gates and a candidate memory."""

    num_gates = 4
    state_count = 2

    def step(self, x_gates, state, W_h, b_h):
        H, C = state
        gates = x_gates + H @ W_h + b_h
        i, f, g, o = gates.chunk(4, dim=1)
        I = torch.sigmoid(i)  # noqa: E741 - the gate's name in the equations
        F = torch.sigmoid(f)
        C_tilde = torch.tanh(g)
        O = torch.sigmoid(o)  # noqa: E741
        C = F * C + I * C_tilde
        H = O * torch.tanh(C)
        return H, C

    def fused_layer(self, x_gates, state, W_h, b_h, product_dtype=None):
        outputs, H, C = fused.LSTMLayer.apply(x_gates, state[0], state[1], W_h, product_dtype)
        return outputs, (H, C)


class ScratchGRU(_ScratchCell):
    """GRU from scratch: reset and update gates and a candidate state."""

    num_gates = 3
    fold_b_h = False

    def step(self, x_gates, state, W_h, b_h):
        (H,) = state
        x_r, x_z, x_n = x_gates.chunk(3, dim=1)
        h_r, h_z, h_n = (H @ W_h + b_h).chunk(3, dim=1)
        R = torch.sigmoid(x_r + h_r)
        Z = torch.sigmoid(x_z + h_z)
        H_tilde = torch.tanh(x_n + R * h_n)
        return (Z * H + (1 - Z) * H_tilde,)

    def fused_layer(self, x_gates, state, W_h, b_h, product_dtype=None):
        outputs, H = fused.GRULayer.apply(x_gates, state[0], W_h, b_h, product_dtype)
        return outputs, (H,)


class ScratchRNN(_ScratchCell):
    """Elman RNN from scratch: ``H = tanh(X W_x + H W_h + b)``."""

    num_gates = 1

    def step(self, x_gates, state, W_h, b_h):
        (H,) = state
        return (torch.tanh(x_gates + H @ W_h + b_h),)

    def fused_layer(self, x_gates, state, W_h, b_h, product_dtype=None):
        outputs, H = fused.RNNLayer.apply(x_gates, state[0], W_h, product_dtype)
        return outputs, (H,)

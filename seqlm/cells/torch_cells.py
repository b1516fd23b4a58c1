"""Cells backed by torch's own recurrent modules (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``).

Each cell keeps torch's module, its parameters and its semantics. On the CPU, ``nn.GRU``
and ``nn.RNN`` run their time loop as many small autograd operations, which cost more
than their arithmetic; there the ``gru`` and ``rnn`` cells run the same equations
through seqlm's hand-written backward pass instead (:mod:`seqlm.cells.fused`, the pass
the scratch cells use), reading the module's own weights. ``fused=False`` keeps torch's
kernel everywhere. ``nn.LSTM`` has a fast CPU kernel (oneDNN) and always uses it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from seqlm.cells import call_fused, check_dropout, check_flag, fused
from seqlm.cells.dropout import sequence_dropout
from seqlm.interfaces import RecurrentCell, State, map_state


class _TorchCell(RecurrentCell):
    """A torch recurrent module, optionally with DropConnect on its recurrent weights.

    ``weight_dropout`` zeroes that fraction of each hidden-to-hidden weight matrix during
    training, one mask per batch shared by every time step (the weight-dropped LSTM of
    AWD-LSTM). It regularises the recurrence itself, which dropout between layers cannot
    reach, and leaves the module's own fast kernel in use.

    ``locked_dropout`` draws the mask of ``dropout`` between stacked layers once per
    sequence instead of at every step (variational dropout, as AWD-LSTM uses); the
    module itself only knows the latter, so in training it then runs one layer at a time.

    ``fused`` (default true) lets a class with a :attr:`fused_layer` run it on the CPU;
    false always calls the module (the fused pass is differentiable once only).
    """

    module_class: ClassVar[type[nn.RNNBase]]
    has_cell_state: ClassVar[bool] = False
    #: One layer of the hand-written pass,
    #: ``(x_gates, h0, W_hh, b_hh, product_dtype) -> (outputs, h)``, used on the CPU;
    #: None keeps the module's kernel everywhere.
    fused_layer: ClassVar[Callable[..., tuple[torch.Tensor, torch.Tensor]] | None] = None
    #: Whether ``b_hh`` simply adds to the gates (so it joins the input's share).
    fold_b_hh: ClassVar[bool] = True
    supports_bf16 = True

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        weight_dropout: float = 0.0,
        fused: bool = True,
        locked_dropout: bool = False,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers)
        check_dropout("dropout", dropout)
        check_dropout("weight_dropout", weight_dropout)
        check_flag("fused", fused)
        check_flag("locked_dropout", locked_dropout)
        self.fused = fused
        self.locked_dropout = locked_dropout
        self.weight_dropout = float(weight_dropout)
        self.rnn = self.module_class(
            input_size, hidden_size, num_layers,
            bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0,
        )
        self.num_directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.num_directions
        self._recurrent_weights = [name for name, _ in self.rnn.named_parameters()
                                   if name.startswith("weight_hh")]
        # For locked dropout between layers, one-layer modules without weights of their own
        # (on the meta device, and in a tuple so that they are no submodules): the shapes
        # the layers run with one at a time, called with the stacked module's weights.
        self._one_layer = tuple(
            self.module_class(size, hidden_size, 1, bidirectional=bidirectional, device="meta")
            for size in (input_size, self.output_size)[:num_layers]) if locked_dropout else ()

    def begin_state(self, batch_size: int, device: torch.device | str) -> State:
        """Zeros shaped ``(num_layers * directions, batch, hidden)`` (two of them for LSTM)."""
        shape = (self.num_layers * self.num_directions, batch_size, self.hidden_size)
        # The weights' dtype: torch's modules take no state of another (a model moved to
        # float64, say); autocast leaves the weights, and so the state, in float32.
        dtype = next(self.parameters()).dtype
        h = torch.zeros(shape, device=device, dtype=dtype)
        return (h, torch.zeros(shape, device=device, dtype=dtype)) if self.has_cell_state else h

    def forward(self, inputs: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Run the module over ``(num_steps, batch, input_size)`` inputs (or token ids
        shaped ``(num_steps, batch)`` where the class sets :attr:`accepts_token_ids`)."""
        dropped = {}
        if self.training and self.weight_dropout > 0:
            # One DropConnect mask per recurrent matrix for the whole batch; gradients
            # flow back through the masks.
            dropped = {name: F.dropout(getattr(self.rnn, name), self.weight_dropout)
                       for name in self._recurrent_weights}
        if self.use_fused(inputs):
            return call_fused(
                lambda x, s, product_dtype: self._fused_forward(x, s, dropped, product_dtype),
                inputs, state)
        if not inputs.is_floating_point():
            inputs = F.one_hot(inputs, self.input_size).to(self.rnn.weight_ih_l0.dtype)
        if _bf16_module_unsupported(inputs):
            # This CPU's oneDNN has no bfloat16 recurrent kernels (they need AVX-512), and
            # torch's module fails under bfloat16 autocast there: it runs in float32,
            # while the rest of the model keeps bfloat16.
            with torch.autocast("cpu", enabled=False):
                return self._module(inputs.float(), map_state(torch.Tensor.float, state),
                                    dropped)
        return self._module(inputs, state, dropped)

    def _module(
        self, inputs: torch.Tensor, state: State, dropped: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, State]:
        if self.locked_dropout and self.training and self.rnn.dropout > 0:
            return self._module_layer_by_layer(inputs, state, dropped)
        if dropped:
            # The module reads its weights by name, so handing it dropped copies for
            # this call keeps its kernel.
            return functional_call(self.rnn, dropped, (inputs, state))
        return self.rnn(inputs, state)

    def _module_layer_by_layer(
        self, inputs: torch.Tensor, state: State, dropped: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, State]:
        """The stacked module one layer at a time, with locked dropout between layers."""
        weights = {name: dropped.get(name, weight) for name, weight in self.rnn.named_parameters()}
        directions = self.num_directions
        layer_input, finals = inputs, []
        for layer in range(self.num_layers):
            if layer > 0:
                layer_input = sequence_dropout(layer_input, self.rnn.dropout, True, True)
            module = self._one_layer[min(layer, 1)]
            own = {name: weights[name.replace("_l0", f"_l{layer}")]
                   for name, _ in module.named_parameters()}
            layer_state = map_state(
                lambda s, layer=layer: s[layer * directions:(layer + 1) * directions], state)
            layer_input, layer_state = functional_call(module, own, (layer_input, layer_state))
            finals.append(layer_state)
        if isinstance(state, tuple):
            return layer_input, tuple(torch.cat(parts) for parts in zip(*finals, strict=True))
        return layer_input, torch.cat(finals)

    def use_fused(self, inputs: torch.Tensor) -> bool:
        """Whether this call runs the hand-written pass: a CPU, one direction, and a
        class that has one (``fused=False`` turns it off, e.g. for double backward)."""
        return (self.fused and self.fused_layer is not None and inputs.device.type == "cpu"
                and self.num_directions == 1)

    def _fused_forward(
        self, inputs: torch.Tensor, state: torch.Tensor, dropped: dict[str, torch.Tensor],
        product_dtype: torch.dtype | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        layer_input, finals = inputs, []
        for layer in range(self.num_layers):
            # As the module does, drawing the same random mask (or one mask per sequence).
            if layer > 0:
                layer_input = sequence_dropout(layer_input, self.rnn.dropout, self.training,
                                               self.locked_dropout)
            W_ih = getattr(self.rnn, f"weight_ih_l{layer}")
            name = f"weight_hh_l{layer}"
            W_hh = dropped.get(name, getattr(self.rnn, name))
            b_ih = getattr(self.rnn, f"bias_ih_l{layer}")
            b_hh = getattr(self.rnn, f"bias_hh_l{layer}")
            bias = b_ih + b_hh if self.fold_b_hh else b_ih
            if not layer_input.is_floating_point():
                # Token ids: a one-hot vector times W_ih^T is the column of W_ih it selects.
                x_gates = F.embedding(layer_input, W_ih.t() + bias)
            else:
                x_gates = torch.addmm(bias, layer_input.flatten(0, 1), W_ih.t())
                x_gates = x_gates.view(*layer_input.shape[:2], -1)
            layer_input, h = type(self).fused_layer(x_gates, state[layer], W_hh.t(), b_hh,
                                                    product_dtype)
            finals.append(h)
        return layer_input, torch.stack(finals)


@functools.cache
def _cpu_has_bf16_kernels() -> bool:
    probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(probe()) if probe is not None else True


def _bf16_module_unsupported(inputs: torch.Tensor) -> bool:
    """Whether ``inputs`` go to torch's module under CPU bfloat16 autocast on a CPU whose
    oneDNN cannot run it."""
    return (inputs.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16
            and not _cpu_has_bf16_kernels())


class TorchLSTM(_TorchCell):
    """Long short-term memory, torch's ``nn.LSTM`` (cuDNN on GPUs)."""

    module_class = nn.LSTM
    has_cell_state = True


def _gru_layer(x_gates: torch.Tensor, h0: torch.Tensor, W_h: torch.Tensor, b_h: torch.Tensor,
               product_dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
    return fused.GRULayer.apply(x_gates, h0, W_h, b_h, product_dtype)


def _rnn_layer(x_gates: torch.Tensor, h0: torch.Tensor, W_h: torch.Tensor, b_h: torch.Tensor,
               product_dtype: torch.dtype | None) -> tuple[torch.Tensor, torch.Tensor]:
    return fused.RNNLayer.apply(x_gates, h0, W_h, product_dtype)


class TorchGRU(_TorchCell):
    """Gated recurrent unit, torch's ``nn.GRU`` (on the CPU, through the fused pass)."""

    module_class = nn.GRU
    fused_layer = staticmethod(_gru_layer)
    fold_b_hh = False  # the reset gate multiplies h W_hn + b_hn
    accepts_token_ids = True


class TorchRNN(_TorchCell):
    """Elman RNN with tanh, torch's ``nn.RNN`` (on the CPU, through the fused pass)."""

    module_class = nn.RNN
    fused_layer = staticmethod(_rnn_layer)
    accepts_token_ids = True

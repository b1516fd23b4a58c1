"""Cells backed by torch's own recurrent modules (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from seqlm.cells import check_dropout
from seqlm.interfaces import RecurrentCell, State


class _TorchCell(RecurrentCell):
    """A torch recurrent module, optionally with DropConnect on its recurrent weights.

    ``weight_dropout`` zeroes that fraction of each hidden-to-hidden weight matrix during
    training, one mask per batch shared by every time step (the weight-dropped LSTM of
    AWD-LSTM). It regularises the recurrence itself, which dropout between layers cannot
    reach, and leaves the module's own fast kernel in use.
    """

    module_class: ClassVar[type[nn.RNNBase]]
    has_cell_state: ClassVar[bool] = False

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        weight_dropout: float = 0.0,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers)
        check_dropout("dropout", dropout)
        check_dropout("weight_dropout", weight_dropout)
        self.weight_dropout = float(weight_dropout)
        self.rnn = self.module_class(
            input_size, hidden_size, num_layers,
            bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0,
        )
        self.num_directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.num_directions
        self._recurrent_weights = [name for name, _ in self.rnn.named_parameters()
                                   if name.startswith("weight_hh")]

    def begin_state(self, batch_size: int, device: torch.device | str) -> State:
        """Zeros shaped ``(num_layers * directions, batch, hidden)`` (two of them for LSTM)."""
        shape = (self.num_layers * self.num_directions, batch_size, self.hidden_size)
        h = torch.zeros(shape, device=device)
        return (h, torch.zeros(shape, device=device)) if self.has_cell_state else h

    def forward(self, inputs: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Run the torch module over ``(num_steps, batch, input_size)`` inputs."""
        if self.training and self.weight_dropout > 0:
            # The module reads its weights by name, so handing it dropped copies for
            # this call keeps its kernel; gradients flow back through the masks.
            dropped = {name: F.dropout(getattr(self.rnn, name), self.weight_dropout)
                       for name in self._recurrent_weights}
            return functional_call(self.rnn, dropped, (inputs, state))
        return self.rnn(inputs, state)


class TorchLSTM(_TorchCell):
    """Long short-term memory, torch's ``nn.LSTM`` (cuDNN on GPUs)."""

    module_class = nn.LSTM
    has_cell_state = True


class TorchGRU(_TorchCell):
    """Gated recurrent unit, torch's ``nn.GRU``."""

    module_class = nn.GRU


class TorchRNN(_TorchCell):
    """Elman RNN with tanh, torch's ``nn.RNN``."""

    module_class = nn.RNN

"""Dropout on time-major sequences: a new mask at every step, or one mask per sequence."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def sequence_dropout(inputs: torch.Tensor, p: float, training: bool, locked: bool) -> torch.Tensor:
    """Dropout on ``(num_steps, batch, features)`` inputs.

    With ``locked`` one mask per sequence of the batch drops the same features at every
    time step (variational or "locked" dropout, as AWD-LSTM uses), so a dropped unit is
    gone for the whole sequence and the model cannot recover it from the step before;
    otherwise every element draws its own mask, as :func:`torch.nn.functional.dropout`.
    Kept values are scaled by ``1 / (1 - p)`` either way, and outside training, or with
    ``p`` 0, the inputs come back unchanged.
    """
    if not locked or not training or p == 0:
        return F.dropout(inputs, p, training)
    keep = 1.0 - p
    mask = inputs.new_empty((1, *inputs.shape[1:])).bernoulli_(keep).div_(keep)
    return inputs * mask


class SequenceDropout(nn.Module):
    """:func:`sequence_dropout` as a module: ``SequenceDropout(p, locked=True)``.

    It has no parameters, so a model saved with either kind of dropout loads into the
    other.
    """

    def __init__(self, p: float, locked: bool = False) -> None:
        super().__init__()
        self.p = float(p)
        self.locked = bool(locked)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """The inputs with dropout applied (in training only)."""
        return sequence_dropout(inputs, self.p, self.training, self.locked)

    def extra_repr(self) -> str:
        return f"p={self.p}, locked={self.locked}"

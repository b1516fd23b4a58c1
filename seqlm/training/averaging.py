"""``--average``: a running average of the weights, validated beside the weights themselves.

The average is uniform over the weights at the end of epochs (stochastic weight
averaging with :class:`torch.optim.swa_utils.AveragedModel`). It starts at the first
epoch whose validation loss is no better than the best before it -- the non-monotonic
trigger of AWD-LSTM's NT-ASGD -- or when the last quarter of the epochs begins, whichever
comes first, so that a run whose loss keeps falling still averages its last epochs.
Before the trigger the weights are still moving fast and their average would lag.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from seqlm.metrics import EpochMetrics

#: The average starts at the latest with the last this-fraction of the epochs.
LAST_FRACTION = 0.25


def average_starts(epoch: int, epochs: int, history: Sequence[EpochMetrics]) -> bool:
    """Whether the average should start at ``epoch``, given the epochs before it.

    ``history`` holds the finished epochs, ``epoch`` (just validated) last.
    """
    if epoch > epochs - max(1, round(epochs * LAST_FRACTION)):
        return True
    earlier = [m.val_loss for m in history[:-1] if m.val_loss is not None]
    current = history[-1].val_loss if history else None
    return bool(earlier) and current is not None and current >= min(earlier)


class WeightAverage:
    """The averaged copy of a model's weights, its start epoch, and its checkpoint state."""

    def __init__(self) -> None:
        #: The epoch the average started at; None before the trigger.
        self.start: int | None = None
        self.averaged: AveragedModel | None = None

    def after_epoch(
        self,
        model: nn.Module,
        epochs: int,
        history: Sequence[EpochMetrics],
        validate: Callable[[nn.Module], float],
    ) -> float | None:
        """Fold this epoch's weights in (once started); return the average's validation loss.

        ``history`` ends with this epoch's metrics, its validation loss already set.
        """
        epoch = history[-1].epoch
        if self.start is None:
            if not average_starts(epoch, epochs, history):
                return None
            self.start = epoch
        if self.averaged is None:
            self.averaged = self._new(model)
        self.averaged.update_parameters(model)
        return validate(self.averaged.module)

    def weights(self) -> dict[str, torch.Tensor] | None:
        """The averaged weights as the model's ``state_dict``, or None before the start."""
        return self.averaged.module.state_dict() if self.averaged is not None else None

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps to continue the average exactly."""
        if self.averaged is None:
            return {"start": self.start}
        return {"start": self.start, "count": int(self.averaged.n_averaged.item()),
                "weights": self.weights()}

    def load_state_dict(self, state: dict[str, Any], model: nn.Module) -> None:
        """Restore :meth:`state_dict`; ``model`` gives the average's structure and device."""
        self.start = state.get("start")
        self.averaged = None
        if state.get("weights") is not None:
            self.averaged = self._new(model)
            self.averaged.module.load_state_dict(state["weights"])
            self.averaged.n_averaged.fill_(int(state["count"]))

    @staticmethod
    def _new(model: nn.Module) -> AveragedModel:
        averaged = AveragedModel(model)
        averaged.eval()
        return averaged

"""Built-in recurrent cells: torch's modules and from-scratch versions of them, with the
option checks and the fused-pass call they share."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

from seqlm.errors import UsageError
from seqlm.interfaces import State, map_state

Result = TypeVar("Result")


def check_dropout(name: str, value: float) -> None:
    """A dropout probability must lie in [0, 1); say which option was wrong otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be at least 0 and below 1, got {value!r}")


def check_flag(name: str, value: object) -> None:
    """A cell option that is true or false (``fused``, ``locked_dropout``); a
    :class:`UsageError` naming it otherwise."""
    if not isinstance(value, bool):
        raise UsageError(f"cell option {name} must be true or false, got {value!r}; "
                         f"for example --cell-opt {name}=false")


def call_fused(
    forward: Callable[[torch.Tensor, State, torch.dtype | None], Result],
    inputs: torch.Tensor,
    state: State,
) -> Result:
    """Call a fused pass as ``forward(inputs, state, product_dtype)``.

    Outside autocast ``product_dtype`` is None. Under autocast the pass runs with
    autocast off, on float32 inputs and state (its buffers have one dtype), and takes
    its recurrent products in autocast's dtype (:mod:`seqlm.cells.fused`).
    """
    device_type = inputs.device.type
    if not torch.is_autocast_enabled(device_type):
        return forward(inputs, state, None)
    product_dtype = torch.get_autocast_dtype(device_type)
    with torch.autocast(device_type, enabled=False):
        if inputs.is_floating_point():
            inputs = inputs.float()
        return forward(inputs, map_state(torch.Tensor.float, state), product_dtype)

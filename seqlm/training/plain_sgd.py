"""Plain stochastic gradient descent, the seed's optimizer, without ``torch.optim``.

Building any ``torch.optim`` optimizer imports torch's compiler stack (``torch._dynamo``)
on first use: about a second on a 2-core CPU, where the seed's whole job trains in about
ten. Plain SGD (no momentum, no weight decay, a constant rate) needs none of it, so the
default trainer uses :class:`PlainSGD` for exactly that case on the CPU. It makes the
update ``torch.optim.SGD(params, lr, foreach=True)`` makes, ``p -= lr * p.grad``, and its
``state_dict`` is the one ``torch.optim.SGD`` writes, so checkpoints move freely between
the two (a run resumed on a GPU, say).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

#: The settings ``torch.optim.SGD`` keeps in each parameter group, as plain SGD has them.
SGD_GROUP_DEFAULTS: dict[str, Any] = {
    "momentum": 0, "dampening": 0, "weight_decay": 0, "nesterov": False, "maximize": False,
    "foreach": True, "differentiable": False, "fused": None,
}


class PlainSGD:
    """``p -= lr * p.grad`` for every parameter with a gradient; one parameter group.

    Offers the part of the ``torch.optim.Optimizer`` interface the trainers use:
    ``param_groups``, ``state``, ``zero_grad``, ``step``, ``state_dict`` and
    ``load_state_dict``. Learning-rate schedulers need a real ``torch.optim`` optimizer,
    which is why the trainer uses this class only with a constant rate.
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float) -> None:
        self.param_groups: list[dict[str, Any]] = [
            {"params": list(params), "lr": lr, **SGD_GROUP_DEFAULTS}
        ]
        #: Per-parameter state: none for plain SGD (kept for the interface).
        self.state: dict[Any, Any] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients (dropped by default, as ``torch.optim`` does)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_()
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One descent step along the current gradients."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                torch._foreach_add_(params, [p.grad for p in params], alpha=-group["lr"])

    def state_dict(self) -> dict[str, Any]:
        """The state in ``torch.optim.SGD``'s own format (parameters by index)."""
        groups, index = [], 0
        for group in self.param_groups:
            count = len(group["params"])
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": list(range(index, index + count))})
            index += count
        return {"state": {}, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take the rate from a state written by this class or by ``torch.optim.SGD``.

        Raises ``ValueError`` (as ``torch.optim`` does) for a state of another shape or of
        SGD with momentum or weight decay, which plain SGD cannot continue.
        """
        groups = state_dict.get("param_groups")
        if not isinstance(groups, list) or len(groups) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for saved, group in zip(groups, self.param_groups, strict=True):
            if len(saved.get("params", ())) != len(group["params"]):
                raise ValueError("loaded state dict contains a parameter group that "
                                 "doesn't match the size of optimizer's group")
            for key in ("momentum", "weight_decay"):
                if saved.get(key, 0):
                    raise ValueError(f"the saved optimizer is SGD with {key} "
                                     f"{saved[key]}, not plain SGD")
        if state_dict.get("state"):
            raise ValueError("the saved optimizer keeps per-parameter state, "
                             "which plain SGD does not")
        for saved, group in zip(groups, self.param_groups, strict=True):
            group["lr"] = float(saved["lr"])

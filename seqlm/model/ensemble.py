"""Several trained models read as one: each token's probability the mean of theirs."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from seqlm.errors import UsageError


class Ensemble(nn.Module):
    """A model whose next-token distribution is the mean of its members' distributions.

    It reads and returns what each member does -- ``forward(X, state)`` gives
    ``(logits, state)`` and ``begin_state(batch_size, device)`` a fresh state, the state
    being the list of the members' states -- so :func:`seqlm.model.generation.generate`
    and anything else written for one model take it as it is. The logits it returns are
    the log of the mean probability: their softmax is the members' mean, their argmax the
    token the members find most likely together. The members must share a vocabulary.
    """

    def __init__(self, members: Iterable[nn.Module]) -> None:
        super().__init__()
        members = list(members)
        if not members:
            raise UsageError("an ensemble needs at least one member")
        for member in members:
            if not isinstance(member, nn.Module):
                # A loaded run (seqlm.load_trained) holds its model in .model.
                hint = "; give its .model" if isinstance(getattr(member, "model", None),
                                                         nn.Module) else ""
                raise UsageError(f"an ensemble's members are models (torch modules), got "
                                 f"{type(member).__name__}{hint}")
        self.members = nn.ModuleList(members)

    @property
    def vocab_size(self) -> int | None:
        """The members' vocabulary size (None where a member does not say)."""
        return getattr(self.members[0], "vocab_size", None)

    def begin_state(self, batch_size: int, device: torch.device | str) -> list[Any]:
        return [member.begin_state(batch_size, device) for member in self.members]

    def forward(
        self, inputs: torch.Tensor, state: list[Any] | None,
    ) -> tuple[torch.Tensor, list[Any]]:
        """``(logits, state)``: the log of the members' mean probability of each next
        token, and each member's new state; ``state=None`` starts each member afresh, as
        a member given None does."""
        if state is None:
            state = [None] * len(self.members)
        log_probs, states = [], []
        for member, member_state in zip(self.members, state, strict=True):
            logits, member_state = member(inputs, member_state)
            if log_probs and logits.shape[-1] != log_probs[0].shape[-1]:
                raise ValueError(f"the ensemble's members score vocabularies of "
                                 f"{log_probs[0].shape[-1]} and {logits.shape[-1]} tokens; "
                                 "give it models trained on the same vocabulary")
            log_probs.append(F.log_softmax(logits.float(), dim=-1))
            states.append(member_state)
        return log_mean_exp(log_probs), states


def log_mean_exp(log_probs: Sequence[torch.Tensor]) -> torch.Tensor:
    """The log of the mean of the probabilities whose logs are ``log_probs`` (tensors of
    one shape), element by element, computed without leaving the log domain."""
    return torch.logsumexp(torch.stack(list(log_probs)), dim=0) - math.log(len(log_probs))

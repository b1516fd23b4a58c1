"""Measuring a model's cross-entropy on a text, reading it once from start to end."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from seqlm.interfaces import State
from seqlm.model.ensemble import log_mean_exp

#: The shortest stream worth reading side by side with others (see :func:`evaluate_loss`).
MIN_STREAM_TOKENS = 4096


def split_streams(ids: torch.Tensor, most: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of ``ids`` as up to ``most`` equal streams, shaped
    ``(streams, length)``, each at least :data:`MIN_STREAM_TOKENS` long unless the text is
    shorter (then one); the few tokens that do not fill a stream are left out."""
    streams = max(1, min(most, (len(ids) - 1) // MIN_STREAM_TOKENS))
    length = (len(ids) - 1) // streams
    xs = ids[: streams * length].reshape(streams, length)
    ys = ids[1: streams * length + 1].reshape(streams, length)
    return xs, ys


def evaluate_loss(
    model: nn.Module,
    ids: torch.Tensor,
    batch_size: int = 32,
    num_steps: int = 256,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy (nats, a 0-d tensor left on the device) and token count.

    The text is cut into at most ``batch_size`` equal streams read side by side,
    ``num_steps`` tokens at a time, with the state carried over between chunks, so every
    token but the first of each stream is predicted with its full left context within
    the stream. Each stream starts from a zero state, which costs its first tokens some
    accuracy, so streams are kept at least ``MIN_STREAM_TOKENS`` long (a short text is
    read as one stream). The sum stays on the device, so the caller decides when to wait
    for it. A text of fewer than two tokens gives ``(0, 0)``.
    """
    losses = token_losses(model, ids, batch_size, num_steps, device)
    return losses.sum(), losses.numel()


@torch.no_grad()
def token_losses(
    model: nn.Module,
    ids: torch.Tensor,
    batch_size: int = 32,
    num_steps: int = 256,
    device: torch.device | str | None = None,
    between: Callable[[], None] | None = None,
) -> torch.Tensor:
    """The cross-entropy (nats) of every token predicted, read as :func:`evaluate_loss`
    reads the text, as a 1-D float32 tensor left on the device.

    Two models read the same text with the same ``batch_size`` and ``num_steps`` give
    their losses in the same order, token for token, which is what an ensemble needs
    to average their probabilities. A text of fewer than two tokens gives an empty
    tensor. ``between``, if given, is called after each chunk of ``num_steps`` (where a
    caller reading several models at once may stop this one by raising).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    ids = ids.to(device)
    if len(ids) < 2:
        return torch.zeros(0, device=device)
    xs, ys = split_streams(ids, batch_size)
    streams, length = xs.shape
    was_training = model.training
    model.eval()
    chunks = []
    try:
        state: State = model.begin_state(streams, device)
        for start in range(0, length, num_steps):
            X = xs[:, start:start + num_steps]
            Y = ys[:, start:start + num_steps]
            logits, state = model(X, state)
            chunks.append(F.cross_entropy(logits.float(), Y.T.reshape(-1), reduction="none"))
            if between is not None:
                between()
    finally:
        model.train(was_training)
    return torch.cat(chunks)


def ensemble_loss(losses: list[torch.Tensor]) -> torch.Tensor:
    """Per-token cross-entropy of the ensemble whose members gave ``losses`` (each from
    :func:`token_losses` or :func:`~seqlm.training.dynamic_eval.dynamic_token_losses`
    on the same text, read the same way): the members' probabilities averaged.

    An average of probabilities, not of losses: a token one member finds likely stays
    likely, so the ensemble is never worse than its members' mean loss.
    """
    return -log_mean_exp([-loss for loss in losses])


def hold_out(ids: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Split token ids into the training part and the held-out end of the text.

    The last ``round(len(ids) * fraction)`` tokens are held out; ``fraction=0`` holds out
    nothing. A held-out part too short to predict anything (under two tokens) is an error.
    """
    from seqlm.errors import DataError

    n_val = int(round(len(ids) * fraction)) if fraction > 0 else 0
    if fraction > 0 and n_val < 2:
        raise DataError(
            f"--val-fraction {fraction:g} holds out {n_val} of {len(ids)} tokens, too few to "
            "validate on; use more text, a larger --val-fraction, or --val-fraction 0"
        )
    split = len(ids) - n_val
    return ids[:split], ids[split:]

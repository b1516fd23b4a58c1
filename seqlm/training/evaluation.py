"""Measuring a model's cross-entropy on a text, reading it once from start to end."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from seqlm.interfaces import State

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


@torch.no_grad()
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
    device = torch.device(device) if device is not None else next(model.parameters()).device
    ids = ids.to(device)
    loss_sum = torch.zeros((), device=device)
    if len(ids) < 2:
        return loss_sum, 0
    xs, ys = split_streams(ids, batch_size)
    streams, length = xs.shape
    was_training = model.training
    model.eval()
    try:
        state: State = model.begin_state(streams, device)
        for start in range(0, length, num_steps):
            X = xs[:, start:start + num_steps]
            Y = ys[:, start:start + num_steps]
            logits, state = model(X, state)
            loss_sum += F.cross_entropy(logits.float(), Y.T.reshape(-1), reduction="sum")
    finally:
        model.train(was_training)
    return loss_sum, streams * length


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

"""Dynamic evaluation (Krause et al., 2018): the model adapts to a text while reading it.

The text is read segment by segment. Each segment is first scored with the current
weights -- that score is what is reported, so no token is predicted by weights that have
seen it -- and then one gradient step on that segment's loss moves the weights towards
the text, while a decay pulls them back towards the trained weights::

    w <- w - lr * g + decay * (w0 - w)

With ``rms=True`` the gradient is divided by the root of a running mean of its squares
(as RMSprop does; Krause et al. take those means from the training text instead), which
makes one ``lr`` suit every layer. The model passed in is copied; its weights, and the
saved run they came from, are never changed.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from seqlm.config import (
    DYNAMIC_DECAY,
    DYNAMIC_LR,
    DYNAMIC_PLAIN_LR,
    DYNAMIC_RMS,
    DYNAMIC_STEPS,
)
from seqlm.interfaces import detach_state
from seqlm.training.evaluation import MIN_STREAM_TOKENS

#: The running mean of squared gradients forgets at this rate per segment (rms=True).
RMS_BETA = 0.99
RMS_EPS = 1e-8


@dataclass(frozen=True)
class DynamicSettings:
    """How dynamic evaluation adapts: step size, decay, segment length, RMS scaling.

    ``lr=None`` takes the default of the kind of step: :data:`~seqlm.config.DYNAMIC_LR`
    for RMS-scaled steps, :data:`~seqlm.config.DYNAMIC_PLAIN_LR` for plain ones.
    """

    lr: float | None = None
    decay: float = DYNAMIC_DECAY
    steps: int = DYNAMIC_STEPS
    rms: bool = DYNAMIC_RMS

    def __post_init__(self) -> None:
        if self.lr is None:
            object.__setattr__(self, "lr", DYNAMIC_LR if self.rms else DYNAMIC_PLAIN_LR)


def _streams(ids: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    # The same streams as seqlm.training.evaluation.evaluate_loss, so that the static and the
    # dynamic figures score exactly the same tokens.
    streams = max(1, min(batch_size, (len(ids) - 1) // MIN_STREAM_TOKENS))
    length = (len(ids) - 1) // streams
    xs = ids[: streams * length].reshape(streams, length)
    ys = ids[1: streams * length + 1].reshape(streams, length)
    return xs, ys


def _recurrent_backward_allowed(device: torch.device) -> contextlib.AbstractContextManager:
    # cuDNN computes recurrent gradients in training mode only, and training mode would
    # switch dropout on; torch's own kernels take gradients in evaluation mode.
    if device.type == "cuda":
        return torch.backends.cudnn.flags(enabled=False)
    return contextlib.nullcontext()


def dynamic_loss(
    model: nn.Module,
    ids: torch.Tensor,
    settings: DynamicSettings,
    batch_size: int = 32,
) -> tuple[float, int]:
    """Summed cross-entropy (nats) and token count of ``ids`` under dynamic evaluation.

    ``model`` is left as it was: a copy adapts. With ``lr=0`` the result equals
    :func:`seqlm.training.evaluation.evaluate_loss` on the same text.
    """
    if settings.steps < 1:
        raise ValueError(f"steps must be at least 1, got {settings.steps}")
    if len(ids) < 2:
        return 0.0, 0
    device = next(model.parameters()).device
    adapted = copy.deepcopy(model).eval()
    params = [p for p in adapted.parameters() if p.requires_grad]
    trained = [p.detach().clone() for p in params]
    squares = [torch.zeros_like(p) for p in params] if settings.rms else []
    xs, ys = _streams(ids.to(device), batch_size)
    total = torch.zeros((), device=device)
    state = adapted.begin_state(xs.shape[0], device)
    with _recurrent_backward_allowed(device):
        for segment, start in enumerate(range(0, xs.shape[1], settings.steps), start=1):
            X = xs[:, start:start + settings.steps]
            Y = ys[:, start:start + settings.steps]
            logits, state = adapted(X, detach_state(state))
            loss = F.cross_entropy(logits.float(), Y.T.reshape(-1), reduction="sum")
            total += loss.detach()
            if settings.lr == 0 and settings.decay == 0:
                continue
            grads = torch.autograd.grad(loss / Y.numel(), params, allow_unused=True)
            with torch.no_grad():
                _adapt(params, grads, trained, squares, settings, segment)
    return total.item(), xs.numel()


def _adapt(
    params: list[nn.Parameter],
    grads: tuple[torch.Tensor | None, ...],
    trained: list[torch.Tensor],
    squares: list[torch.Tensor],
    settings: DynamicSettings,
    segment: int,
) -> None:
    for i, (p, g, p0) in enumerate(zip(params, grads, trained, strict=True)):
        if g is not None:
            if settings.rms:
                squares[i].mul_(RMS_BETA).addcmul_(g, g, value=1 - RMS_BETA)
                # Bias-corrected, so that the first segments do not take huge steps.
                scale = (squares[i] / (1 - RMS_BETA ** segment)).sqrt_().add_(RMS_EPS)
                g = g / scale
            p.sub_(settings.lr * g)
        p.add_(p0 - p, alpha=settings.decay)

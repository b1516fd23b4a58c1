"""Dynamic evaluation (Krause et al., 2018): the model adapts to a text while reading it.

The text is read segment by segment. Each segment is first scored with the current
weights -- that score is what is reported, so no token is predicted by weights that have
seen it -- and then one gradient step on that segment's loss moves the weights towards
the text, while a decay pulls them back towards the trained weights::

    w <- w - lr * g + decay * (w0 - w)

With ``rms=True`` the gradient is divided by the root of a running mean of its squares
(as RMSprop does; Krause et al. take those means from the training text instead), which
makes one ``lr`` suit every layer. By default the text is read as one stream, in order,
so each segment is scored by weights adapted to everything before it; ``streams`` reads
it as that many streams side by side instead (each at least
:data:`~seqlm.training.evaluation.MIN_STREAM_TOKENS` long), faster on a long text, with
each step learning from a segment of every stream. The model passed in is copied; its
weights, and the saved run they came from, are never changed.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable
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
    DYNAMIC_STREAMS,
)
from seqlm.config.bounds import python_number
from seqlm.errors import UsageError
from seqlm.interfaces import detach_state
from seqlm.training.evaluation import split_streams

#: The running mean of squared gradients forgets at this rate per segment (rms=True).
RMS_BETA = 0.99
RMS_EPS = 1e-8


@dataclass(frozen=True)
class DynamicSettings:
    """How dynamic evaluation adapts: step size, decay, segment length, RMS scaling, and
    how many streams the text is read as (at most; see :func:`dynamic_loss`).

    ``lr=None`` takes the default of the kind of step: :data:`~seqlm.config.DYNAMIC_LR`
    for RMS-scaled steps, :data:`~seqlm.config.DYNAMIC_PLAIN_LR` for plain ones.
    """

    lr: float | None = None
    decay: float = DYNAMIC_DECAY
    steps: int = DYNAMIC_STEPS
    rms: bool = DYNAMIC_RMS
    streams: int = DYNAMIC_STREAMS

    def __post_init__(self) -> None:
        for name in ("steps", "streams"):
            value = python_number(getattr(self, name))
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"{name} must be a whole number of at least 1, got {value!r}")
            object.__setattr__(self, name, value)
        rms = python_number(self.rms)
        if not isinstance(rms, bool):
            raise UsageError(f"rms must be True or False, got {self.rms!r}")
        object.__setattr__(self, "rms", rms)
        if self.lr is None:
            object.__setattr__(self, "lr", DYNAMIC_LR if rms else DYNAMIC_PLAIN_LR)
        # lr 0 and decay 0 read as static evaluation does (see dynamic_loss); a step
        # against the gradient, or a decay past the trained weights, reads nothing well.
        for name, top in (("lr", math.inf), ("decay", 1.0)):
            value = python_number(getattr(self, name))
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or not 0 <= value <= top):
                bounds = "0 or more" if top == math.inf else f"from 0 to {top:g}"
                raise UsageError(f"{name} must be a number {bounds}, got {value!r}")
            object.__setattr__(self, name, float(value))


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
    progress: Callable[[int, int], None] | None = None,
) -> tuple[float, int]:
    """Summed cross-entropy (nats) and token count of ``ids`` under dynamic evaluation.

    ``progress``, if given, is called after each segment with the number of segments
    read and their total (one stream of a long text takes a while).

    ``model`` is left as it was: a copy adapts. With ``lr=0`` and ``decay=0`` the result
    equals :func:`seqlm.training.evaluation.evaluate_loss` of the same text with
    ``batch_size=settings.streams``, which reads it as the same streams.
    """
    losses = dynamic_token_losses(model, ids, settings, progress)
    return losses.sum().item(), losses.numel()


def dynamic_token_losses(
    model: nn.Module,
    ids: torch.Tensor,
    settings: DynamicSettings,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """The cross-entropy (nats) of every token under dynamic evaluation, in the order
    :func:`seqlm.training.evaluation.token_losses` gives them for
    ``batch_size=settings.streams`` and ``num_steps=settings.steps``; see
    :func:`dynamic_loss`. A text of fewer than two tokens gives an empty tensor."""
    device = next(model.parameters()).device
    if len(ids) < 2:
        return torch.zeros(0, device=device)
    adapted = copy.deepcopy(model).eval()
    params = [p for p in adapted.parameters() if p.requires_grad]
    trained = [p.detach().clone() for p in params]
    squares = [torch.zeros_like(p) for p in params] if settings.rms else []
    xs, ys = split_streams(ids.to(device), settings.streams)
    chunks = []
    state = adapted.begin_state(xs.shape[0], device)
    starts = range(0, xs.shape[1], settings.steps)
    with _recurrent_backward_allowed(device):
        for segment, start in enumerate(starts, start=1):
            X = xs[:, start:start + settings.steps]
            Y = ys[:, start:start + settings.steps]
            logits, state = adapted(X, detach_state(state))
            losses = F.cross_entropy(logits.float(), Y.T.reshape(-1), reduction="none")
            chunks.append(losses.detach())
            if settings.lr != 0 or settings.decay != 0:
                grads = torch.autograd.grad(losses.mean(), params, allow_unused=True)
                with torch.no_grad():
                    _adapt(params, grads, trained, squares, settings, segment)
            if progress is not None:
                progress(segment, len(starts))
    return torch.cat(chunks)


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

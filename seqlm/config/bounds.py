"""Limits on settings that torch would otherwise reject late, or crash on.

Each check raises :class:`~seqlm.errors.UsageError` naming the option, the limit and
why it exists, so that a bad value stops seqlm before any run folder is made.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from typing import Any

from seqlm.errors import UsageError

#: The largest float32 number: weights and optimizer settings are float32 in torch.
FLOAT32_MAX = 3.4028234663852886e38
#: The most epochs one run may ask for: the default job's 500 two thousand times over.
MAX_EPOCHS = 1_000_000
#: The widest layer (``--hidden``, ``--embedding-dim``): a 2**20-wide LSTM layer already
#: needs 16 TiB for its weights, and much wider ones overflow torch's sizes.
MAX_WIDTH = 2**20
#: The deepest stack (``--num-layers``); building deeper ones alone takes minutes.
MAX_LAYERS = 1000
#: Device names seqlm knows.
DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")


def python_number(value: Any) -> Any:
    """``value`` as Python's bool, int or float where it is numpy's kind of one
    (``numpy.int64(32)`` from a sweep over ``numpy.arange``) or another whole or real
    number; anything else as it is."""
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        item = value.item()  # numpy's scalars, numpy.bool_ included, as Python's
        return item if isinstance(item, (bool, int, float)) else value
    if isinstance(value, (bool, int, float)) or not isinstance(value, numbers.Real):
        return value
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def max_threads() -> int:
    """Four threads per CPU core: more only slows torch down, and very many crash it."""
    return 4 * (os.cpu_count() or 1)


def check_threads(threads: int, jobs: int = 1) -> None:
    """``--threads`` must be from 0 (torch's default) to :func:`max_threads`, and so must
    the threads of ``jobs`` models measured side by side, each with ``threads``."""
    limit = max_threads()
    if isinstance(threads, int) and threads < 0:
        raise UsageError(f"--threads must be a whole number, 0 or more, got {threads}")
    if isinstance(threads, int) and threads > limit:
        raise UsageError(f"--threads {threads} is more than {limit} (4 per CPU core of this "
                         "machine): more threads than cores only slow torch down, and "
                         "thousands crash it; use 0 for torch's default")
    if isinstance(threads, int) and jobs > 1 and threads * jobs > limit:
        raise UsageError(f"--jobs {jobs} with --threads {threads} would run {threads * jobs} "
                         f"threads, more than {limit} (4 per CPU core of this machine); "
                         "lower --threads, or give 0 for one thread per job")


def check_model_size(hidden: int, embedding_dim: int, num_layers: int) -> None:
    """Layer widths and depth within :data:`MAX_WIDTH` and :data:`MAX_LAYERS`."""
    for flag, value in (("--hidden", hidden), ("--embedding-dim", embedding_dim)):
        if isinstance(value, int) and value > MAX_WIDTH:
            raise UsageError(f"{flag} {value} is more than {MAX_WIDTH:,}: a layer that wide "
                             "needs more memory than any machine has; give a smaller value")
    if isinstance(num_layers, int) and num_layers > MAX_LAYERS:
        raise UsageError(f"--num-layers {num_layers} is more than {MAX_LAYERS}; give fewer "
                         "layers")


def check_float32(flag: str, value: float | None) -> None:
    """A setting torch keeps as float32 must fit in it."""
    if value is not None and isinstance(value, (int, float)) and abs(value) > FLOAT32_MAX:
        raise UsageError(f"{flag} {value:g} is beyond float32's range (at most "
                         f"{FLOAT32_MAX:.1e}), in which torch keeps it; give a smaller value")


def check_epochs(epochs: int) -> None:
    """At most :data:`MAX_EPOCHS`: a larger count is a typo, and its rows would never come."""
    if epochs > MAX_EPOCHS:
        raise UsageError(f"--epochs {epochs} is more than {MAX_EPOCHS:,}; give fewer (a run "
                         "can be resumed with more later: seqlm run --resume RUN --epochs N)")


def check_finite(flag: str, value: float | None) -> None:
    """A step size or rate must be a finite number (click's ranges let inf and nan in)."""
    if value is not None and not math.isfinite(value):
        raise UsageError(f"{flag} must be a finite number, got {value!r}")


def check_seed(seed: int | None) -> None:
    """A seed must fit in 64 bits, as torch's generators take it."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not 0 <= seed < 2**64):
        raise UsageError(f"--seed must be a whole number from 0 to 2**64 - 1, got {seed!r}")


def check_device_name(name: str) -> None:
    """``--device`` must be one of :data:`DEVICES` (``cuda:N`` with a number N)."""
    if not isinstance(name, str):
        raise UsageError(f"--device must be a name such as 'cpu' or 'cuda:0', got {name!r}")
    if name not in ("auto", "cpu", "cuda", "mps") and not re.fullmatch(r"cuda:\d+", name):
        raise UsageError(f"--device {name!r} not recognized. "
                         f"Choose one of: {', '.join(DEVICES)}")

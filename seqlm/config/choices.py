"""Every fixed list of choices a run's settings take, each stated once.

The command line's ``click.Choice`` lists, :meth:`seqlm.config.RunConfig.validate` and
the default trainer's own checks all read these, so a new optimizer or schedule is added
in one place.
"""

from __future__ import annotations

from typing import Literal

from seqlm.data.text import CLEANERS
from seqlm.errors import UsageError

#: The learning rate each optimizer starts from unless ``--lr`` is given: the seed's 1
#: for SGD, and the usual rate for Adam and AdamW on small recurrent models.
OPTIMIZER_LR: dict[str, float] = {"sgd": 1.0, "adam": 0.002, "adamw": 0.002}
OPTIMIZERS: tuple[str, ...] = tuple(OPTIMIZER_LR)

#: ``constant`` keeps the rate; ``cosine`` anneals it to zero over the run.
SCHEDULES: tuple[str, ...] = ("constant", "cosine")

#: ``fp32``; ``tf32`` lets CUDA's matrix products use TF32; ``bf16`` autocasts.
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16")

#: ``letters`` keeps letters only, in lower case (the seed's cleaning); ``none`` keeps
#: the text as it is.
CLEANINGS: tuple[str, ...] = tuple(CLEANERS)

#: The two checkpoints every saved run has.
CHECKPOINTS: tuple[str, ...] = ("best", "last")
#: seqlm eval's and seqlm generate's --checkpoint also take this: the best and the last,
#: as two ensemble members.
BOTH = "both"
#: ... and this: the best, the last and every epoch that --keep-every kept.
ALL = "all"
#: What seqlm eval's and seqlm generate's --checkpoint take.
CHECKPOINT_CHOICES: tuple[str, ...] = (*CHECKPOINTS, BOTH, ALL)

#: The ``cuda_graph`` setting: ``"auto"``, ``True`` (demand) or ``False`` (off).
GraphSetting = bool | Literal["auto"]
AUTO = "auto"


def check_choice(flag: str, value: object, choices: tuple[str, ...]) -> None:
    """A :class:`UsageError` naming ``flag`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise UsageError(f"{flag} {value!r} not recognized. Choose one of: {', '.join(choices)}")


def check_graph_setting(value: object) -> GraphSetting:
    """``value`` if it is a valid ``cuda_graph`` setting, else a :class:`UsageError`."""
    if value is True or value is False or value == AUTO:
        return value  # type: ignore[return-value]
    raise UsageError(f"cuda_graph must be 'auto', true or false, got {value!r}")

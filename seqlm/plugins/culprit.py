"""Who is to blame: a registered component (or command) of a third-party plugin, and the
contract section it broke."""

from __future__ import annotations

import re
from dataclasses import dataclass

from seqlm.errors import contract_link, one_line

#: The fix for a component that skipped its base class's ``__init__``.
SUPER_INIT_FIX = "call super().__init__() first in __init__"
#: The same for a sampler, whose base class takes the batch's sizes.
SAMPLER_SUPER_INIT_FIX = "call super().__init__(batch_size, num_steps) first in __init__"
#: What the base classes set in ``__init__``: missing, the subclass skipped that call.
_BASE_ATTRIBUTE = re.compile(
    r"has no attribute '(batch_size|num_steps|input_size|hidden_size|num_layers|output_size)'")


def cause_hint(error: BaseException) -> str:
    """`` (the likely fix)`` for an error whose cause a plugin's author may not guess
    from its text, else nothing: the usual one is a skipped ``super().__init__()``."""
    if isinstance(error, SystemExit):  # sys.exit() or exit() left in a component
        return " (a component must not end the process; raise an exception instead)"
    text = str(error)
    hint = f" ({SUPER_INIT_FIX})"
    if "before Module.__init__() call" in text:
        return hint
    missing = _BASE_ATTRIBUTE.search(text) if isinstance(error, AttributeError) else None
    if missing:
        # Python names the object that lacks it: one of seqlm's own is seqlm's bug.
        owner = type(getattr(error, "obj", None)).__module__
        if owner.partition(".")[0] == "seqlm":
            return ""
        sampler = missing.group(1) in ("batch_size", "num_steps")
        return f" ({SAMPLER_SUPER_INIT_FIX})" if sampler else hint
    return ""


@dataclass(frozen=True)
class Culprit:
    """The registered component (or command) whose code raised."""

    kind: str
    name: str
    distribution: str
    version: str

    @property
    def origin(self) -> str:
        """``DIST VERSION``."""
        return " ".join(filter(None, (self.distribution, self.version)))

    @property
    def label(self) -> str:
        """``cell 'NAME' from DIST VERSION``: who this is, as messages name it."""
        return f"{self.kind} {self.name!r} from {self.origin or 'a plugin registered in code'}"

    def inherited_message(self, error: BaseException, where: str, overrides: list[str]) -> str:
        """The one-line message for ``error`` raised in seqlm's code that this component
        inherits (``where``, such as ``DefaultTrainer.fit``): most likely one of its
        ``overrides`` gave that code something it cannot use."""
        text = one_line(str(error), 300)
        suspects = (f"Check what it overrides ({', '.join(overrides)})" if overrides
                    else "Check what it sets up for that code")
        return (f"{self.label} raised {type(error).__name__} in {where}, which it inherits "
                f"from seqlm: {text}. {suspects} against {contract_link(self.kind)}, or run "
                "with --debug for the traceback")

    def message(self, error: BaseException) -> str:
        """The one-line message that puts ``error`` on this component."""
        text = one_line(str(error), 300)
        report = (f"report it to {self.distribution}" if self.distribution
                  else "fix it where it was registered")
        return (f"{self.label} raised {type(error).__name__}: "
                f"{text}{cause_hint(error)}. This is a fault of that plugin, not of seqlm: see "
                f"{contract_link(self.kind)}, or run with --debug for the traceback and "
                f"{report}")

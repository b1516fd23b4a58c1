"""Who is to blame: a registered component (or command) of a third-party plugin, and the
contract section it broke."""

from __future__ import annotations

from dataclasses import dataclass

from seqlm.errors import contract_link, one_line


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

    def message(self, error: BaseException) -> str:
        """The one-line message that puts ``error`` on this component."""
        text = one_line(str(error), 300)
        return (f"{self.kind} {self.name!r} from {self.origin} raised {type(error).__name__}: "
                f"{text}. This is a fault of that plugin, not of seqlm: see "
                f"{contract_link(self.kind)}, or run with --debug for the traceback and "
                f"report it to {self.distribution}")

"""Exceptions that seqlm turns into one-line messages for the user."""

from __future__ import annotations

import json
from typing import Any


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` on one line (every run of whitespace, newlines included, becomes one
    space), cut to ``limit`` characters with ``...``: an error never spreads over the
    screen."""
    line = " ".join(text.split())
    if limit is not None and len(line) > limit:
        line = line[: limit - 3] + "..."
    return line


def first_line(error: BaseException, limit: int | None = None) -> str:
    """The first non-empty line of ``error``'s message (its type's name if it has none),
    cut to ``limit`` characters: where the rest is a traceback or a dump, the first line
    names the cause."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    return one_line(lines[0] if lines else type(error).__name__, limit)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` says memory ran out: Python's MemoryError, CUDA's "out of
    memory", or the CPU allocator's "can't allocate memory", whatever their types."""
    try:
        text = str(error)
    except Exception:  # an exception whose own message fails: not this kind
        return isinstance(error, MemoryError)
    return (isinstance(error, MemoryError) or "out of memory" in text.lower()
            or "can't allocate memory" in text)


class SeqlmError(Exception):
    """A problem the user can fix; the CLI prints it as one line and exits non-zero.

    Subclasses set ``exit_code``; the message should name the problem and the fix.
    """

    exit_code = 1


class UsageError(SeqlmError):
    """A bad option, argument or choice (exit status 2, like click's own usage errors)."""

    exit_code = 2


class OptionError(UsageError):
    """A bad component option (``--cell-opt KEY=VALUE`` and friends): what is wrong with
    it, after where it was given.

    ``given`` is ``--KIND-opt KEY=VALUE`` unless ``flagged`` is false (the problem names
    the option itself), and whoever read the option from elsewhere (a recipe's table) may
    set it to say so instead.
    """

    def __init__(self, kind: str, key: str, value: Any, problem: str,
                 flagged: bool = True) -> None:
        super().__init__(problem)
        self.kind, self.key, self.value, self.problem = kind, key, value, problem
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        self.given: str | None = f"--{kind}-opt {key}={shown}" if flagged else None

    def __str__(self) -> str:
        return f"{self.given}: {self.problem}" if self.given else self.problem


class DataError(SeqlmError):
    """The training text is missing, unreadable or unusable."""


class PluginError(SeqlmError):
    """A plugin could not be loaded or registered something invalid."""


class ContractError(PluginError):
    """A component broke its interface's contract, found before training (exit status 2)."""

    exit_code = 2


class TrainingError(SeqlmError):
    """Training cannot go on (for example the loss became NaN)."""


class CheckpointError(SeqlmError):
    """A checkpoint is missing, unreadable, corrupt, or from an incompatible version."""


class NotARunError(UsageError, CheckpointError):
    """A path given as a run that names no run folder (exit status 2, a usage error)."""


class OutputError(SeqlmError):
    """A file of the run folder could not be written (a full disk, say); names the file."""


#: Where the contract of each kind of component is stated, relative to the project's root.
CONTRACTS = "docs/plugins/contracts.md"
#: Where each message about a plugin that failed to load is explained.
TROUBLESHOOTING = "docs/plugins/troubleshooting.md"
SECTIONS = {"tokenizer": "tokenizer", "sampler": "sampler", "cell": "recurrentcell",
            "trainer": "trainer", "command": "commands", "callback": "callback"}


def contract_link(kind: str) -> str:
    """``docs/plugins/contracts.md#SECTION`` for ``kind``."""
    return f"{CONTRACTS}#{SECTIONS.get(kind, '')}".rstrip("#")


def refuse(label: str, kind: str, problem: str) -> ContractError:
    """The one-line error for a component (``label``) that broke its contract."""
    return ContractError(f"{label} broke its contract: {problem}; see {contract_link(kind)}")

"""Exceptions that seqlm turns into one-line messages for the user."""

from __future__ import annotations


class SeqlmError(Exception):
    """A problem the user can fix; the CLI prints it as one line and exits non-zero.

    Subclasses set ``exit_code``; the message should name the problem and the fix.
    """

    exit_code = 1


class UsageError(SeqlmError):
    """A bad option, argument or choice (exit status 2, like click's own usage errors)."""

    exit_code = 2


class DataError(SeqlmError):
    """The training text is missing, unreadable or unusable."""


class PluginError(SeqlmError):
    """A plugin could not be loaded or registered something invalid."""


class ContractError(PluginError):
    """A component broke its interface's contract, found before training (exit status 2)."""

    exit_code = 2


class TrainingError(SeqlmError):
    """Training cannot go on (for example the loss became NaN)."""


class OutputError(SeqlmError):
    """A file of the run folder could not be written (a full disk, say); names the file."""

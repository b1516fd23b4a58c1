"""The ``seqlm`` command line: a thin layer over the library.

Nothing here imports torch or matplotlib at start-up; each command imports the library
code it needs when it runs, so ``seqlm --help`` answers at once. The group and its error
handling are in :mod:`seqlm.cli.group`; each module beside it adds its commands to it,
and plugins' commands are added last.
"""

from seqlm.cli import listing, plugin_commands, saved_runs, train
from seqlm.cli.group import describe_unexpected, main
from seqlm.cli.train import run
from seqlm.plugins.manager import get_plugins

main.builtin_commands = frozenset(main.commands)
get_plugins().add_commands(main, main.builtin_commands)

__all__ = ["describe_unexpected", "listing", "main", "plugin_commands", "run", "saved_runs",
           "train"]

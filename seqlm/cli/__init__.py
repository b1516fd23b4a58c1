"""The ``seqlm`` command line: a thin layer over the library.

Nothing here imports torch or matplotlib at start-up; each command imports the library
code it needs when it runs, so ``seqlm --help`` answers at once. The group and its error
handling are in :mod:`seqlm.cli.group`; each module beside it adds its commands to it,
and plugins' commands are added last.
"""

import os
import sys

try:
    from seqlm.cli import plugin_commands, run_command, run_folders, saved_runs
    from seqlm.cli.group import describe_unexpected, main
    from seqlm.cli.run_command import run
    from seqlm.plugins.manager import get_plugins

    main.builtin_commands = frozenset(main.commands)
    get_plugins().add_commands(main, main.builtin_commands)
except KeyboardInterrupt:
    # Ctrl-C while the commands and plugins load (a plugin's slow import), before any
    # command's own handling: it ends as a stop does everywhere else, with no traceback
    # unless asked for.
    if os.environ.get("SEQLM_DEBUG", "") not in ("", "0") or "--debug" in sys.argv:
        raise
    sys.stderr.write("Interrupted.\n")
    sys.exit(130)

__all__ = ["describe_unexpected", "main", "plugin_commands", "run", "run_command",
           "run_folders", "saved_runs"]

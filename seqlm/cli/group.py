"""The ``seqlm`` group: one-line errors and exit statuses for every command."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click

from seqlm.config import RunConfig
from seqlm.errors import SeqlmError, is_out_of_memory, one_line
from seqlm.plugins.manager import get_plugins

#: The settings' defaults, shown in the help of the commands' options.
DEFAULTS = RunConfig()

#: ``--threads``, the same for every command that runs a model (run, generate, eval).
THREADS_OPTION = click.option(
    "--threads", type=int, default=DEFAULTS.threads, show_default=True,
    help="CPU threads for torch; 0 keeps torch's default (one per core), at most 4 per "
    "core. Use 1 on a machine busy with other jobs.")


def _debug_requested(ctx: click.Context) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get("SEQLM_DEBUG", "") not in ("", "0")


def describe_unexpected(error: BaseException) -> str:
    """A one-line message for an error seqlm did not foresee, with what to try."""
    text = str(error)
    if is_out_of_memory(error):
        return ("out of memory; try a smaller --hidden, --batch-size, --num-steps or "
                "--num-layers, or another --device")
    if isinstance(error, OSError) and error.strerror:
        where = f" {error.filename}" if error.filename else ""
        return (f"cannot access{where}: {error.strerror}; check the path, its permissions "
                "and the free disk space")
    return (f"unexpected {type(error).__name__}: {one_line(text, 300)} "
            "(run with --debug for the traceback)")


class OneLineUsageError(click.UsageError):
    """A usage error that click found (a bad value, a missing argument), shown on one line
    with where to read the usage, instead of click's usage block above it."""

    #: The command whose help to point to where click's error has no context (an option
    #: missing its value is found by a parser that knows none).
    where: str | None = None

    @classmethod
    def of(cls, error: click.UsageError, where: str | None = None) -> OneLineUsageError:
        """``error``'s message (click's wording) as a one-line error; ``where`` is the
        command path to name when the error does not carry its context."""
        if not isinstance(error, cls):
            error = cls(error.format_message(), error.ctx)
        if error.ctx is None and error.where is None:
            error.where = where
        return error

    def show(self, file: Any = None) -> None:
        where = self.ctx.command_path if self.ctx is not None else self.where or "seqlm"
        # click lists some choices one per line: the error stays one line.
        click.echo(f"Error: {one_line(self.format_message())} (see {where} --help)", file=file,
                   err=file is None)


class SeqlmGroup(click.Group):
    """A click group that turns seqlm's errors into one line and an exit status.

    :class:`SeqlmError` exits with its ``exit_code`` (2 for usage errors), Ctrl-C with
    130, a stop signal N during ``seqlm run`` (SIGTERM, SIGHUP, ...) with 128 + N, and
    anything else with 1; ``--debug`` or ``SEQLM_DEBUG=1`` shows the traceback
    instead.
    """

    #: seqlm's own commands, which no plugin may replace (set once they are all added).
    builtin_commands: frozenset[str] = frozenset()

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Also accept ``--debug`` after the command (``seqlm run ... --debug``); with no
        arguments at all, show the help (and exit 0) rather than an error."""
        if not args and not ctx.resilient_parsing:  # (shell completion parses no args)
            click.echo(ctx.get_help())
            ctx.exit(0)
        try:
            return super().parse_args(ctx, self._hoist_debug(ctx, args))
        except click.UsageError as error:
            raise OneLineUsageError.of(error) from error

    def _hoist_debug(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0].startswith("-"):
            return args
        command = self.get_command(ctx, args[0])
        if command is None or any("--debug" in p.opts for p in command.params):
            return args  # unknown, or a command with a --debug of its own
        # Options that take a value: "--prefix --debug" is a prefix, not the flag.
        takes_value = {
            opt for param in command.params if isinstance(param, click.Option)
            and not param.is_flag and not param.count for opt in param.opts
        }
        rest: list[str] = []
        found = False
        for i, arg in enumerate(args[1:], start=1):
            if arg == "--":
                rest.extend(args[i:])
                break
            if arg == "--debug" and args[i - 1] not in takes_value:
                found = True
                continue
            rest.append(arg)
        return (["--debug"] if found else []) + [args[0], *rest]

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, turning its errors into one line on stderr."""
        try:
            return super().invoke(ctx)
        except SeqlmError as error:
            if _debug_requested(ctx):
                raise
            click.echo(f"Error: {one_line(str(error), 2000)}", err=True)
            sys.exit(error.exit_code)
        except KeyboardInterrupt as interrupt:
            if _debug_requested(ctx):
                # Where it stopped, as --debug asks; the exit status stays a stop's, not
                # click's "Aborted!" and 1.
                traceback.print_exc()
            from seqlm.training.stopping import exit_code_of, ignore_ctrl_c

            # What the command had to save is saved and the process is ending: a second
            # Ctrl-C from here on (Python's shutdown runs torch's finalizers, which take a
            # moment) would print a traceback, or end the process by the signal itself
            # instead of with the status below.
            ignore_ctrl_c()
            signum = getattr(interrupt, "signum", None)
            click.echo(f"Stopped by {interrupt}." if signum else "Interrupted.", err=True)
            sys.exit(exit_code_of(interrupt))
        except BrokenPipeError:
            if _debug_requested(ctx):
                raise
            # The reader went away (``seqlm run | head``): say so where it can still be
            # read, and stop Python from failing again when it flushes stdout at exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            try:
                click.echo("Stopped: the output pipe was closed.", err=True)
            except BrokenPipeError:  # stderr went into the same pipe (2>&1 | head)
                os.dup2(devnull, sys.stderr.fileno())
            sys.exit(141)  # as a shell reports a process ended by SIGPIPE
        except click.UsageError as error:
            sub = ctx.invoked_subcommand
            raise OneLineUsageError.of(
                error, f"{ctx.command_path} {sub}" if sub else None) from error
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except Exception as error:
            if _debug_requested(ctx):
                raise
            # Code of a plugin (a command, or a component used by a built-in command)
            # is the plugin's fault, not seqlm's.
            from seqlm.plugins.blame import find_culprit, inherited_blame

            plugins = get_plugins()
            culprit = find_culprit(error, plugins, command=ctx.invoked_subcommand)
            message = (culprit.message(error) if culprit is not None
                       else inherited_blame(error, plugins) or describe_unexpected(error))
            click.echo(f"Error: {message}", err=True)
            sys.exit(1)


@click.group(cls=SeqlmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="seqlm")
@click.option("--debug", is_flag=True, help="Show full tracebacks (or set SEQLM_DEBUG=1).")
def main(debug: bool) -> None:
    """Train recurrent language models (RNN, GRU, LSTM) on any text.

    Start with `seqlm run`, which trains the default character-level LSTM on
    The Time Machine and generates text from "time traveller".
    """


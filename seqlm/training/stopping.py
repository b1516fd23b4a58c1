"""Stop signals: SIGTERM, SIGHUP and the like stop a run the way Ctrl-C does.

``kill``, systemd, Slurm and Kubernetes stop a job with SIGTERM, and closing its
terminal sends SIGHUP. Batch systems warn of a time limit with SIGUSR1 or SIGUSR2 (as
Slurm's ``--signal`` is usually set) or SIGXCPU (a CPU-time limit). Each of these would
end the process on the spot by default. While :func:`stop_on_signals` is active, each one
raises
:class:`Stopped`, a :class:`KeyboardInterrupt`, so that every place that saves a
checkpoint on Ctrl-C saves one on these signals too; the exit status is then
``128 + signal number``, as a shell reports it (143 for SIGTERM, 129 for SIGHUP).

:func:`signals_deferred` holds the stop signals back while an emergency save is written:
a second Ctrl-C then cannot cut the save short and leave no checkpoint. The third stop
request ends the process at once, whatever the run is doing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

#: The signals that stop a run like Ctrl-C; most do not exist on Windows.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGXCPU")
    if hasattr(signal, name)
)


class Stopped(KeyboardInterrupt):
    """Raised by a stop signal; ``exit_code`` is ``128 + signum``, as shells report it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def interrupt_for(signum: int) -> KeyboardInterrupt:
    """The interrupt that signal ``signum`` raises: Ctrl-C's own, or :class:`Stopped`."""
    return KeyboardInterrupt() if signum == signal.SIGINT else Stopped(signum)


def exit_code_of(interrupt: KeyboardInterrupt) -> int:
    """The exit status for an interrupt: 130 for Ctrl-C, ``128 + N`` for signal N."""
    return getattr(interrupt, "exit_code", 130)


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise Stopped(signum)


def _in_main_thread() -> bool:
    # Python lets only the main thread set signal handlers.
    return threading.current_thread() is threading.main_thread()


def ignore_ctrl_c() -> None:
    """Ignore Ctrl-C (SIGINT) from now on, for a process that is about to exit after
    one; the stop signals keep their effect, so ``kill`` still ends a shutdown that
    hangs."""
    if _in_main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


#: The stop requests (Ctrl-C or a stop signal) after which the process ends at once: code
#: that catches the interrupt and goes on (a plugin's trainer retrying its epoch, say)
#: must not make a run that nothing but SIGKILL stops.
FORCE_AFTER = 3


#: The stop requests of the :func:`stop_on_signals` block in force, counted wherever they
#: come, held back (:func:`signals_deferred`) or not; None outside such a block.
_requests: list[int] | None = None


def _count_request(signum: int) -> None:
    """Count a stop request of the block in force, and end the process at the
    :data:`FORCE_AFTER`-th: the checkpoints already written stay as they are."""
    if _requests is None:
        return
    _requests.append(signum)
    if len(_requests) >= FORCE_AFTER:
        # Said of the requests, not of the run: the last two may have come while it was
        # ending anyway (after its save), and no longer wait for that.
        os.write(2, (f"seqlm: stopped at once at stop request {len(_requests)}; the last "
                     "checkpoint written is kept\n").encode())
        os._exit(128 + signum)


def _escalating(
    handler: Callable[[int, FrameType | None], None],
) -> Callable[[int, FrameType | None], None]:
    """``handler``, until the :data:`FORCE_AFTER`-th stop request of the block, which
    ends the process there."""
    def on_signal(signum: int, frame: FrameType | None) -> None:
        _count_request(signum)
        handler(signum, frame)
    return on_signal


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn the :data:`STOP_SIGNALS` into :class:`Stopped` within the ``with`` block, and
    end the process at once on the :data:`FORCE_AFTER`-th stop request (Ctrl-C included,
    where Python's own handler has it)."""
    if not _in_main_thread():
        yield
        return
    global _requests
    outer, _requests = _requests, []
    handlers = {sig: _raise_stopped for sig in STOP_SIGNALS}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        handlers[signal.SIGINT] = signal.default_int_handler
    previous = {sig: signal.signal(sig, _escalating(handler))
                for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _requests = outer


@contextlib.contextmanager
def signals_deferred() -> Iterator[list[int]]:
    """Hold back Ctrl-C and the stop signals within the block; yields those that came.

    The signals that arrived are not acted on here; the caller decides (an emergency save
    already ends the run; a regular save stops it once written, see
    :func:`interrupt_for`).
    """
    arrived: list[int] = []
    if not _in_main_thread():
        yield arrived
        return

    def note(signum: int, frame: FrameType | None) -> None:
        arrived.append(signum)
        # Held back, yet counted: a plugin that catches each stop and goes on must not
        # escape the third by receiving it while seqlm writes a file.
        _count_request(signum)

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, *STOP_SIGNALS)}
    try:
        yield arrived
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

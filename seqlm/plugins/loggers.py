"""Callbacks that plugins register by name and ``seqlm run --log NAME`` enables.

A logger is plugin code running inside the training loop. One that cannot be built stops
the run before it trains (the user asked for it); one that raises while the run trains is
reported once on stderr, naming its plugin, and turned off, so that a broken logger never
costs a training run. ``SEQLM_RAISE_PLUGIN_ERRORS=1`` raises instead, as for other plugin
failures.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from seqlm.errors import PluginError
from seqlm.interfaces import Callback, RunInfo
from seqlm.plugins.door import rng_kept
from seqlm.plugins.torch_globals import default_dtype, dtype_changed_from

if TYPE_CHECKING:
    from seqlm.interfaces import Trainer
    from seqlm.metrics import EpochMetrics
    from seqlm.plugins.manager import Plugins

#: Where the contract of a logger is written down, for messages about broken ones.
CONTRACT = "docs/plugins/loggers.md"


@dataclass
class NamedLogger:
    """A callback class chosen with ``--log NAME`` and the plugin that registered it."""

    name: str
    cls: type
    plugin: str  # "NAME (DIST VERSION)", as in other plugin messages


def resolve_loggers(names: Iterable[str], plugins: Plugins) -> list[NamedLogger]:
    """The classes registered under ``names`` (each once, in order), checked before training.

    An unknown name is a :class:`~seqlm.errors.UsageError` listing the known ones.
    """
    found = []
    for name in dict.fromkeys(names):
        cls = plugins.get("callback", name)
        provider = plugins.provider("callback", name)  # exactly one, once get() succeeded
        found.append(NamedLogger(name, cls, provider.describe() if provider else name))
    return found


def _stderr(line: str) -> None:
    # A plain write: a live progress table redirects stderr above itself.
    print(line, file=sys.stderr)


def build_loggers(
    loggers: Sequence[NamedLogger], run: RunInfo, warn: Callable[[str], None] = _stderr
) -> list[Callback]:
    """Build each logger as ``cls(run)``, wrapped so that its failures stay its own.

    ``warn`` shows the one line about a logger that fails while the run trains.
    """
    built: list[Callback] = []
    for logger in loggers:
        dtype = default_dtype()
        try:
            callback = logger.cls(run)
        except Exception as exc:  # plugin code may raise anything
            raise PluginError(
                f"logger {logger.name!r} of plugin {logger.plugin} could not start: "
                f"{type(exc).__name__}: {exc} (a logger is built as cls(run); see {CONTRACT})"
            ) from exc
        changed = dtype_changed_from(dtype)
        if changed:
            raise PluginError(f"logger {logger.name!r} of plugin {logger.plugin} could not "
                              f"start: it {changed}; see {CONTRACT}")
        built.append(GuardedLogger(callback, logger, warn))
    return built


def _raise_plugin_errors() -> bool:
    # The same switch as for plugins that fail to load (seqlm.plugins.manager).
    return os.environ.get("SEQLM_RAISE_PLUGIN_ERRORS", "") not in ("", "0")


class GuardedLogger(Callback):
    """Calls a plugin's callback, turning it off with one message if it raises, with the
    random number generators put back as they were after each call."""

    def __init__(
        self, callback: Callback, logger: NamedLogger, warn: Callable[[str], None]
    ) -> None:
        self.callback = callback
        self.logger = logger
        self.warn = warn
        self.off = False

    def _call(self, method: str, *args: object) -> None:
        if self.off:
            return
        dtype = default_dtype()
        cause: BaseException | None = None
        try:
            # A logger that draws random numbers must not change the run it watches.
            with rng_kept():
                getattr(self.callback, method)(*args)
        except Exception as exc:  # plugin code may raise anything
            cause = exc
        # Nor one that changes torch's default dtype: it is put back, and the logger off.
        changed = dtype_changed_from(dtype)
        if cause is None and changed is None:
            return
        self.off = True
        problem = f"{type(cause).__name__}: {cause}" if cause is not None else changed
        message = (f"logger {self.logger.name!r} of plugin {self.logger.plugin} failed in "
                   f"{method}: {problem}")
        if _raise_plugin_errors():
            raise PluginError(message) from cause
        self.warn(f"seqlm: {message}; it is off for the rest of this run (see {CONTRACT})")

    def on_train_start(self, trainer: Trainer) -> None:
        self._call("on_train_start", trainer)

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        self._call("on_epoch_end", trainer, metrics)

    def on_train_end(self, trainer: Trainer, history: Sequence[EpochMetrics]) -> None:
        self._call("on_train_end", trainer, history)

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self._call("on_exception", trainer, error)

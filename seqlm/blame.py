"""Telling a plugin's failure from seqlm's own: whose code raised an error.

An error no one foresaw is seqlm's bug only when seqlm's code raised it. When the
innermost frame of the traceback that belongs to a plugin's component is in that
plugin's package, the plugin is named instead, with its distribution and the contract
its component must keep, so the report goes to the right authors.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass


@dataclass
class Culprit:
    """The plugin component whose code raised an error."""

    kind: str
    name: str
    plugin: str  # NAME (DIST VERSION)


def _package(module: str) -> str:
    return module.partition(".")[0]


def plugin_at_fault(error: BaseException) -> Culprit | None:
    """The third-party component in whose code ``error`` was raised, or None."""
    from seqlm.plugins import KINDS, get_plugins

    plugins = get_plugins()
    packages: dict[str, Culprit] = {}
    for kind in KINDS:
        for name, impls in plugins.implementations(kind).items():
            for impl in impls:
                info = plugins.info.get(impl.plugin)
                if info is None or info.builtin:
                    continue
                module = impl.qualified_name.partition(":")[0]
                packages.setdefault(_package(module), Culprit(kind, name, info.describe()))
    if not packages:
        return None
    # Innermost first: torch called by a plugin is the plugin's call.
    for frame, _ in reversed(list(traceback.walk_tb(error.__traceback__))):
        culprit = packages.get(_package(frame.f_globals.get("__name__", "")))
        if culprit is not None:
            return culprit
    return None

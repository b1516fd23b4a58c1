"""The hooks a seqlm plugin can implement.

Each hook receives a ``register`` callback rather than a registry object, so a hook can
gain keyword arguments later without breaking existing plugins (pluggy lets an
implementation accept fewer arguments than its specification).
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("seqlm")
hookimpl = pluggy.HookimplMarker("seqlm")


@hookspec
def register_tokenizers(register: Any) -> None:
    """Add tokenizers: call ``register(name, cls)`` once for each."""


@hookspec
def register_samplers(register: Any) -> None:
    """Add minibatch samplers: call ``register(name, cls)`` once for each."""


@hookspec
def register_cells(register: Any) -> None:
    """Add recurrent cells: call ``register(name, cls)`` once for each."""


@hookspec
def register_trainers(register: Any) -> None:
    """Add trainers: call ``register(name, cls)`` once for each."""


@hookspec
def register_callbacks(register: Any) -> None:
    """Add training callbacks such as loggers: call ``register(name, cls)`` once for each."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``seqlm`` click group passed as ``cli``."""

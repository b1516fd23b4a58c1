"""The hooks a seqlm plugin can implement.

Each hook receives a ``register`` callback rather than a registry object, so a hook can
gain keyword arguments later without breaking existing plugins (pluggy lets an
implementation accept fewer arguments than its specification).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

hookspec = pluggy.HookspecMarker("seqlm")
hookimpl = pluggy.HookimplMarker("seqlm")

#: What each ``register_*`` hook is given: ``register(name, cls)`` adds one component,
#: the class itself or ``"module:Class"`` (imported only when the component is used).
Register = Callable[[str, type | str], None]


@hookspec
def register_tokenizers(register: Register) -> None:
    """Add tokenizers: call ``register(name, cls)`` once for each."""


@hookspec
def register_samplers(register: Register) -> None:
    """Add minibatch samplers: call ``register(name, cls)`` once for each."""


@hookspec
def register_cells(register: Register) -> None:
    """Add recurrent cells: call ``register(name, cls)`` once for each."""


@hookspec
def register_trainers(register: Register) -> None:
    """Add trainers: call ``register(name, cls)`` once for each."""


@hookspec
def register_callbacks(register: Register) -> None:
    """Add training callbacks such as loggers: call ``register(name, cls)`` once for each."""


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``seqlm`` click group passed as ``cli``."""

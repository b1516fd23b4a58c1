"""Saying whose code failed: an exception raised inside a plugin is the plugin's.

When an exception that is not one of seqlm's own errors escapes, the innermost frame of
its traceback that belongs either to seqlm or to a loaded plugin decides: a plugin's
frame turns it into ``cell 'NAME' from DIST VERSION raised TypeError: ...`` with the link
to the contract; seqlm's frame leaves it to be reported as seqlm's own bug. Frames of
torch and the standard library are passed over, since both are called by either side.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from seqlm.errors import (
    OptionError,
    PluginError,
    SeqlmError,
    is_out_of_memory,
    refuse,
)
from seqlm.plugins.culprit import Culprit, cause_hint
from seqlm.plugins.torch_globals import default_dtype, dtype_changed_from

if TYPE_CHECKING:
    from seqlm.plugins.manager import Plugins


def _frames(tb: TracebackType | None) -> list[Any]:
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    return frames


def find_culprit(
    error: BaseException, plugins: Plugins, command: str | None = None, skip: int = 0,
    prefer: Culprit | None = None,
) -> Culprit | None:
    """The plugin component whose code raised ``error``, or None when seqlm's own code is
    innermost in its traceback (or no plugin code ran).

    Of the plugin frames inside the innermost seqlm frame, the innermost that runs a
    method of a registered class names it; otherwise the innermost plugin frame's module
    does (``prefer``, a component of the same distribution, wins over a guess by
    package). ``command`` is the command being run; ``skip`` leaves out the outermost
    frames.
    """
    plugin_frames = []
    for frame in reversed(_frames(error.__traceback__)[skip:]):
        module = frame.f_globals.get("__name__", "")
        if module.partition(".")[0] == "seqlm":
            break
        if plugins.culprit_for(module, command=command) is not None:
            plugin_frames.append(frame)
    if not plugin_frames:
        return None
    for frame in plugin_frames:
        culprit = plugins.instance_culprit(frame.f_locals.get("self"))
        if culprit is not None:
            return culprit
    module = plugin_frames[0].f_globals.get("__name__", "")
    culprit = plugins.culprit_for(module, command=command)
    if prefer is not None and culprit is not None and culprit.kind != "command" and (
        culprit.distribution == prefer.distribution
    ):
        return prefer
    return culprit


def inherited_blame(error: BaseException, plugins: Plugins, skip: int = 0) -> str | None:
    """The message that puts ``error`` on a plugin's component when seqlm's own code
    raised it inside a method the component inherits from a seqlm class (a
    ``DefaultTrainer`` subclass whose ``make_optimizer`` returned a list, say), or None.

    The innermost seqlm frame whose ``self`` is a registered third-party class decides;
    its overrides of seqlm's methods are named as the likely cause. What the machine
    raised (a closed pipe, a full disk, no memory left) is nobody's code's fault: None.
    """
    if _from_the_machine(error):
        return None
    for frame in reversed(_frames(error.__traceback__)[skip:]):
        if frame.f_globals.get("__name__", "").partition(".")[0] != "seqlm":
            continue
        owner = frame.f_locals.get("self")
        culprit = plugins.instance_culprit(owner)
        if culprit is not None:
            code = frame.f_code
            where = getattr(code, "co_qualname", code.co_name)  # Python 3.10: no qualname
            return culprit.inherited_message(error, where, _overrides(type(owner), plugins))
    return None


def _from_the_machine(error: BaseException) -> bool:
    """Whether ``error`` comes from the machine rather than from code: the system (an
    OSError: a closed pipe, a full disk) or memory running out (torch's own error
    included, whatever its type)."""
    return isinstance(error, OSError) or is_out_of_memory(error)


def _overrides(cls: type, plugins: Plugins) -> list[str]:
    """The methods of seqlm's base classes that the plugin's classes in ``cls``'s MRO
    define again."""
    def ours(klass: type) -> bool:
        return klass.__module__.partition(".")[0] == "seqlm"

    def theirs(klass: type) -> bool:
        return plugins.culprit_for(klass.__module__) is not None

    mine = {name for klass in cls.__mro__ if theirs(klass) for name in vars(klass)}
    base = {name for klass in cls.__mro__ if ours(klass) for name in vars(klass)
            if callable(getattr(klass, name, None)) and not name.startswith("__")}
    return sorted(mine & base)


def sign(error: SeqlmError, culprit: Culprit | None) -> None:
    """Put ``culprit``'s name in front of a seqlm error that its own code raised (a bad
    option value it checks itself, say), once: the message stays the plugin's, its type
    and exit status too, and the user learns which component to read about."""
    if culprit is None or getattr(error, "signed_by", None) is not None:
        return
    error.signed_by = culprit  # type: ignore[attr-defined]
    if isinstance(error, OptionError):  # said from its parts, not from its args
        error.problem = f"{culprit.label}: {error.problem}"
    elif len(error.args) == 1 and isinstance(error.args[0], str):
        error.args = (f"{culprit.label}: {error.args[0]}",)


@contextlib.contextmanager
def calling(kind: str, name: str, plugins: Plugins,
            watch_dtype: bool = True) -> Iterator[None]:
    """Put an exception from a direct call into component ``name`` on its plugin.

    Besides what :func:`find_culprit` finds, an exception raised at the call itself (a
    constructor or method with another signature than the contract's: nothing of
    seqlm ran inside) is the component's. Built-in components are seqlm's own code.

    ``watch_dtype``: a change of torch's default dtype by the call is the component's
    too (put back, and refused). Off for a call that runs others' code as well (a
    trainer's ``fit`` runs the callbacks, the sampler and the cell).
    """
    dtype = default_dtype()
    try:
        yield
    except SeqlmError as error:
        # Raised in the component's own code (not in seqlm's, which it may have called).
        sign(error, find_culprit(error, plugins, skip=2,
                                 prefer=plugins.component_culprit(kind, name)))
        raise
    except (KeyboardInterrupt, GeneratorExit, StopIteration, BrokenPipeError):
        # StopIteration: the end of a sampler's batches, for the caller to judge; a closed
        # output pipe stops the run as Ctrl-C does, whoever was writing.
        raise
    except (Exception, SystemExit) as error:
        # The first two frames are this function's and the caller's ``with`` block.
        called = plugins.component_culprit(kind, name)
        culprit = find_culprit(error, plugins, skip=2, prefer=called)
        inner = _frames(error.__traceback__)[2:]
        exits = isinstance(error, SystemExit)
        seqlm_ran = any(f.f_globals.get("__name__", "").partition(".")[0] == "seqlm"
                        for f in inner)
        if culprit is None and ((cause_hint(error) and not exits) or not seqlm_ran):
            # Nothing of seqlm ran inside; or it did, a base class's method inherited by
            # the component, which found its object without what the base class's
            # __init__ sets: the component skipped that call.
            culprit = called
        if culprit is None:
            # A SystemExit is put on a plugin only where its own frame raised it: code
            # that seqlm's runs around it (a caller's callback) may end the process.
            inherited = None if exits else inherited_blame(error, plugins, skip=2)
            if inherited is None:
                raise
            raise PluginError(inherited) from error
        raise PluginError(culprit.message(error)) from error
    if not watch_dtype:
        return
    changed = dtype_changed_from(dtype)
    called = plugins.component_culprit(kind, name)
    if changed and called is not None:
        raise refuse(called.label, kind, f"it {changed}")


@contextlib.contextmanager
def blaming_plugins(plugins: Plugins) -> Iterator[None]:
    """Turn an exception whose innermost owner is a plugin into a :class:`PluginError`."""
    try:
        yield
    except SeqlmError as error:
        sign(error, find_culprit(error, plugins))
        raise
    except (KeyboardInterrupt, GeneratorExit, BrokenPipeError):
        raise
    except (Exception, SystemExit) as error:
        # SystemExit too: no code of seqlm's ends the process under here, so one raised
        # by a plugin (a stray sys.exit) is its fault, not an exit status of 0.
        culprit = find_culprit(error, plugins)
        if culprit is None:
            exits = isinstance(error, SystemExit)
            inherited = None if exits else inherited_blame(error, plugins)
            if inherited is None:
                raise
            raise PluginError(inherited) from error
        raise PluginError(culprit.message(error)) from error

"""Discovering plugins and collecting what they register.

Each entry point of the ``seqlm`` group is loaded on its own: a plugin that fails to
import, raises inside a hook, implements a hook that does not exist, or registers a class
that does not implement its interface is reported once on stderr and left out, and the
rest keeps working. ``SEQLM_RAISE_PLUGIN_ERRORS=1`` raises instead (for plugin authors);
``SEQLM_LOAD_PLUGINS`` limits loading to a comma-separated list of distributions.

Implementations may be registered as a class or as a ``"module:Class"`` string; strings
are imported only when used, which keeps ``seqlm --help`` free of torch.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from seqlm import hookspecs
from seqlm.errors import PluginError, UsageError

GROUP = "seqlm"
BUILTIN_DISTRIBUTION = "seqlm"

#: Each kind of component, the hook that registers it, and its user-facing option.
KINDS: dict[str, str] = {
    "tokenizer": "register_tokenizers",
    "sampler": "register_samplers",
    "cell": "register_cells",
    "trainer": "register_trainers",
}

# What a registered class must provide, beyond being a class that can be instantiated.
_REQUIRED_METHODS: dict[str, tuple[str, ...]] = {
    "tokenizer": ("tokenize", "detokenize"),
    "sampler": ("__call__",),
    "cell": ("forward", "begin_state"),
    "trainer": ("fit",),
}


@dataclass
class Implementation:
    """One class registered under a user-facing name by one plugin."""

    kind: str
    name: str
    target: type | str
    plugin: str

    def load(self) -> type:
        """Import (if registered lazily), check and return the class."""
        if isinstance(self.target, str):
            module_name, _, qualname = self.target.partition(":")
            try:
                obj: Any = importlib.import_module(module_name)
                for part in qualname.split("."):
                    obj = getattr(obj, part)
            except Exception as exc:  # an import error in plugin code can be anything
                raise PluginError(
                    f"{self.kind} {self.name!r} of plugin {self.plugin} could not be imported "
                    f"from {self.target}: {exc}"
                ) from exc
            problem = interface_problem(self.kind, obj)
            if problem:
                raise PluginError(f"{self.kind} {self.name!r} of plugin {self.plugin}: {problem}")
            self.target = obj
        return self.target

    @property
    def qualified_name(self) -> str:
        """``module:Class`` of the implementation, without importing it."""
        if isinstance(self.target, str):
            return self.target
        return f"{self.target.__module__}:{self.target.__qualname__}"


@dataclass
class PluginInfo:
    """What is known about one loaded (or failed) plugin."""

    name: str
    distribution: str
    version: str
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None

    @property
    def status(self) -> str:
        """``ok`` or the reason the plugin was left out."""
        return "ok" if self.error is None else f"failed: {self.error}"

    def describe(self) -> str:
        """``NAME (DIST VERSION)``, as used in messages."""
        return f"{self.name} ({self.distribution} {self.version})"


def interface_problem(kind: str, cls: Any) -> str | None:
    """Say why ``cls`` cannot serve as a ``kind`` implementation, or return None."""
    if not inspect.isclass(cls):
        return f"expected a class, got {type(cls).__name__} {cls!r}"
    missing = [m for m in _REQUIRED_METHODS[kind] if not callable(getattr(cls, m, None))]
    if missing:
        return f"{cls.__qualname__} does not implement {', '.join(missing)}"
    if inspect.isabstract(cls):
        names = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        return f"{cls.__qualname__} leaves abstract methods unimplemented: {names}"
    if kind == "cell":
        # A cell subclasses torch.nn.Module, so torch is already imported if it is one.
        torch = sys.modules.get("torch")
        if torch is None or not issubclass(cls, torch.nn.Module):
            return f"{cls.__qualname__} is not a torch.nn.Module"
    if kind == "sampler" and not isinstance(getattr(cls, "contiguous", None), bool):
        return f"{cls.__qualname__} has no boolean class attribute 'contiguous'"
    return None


def _raise_errors() -> bool:
    return os.environ.get("SEQLM_RAISE_PLUGIN_ERRORS", "") not in ("", "0")


def _normalise(dist_name: str) -> str:
    return dist_name.lower().replace("_", "-").replace(".", "-")


class Plugins:
    """The plugin manager and the registries of tokenizers, samplers, cells and trainers."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("seqlm")
        self.pm.add_hookspecs(hookspecs)
        self.info: dict[str, PluginInfo] = {}
        self._implementations: dict[str, list[Implementation]] = {}
        self._stderr: Callable[[str], None] = lambda line: print(line, file=sys.stderr)

    # -- loading -------------------------------------------------------------------------

    def load_entry_points(self, allowed: Iterable[str] | None = None) -> None:
        """Load every plugin of the ``seqlm`` entry-point group, each on its own.

        ``allowed`` is a set of distribution names to load besides seqlm itself; None
        loads all of them.
        """
        allowed_set = None if allowed is None else {_normalise(a) for a in allowed}
        seen: set[tuple[str, str]] = set()
        for ep in metadata.entry_points(group=GROUP):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "unknown"
            version = dist.version if dist is not None else "?"
            if (ep.name, dist_name) in seen:  # the same distribution seen twice on sys.path
                continue
            seen.add((ep.name, dist_name))
            builtin = _normalise(dist_name) == BUILTIN_DISTRIBUTION
            if allowed_set is not None and not builtin and _normalise(dist_name) not in allowed_set:
                continue
            name = ep.name if builtin else f"{_normalise(dist_name)}.{ep.name}"
            info = PluginInfo(name=name, distribution=dist_name, version=version)
            try:
                module = ep.load()
            except Exception as exc:  # plugin code may raise anything on import
                self._fail(info, f"import of {ep.value} raised {type(exc).__name__}: {exc}", exc)
                continue
            self.add(module, name, distribution=dist_name, version=version)

    def add(
        self, plugin: Any, name: str, *, distribution: str = "(registered in code)",
        version: str = "",
    ) -> PluginInfo:
        """Register one plugin object (a module or any object with hook functions).

        Tests use this with :meth:`remove` to add a throwaway plugin.
        """
        info = PluginInfo(name=name, distribution=distribution, version=version)
        if name in self.info:
            raise PluginError(f"a plugin named {name!r} is already registered")
        try:
            unknown = [
                attr for attr in dir(plugin)
                if self.pm.parse_hookimpl_opts(plugin, attr) is not None
                and not hasattr(hookspecs, attr)
            ]
            if unknown:
                hooks = ", ".join(sorted(set(KINDS.values()) | {"register_commands"}))
                raise PluginError(
                    f"implements unknown hook {', '.join(unknown)} (known hooks: {hooks})"
                )
            self.pm.register(plugin, name=name)
        except Exception as exc:
            self._fail(info, str(exc) if isinstance(exc, PluginError) else repr(exc), exc)
            return info
        info.hooks = sorted(
            caller.name for caller in self.pm.get_hookcallers(plugin) or ()
        )
        self.info[name] = info
        implementations: list[Implementation] = []
        for kind, hook_name in KINDS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                try:
                    implementations.extend(self._call_register_hook(kind, impl, name))
                except Exception as exc:
                    self.pm.unregister(plugin)
                    del self.info[name]
                    reason = (
                        str(exc) if isinstance(exc, PluginError)
                        else f"{hook_name} raised {type(exc).__name__}: {exc}"
                    )
                    self._fail(info, reason, exc)
                    return info
        self._implementations[name] = implementations
        for impl in implementations:
            info.registered.setdefault(impl.kind, []).append(impl.name)
        return info

    def remove(self, name: str) -> None:
        """Unregister a plugin added with :meth:`add`."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self.info.pop(name, None)
        self._implementations.pop(name, None)

    def _call_register_hook(
        self, kind: str, impl: pluggy.HookImpl, plugin_name: str
    ) -> list[Implementation]:
        found: list[Implementation] = []

        def register(name: str, cls: type | str) -> None:
            if not isinstance(name, str) or not name:
                raise PluginError(f"registered a {kind} with an invalid name {name!r}")
            if not isinstance(cls, str):
                problem = interface_problem(kind, cls)
                if problem:
                    raise PluginError(f"registered {kind} {name!r}, but {problem}")
            elif ":" not in cls:
                raise PluginError(
                    f"registered {kind} {name!r} as {cls!r}; a string must be 'module:Class'"
                )
            found.append(Implementation(kind, name, cls, plugin_name))

        impl.function(**{arg: register for arg in impl.argnames})
        return found

    def _fail(self, info: PluginInfo, reason: str, exc: BaseException) -> None:
        info.error = reason
        self.info[info.name] = info
        if _raise_errors():
            raise PluginError(f"plugin {info.describe()} failed: {reason}") from exc
        self._stderr(f"seqlm: plugin {info.describe()} failed: {reason}")

    def add_commands(self, cli: Any) -> None:
        """Let every plugin add its commands to the click group ``cli``, one by one."""
        for impl in self.pm.hook.register_commands.get_hookimpls():
            try:
                impl.function(**{arg: cli for arg in impl.argnames})
            except Exception as exc:
                info = self.info[impl.plugin_name]
                self._fail(info, f"register_commands raised {type(exc).__name__}: {exc}", exc)

    # -- lookup --------------------------------------------------------------------------

    def implementations(self, kind: str) -> dict[str, list[Implementation]]:
        """Every registered name of ``kind``, with all the plugins that registered it."""
        by_name: dict[str, list[Implementation]] = {}
        for plugin_name, impls in self._implementations.items():
            if self.info[plugin_name].error is not None:
                continue
            for impl in impls:
                if impl.kind == kind:
                    by_name.setdefault(impl.name, []).append(impl)
        return by_name

    def choices(self, kind: str) -> list[str]:
        """The names a user can choose for ``kind``, sorted."""
        return sorted(self.implementations(kind))

    def get(self, kind: str, name: str) -> type:
        """The class registered as ``name`` for ``kind``, with a clear error otherwise."""
        found = self.implementations(kind).get(name)
        if not found:
            choices = ", ".join(self.choices(kind)) or "(none registered)"
            raise UsageError(f"{kind} {name!r} not recognized. Choose one of: {choices}")
        if len(found) > 1:
            owners = " and ".join(f"{self.info[i.plugin].describe()}" for i in found)
            raise UsageError(
                f"{kind} {name!r} is registered by more than one plugin: {owners}. "
                "Uninstall one, or choose which distributions load with SEQLM_LOAD_PLUGINS."
            )
        return found[0].load()

    def conflicts(self) -> dict[tuple[str, str], list[str]]:
        """Names registered by more than one plugin: (kind, name) -> plugin names."""
        return {
            (kind, name): [i.plugin for i in impls]
            for kind in KINDS
            for name, impls in self.implementations(kind).items()
            if len(impls) > 1
        }


_plugins: Plugins | None = None


def get_plugins() -> Plugins:
    """The process-wide :class:`Plugins`, loading entry points on first use."""
    global _plugins
    if _plugins is None:
        plugins = Plugins()
        env = os.environ.get("SEQLM_LOAD_PLUGINS")
        allowed = None if env is None else [p.strip() for p in env.split(",") if p.strip()]
        plugins.load_entry_points(allowed)
        for (kind, name), owners in plugins.conflicts().items():
            plugins._stderr(
                f"seqlm: {kind} {name!r} is registered by plugins {' and '.join(owners)}; "
                "uninstall one or set SEQLM_LOAD_PLUGINS to choose."
            )
        _plugins = plugins
    return _plugins


def reset_plugins() -> None:
    """Forget the loaded plugins so that the next :func:`get_plugins` loads them again."""
    global _plugins
    _plugins = None


def get_component(kind: str, name: str) -> type:
    """Shortcut for ``get_plugins().get(kind, name)``."""
    return get_plugins().get(kind, name)

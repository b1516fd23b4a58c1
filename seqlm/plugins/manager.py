"""Discovering plugins and collecting what they register.

Each entry point of the ``seqlm`` group is loaded on its own: a plugin that fails to
import, raises inside a hook, implements a hook that does not exist, or registers a class
that does not implement its interface is reported once on stderr as
``seqlm: plugin NAME (DIST VERSION) failed: REASON`` and left out, and the rest keeps
working. ``SEQLM_RAISE_PLUGIN_ERRORS=1`` raises instead (for plugin authors);
``SEQLM_LOAD_PLUGINS`` limits loading to a comma-separated list of distributions (set but
empty: the built-ins only).

Implementations may be registered as a class or as a ``"module:Class"`` string; strings
are imported only when used, which keeps ``seqlm --help`` free of torch.

Names follow the same rules for every kind of registration (commands included): a
built-in name cannot be taken over (the plugin's registration of it is refused, its
others stay); a name that two third-party plugins register is an error naming both when
it is used; a plugin whose hook failed registers nothing. ``seqlm plugins`` shows the
refusals.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pluggy

from seqlm import hookspecs
from seqlm.errors import (
    TROUBLESHOOTING,
    OptionError,
    PluginError,
    UsageError,
    contract_link,
    one_line,
)
from seqlm.plugins.culprit import Culprit
from seqlm.plugins.torch_globals import default_dtype, dtype_changed_from

GROUP = "seqlm"
BUILTIN_DISTRIBUTION = "seqlm"

#: seqlm's own plugin modules, registered directly by the plugin manager: a source tree
#: that was never pip-installed (so has no entry points) still has every built-in, and the
#: registry is never empty. Third-party plugins come through entry points.
BUILTIN_PLUGINS = {
    "tokenizers": "seqlm.plugins.builtin.tokenizers",
    "samplers": "seqlm.plugins.builtin.samplers",
    "cells": "seqlm.plugins.builtin.cells",
    "trainers": "seqlm.plugins.builtin.trainers",
}

#: Each kind of component and the hook that registers it.
KINDS: dict[str, str] = {
    "tokenizer": "register_tokenizers",
    "sampler": "register_samplers",
    "cell": "register_cells",
    "trainer": "register_trainers",
    "callback": "register_callbacks",
}

#: The ``seqlm run`` option that chooses a kind, where it is not ``--KIND``.
FLAGS: dict[str, str] = {"callback": "--log"}

#: Every hook a plugin may implement, in the order of :mod:`seqlm.hookspecs`.
HOOKS: tuple[str, ...] = tuple(
    name for name, obj in vars(hookspecs).items() if hasattr(obj, f"{GROUP}_spec")
)

#: The class of :mod:`seqlm.interfaces` that each kind must subclass.
INTERFACES: dict[str, str] = {
    "tokenizer": "Tokenizer",
    "sampler": "Sampler",
    "cell": "RecurrentCell",
    "trainer": "Trainer",
    "callback": "Callback",
}

_DIST_INFO = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)\.(dist|egg)-info$")


@dataclass
class Implementation:
    """One class registered under a user-facing name by one plugin."""

    kind: str
    name: str
    target: type | str
    plugin: str
    error: str | None = None

    def load(self) -> type:
        """Import (if registered lazily), check and return the class.

        Raises :class:`PluginError` with the reason when the class cannot be imported or
        does not implement its interface; the reason is kept in :attr:`error`.
        """
        if self.error is not None:
            raise PluginError(self.error)
        if isinstance(self.target, str):
            module_name, _, qualname = self.target.partition(":")
            try:
                obj: Any = importlib.import_module(module_name)
                for part in qualname.split("."):
                    obj = getattr(obj, part)
            except Exception as exc:  # an import error in plugin code can be anything
                self.error = (f"{self.kind} {self.name!r} could not be imported from "
                              f"{self.target}: {type(exc).__name__}: {exc}; see "
                              f"{TROUBLESHOOTING}")
                raise PluginError(self.error) from exc
            problem = interface_problem(self.kind, obj)
            if problem:
                self.error = (f"{self.kind} {self.name!r} ({self.target}): {problem}; see "
                              f"{contract_link(self.kind)}")
                raise PluginError(self.error)
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
    #: Registrations refused by the name rules, each as one sentence.
    refused: list[str] = field(default_factory=list)
    #: The module (or object) the plugin's hooks live in.
    module: str = ""

    @property
    def status(self) -> str:
        """``ok`` or the reason the plugin was left out."""
        return "ok" if self.error is None else f"failed: {self.error}"

    @property
    def builtin(self) -> bool:
        """Whether the plugin ships with seqlm itself."""
        return _normalise(self.distribution) == BUILTIN_DISTRIBUTION

    def describe(self) -> str:
        """``NAME (DIST VERSION)``, as used in messages."""
        origin = " ".join(filter(None, (self.distribution, self.version)))
        return f"{self.name} ({origin or 'registered in code'})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as ``seqlm plugins --json`` prints it."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": list(self.hooks),
            "registered": {kind: list(names) for kind, names in self.registered.items()},
            "refused": list(self.refused),
            "status": self.status,
        }


def interface_problem(kind: str, cls: Any) -> str | None:
    """Say why ``cls`` cannot serve as a ``kind`` implementation, or return None."""
    if not inspect.isclass(cls):
        return f"expected a class, got {type(cls).__name__} {cls!r}"
    # A subclass of the interface has already imported seqlm.interfaces (and torch);
    # looking it up in sys.modules keeps torch off the start-up path otherwise.
    module = "seqlm.interfaces"
    base = getattr(sys.modules.get(module), INTERFACES[kind], None)
    if base is None or not issubclass(cls, base):
        return f"{cls.__qualname__} does not subclass {module}.{INTERFACES[kind]}"
    if inspect.isabstract(cls):
        names = ", ".join(sorted(getattr(cls, "__abstractmethods__", ())))
        return f"{cls.__qualname__} leaves abstract methods unimplemented: {names}"
    if kind == "sampler" and not isinstance(getattr(cls, "contiguous", None), bool):
        return f"{cls.__qualname__} has no boolean class attribute 'contiguous'"
    return None


def check_options(
    kind: str, name: str, cls: type, options: Mapping[str, Any], fixed: Iterable[str] = (),
    flags: Mapping[str, str] | None = None, origin: str = "",
) -> None:
    """Raise :class:`UsageError` if ``cls``'s constructor does not take every option.

    ``fixed`` are the arguments the framework passes itself (left out of the list of
    options shown to the user); ``flags`` names the command-line flag that sets an
    option, for options that have one of their own (such as ``--bidirectional``);
    ``origin`` (`` from DIST VERSION``) follows the component's name in the message.
    """
    params = inspect.signature(cls).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    unknown = [key for key in options if key not in params]
    if unknown:
        skip = {"self", *fixed, *(flags or {})}  # options with a flag of their own too
        known = [k for k, p in params.items()
                 if k not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        what = (flags or {}).get(unknown[0], f"option {unknown[0]!r}")
        raise OptionError(kind, unknown[0], options[unknown[0]],
                          f"{kind} {name!r}{origin} does not accept {what}; its options: "
                          f"{', '.join(known) or '(none)'}", flagged=False)


def _misnamed_arguments(plugin: Any, hooks: Iterable[str]) -> str | None:
    """Say which hook takes an argument its specification does not pass, or None."""
    for hook in hooks:
        try:
            wanted = list(inspect.signature(getattr(hookspecs, hook)).parameters)
            taken = list(inspect.signature(getattr(plugin, hook)).parameters)
        except (TypeError, ValueError):  # not introspectable: pluggy will judge it
            continue
        extra = [arg for arg in taken if arg not in wanted and arg != "self"]
        if extra:
            return (f"hook {hook}({', '.join(taken)}) takes "
                    f"{', '.join(repr(a) for a in extra)}, which seqlm does not pass; write "
                    f"{hook}({', '.join(wanted)})")
    return None


def _raise_errors() -> bool:
    return os.environ.get("SEQLM_RAISE_PLUGIN_ERRORS", "") not in ("", "0")


def _normalise(dist_name: str) -> str:
    return re.sub(r"[-_.]+", "-", dist_name).lower()


def _identify(ep: metadata.EntryPoint) -> tuple[str, str]:
    """The distribution name and version of an entry point, even with bare metadata."""
    dist = getattr(ep, "dist", None)
    name = version = None
    with contextlib.suppress(Exception):  # unreadable metadata: fall back to the folder name
        name, version = dist.metadata["Name"], dist.version
    if dist is not None and not name:  # a dist-info folder without METADATA: use its name
        match = _DIST_INFO.match(Path(str(getattr(dist, "_path", ""))).name)
        if match:
            name, version = match["name"], version or match["version"]
    return name or "unknown", version or "?"


class Plugins:
    """The plugin manager and the registries of tokenizers, samplers, cells, trainers and
    callbacks."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        #: Every plugin tried, by its unique key (``DIST:NAME`` for entry points).
        self.info: dict[str, PluginInfo] = {}
        self._implementations: dict[str, list[Implementation]] = {}
        self._stderr: Callable[[str], None] = lambda line: print(line, file=sys.stderr)
        #: Whether :meth:`add_commands` has run, so that commands are known.
        self.commands_added = False

    # -- loading -------------------------------------------------------------------------

    def load_entry_points(self, allowed: Iterable[str] | None = None) -> None:
        """Load every plugin of the ``seqlm`` entry-point group, each on its own.

        ``allowed`` is a set of distribution names to load besides seqlm itself; None
        loads all of them.
        """
        self.add_builtins()
        allowed_set = None if allowed is None else {_normalise(a) for a in allowed}
        found: set[str] = set()
        for ep in metadata.entry_points(group=GROUP):
            dist_name, version = _identify(ep)
            key = f"{_normalise(dist_name)}:{ep.name}"
            if key in self.info:  # the same distribution seen twice on sys.path
                continue
            found.add(_normalise(dist_name))
            if _normalise(dist_name) == BUILTIN_DISTRIBUTION:
                continue  # an older install's entry points: the built-ins are added above
            if allowed_set is not None and _normalise(dist_name) not in allowed_set:
                continue
            info = PluginInfo(name=ep.name, distribution=dist_name, version=version)
            dtype = default_dtype()
            try:
                module = ep.load()
            except (Exception, SystemExit) as exc:  # plugin code may raise anything
                self._fail(key, info, f"import of {ep.value} raised {type(exc).__name__}: {exc}",
                           exc)
                continue
            changed = dtype_changed_from(dtype)
            if changed:
                self._fail(key, info, f"import of {ep.value} {changed}")
                continue
            self.add(module, key, distribution=dist_name, version=version, display=ep.name)
        missing = sorted((allowed_set or set()) - found - {BUILTIN_DISTRIBUTION})
        if missing:
            self._stderr(
                f"seqlm: SEQLM_LOAD_PLUGINS names {', '.join(missing)}, which "
                f"{'provides' if len(missing) == 1 else 'provide'} no seqlm plugin; installed: "
                f"{', '.join(sorted(found - {BUILTIN_DISTRIBUTION})) or 'none'}"
            )

    def add_builtins(self) -> None:
        """Register seqlm's own plugin modules (once), without looking at entry points."""
        from seqlm.version import __version__

        for name, module in BUILTIN_PLUGINS.items():
            key = f"{BUILTIN_DISTRIBUTION}:{name}"
            if key not in self.info:
                self.add(importlib.import_module(module), key,
                         distribution=BUILTIN_DISTRIBUTION, version=__version__, display=name)

    def add(
        self, plugin: Any, name: str, *, distribution: str = "",
        version: str = "", display: str | None = None,
    ) -> PluginInfo:
        """Register one plugin object (a module or any object with hook functions).

        ``name`` must be unique; ``display`` is the name shown to users (default
        ``name``). A plugin that fails is reported and left out, and the returned info
        carries the reason (``error``); a built-in name it registers is refused, and said
        in ``refused``. Either way the name stays taken until :meth:`remove`. Tests use this
        with :meth:`remove` to add a throwaway plugin.
        """
        if name in self.info:
            earlier = self.info[name]
            failed = f" (and failed: {earlier.error})" if earlier.error else ""
            raise PluginError(f"a plugin named {name!r} is already registered{failed}; "
                              f"remove({name!r}) first, or give another name")
        info = PluginInfo(name=display or name, distribution=distribution, version=version,
                          module=getattr(plugin, "__name__", type(plugin).__module__))
        try:
            hooks = [attr for attr in dir(plugin) if self.pm.parse_hookimpl_opts(plugin, attr)]
        except Exception as exc:  # an attribute of the plugin object raised when read
            return self._fail(name, info, f"cannot be inspected: {type(exc).__name__}: {exc}",
                              exc)
        unknown = [hook for hook in hooks if hook not in HOOKS]
        if unknown:
            return self._fail(name, info, f"implements unknown hook {', '.join(unknown)} "
                              f"(known hooks: {', '.join(HOOKS)})")
        if not hooks:
            return self._fail(name, info, "implements no seqlm hook; mark each hook function "
                              "with @seqlm.hookimpl")
        misnamed = _misnamed_arguments(plugin, hooks)
        if misnamed:
            return self._fail(name, info, misnamed)
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # pluggy's other validation
            return self._fail(name, info, one_line(str(exc)), exc)
        info.hooks = sorted(hooks)
        implementations: list[Implementation] = []
        for kind, hook_name in KINDS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.plugin is not plugin:
                    continue
                try:
                    implementations.extend(self._call_register_hook(kind, impl, name))
                except (Exception, SystemExit) as exc:
                    self.pm.unregister(plugin)
                    reason = (str(exc) if isinstance(exc, PluginError)
                              else f"{hook_name} raised {type(exc).__name__}: {exc}")
                    return self._fail(name, info, reason, exc)
        self.info[name] = info
        self._implementations[name] = implementations
        for impl in implementations:
            info.registered.setdefault(impl.kind, []).append(impl.name)
        self._apply_builtin_names()
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
            if not isinstance(name, str) or not name or name != name.strip() or " " in name:
                raise PluginError(f"registered a {kind} with an invalid name {name!r}; "
                                  "use a word such as 'my-cell'")
            if any(f.name == name for f in found):
                raise PluginError(f"registered {kind} {name!r} twice")
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

    def _fail(
        self, key: str, info: PluginInfo, reason: str, exc: BaseException | None = None
    ) -> PluginInfo:
        info.error = reason
        info.registered = {}  # a plugin whose hook failed registers nothing
        self.info[key] = info
        self._implementations.pop(key, None)
        message = f"plugin {info.describe()} failed: {reason}; see {TROUBLESHOOTING}"
        if _raise_errors():
            raise PluginError(message) from exc
        self._stderr(f"seqlm: {message}")
        return info

    def add_commands(self, cli: Any, builtin: Iterable[str] | None = None) -> None:
        """Let every plugin add its commands to the click group ``cli``, one by one.

        A plugin whose hook raises is reported and left out, commands and components. A
        command named like a built-in one is refused; two plugins' commands of the same
        name are both refused, and using that name is an error naming both. ``builtin``
        names seqlm's own commands (default: those ``cli`` has now).
        """
        self.commands_added = True
        builtin = set(cli.commands if builtin is None else builtin)
        owners: dict[str, str] = {}
        for impl in self.pm.hook.register_commands.get_hookimpls():
            key = impl.plugin_name
            info = self.info[key]
            before = dict(cli.commands)
            try:
                impl.function(**{arg: cli for arg in impl.argnames})
            except (Exception, SystemExit) as exc:
                cli.commands.clear()
                cli.commands.update(before)
                self.pm.unregister(impl.plugin)
                self._fail(key, info, f"register_commands raised {type(exc).__name__}: {exc}",
                           exc)
                continue
            added = {n: c for n, c in cli.commands.items() if before.get(n) is not c}
            cli.commands.clear()
            cli.commands.update(before)
            for name, command in added.items():
                if name in builtin:
                    info.refused.append(f"command {name!r} refused: seqlm {name} is built in")
                elif name in owners:
                    other = self.info[owners[name]]
                    if name in other.registered.get("command", []):
                        other.registered["command"].remove(name)
                        if not other.registered["command"]:
                            del other.registered["command"]
                    for one, two in ((info, other), (other, info)):
                        one.refused.append(f"command {name!r} refused: {two.describe()} adds "
                                           "one of the same name")
                    cli.commands[name] = _conflicting_command(
                        name, self._conflict_message("command", name, [other, info]))
                else:
                    cli.commands[name] = command
                    owners[name] = key
                    info.registered.setdefault("command", []).append(name)

    # -- lookup --------------------------------------------------------------------------

    def implementations(self, kind: str) -> dict[str, list[Implementation]]:
        """Every registered name of ``kind``, with all the plugins that registered it."""
        by_name: dict[str, list[Implementation]] = {}
        builtin = self._builtin_names(kind)
        for plugin_name, impls in self._implementations.items():
            info = self.info[plugin_name]
            if info.error is not None:
                continue
            for impl in impls:
                if impl.kind == kind and (info.builtin or impl.name not in builtin):
                    by_name.setdefault(impl.name, []).append(impl)
        return by_name

    def _builtin_names(self, kind: str) -> set[str]:
        return {impl.name for key, impls in self._implementations.items()
                if self.info[key].builtin and self.info[key].error is None
                for impl in impls if impl.kind == kind}

    def _apply_builtin_names(self) -> None:
        """Note, on each third-party plugin, the built-in names it tried to take."""
        kinds = {impl.kind for impls in self._implementations.values() for impl in impls}
        builtin = {kind: self._builtin_names(kind) for kind in kinds}
        for key, impls in self._implementations.items():
            info = self.info[key]
            if info.builtin:
                continue
            for impl in impls:
                note = f"{impl.kind} {impl.name!r} refused: the name is built in"
                if impl.name in builtin[impl.kind] and note not in info.refused:
                    info.refused.append(note)
                    info.registered[impl.kind].remove(impl.name)
                    if not info.registered[impl.kind]:
                        del info.registered[impl.kind]

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in KINDS:
            raise UsageError(f"no kind of component is called {kind!r}; the kinds are "
                             f"{', '.join(KINDS)}")

    def choices(self, kind: str) -> list[str]:
        """The names a user can choose for ``kind``, sorted; an unknown kind is an error,
        as for :meth:`get`, not an empty list."""
        self._check_kind(kind)
        return sorted(self.implementations(kind))

    def get(self, kind: str, name: str) -> type:
        """The class registered as ``name`` for ``kind``, with a clear error otherwise."""
        self._check_kind(kind)
        found = self.implementations(kind).get(name)
        if not found:
            names = self.choices(kind)
            close = difflib.get_close_matches(str(name).lower(), names, n=1, cutoff=0.75)
            guess = f"; did you mean {close[0]!r}?" if close else "."
            raise UsageError(f"{FLAGS.get(kind, '--' + kind)} {name!r} not recognized{guess} "
                             f"Choose one of: {', '.join(names) or '(none registered)'} "
                             f"(seqlm list {kind}s describes them)")
        if len(found) > 1:
            raise UsageError(self._conflict_message(kind, name, found))
        impl = found[0]
        try:
            with plugin_prints_to_stderr():  # as at loading: see get_plugins
                return impl.load()
        except PluginError as exc:
            raise PluginError(f"plugin {self.info[impl.plugin].describe()} failed: {exc}") from exc

    def provider(self, kind: str, name: str) -> PluginInfo | None:
        """The plugin that provides ``name`` for ``kind``, if exactly one does."""
        found = self.implementations(kind).get(name) or []
        return self.info[found[0].plugin] if len(found) == 1 else None

    def component_culprit(self, kind: str, name: str) -> Culprit | None:
        """``name`` of ``kind`` as a :class:`~seqlm.plugins.culprit.Culprit`, if a third party's."""
        info = self.provider(kind, name)
        if info is None or info.builtin:
            return None
        return Culprit(kind, name, info.distribution, info.version)

    def _third_party(self) -> list[tuple[PluginInfo, list[Implementation]]]:
        return [(self.info[key], impls) for key, impls in self._implementations.items()
                if not self.info[key].builtin and self.info[key].error is None]

    def instance_culprit(self, instance: Any) -> Culprit | None:
        """The third-party component whose registered class ``instance`` belongs to."""
        if instance is None:
            return None
        for info, impls in self._third_party():
            for impl in impls:
                if inspect.isclass(impl.target) and isinstance(instance, impl.target):
                    return Culprit(impl.kind, impl.name, info.distribution, info.version)
        return None

    def culprit_for(self, module: str, command: str | None = None) -> Culprit | None:
        """The third-party component whose code lives in ``module``, or None.

        Tried in order: the ``command`` being run when its plugin owns ``module``'s
        package, a class defined in ``module``, a class of the same package, and last
        the plugin itself.
        """
        top = module.partition(".")[0]
        third_party = self._third_party()

        def package(info: PluginInfo) -> str:
            return info.module.partition(".")[0]

        if command is not None:
            for info, _ in third_party:
                if command in info.registered.get("command", []) and package(info) == top:
                    return Culprit("command", command, info.distribution, info.version)
        same_package = None
        for info, impls in third_party:
            for impl in impls:
                where = (impl.target.__module__ if inspect.isclass(impl.target)
                         else str(impl.target).partition(":")[0])
                if where == module:
                    return Culprit(impl.kind, impl.name, info.distribution, info.version)
                if where.partition(".")[0] == top and same_package is None:
                    same_package = Culprit(impl.kind, impl.name, info.distribution,
                                           info.version)
        if same_package is not None:
            return same_package
        for info, _ in third_party:
            if package(info) == top:
                return Culprit("plugin", info.name, info.distribution, info.version)
        return None

    def origin(self, kind: str, name: str) -> str:
        """`` from DIST VERSION`` for a component a third-party plugin provides, else ""."""
        found = self.implementations(kind).get(name) or []
        if len(found) != 1:
            return ""
        info = self.info[found[0].plugin]
        if info.builtin:
            return ""
        origin = " ".join(filter(None, (info.distribution, info.version)))
        return f" from {origin}" if origin else f" from plugin {info.name!r} (registered in code)"

    def _conflict_message(
        self, kind: str, name: str, impls: list[Implementation] | list[PluginInfo]
    ) -> str:
        owners = sorted((i if isinstance(i, PluginInfo) else self.info[i.plugin] for i in impls),
                        key=lambda info: (not info.builtin, info.describe()))
        others = sorted({o.distribution for o in owners if not o.builtin})
        return (
            f"{kind} {name!r} is registered by more than one plugin: "
            f"{' and '.join(o.describe() for o in owners)}. Disable one: uninstall it "
            f"(pip uninstall {others[-1] if others else 'DIST'}) or set SEQLM_LOAD_PLUGINS "
            "to the distributions to load, leaving it out"
        )

    def report_conflicts(self) -> None:
        """Print one line on stderr for each name registered by more than one plugin.

        seqlm itself says so only when such a name is used (:meth:`get`); this is for
        tools that want every conflict at once.
        """
        for kind in KINDS:
            for name, impls in sorted(self.implementations(kind).items()):
                if len(impls) > 1:
                    self._stderr(f"seqlm: {self._conflict_message(kind, name, impls)}")


def _conflicting_command(name: str, message: str) -> Any:
    """A stand-in for a command two plugins added: using it says so."""
    import click

    def refuse(args: tuple[str, ...]) -> None:
        raise UsageError(message)

    return click.Command(
        name, callback=refuse, help="Refused: two plugins add this command.",
        params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


_plugins: Plugins | None = None


@contextlib.contextmanager
def plugin_prints_to_stderr() -> Iterator[None]:
    """What plugin code prints goes to stderr within the block (loading it, a command
    computing with it): stdout holds only seqlm's results, the JSON a program reads or
    the text generated. (It swaps ``sys.stdout`` for the process, as printing needs.)"""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def get_plugins() -> Plugins:
    """The process-wide :class:`Plugins`, loading entry points on first use."""
    global _plugins
    if _plugins is None:
        plugins = Plugins()
        env = os.environ.get("SEQLM_LOAD_PLUGINS")
        allowed = None if env is None else [p.strip() for p in env.split(",") if p.strip()]
        # What a plugin prints as it loads goes to stderr: on stdout it would land inside
        # seqlm's own output (--json that a program reads, a generated text).
        with plugin_prints_to_stderr():
            plugins.load_entry_points(allowed)
        _plugins = plugins
    return _plugins


def reset_plugins() -> None:
    """Forget the loaded plugins so that the next :func:`get_plugins` loads them again."""
    global _plugins
    _plugins = None

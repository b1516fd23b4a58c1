"""Where each component of a run came from: recorded in its checkpoints, checked when the
run is resumed, generated from or evaluated.

A run records, for its tokenizer, sampler, cell and trainer, the distribution and version
that provided it. Without that distribution the error says which package to install; a
different installed version, or another distribution under the same name, gives a
warning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any

from seqlm.errors import UsageError

if TYPE_CHECKING:
    from seqlm.plugins.manager import Plugins


class PluginMissingError(UsageError):
    """A saved run's component whose plugin is not installed (or not loaded) now; the
    message says what to install."""


def record(plugins: Plugins, names: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """``{kind: {"name", "distribution", "version"}}`` for the components ``names`` gives."""
    recorded = {}
    for kind, name in names.items():
        info = plugins.provider(kind, name)
        recorded[kind] = {"name": name,
                          "distribution": info.distribution if info else "",
                          "version": info.version if info else ""}
    return recorded


def resolve(
    plugins: Plugins,
    kind: str,
    name: str,
    recorded: Mapping[str, Any] | None,
    warn: Callable[[str], None] | None = None,
) -> type:
    """The class for ``name``, knowing what provided it when the run was trained.

    ``recorded`` is the run's entry for ``kind`` (see :func:`record`); None for runs
    saved before seqlm recorded it.
    """
    entry = recorded if isinstance(recorded, Mapping) else {}
    dist = str(entry.get("distribution") or "")
    version = str(entry.get("version") or "")
    try:
        cls = plugins.get(kind, name)
    except UsageError as error:
        if not dist or "not recognized" not in str(error):
            raise
        raise PluginMissingError(_missing(kind, name, dist, version)) from None
    change = plugin_change(plugins, kind, entry)
    if warn is not None and change:
        warn(f"warning: {change}")
    return cls


def resolve_all(
    plugins: Plugins,
    names: Mapping[str, str],
    recorded: Mapping[str, Any],
    warn: Callable[[str], None] | None = None,
) -> dict[str, type]:
    """:func:`resolve` for each ``{kind: name}``, the run's ``recorded`` entries beside:
    components whose plugins are gone are named together, each with what to install, so
    that a run made with two plugins is not refused one missing package at a time."""
    found: dict[str, type] = {}
    missing: list[str] = []
    for kind, name in names.items():
        try:
            found[kind] = resolve(plugins, kind, name, recorded.get(kind), warn)
        except PluginMissingError as error:
            missing.append(str(error))
    if missing:
        raise UsageError("; and ".join(missing))
    return found


def plugin_change(plugins: Plugins, kind: str, recorded: Mapping[str, Any] | None) -> str | None:
    """How what provides ``kind`` now differs from what the run was trained with (another
    version, or another distribution), with what to do; None where nothing changed or
    the run recorded nothing. ``recorded`` is the run's entry for ``kind``."""
    entry = recorded if isinstance(recorded, Mapping) else {}
    name = str(entry.get("name") or "")
    dist = str(entry.get("distribution") or "")
    version = str(entry.get("version") or "")
    info = plugins.provider(kind, name) if name else None
    # seqlm's own components change with seqlm, whose version the run records apart.
    if not dist or info is None or _normalise(dist) == "seqlm":
        return None
    if _normalise(info.distribution) != _normalise(dist):
        return (f"{kind} {name!r} was trained from {dist} {version}, but "
                f"{info.distribution} {info.version} provides it now")
    if version and info.version != version:
        return (f"{kind} {name!r} was trained with {dist} {version}; {info.version} is "
                f"installed (pip install {dist}=={version} for the same)")
    return None


def _missing(kind: str, name: str, dist: str, version: str) -> str:
    """What to do about a component whose distribution provides it no more."""
    made_by = f"{kind} {name!r} came from {' '.join(filter(None, (dist, version)))}"
    if _normalise(dist) == "seqlm":
        if version == metadata.version("seqlm"):
            # This very seqlm wrote it, and never a name it lacks.
            return (f"{made_by}, which does not have it: the checkpoint was edited or "
                    "damaged; use another checkpoint (best/last) or train again")
        return (f"{made_by}, which this seqlm does not have: pip install seqlm=={version} "
                "to use the run")
    try:
        installed = metadata.version(dist)
    except metadata.PackageNotFoundError:
        return f"{made_by}: pip install {dist}"
    return (f"{made_by}; {dist} {installed} is installed but its plugin is not loaded "
            "(SEQLM_LOAD_PLUGINS leaves it out, or it failed to load): see seqlm plugins")


def _normalise(name: str) -> str:
    return name.replace("_", "-").replace(".", "-").lower()

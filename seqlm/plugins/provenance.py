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
        raise UsageError(_missing(kind, name, dist, version)) from None
    info = plugins.provider(kind, name)
    # seqlm's own components change with seqlm, whose version the run records apart.
    if warn is not None and dist and info is not None and _normalise(dist) != "seqlm":
        if _normalise(info.distribution) != _normalise(dist):
            warn(f"warning: {kind} {name!r} was trained from {dist} {version}, but "
                 f"{info.distribution} {info.version} provides it now")
        elif version and info.version != version:
            warn(f"warning: {kind} {name!r} was trained with {dist} {version}; "
                 f"{info.version} is installed (pip install {dist}=={version} for the same)")
    return cls


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

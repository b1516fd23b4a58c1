"""Plugins: the manager that finds and registers them (:mod:`seqlm.plugins.manager`), the
built-in ones, the checks at the door, and blame when plugin code fails.

``from seqlm.plugins import get_plugins`` is the registry of every component.
"""

from seqlm.plugins.manager import (
    BUILTIN_PLUGINS,
    Implementation,
    PluginInfo,
    Plugins,
    check_options,
    get_plugins,
    reset_plugins,
)

__all__ = ["BUILTIN_PLUGINS", "Implementation", "PluginInfo", "Plugins", "check_options",
           "get_plugins", "reset_plugins"]

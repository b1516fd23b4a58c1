"""seqlm's own plugins: ordinary plugin modules with the same hooks a third party
implements, which the plugin manager registers directly (``BUILTIN_PLUGINS`` in
:mod:`seqlm.plugins.manager`) rather than through entry points.

Each module registers its classes as ``"module:Class"`` strings so that loading the
plugins does not import torch.
"""

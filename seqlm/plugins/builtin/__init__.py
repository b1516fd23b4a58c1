"""seqlm's own plugins, registered through the ``seqlm`` entry-point group like any other.

Each module registers its classes as ``"module:Class"`` strings so that loading the
plugins does not import torch.
"""

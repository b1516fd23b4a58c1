"""seqlm-tensorboard: watch seqlm runs in TensorBoard (``seqlm run --log tensorboard``)."""

__version__ = "0.1.0"

"""The hook that registers the ``tensorboard`` logger with seqlm."""

import seqlm


@seqlm.hookimpl
def register_callbacks(register):
    # A string: TensorBoard (and torch) load only when a run enables the logger.
    register("tensorboard", "seqlm_tensorboard.logger:TensorBoardLogger")

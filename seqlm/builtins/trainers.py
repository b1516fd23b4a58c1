"""Built-in trainer: ``default``."""

from seqlm.hookspecs import hookimpl


@hookimpl
def register_trainers(register):
    register("default", "seqlm.training:DefaultTrainer")

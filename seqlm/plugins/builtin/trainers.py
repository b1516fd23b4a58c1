"""Built-in trainers: ``default`` and ``ddp`` (data-parallel, started by torchrun)."""

from seqlm.hookspecs import hookimpl


@hookimpl
def register_trainers(register):
    register("default", "seqlm.training.trainer:DefaultTrainer")
    register("ddp", "seqlm.training.ddp:DDPTrainer")

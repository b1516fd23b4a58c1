"""Built-in samplers: ``random`` and ``sequential``."""

from seqlm.hookspecs import hookimpl


@hookimpl
def register_samplers(register):
    register("random", "seqlm.samplers:RandomSampler")
    register("sequential", "seqlm.samplers:SequentialSampler")

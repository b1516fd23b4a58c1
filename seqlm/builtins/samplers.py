"""Built-in samplers: ``random``, ``sequential`` and ``variable``."""

from seqlm.hookspecs import hookimpl


@hookimpl
def register_samplers(register):
    register("random", "seqlm.samplers:RandomSampler")
    register("sequential", "seqlm.samplers:SequentialSampler")
    register("variable", "seqlm.samplers:VariableLengthSampler")

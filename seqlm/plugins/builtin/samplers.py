"""Built-in samplers: ``random``, ``sequential`` and ``variable``."""

from seqlm.hookspecs import hookimpl


@hookimpl
def register_samplers(register):
    register("random", "seqlm.data.samplers:RandomSampler")
    register("sequential", "seqlm.data.samplers:SequentialSampler")
    register("variable", "seqlm.data.samplers:VariableLengthSampler")

"""Built-in tokenizers: ``char`` and ``word``."""

from seqlm.hookspecs import hookimpl


@hookimpl
def register_tokenizers(register):
    register("char", "seqlm.tokenizers:CharTokenizer")
    register("word", "seqlm.tokenizers:WordTokenizer")

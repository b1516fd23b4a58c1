"""Built-in tokenizers: ``char`` and ``word``."""

from seqlm.hookspecs import hookimpl


@hookimpl
def register_tokenizers(register):
    register("char", "seqlm.data.tokenizers:CharTokenizer")
    register("word", "seqlm.data.tokenizers:WordTokenizer")

"""The hook functions seqlm finds through this package's ``seqlm`` entry point."""

from seqlm import hookimpl


@hookimpl
def register_tokenizers(register):
    """Register ``bpe``; as a ``"module:Class"`` string, imported only when chosen."""
    register("bpe", "seqlm_bpe.tokenizer:BPETokenizer")

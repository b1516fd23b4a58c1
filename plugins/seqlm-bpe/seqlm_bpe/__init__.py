"""seqlm-bpe: a byte-pair-encoding subword tokenizer for seqlm (``--tokenizer bpe``)."""

__version__ = "0.1.0"

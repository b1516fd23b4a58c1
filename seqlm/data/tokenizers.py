"""Built-in tokenizers: characters and whitespace-separated words."""

from __future__ import annotations

from collections.abc import Sequence

from seqlm.interfaces import Tokenizer


class CharTokenizer(Tokenizer):
    """One token per character (the seed's choice for its language model)."""

    separator = ""

    def tokenize(self, lines: Sequence[str]) -> list[list[str]]:
        """Split each line into its characters."""
        return [list(line) for line in lines]


class WordTokenizer(Tokenizer):
    """One token per whitespace-separated word; generated words are joined by spaces."""

    separator = " "

    def tokenize(self, lines: Sequence[str]) -> list[list[str]]:
        """Split each line on whitespace."""
        return [line.split() for line in lines]

"""``BPETokenizer``: byte-pair-encoding subwords learned from the training text."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from seqlm.errors import DataError, UsageError
from seqlm.interfaces import Tokenizer

#: Stands for a byte never seen in training; the same string as seqlm's own ``<unk>``.
UNK = "<unk>"


class BPETokenizer(Tokenizer):
    """Byte-pair-encoding subwords learned from the training text (Hugging Face tokenizers).

    Byte-level, as GPT-2's: any text, in any script, splits into known units, and a word
    keeps its leading space (shown as ``Ġ``), so :meth:`detokenize` gives back the text.

    seqlm's ``--clean letters`` strips each line and joins lines with nothing between
    them; this tokenizer puts a space at the start of a line that neither begins with
    whitespace nor follows a line ending in it, so words on either side of a line break
    stay apart. With ``--clean none`` lines keep their line endings and nothing is added.
    """

    def __init__(self, vocab_size: int = 1000, min_frequency: int = 2) -> None:
        for name, value in (("vocab_size", vocab_size), ("min_frequency", min_frequency)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"--tokenizer-opt {name} must be a whole number of at least "
                                 f"1, got {value!r}")
        self.vocab_size = vocab_size
        self.min_frequency = min_frequency
        self._bpe: HFTokenizer | None = None

    def fit(self, lines: Sequence[str]) -> None:
        """Learn up to ``vocab_size`` units from the training lines.

        The units are the bytes that occur in the text, then merges of them; a byte the
        training text lacks reads as ``<unk>`` later.
        """
        bpe = HFTokenizer(models.BPE(unk_token=UNK))
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        bpe.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=self.vocab_size,
            min_frequency=self.min_frequency,
            special_tokens=[UNK],
            show_progress=False,
        )
        bpe.train_from_iterator(_spaced(lines), trainer)
        self._bpe = bpe

    def tokenize(self, lines: Sequence[str]) -> list[list[str]]:
        """Split each line into learned subword units."""
        return [encoding.tokens for encoding in self._fitted().encode_batch(list(_spaced(lines)))]

    def detokenize(self, tokens: Sequence[str]) -> str:
        """Join units back into text, dropping the space :meth:`tokenize` put in front."""
        text = self._fitted().decoder.decode(list(tokens))
        return text[1:] if text.startswith(" ") else text

    def state_dict(self) -> dict[str, Any]:
        """The options and the trained tokenizer as Hugging Face's JSON (None if unfitted)."""
        return {
            "vocab_size": self.vocab_size,
            "min_frequency": self.min_frequency,
            "tokenizer": None if self._bpe is None else json.loads(self._bpe.to_str()),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        try:
            self.vocab_size = int(state["vocab_size"])
            self.min_frequency = int(state["min_frequency"])
            trained = state["tokenizer"]
            self._bpe = None if trained is None else HFTokenizer.from_str(json.dumps(trained))
        except Exception as exc:  # a bad state can fail in many ways, all one problem
            raise DataError(f"not a saved bpe tokenizer ({type(exc).__name__}: {exc}); "
                            "save it with BPETokenizer.state_dict()") from None

    def _fitted(self) -> HFTokenizer:
        if self._bpe is None:
            raise RuntimeError("the bpe tokenizer is not trained yet; call fit(lines) first")
        return self._bpe


def _spaced(lines: Sequence[str]) -> Iterator[str]:
    """The lines, with a space in front where a word would otherwise run into the last."""
    previous = ""  # so the first line gets a space too, like every word after a space
    for line in lines:
        if line and not line[0].isspace() and not previous[-1:].isspace():
            yield " " + line
        else:
            yield line
        previous = line or previous

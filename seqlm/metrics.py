"""What one epoch of training measured."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any


def perplexity(loss: float) -> float:
    """exp of a mean cross-entropy in nats, or inf where that overflows."""
    return math.exp(loss) if loss < 700 else math.inf


def bits_per_token(loss: float) -> float:
    """A mean cross-entropy in nats expressed in bits (log2 of the perplexity)."""
    return loss / math.log(2)


@dataclass
class EpochMetrics:
    """Loss, perplexity and speed of one epoch (one row of ``metrics.jsonl``).

    ``val_loss`` is None when no text is held out (``--val-fraction 0``); ``lr`` is the
    learning rate the epoch trained with and ``grad_norm`` the mean over its batches of
    the global gradient norm before clipping, when the trainer reports them.
    ``avg_val_loss`` is the validation loss of the averaged weights (``--average``), once
    they exist.
    """

    epoch: int
    train_loss: float
    tokens: int
    seconds: float
    val_loss: float | None = None
    lr: float | None = None
    grad_norm: float | None = None
    avg_val_loss: float | None = None

    @property
    def selected_val_loss(self) -> float | None:
        """The lower of the weights' and their average's validation losses (None without)."""
        losses = [x for x in (self.val_loss, self.avg_val_loss) if x is not None]
        return min(losses) if losses else None

    @property
    def selected_val_ppl(self) -> float | None:
        """The perplexity of :attr:`selected_val_loss`."""
        loss = self.selected_val_loss
        return None if loss is None else perplexity(loss)

    @property
    def average_is_better(self) -> bool:
        """Whether the averaged weights validated better than the weights themselves."""
        return (self.avg_val_loss is not None and self.val_loss is not None
                and self.avg_val_loss < self.val_loss)

    @property
    def train_ppl(self) -> float:
        """Training perplexity: exp of the mean cross-entropy per token."""
        return perplexity(self.train_loss)

    @property
    def val_ppl(self) -> float | None:
        """Validation perplexity on the held-out text, or None without one."""
        return None if self.val_loss is None else perplexity(self.val_loss)

    @property
    def val_bits(self) -> float | None:
        """Validation cross-entropy in bits per token, or None without held-out text."""
        return None if self.val_loss is None else bits_per_token(self.val_loss)

    @property
    def tokens_per_s(self) -> float:
        """Training tokens processed per second during the epoch."""
        return self.tokens / self.seconds if self.seconds > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready row, derived values included; absent values are left out."""
        # Every field is a number, so a shallow read does what ``asdict``'s deep copy would,
        # several times faster: a checkpoint's history holds one row per epoch, and the
        # run copies it after every epoch.
        row = {k: v for k in _FIELDS if (v := getattr(self, k)) is not None}
        row["train_ppl"] = self.train_ppl
        if self.val_loss is not None:
            row["val_ppl"] = self.val_ppl
            row["val_bits_per_token"] = self.val_bits
        if self.avg_val_loss is not None:
            row["avg_val_ppl"] = perplexity(self.avg_val_loss)
        row["tokens_per_s"] = self.tokens_per_s
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> EpochMetrics:
        """Rebuild a row written by :meth:`to_dict` (derived values are recomputed)."""
        return cls(
            epoch=int(row["epoch"]), train_loss=float(row["train_loss"]),
            tokens=int(row["tokens"]), seconds=float(row["seconds"]),
            val_loss=None if row.get("val_loss") is None else float(row["val_loss"]),
            lr=None if row.get("lr") is None else float(row["lr"]),
            grad_norm=None if row.get("grad_norm") is None else float(row["grad_norm"]),
            avg_val_loss=(None if row.get("avg_val_loss") is None
                          else float(row["avg_val_loss"])),
        )


#: The stored fields of a row, in order.
_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(EpochMetrics))

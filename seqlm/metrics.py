"""What one epoch of training measured."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class EpochMetrics:
    """Loss, perplexity and speed of one epoch (one row of ``metrics.jsonl``)."""

    epoch: int
    train_loss: float
    tokens: int
    seconds: float

    @property
    def train_ppl(self) -> float:
        """Training perplexity: exp of the mean cross-entropy per token."""
        return math.exp(self.train_loss) if self.train_loss < 700 else math.inf

    @property
    def tokens_per_s(self) -> float:
        """Training tokens processed per second during the epoch."""
        return self.tokens / self.seconds if self.seconds > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready row, derived values included."""
        row = asdict(self)
        row["train_ppl"] = self.train_ppl
        row["tokens_per_s"] = self.tokens_per_s
        return row

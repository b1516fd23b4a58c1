"""``--patience N``: stop once N epochs in a row have not bettered the validation loss.

The decision depends on the finished epochs' metrics alone, so a resumed run stops
exactly where an unbroken one does, and a run resumed after it stopped early stops again
at once instead of training on.
"""

from __future__ import annotations

from collections.abc import Sequence

from seqlm.metrics import EpochMetrics


def best_epoch(history: Sequence[EpochMetrics]) -> EpochMetrics | None:
    """The epoch with the lowest selected validation loss (weights or their average)."""
    validated = [m for m in history if m.selected_val_loss is not None]
    return min(validated, key=lambda m: m.selected_val_loss) if validated else None


def early_stop_reason(history: Sequence[EpochMetrics], patience: int) -> str | None:
    """Why training should stop now, or None to go on; ``patience`` 0 never stops."""
    best = best_epoch(history)
    if patience <= 0 or best is None:
        return None
    waited = history[-1].epoch - best.epoch
    if waited < patience:
        return None
    return (f"stopped early after epoch {history[-1].epoch}: no better validation loss in "
            f"{waited} epochs (--patience {patience}); the best, perplexity "
            f"{best.selected_val_ppl:.4f}, was at epoch {best.epoch}")

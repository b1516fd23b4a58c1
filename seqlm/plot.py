"""The perplexity plot, drawn headless with matplotlib."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from seqlm.metrics import EpochMetrics
from seqlm.safewrite import write_atomic


def plot_perplexity(history: Sequence[EpochMetrics], path: Path, title: str = "") -> Path:
    """Draw training (and, when measured, validation) perplexity per epoch as a PNG.

    Raises :class:`~seqlm.errors.OutputError` naming ``path`` if it cannot be written.
    """
    import matplotlib

    matplotlib.use("Agg")  # headless: no display is needed or opened
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    try:
        epochs = [m.epoch for m in history]
        ax.plot(epochs, [m.train_ppl for m in history], label="train")
        validated = [m for m in history if m.val_loss is not None]
        if validated:
            ax.plot([m.epoch for m in validated], [m.val_ppl for m in validated],
                    label="validation")
        ax.set_xlabel("Epoch")
        ax.set_ylabel("Perplexity")
        values = [v for line in ax.get_lines() for v in line.get_ydata() if v > 0]
        if values and max(values) / min(values) > 20:
            # Perplexities spanning decades (a memorising run near 1, its validation
            # near 100) are only readable on a log scale.
            ax.set_yscale("log")
        if title:
            ax.set_title(title)
        ax.grid(linestyle="--", alpha=0.7)
        ax.legend()
        fig.tight_layout()
        # Through a temporary file and a rename: never through a link at ``path``.
        write_atomic(path, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)
    return path

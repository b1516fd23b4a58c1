"""The perplexity plot, drawn headless with matplotlib, off the run's critical path.

Importing matplotlib and drawing take about as long as a few epochs of the default job
on a small CPU, and the user waits for the whole command. So a run starts the import
in a background thread while it trains (:func:`start_imports`; training spends its time
in torch's kernels, which let other threads run) and draws in the background while it
generates its sample (:class:`PlotInBackground`), waiting for the file before it returns.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from seqlm.metrics import EpochMetrics
from seqlm.storage.safewrite import write_atomic

_imports: threading.Thread | None = None
_imports_lock = threading.Lock()


def _import_matplotlib() -> None:
    # The object-oriented API with the Agg canvas: no pyplot, no GUI backend, no global
    # figure state, so drawing from a thread is safe.
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    from matplotlib.figure import Figure  # noqa: F401


def start_imports() -> None:
    """Begin importing matplotlib in a background thread (once per process)."""
    global _imports
    with _imports_lock:
        if _imports is None:
            _imports = threading.Thread(target=_import_matplotlib, name="seqlm-plot-imports",
                                        daemon=True)
            _imports.start()


def wants_log_scale(values: Iterable[float]) -> bool:
    """Whether perplexities span more than a factor of 20, and so are readable only on a
    log scale (a memorising run near 1, its validation near 100).

    Only finite, positive values count: an infinite perplexity (a diverged epoch) is drawn
    nowhere, and dividing by it would only warn.
    """
    drawn = [v for v in values if v > 0 and math.isfinite(v)]
    return bool(drawn) and max(drawn) / min(drawn) > 20


def plot_perplexity(history: Sequence[EpochMetrics], path: Path, title: str = "") -> Path:
    """Draw training (and, when measured, validation) perplexity per epoch as a PNG.

    Raises :class:`~seqlm.errors.OutputError` naming ``path`` if it cannot be written.
    """
    if _imports is not None:
        _imports.join()  # an import in progress elsewhere finishes first
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    epochs = [m.epoch for m in history]
    ax.plot(epochs, [m.train_ppl for m in history], label="train")
    validated = [m for m in history if m.val_loss is not None]
    if validated:
        ax.plot([m.epoch for m in validated], [m.val_ppl for m in validated],
                label="validation")
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Perplexity")
    if wants_log_scale(v for line in ax.get_lines() for v in line.get_ydata()):
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(linestyle="--", alpha=0.7)
    ax.legend()
    fig.tight_layout()
    # Through a temporary file and a rename: never through a link at ``path``.
    write_atomic(path, lambda f: fig.savefig(f, format="png"))
    return path


class PlotInBackground:
    """:func:`plot_perplexity` in a thread; :meth:`wait` returns its path or raises its error."""

    def __init__(self, history: Sequence[EpochMetrics], path: Path, title: str = "") -> None:
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._draw, args=(list(history), path, title),
                                        name="seqlm-plot", daemon=True)
        self._thread.start()

    def _draw(self, history: list[EpochMetrics], path: Path, title: str) -> None:
        try:
            self._result = plot_perplexity(history, path, title)
        except BaseException as error:  # handed to the waiting thread
            self._error = error

    def join(self) -> None:
        """Wait for the drawing to end, successful or not."""
        self._thread.join()

    def wait(self) -> Path:
        """Wait for the file; the drawing's own error, if any, is raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result

"""The perplexity plot is drawn in a background thread; its file and its errors arrive."""

import pytest

from seqlm.errors import OutputError
from seqlm.metrics import EpochMetrics
from seqlm.runs.plot import PlotInBackground, plot_perplexity, start_imports

HISTORY = [EpochMetrics(epoch=e, train_loss=3.0 / e, tokens=100, seconds=0.1, lr=1.0,
                        val_loss=2.0 + 0.1 * e if e % 2 else None) for e in range(1, 9)]


def test_a_background_plot_writes_the_same_png_as_a_direct_one(tmp_path):
    start_imports()
    start_imports()  # once per process, however often asked
    direct = plot_perplexity(HISTORY, tmp_path / "direct.png", title="t")
    background = PlotInBackground(HISTORY, tmp_path / "background.png", title="t").wait()
    assert background == tmp_path / "background.png"
    assert background.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert background.read_bytes() == direct.read_bytes()


def test_a_background_plot_raises_its_error_when_waited_for(tmp_path):
    job = PlotInBackground(HISTORY, tmp_path / "missing" / "p.png")
    job.join()  # ends without raising
    with pytest.raises(OutputError, match=r"could not write .*missing/p\.png"):
        job.wait()

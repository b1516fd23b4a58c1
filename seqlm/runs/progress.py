"""Showing training progress: a live rich table on a terminal, plain lines elsewhere."""

from __future__ import annotations

import errno
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from seqlm.interfaces import Callback, Trainer
from seqlm.metrics import EpochMetrics
from seqlm.model.generation import PROGRESS_EVERY


def format_duration(seconds: float) -> str:
    """``m:ss`` or ``h:mm:ss``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class _Timer:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def remaining(self, done: int, total: int) -> float:
        return self.elapsed() / done * (total - done) if done else 0.0


def _val_text(m: EpochMetrics) -> tuple[str, str]:
    """Validation perplexity and bits per token as table cells ("-" without held-out text)."""
    if m.val_loss is None:
        return "-", "-"
    averaged = (f" (average {math.exp(m.avg_val_loss):.4f})"
                if m.avg_val_loss is not None else "")
    return f"{m.val_ppl:.4f}{averaged}", f"{m.val_bits:.3f}"


def _optim_text(m: EpochMetrics) -> tuple[str, str]:
    """Learning rate and mean gradient norm as table cells ("-" where not reported)."""
    lr = "-" if m.lr is None else f"{m.lr:.2g}"
    norm = "-" if m.grad_norm is None else f"{m.grad_norm:.3g}"
    return lr, norm


def log_every(epochs: int) -> int:
    """Log about ten rows per run: every 50 epochs for the default 500, like the seed."""
    return max(1, epochs // 10)


class RichProgress(Callback):
    """A live table refreshed every epoch; stopped cleanly on error or Ctrl-C.

    It shows one row every ``log_every`` epochs (50 of the default 500) and a last row
    for the current epoch, with training perplexity and, when text is held out,
    validation perplexity and bits per token, then the learning rate and the mean
    gradient norm (before clipping).
    """

    def __init__(self, console: Console, title: str = "Training", log_every: int = 0) -> None:
        self.console = console
        self.title = title
        self.log_every = log_every
        self.rows: list[EpochMetrics] = []
        self.live: Live | None = None

    def on_train_start(self, trainer: Trainer) -> None:
        self.total = trainer.epochs
        self.start = trainer.start_epoch  # epochs done before a resume
        self.log_every = self.log_every or log_every(self.total)
        self.timer = _Timer()
        self.live = Live(self._table(None), console=self.console, auto_refresh=False,
                         transient=False)
        self.live.start()

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        if metrics.epoch % self.log_every == 0 or metrics.epoch == self.total:
            self.rows.append(metrics)
        if self.live is not None:
            self.live.update(self._table(metrics), refresh=True)

    def on_train_end(self, trainer: Trainer, history: Sequence[EpochMetrics]) -> None:
        if trainer.stop_reason and history and self.live is not None:
            # The epoch it stopped at is shown, and the reason under the table.
            if not self.rows or self.rows[-1] is not history[-1]:
                self.rows.append(history[-1])
            table = self._table(None)
            table.caption = trainer.stop_reason
            self.live.update(table, refresh=True)
        self._stop()

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self._stop()

    def _stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def _times(self, m: EpochMetrics) -> str:
        remaining = self.timer.remaining(m.epoch - self.start, self.total - self.start)
        return f"{format_duration(self.timer.elapsed())} / {format_duration(remaining)}"

    def _table(self, current: EpochMetrics | None) -> Table:
        # Text, not markup: the title holds names a plugin chose.
        table = Table(title=Text(self.title), title_justify="left")
        # Two-line headers keep the figures within an 80-column terminal.
        for column in ("Epoch", "Train\nppl", "Val\nppl", "Val\nbits", "LR", "Grad\nnorm",
                       "Tokens/s", "Elapsed\n/ left"):
            table.add_column(column, justify="right", no_wrap=True)
        shown = list(self.rows)
        if current is not None and (not shown or shown[-1] is not current):
            shown.append(current)
        for m in shown:
            table.add_row(
                f"{m.epoch}/{self.total}", f"{m.train_ppl:.4f}", *_val_text(m),
                *_optim_text(m), f"{m.tokens_per_s:,.0f}",
                self._times(m) if m is shown[-1] else "",
            )
        return table


#: Without --log-every, a plain line also comes when this many seconds have passed since
#: the last one, so that a long run's log shows it moving between its ten rows.
PLAIN_AT_LEAST_EVERY_S = 60.0


class PlainProgress(Callback):
    """One readable line every ``log_every`` epochs, for logs, pipes and CI; with the
    automatic interval, also one at least every :data:`PLAIN_AT_LEAST_EVERY_S` seconds."""

    def __init__(self, console: Console, log_every: int = 0) -> None:
        self.console = console
        self.log_every = log_every
        self.by_time = not log_every

    def on_train_start(self, trainer: Trainer) -> None:
        self.total = trainer.epochs
        self.start = trainer.start_epoch  # epochs done before a resume
        self.log_every = self.log_every or log_every(self.total)
        self.timer = _Timer()
        self.last_line = self.timer.elapsed()

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        overdue = self.by_time and (
            self.timer.elapsed() - self.last_line >= PLAIN_AT_LEAST_EVERY_S)
        if metrics.epoch % self.log_every and metrics.epoch != self.total and not overdue:
            return
        self.last_line = self.timer.elapsed()
        val = ""
        if metrics.val_loss is not None:
            val = (f"val perplexity {metrics.val_ppl:.4f}  val bits/token "
                   f"{metrics.val_bits:.3f}  ")
            if metrics.avg_val_loss is not None:
                val += f"averaged weights' val perplexity {math.exp(metrics.avg_val_loss):.4f}  "
        lr, norm = _optim_text(metrics)
        remaining = self.timer.remaining(metrics.epoch - self.start, self.total - self.start)
        self.console.print(
            f"epoch {metrics.epoch}/{self.total}  perplexity {metrics.train_ppl:.4f}  {val}"
            f"lr {lr}  grad norm {norm}  "
            f"{metrics.tokens_per_s:,.0f} tokens/s  elapsed "
            f"{format_duration(self.timer.elapsed())}  remaining "
            f"{format_duration(remaining)}",
            highlight=False, soft_wrap=True,
        )

    def on_train_end(self, trainer: Trainer, history: Sequence[EpochMetrics]) -> None:
        if trainer.stop_reason:
            self.console.print(trainer.stop_reason, highlight=False, soft_wrap=True)


def make_progress(console: Console, title: str, every: int = 0) -> Callback:
    """A live table on a terminal, plain lines otherwise; a row every ``every`` epochs
    (0: about ten per run)."""
    if console.is_terminal and not console.is_dumb_terminal:
        return RichProgress(console, title=title, log_every=every)
    return PlainProgress(console, log_every=every)


#: Generation of at least this many tokens reports its progress.
LONG_GENERATION = 10_000


def generation_progress(console: Console, total: int) -> Callable[[int], None] | None:
    """A progress reporter for generating ``total`` tokens: a line about every 10%.

    None for a short generation, which needs none.
    """
    if total < LONG_GENERATION:
        return None
    console.print(f"generating {total:,} tokens (Ctrl-C stops; the run's files are already "
                  "saved)", highlight=False, markup=False)
    step = max(total // 10, 1)
    timer = _Timer()

    def report(done: int) -> None:
        if done % step < PROGRESS_EVERY or done == total:
            console.print(f"generated {done:,} of {total:,} tokens, remaining "
                          f"{format_duration(timer.remaining(done, total))}",
                          highlight=False, markup=False)

    return report


class PipeAwareConsole(Console):
    """A rich console whose closed output (``seqlm run | head``) raises BrokenPipeError.

    rich's own console exits at once instead, which would end a run without saving its
    checkpoint; this error stops the run as Ctrl-C does. seqlm's own consoles are of
    this class, which tells them from a caller's (see ``notes_console``).
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True  # nothing more to write where no one reads
        raise BrokenPipeError(errno.EPIPE, "the output pipe was closed")


def pipe_aware_console(**kwargs: Any) -> Console:
    """A :class:`PipeAwareConsole` made with ``kwargs`` (``stderr=True``, say)."""
    return PipeAwareConsole(**kwargs)


def notes_console(console: Console) -> Console:
    """Where a run's warnings and notes go when its progress goes to ``console``.

    seqlm's own console on stdout, written to a file or a pipe: a console on stderr, so
    that the results on stdout stay apart. On a terminal: the same console, which prints
    above the live table rather than through it. A caller's console gets them as given.
    """
    if isinstance(console, PipeAwareConsole) and not console.stderr and (
        not console.is_terminal
    ):
        return pipe_aware_console(stderr=True)
    return console

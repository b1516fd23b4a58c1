"""The TensorBoard logger: one event file per training session, in ``RUN/tensorboard``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from seqlm.interfaces import Callback, RunInfo, Trainer
from seqlm.metrics import EpochMetrics, bits_per_token

#: The folder inside the run folder that holds the event files.
FOLDER = "tensorboard"


class TensorBoardLogger(Callback):
    """Logs losses, perplexities, learning rate, gradient norm and samples for TensorBoard.

    Scalars, each against the epoch: ``loss/train`` and ``loss/validation`` (nats per
    token), ``perplexity/...``, ``bits_per_token/...``, ``learning_rate``,
    ``tokens_per_s`` and ``grad_norm`` (the mean global norm before clipping). Text:
    ``settings`` once, and ``sample`` (the run's ``--prefix`` continued) every
    ``run.log_every`` epochs and at the last epoch.
    """

    def __init__(self, run: RunInfo) -> None:
        self.run = run
        self.log_dir: Path = run.out_dir / FOLDER
        if self.log_dir.is_symlink():
            # A link would take the event files out of the run folder, where nothing of
            # the run may go: refused before training, in one line.
            raise ValueError(f"{self.log_dir} is a symbolic link; the events go only inside "
                             "the run folder: remove the link, or choose another --out")
        self.sample_length = int(run.config.get("predict") or 50)
        self.writer: SummaryWriter | None = None
        self.epochs = 0

    def on_train_start(self, trainer: Trainer) -> None:
        """Open the writer; a resumed run first drops events after its checkpoint."""
        start = trainer.start_epoch  # non-zero when the run resumes
        self.epochs = trainer.epochs
        # purge_step hides the epochs that the resumed run trains again, as
        # metrics.jsonl drops its rows after the checkpoint; a new run (--force over an
        # earlier one) hides every earlier event, so nothing of that run shows as its own.
        self.writer = SummaryWriter(log_dir=str(self.log_dir),
                                    purge_step=start + 1 if start else 0)
        if not start:
            settings = json.dumps(self.run.config, indent=1)
            self.writer.add_text("settings", _code(settings), 0)

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        """Write the epoch's scalars, and a sample when one is due."""
        if self.writer is None:
            return
        step, add = metrics.epoch, self.writer.add_scalar
        add("loss/train", metrics.train_loss, step)
        add("perplexity/train", metrics.train_ppl, step)
        add("bits_per_token/train", bits_per_token(metrics.train_loss), step)
        if metrics.val_loss is not None:
            add("loss/validation", metrics.val_loss, step)
            add("perplexity/validation", metrics.val_ppl, step)
            add("bits_per_token/validation", metrics.val_bits, step)
        if metrics.lr is not None:
            add("learning_rate", metrics.lr, step)
        if metrics.grad_norm is not None:
            add("grad_norm", metrics.grad_norm, step)
        add("tokens_per_s", metrics.tokens_per_s, step)
        if step % self.run.log_every == 0 or step == self.epochs:
            self.writer.add_text("sample", _code(self.run.sample(self.sample_length)), step)
        self.writer.flush()  # TensorBoard shows each epoch as soon as it ends

    def on_train_end(self, trainer: Trainer, history: Sequence[EpochMetrics]) -> None:
        """Close the event file."""
        self._close()

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        """Close the event file, keeping every epoch written so far."""
        self._close()

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _code(text: str) -> str:
    """Text as a Markdown code block: TensorBoard renders text as Markdown."""
    return "\n".join("    " + line for line in text.splitlines())

"""The text a saved run held out for validation, rebuilt from the text it trained on.

``seqlm eval DIR --held-out`` measures a model (or an ensemble) on exactly the tokens its
validation figures were measured on, without the user cutting them out by hand: the
training text is read again (the run's ``--data``, or the cached *Time Machine*),
cleaned and tokenized as the run did, truncated to its ``--max-tokens`` and split at its
``--val-fraction``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from seqlm.config import RunConfig
from seqlm.data.corpus import load_text, text_tokens
from seqlm.data.textsum import text_checksum
from seqlm.data.vocab import Vocab
from seqlm.errors import DataError, UsageError
from seqlm.interfaces import Tokenizer
from seqlm.training.evaluation import hold_out


def held_out_ids(
    run_dir: str | Path, config: RunConfig, tokenizer: Tokenizer, vocab: Vocab,
    data_sha256: str | None,
) -> torch.Tensor:
    """Token ids of the text the run in ``run_dir`` validated on, from its settings, its
    fitted tokenizer and vocabulary, and the checksum its checkpoint keeps of its
    ``--data`` file (None for the book): a file that has changed since is refused, since
    its end is no longer the text validated on.
    """
    if config.val_fraction <= 0:
        raise UsageError(f"{run_dir}: the run held out no text (--val-fraction 0); measure it "
                         "on a text with --data FILE")
    if config.data is None:
        # The run trained on the downloaded book: its held-out text is the book's end, so
        # the fix for a failed download is the book itself, not another --data file.
        from seqlm.data.download import BOOK_FILENAME, book_path

        source = book_path(fix=f"save the book as {BOOK_FILENAME} in the folder "
                           "SEQLM_DATA_DIR names")
    else:
        source = Path(config.data)
        if not source.is_file():
            raise DataError(f"{run_dir}: the text it trained on, {source}, is no longer there; "
                            "give the held-out text with --data FILE")
        if data_sha256 is not None and text_checksum(source) != data_sha256:
            raise DataError(f"{run_dir}: {source} has changed since the run trained on it, so "
                            "its end is not the text the run validated on; give the held-out "
                            "text with --data FILE")
    text = load_text(source, config.encoding)
    tokens = text_tokens(text, tokenizer, config.clean)
    ids = torch.tensor(vocab[tokens], dtype=torch.long)
    if config.max_tokens > 0:
        ids = ids[: config.max_tokens]
    return hold_out(ids, config.val_fraction)[1]

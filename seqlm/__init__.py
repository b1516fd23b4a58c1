"""seqlm: train recurrent language models, extended with plugins.

The library API, in a few lines::

    import seqlm

    result = seqlm.run(cell="lstm-scratch", epochs=50, data="book.txt")
    print(result.summary["final_train_ppl"], result.sample)

Names are imported on first use, so ``import seqlm`` stays light (torch loads only when a
name that needs it is touched).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "run": "seqlm.runner",
    "RunResult": "seqlm.runner",
    "RunConfig": "seqlm.config",
    "Tokenizer": "seqlm.interfaces",
    "Sampler": "seqlm.interfaces",
    "RecurrentCell": "seqlm.interfaces",
    "Trainer": "seqlm.interfaces",
    "Callback": "seqlm.callbacks",
    "EpochMetrics": "seqlm.metrics",
    "RNNModel": "seqlm.model",
    "Vocab": "seqlm.vocab",
    "load_text": "seqlm.corpus",
    "text_tokens": "seqlm.corpus",
    "build_corpus": "seqlm.corpus",
    "clean_lines": "seqlm.text",
    "generate": "seqlm.generation",
    "hookimpl": "seqlm.hookspecs",
    "get_plugins": "seqlm.plugins",
    "SeqlmError": "seqlm.errors",
}

__all__ = [
    "Callback", "EpochMetrics", "RNNModel", "RecurrentCell", "RunConfig", "RunResult",
    "Sampler", "SeqlmError", "Tokenizer", "Trainer", "Vocab", "build_corpus", "clean_lines",
    "generate", "get_plugins", "hookimpl", "load_text", "run", "text_tokens",
]

if TYPE_CHECKING:
    from seqlm.callbacks import Callback
    from seqlm.config import RunConfig
    from seqlm.corpus import build_corpus, load_text, text_tokens
    from seqlm.errors import SeqlmError
    from seqlm.generation import generate
    from seqlm.hookspecs import hookimpl
    from seqlm.interfaces import RecurrentCell, Sampler, Tokenizer, Trainer
    from seqlm.metrics import EpochMetrics
    from seqlm.model import RNNModel
    from seqlm.plugins import get_plugins
    from seqlm.runner import RunResult, run
    from seqlm.text import clean_lines
    from seqlm.vocab import Vocab


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'seqlm' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

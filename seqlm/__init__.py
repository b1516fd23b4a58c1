"""seqlm: train recurrent language models, extended with plugins.

The library API, in a few lines::

    import seqlm

    result = seqlm.run(cell="lstm-scratch", epochs=50)  # data="my.txt" for your own
    print(result.summary["final_train_ppl"], result.sample)

    saved = seqlm.load_trained(result.out_dir)            # a saved run, back as a model
    print(seqlm.evaluate_text(result.out_dir, held_out=True)["perplexity"])

Names are imported on first use, so ``import seqlm`` stays light (torch loads only when a
name that needs it is touched).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from seqlm.version import __version__ as __version__

_EXPORTS = {
    "run": "seqlm.runs.stages",
    "RunResult": "seqlm.runs.stages",
    "RunConfig": "seqlm.config",
    "Tokenizer": "seqlm.interfaces",
    "Sampler": "seqlm.interfaces",
    "RecurrentCell": "seqlm.interfaces",
    "Trainer": "seqlm.interfaces",
    "Callback": "seqlm.interfaces",
    "EpochMetrics": "seqlm.metrics",
    "RNNModel": "seqlm.model.rnn",
    "Vocab": "seqlm.data.vocab",
    "load_text": "seqlm.data.corpus",
    "text_tokens": "seqlm.data.corpus",
    "build_corpus": "seqlm.data.corpus",
    "clean_lines": "seqlm.data.text",
    "generate": "seqlm.model.generation",
    "hookimpl": "seqlm.hookspecs",
    "get_plugins": "seqlm.plugins.manager",
    "SeqlmError": "seqlm.errors",
    "load_trained": "seqlm.runs.saved",
    "TrainedModel": "seqlm.runs.saved",
    "evaluate_text": "seqlm.runs.saved",
    "generate_text": "seqlm.runs.saved",
    "DynamicSettings": "seqlm.training.dynamic_eval",
}

__all__ = [
    "Callback", "DynamicSettings", "EpochMetrics", "RNNModel", "RecurrentCell", "RunConfig",
    "RunResult", "Sampler", "SeqlmError", "Tokenizer", "TrainedModel", "Trainer", "Vocab",
    "build_corpus", "clean_lines", "evaluate_text", "generate", "generate_text",
    "get_plugins", "hookimpl", "load_text", "load_trained", "run", "text_tokens",
]

if TYPE_CHECKING:
    from seqlm.config import RunConfig
    from seqlm.data.corpus import build_corpus, load_text, text_tokens
    from seqlm.data.text import clean_lines
    from seqlm.data.vocab import Vocab
    from seqlm.errors import SeqlmError
    from seqlm.hookspecs import hookimpl
    from seqlm.interfaces import Callback, RecurrentCell, Sampler, Tokenizer, Trainer
    from seqlm.metrics import EpochMetrics
    from seqlm.model.generation import generate
    from seqlm.model.rnn import RNNModel
    from seqlm.plugins.manager import get_plugins
    from seqlm.runs.saved import TrainedModel, evaluate_text, generate_text, load_trained
    from seqlm.runs.stages import RunResult, run
    from seqlm.training.dynamic_eval import DynamicSettings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'seqlm' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    # The lazy names too, so that dir(), help() and tab completion show the API.
    return sorted({*globals(), *_EXPORTS})

"""What the check before training costs: the sampler's first batch and the cell's first
forward pass, against one training epoch, for the default ``seqlm run`` settings.

The check runs once per run, before the first epoch, so it adds nothing to any epoch;
this measures that one-off cost next to an epoch, on the book's first 10,000 characters
with the default LSTM (hidden 256, batches of 32 x 35). Repeats alternate the two, and
the medians are reported.

Run from the repository root::

    SEQLM_DATA_DIR=/path/to/folder/with/timemachine.txt python benchmarks/door_check.py

This is a measurement, not a unit test; see ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seqlm.config import RunConfig  # noqa: E402
from seqlm.data.corpus import build_corpus, load_text  # noqa: E402
from seqlm.data.samplers import SequentialSampler  # noqa: E402
from seqlm.data.tokenizers import CharTokenizer  # noqa: E402
from seqlm.plugins.door import check_before_training  # noqa: E402
from seqlm.plugins.manager import get_plugins  # noqa: E402
from seqlm.runs.build import build_model  # noqa: E402
from seqlm.training.trainer import DefaultTrainer  # noqa: E402


def measure(repeats: int, data: str | None, threads: int) -> dict[str, object]:
    """Median seconds of the check and of one epoch, over ``repeats`` alternations."""
    torch.set_num_threads(threads)
    config = RunConfig(data=data)
    corpus = build_corpus(load_text(config.data), CharTokenizer(), max_tokens=config.max_tokens)
    plugins = get_plugins()
    model = build_model(plugins.get("cell", config.cell), config, len(corpus.vocab))
    sampler = SequentialSampler(config.batch_size, config.num_steps)
    names = {"sampler": config.sampler, "cell": config.cell}
    checks, epochs = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        check_before_training(model, sampler, corpus.ids, len(corpus.vocab), names, plugins)
        checks.append(time.perf_counter() - started)
        trainer = DefaultTrainer(lr=1.0, clip=1.0, epochs=1)
        started = time.perf_counter()
        trainer.fit(model, corpus.ids, sampler)
        epochs.append(time.perf_counter() - started)
    check, epoch = statistics.median(checks), statistics.median(epochs)
    return {
        "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
        "threads": threads,
        "repeats": repeats,
        "check_seconds": check,
        "epoch_seconds": epoch,
        "check_per_run_in_epochs": check / epoch,
        "check_per_epoch_of_500": check / (500 * epoch),
    }


def main() -> None:
    """Print (and optionally save) the measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", default=None, help="text file [default: the book]")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    result = measure(args.repeats, args.data, args.threads)
    print(f"check before training: {result['check_seconds'] * 1000:.1f} ms once per run; "
          f"one epoch: {result['epoch_seconds'] * 1000:.1f} ms; the check is "
          f"{result['check_per_run_in_epochs']:.2%} of one epoch, "
          f"{result['check_per_epoch_of_500']:.4%} of the default 500-epoch run")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""What the run's per-epoch snapshot of its state costs over the seed's 500 epochs.

After every epoch the checkpoint callback copies everything a checkpoint holds (the
weights, the optimizer, the random generators and the history of every epoch so far),
so that Ctrl-C at any moment can save the last finished epoch. The history grows by a row
an epoch, so the copy's cost grows with the run. This times, for the seed's model
(``lstm``, 256 hidden units, vocabulary 28) and ``--epochs`` epochs:

- ``state_dict``: the trainer's :meth:`~seqlm.training.trainer.DefaultTrainer.state_dict`;
- ``cpu_copy``: the one-pass copy the callback makes (:func:`seqlm.checkpoints.saver.cpu_copy`);
- ``pack_unpack``: the same copy made by packing the state for a file and unpacking it.

Usage::

    python benchmarks/epoch_snapshot.py --epochs 500 [--json results.json]

Each figure is the total over all epochs, in seconds. A measurement, not a unit test; see
``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from seqlm.cells.torch_cells import TorchLSTM
from seqlm.checkpoints.format import pack, unpack
from seqlm.checkpoints.saver import cpu_copy
from seqlm.metrics import EpochMetrics
from seqlm.model.rnn import RNNModel
from seqlm.training.trainer import DefaultTrainer


def measure(epochs: int) -> dict[str, float]:
    """Total seconds of each part of the per-epoch snapshot over ``epochs`` epochs."""
    model = RNNModel(TorchLSTM(28, 256, 1), vocab_size=28)
    trainer = DefaultTrainer(lr=1.0, clip=1.0, epochs=epochs)
    trainer.optimizer = trainer.make_optimizer(model)
    totals = {"state_dict": 0.0, "cpu_copy": 0.0, "pack_unpack": 0.0}
    for epoch in range(1, epochs + 1):
        trainer.history.append(EpochMetrics(epoch=epoch, train_loss=2.0, tokens=8960,
                                            seconds=0.01, val_loss=2.5, lr=1.0, grad_norm=0.3))
        started = time.perf_counter()
        state = {"model": model.state_dict(), "trainer": trainer.state_dict()}
        copied = time.perf_counter()
        cpu_copy(state)
        packed = time.perf_counter()
        tensors: dict[str, torch.Tensor] = {}
        unpack(pack(state, tensors), tensors)
        done = time.perf_counter()
        totals["state_dict"] += copied - started
        totals["cpu_copy"] += packed - copied
        totals["pack_unpack"] += done - packed
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    totals = measure(args.epochs)
    result = {"epochs": args.epochs, **{f"{k}_s": round(v, 3) for k, v in totals.items()},
              "machine": {"platform": platform.platform(), "cpus": torch.get_num_threads(),
                          "python": platform.python_version(), "torch": torch.__version__}}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""A small grid search for ``seqlm eval --dynamic``'s defaults on the book's held-out text.

Usage::

    python benchmarks/dynamic_eval_search.py --data ../shared/data/timemachine.txt \\
        --out runs/dynamic-search [--run DIR] [--epochs 3] [--threads 1] [--streams 1]

Without ``--run`` it first trains a small model on the whole book (the last 10% held
out, as ``seqlm run`` does) into ``--out``; with it, it measures that run instead. It then
measures the held-out text statically and under dynamic evaluation for a grid of step
sizes, decays and segment lengths, plain and RMS-scaled, and prints one JSON line per
setting and a last line with the best of each kind. The text is read as ``--streams``
streams (at most; ``seqlm eval``'s default is one), statically and dynamically alike.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path

import torch
from rich.console import Console

from seqlm.config import DYNAMIC_STREAMS
from seqlm.runs.heldout import held_out_ids
from seqlm.runs.saved import load_trained
from seqlm.runs.stages import run
from seqlm.training.dynamic_eval import DynamicSettings, dynamic_loss
from seqlm.training.evaluation import evaluate_loss

#: The model trained when no --run is given: small enough for a few minutes on 2 cores.
SMALL_MODEL = dict(max_tokens=0, hidden=256, embedding_dim=64, dropout=0.3,
                   optimizer="adamw", lr=0.004, weight_decay=0.1, schedule="cosine",
                   batch_size=32, num_steps=64, predict=0, checkpoint_every=0)

PLAIN_LRS = (0.01, 0.03, 0.1, 0.3, 1.0)
RMS_LRS = (0.0001, 0.0003, 0.001)
DECAYS = (0.0, 0.001, 0.01)
SEGMENTS = (10, 20, 40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True,
                        help="the text to train on (a --run is measured on its own text)")
    parser.add_argument("--out", default="runs/dynamic-search")
    parser.add_argument("--run", default=None, help="measure this run instead of training")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--streams", type=int, default=DYNAMIC_STREAMS,
                        help="read the text as at most this many streams (default: "
                        "%(default)s, as seqlm eval --dynamic)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run_dir = Path(args.run) if args.run else Path(args.out)
    if args.run is None:
        started = time.perf_counter()
        result = run(data=args.data, out=run_dir, force=True, epochs=args.epochs,
                     threads=args.threads, console=Console(quiet=True), **SMALL_MODEL)
        print(json.dumps({"trained": str(run_dir), "epochs": args.epochs,
                          "best_val_ppl": result.summary["best_val_ppl"],
                          "seconds": round(time.perf_counter() - started, 1)}), flush=True)
    trained = load_trained(run_dir)
    ids = held_out_ids(run_dir, trained.config, trained.tokenizer, trained.vocab,
                       trained.data_sha256)
    loss_sum, count = evaluate_loss(trained.model, ids, args.streams)
    static = loss_sum.item() / count
    print(json.dumps({"static_ppl": math.exp(static), "tokens": count}), flush=True)
    grid = [DynamicSettings(lr, decay, steps, False, args.streams)
            for steps, lr, decay in itertools.product(SEGMENTS, PLAIN_LRS, DECAYS)]
    grid += [DynamicSettings(lr, decay, steps, True, args.streams)
             for steps, lr, decay in itertools.product(SEGMENTS, RMS_LRS, DECAYS)]
    best: dict[bool, tuple[float, DynamicSettings]] = {}
    for settings in grid:
        started = time.perf_counter()
        total, _ = dynamic_loss(trained.model, ids, settings)
        ppl = math.exp(total / count)
        print(json.dumps({"lr": settings.lr, "decay": settings.decay, "rms": settings.rms,
                          "steps": settings.steps, "dynamic_ppl": ppl,
                          "seconds": round(time.perf_counter() - started, 1)}), flush=True)
        if settings.rms not in best or ppl < best[settings.rms][0]:
            best[settings.rms] = (ppl, settings)
    print(json.dumps({"static_ppl": math.exp(static), **{
        ("best_rms" if rms else "best_plain"): {"ppl": ppl, "lr": s.lr, "decay": s.decay,
                                                "steps": s.steps}
        for rms, (ppl, s) in best.items()}}), flush=True)


if __name__ == "__main__":
    main()

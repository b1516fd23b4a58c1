"""Which checkpoints of an ensemble to adapt, and how to combine the adapted members.

Usage::

    python benchmarks/dynamic_mixing.py RUN [RUN ...] [--threads 1] [--out FILE]

For each run's best and last checkpoints it scores the text the runs held out, read as
one stream, statically and under ``seqlm eval --dynamic``'s defaults, then the ensembles
of the best checkpoints, of the last ones and of both, statically and dynamically, as
``seqlm eval --held-out --checkpoint best|last|both [--dynamic]`` does (each token's
probability the mean of the members').

It then tries two other ways than that plain mean to combine the adapted members of the
ensemble of both:

- *following weights*: each member's weight follows how well it predicted the text so
  far (a Bayesian mixture, each token's likelihoods raised to ``temperature``), with a
  fixed ``share`` of the weight spread evenly again after every token so that no member
  is ever written off;
- *a cache*: the mean mixed, with weight ``lambda``, with a model of the held-out text
  read so far alone: the counts of what followed each context of up to ``order`` tokens,
  interpolated from the longest context down as Witten and Bell do.

Every figure and the machine are printed as JSON, and written to ``--out`` if given.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import torch
from ensemble import machine

from seqlm.runs.heldout import held_out_ids
from seqlm.runs.saved import load_trained
from seqlm.training.dynamic_eval import DynamicSettings, dynamic_token_losses
from seqlm.training.evaluation import ensemble_loss, token_losses

CHECKPOINTS = ("best", "last")
#: (share, temperature) of the following weights tried.
FOLLOWING = ((0.01, 1.0), (0.05, 1.0), (0.05, 0.5))
#: (order, lambda) of the cache mixtures tried.
CACHES = ((4, 0.02), (8, 0.02), (8, 0.05))
#: Tokens scored per forward pass when reading statically; the state carries over.
CHUNK = 512


def perplexity(losses: torch.Tensor) -> float:
    return math.exp(losses.mean().item())


def following_weights(losses: torch.Tensor, share: float, temperature: float) -> torch.Tensor:
    """Per-token loss of the mixture of ``losses`` (members x tokens, nats) whose weights
    follow each member's recent likelihood (see the module's docstring)."""
    members, tokens = losses.shape
    log_weights = torch.full((members,), -math.log(members), dtype=torch.float64)
    log_p = -losses.double()
    mixed = torch.empty(tokens, dtype=torch.float64)
    for t in range(tokens):
        mixed[t] = -torch.logsumexp(log_weights + log_p[:, t], 0)
        posterior = log_weights + temperature * log_p[:, t]
        posterior = (posterior - torch.logsumexp(posterior, 0)).exp()
        log_weights = ((1 - share) * posterior + share / members).log()
    return mixed


def cache_losses(ids: list[int], vocab_size: int, order: int) -> torch.Tensor:
    """Per-token loss of a model of the text read so far alone: for each token after the
    first, the counts of what followed its last 0 to ``order`` tokens earlier in ``ids``,
    interpolated from the shortest context up (Witten-Bell), over a uniform floor."""
    counts: list[dict[tuple[int, ...], dict[int, int]]] = [
        defaultdict(lambda: defaultdict(int)) for _ in range(order + 1)]
    losses = []
    for i in range(1, len(ids)):
        target, history = ids[i], ids[:i]
        contexts = [tuple(history[len(history) - n:]) if n else ()
                    for n in range(min(order, len(history)) + 1)]
        p = 1.0 / vocab_size
        for n, context in enumerate(contexts):
            seen = counts[n].get(context)
            if seen:
                total, kinds = sum(seen.values()), len(seen)
                p = (seen.get(target, 0) + kinds * p) / (total + kinds)
        losses.append(-math.log(p))
        for n, context in enumerate(contexts):
            counts[n][context][target] += 1
    return torch.tensor(losses, dtype=torch.float64)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders, trained on the same text")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=None, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    static: dict[str, list[torch.Tensor]] = {c: [] for c in CHECKPOINTS}
    dynamic: dict[str, list[torch.Tensor]] = {c: [] for c in CHECKPOINTS}
    members, ids = [], None
    for run_dir in args.runs:
        for which in CHECKPOINTS:
            trained = load_trained(run_dir, which)
            if ids is None:
                ids = held_out_ids(run_dir, trained.config, trained.tokenizer,
                                   trained.vocab, trained.data_sha256)
                vocab_size = len(trained.vocab)
            static[which].append(token_losses(trained.model, ids, 1, CHUNK).double())
            dynamic[which].append(dynamic_token_losses(trained.model, ids,
                                                       DynamicSettings()).double())
            members.append({"run": str(run_dir), "checkpoint": which, "epoch": trained.epoch,
                            "static": perplexity(static[which][-1]),
                            "dynamic": perplexity(dynamic[which][-1])})
            print(json.dumps(members[-1]), flush=True)
    ensembles = {}
    for name, chosen in (("best", ("best",)), ("last", ("last",)), ("both", CHECKPOINTS)):
        ensembles[name] = {
            "static": perplexity(ensemble_loss([x for c in chosen for x in static[c]])),
            "dynamic": perplexity(ensemble_loss([x for c in chosen for x in dynamic[c]]))}
    adapted = torch.stack([x for c in CHECKPOINTS for x in dynamic[c]])
    mean = ensemble_loss(list(adapted))
    following = [{"share": share, "temperature": temperature,
                  "dynamic": perplexity(following_weights(adapted, share, temperature))}
                 for share, temperature in FOLLOWING]
    caches = []
    for order, weight in CACHES:
        alone = cache_losses(ids.tolist(), vocab_size, order)
        mixed = -torch.logaddexp(-mean + math.log(1 - weight), -alone + math.log(weight))
        caches.append({"order": order, "lambda": weight, "cache_alone": perplexity(alone),
                       "dynamic": perplexity(mixed)})
    report = {"date": date.today().isoformat(), "machine": machine(),
              "tokens": len(ids) - 1, "members": members, "ensembles": ensembles,
              "following_weights": following, "cache": caches,
              "seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps({k: v for k, v in report.items() if k != "members"}, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()

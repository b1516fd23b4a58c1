"""Where a trained run's held-out loss lies: at the starts of the text's lines or elsewhere.

Usage::

    python benchmarks/line_start_loss.py RUN --data ../shared/data/timemachine.txt [--json]

``--clean letters`` (the seed's cleaning) joins the lines of a text with nothing between
them, so the last word of each line runs into the first word of the next ("shone
andtwinkled"). Nothing in the stream marks where a line ended; a model can only guess
it from how long the line has run. This script reads the run's held-out text as one
stream, as ``seqlm eval`` does, scores every token with the run's best checkpoint, and
splits the loss between the first token of each line, the second, and all the others,
with the perplexity of each part and of the text without the first two.

For a character run on ``--clean letters`` it also estimates what knowing the line's
length so far would be worth: at each word end of the held-out text, the chance that the
line ends there given how many characters the line has run (counted on the training
part, smoothed towards the overall rate), against that overall rate, which a model
blind to the position can only use. The nats this saves, spread over the held-out
tokens, give the perplexity such a model would reach with everything else unchanged.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from collections import Counter

import torch

from seqlm.data.corpus import build_corpus, load_text
from seqlm.data.text import clean_lines
from seqlm.runs.saved import load_trained
from seqlm.training.evaluation import hold_out, token_losses

#: Tokens scored per forward pass; the state is carried from one pass to the next.
CHUNK = 512


def line_starts(text: str, trained, count: int) -> torch.Tensor:
    """A mask over the first ``count`` tokens of the cleaned text: True where a line starts."""
    lengths = [len(tokens) for tokens in trained.tokenizer.tokenize(
        clean_lines(text, trained.config.clean))]
    mask = torch.zeros(count, dtype=torch.bool)
    starts = [s for s in itertools.accumulate([0, *lengths[:-1]]) if s < count]
    mask[starts] = True
    return mask


def word_ends(lines: list[str]):
    """(characters into the line, whether the line ends there) at each word end."""
    for line in lines:
        words = line.split(" ")
        length = 0
        for i, word in enumerate(words):
            length += len(word)
            yield length, i == len(words) - 1
            length += 1  # the space


def position_saving(lines: list[str], first_held_out: int) -> tuple[float, float]:
    """The overall rate of line ends at word ends, and the nats a model that knew each
    line's length so far would save on the lines from ``first_held_out`` on."""
    ends: Counter[int] = Counter()
    breaks: Counter[int] = Counter()
    for length, last in word_ends(lines[:first_held_out]):
        ends[length] += 1
        breaks[length] += last
    rate = sum(breaks.values()) / sum(ends.values())
    saved = 0.0
    for length, last in word_ends(lines[first_held_out:]):
        # Two pseudo-counts at the overall rate: a rare length says little on its own.
        known = (breaks[length] + 2 * rate) / (ends[length] + 2)
        saved += math.log(known if last else 1 - known) - math.log(rate if last else 1 - rate)
    return rate, saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--data", required=True, help="the text the run was trained on")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    trained = load_trained(args.run)
    config = trained.config
    text = load_text(args.data, config.encoding)
    corpus = build_corpus(text, trained.tokenizer, clean=config.clean,
                          max_tokens=config.max_tokens)
    if corpus.vocab.to_dict() != trained.vocab.to_dict():
        parser.error(f"{args.data} is not the text {args.run} was trained on")
    train, held_out = hold_out(corpus.ids, config.val_fraction)
    if len(held_out) < 2:
        parser.error(f"{args.run} held out no text (--val-fraction 0)")
    losses = token_losses(trained.model, held_out, batch_size=1, num_steps=CHUNK)
    # Token i of `losses` is token len(train) + 1 + i of the whole text.
    starts = line_starts(text, trained, len(corpus.ids))[len(train) + 1:]
    seconds = line_starts(text, trained, len(corpus.ids))[len(train):-1]
    parts = {"line start": starts, "second token of a line": seconds & ~starts,
             "elsewhere": ~starts & ~seconds}
    total = losses.sum().item()
    rows = {name: {"tokens": int(mask.sum()),
                   "mean_loss": losses[mask].mean().item() if mask.any() else float("nan"),
                   "share_of_loss": losses[mask].sum().item() / total}
            for name, mask in parts.items()}
    result = {"run": args.run, "clean": config.clean, "tokens": len(losses),
              "perplexity": math.exp(total / len(losses)),
              "perplexity_elsewhere": math.exp(rows["elsewhere"]["mean_loss"]),
              "parts": rows}
    if config.clean == "letters" and config.tokenizer == "char":
        lines = [line for line in clean_lines(text, config.clean) if line]
        starts_at = list(itertools.accumulate([0, *map(len, lines[:-1])]))
        first = next(i for i, at in enumerate(starts_at) if at >= len(train))
        rate, saved = position_saving(lines, first)
        result["line_end_rate"] = rate
        result["nats_saved_knowing_the_position"] = saved
        result["perplexity_knowing_the_position"] = math.exp((total - saved) / len(losses))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.run}: held-out perplexity {result['perplexity']:.4f} over "
          f"{len(losses):,} tokens (one stream, --clean {config.clean})")
    print(f"{'part':26s} {'tokens':>7s} {'loss (nats)':>12s} {'share':>7s}")
    for name, row in rows.items():
        print(f"{name:26s} {row['tokens']:7,d} {row['mean_loss']:12.3f} "
              f"{row['share_of_loss']:7.1%}")
    print(f"perplexity elsewhere: {result['perplexity_elsewhere']:.4f}")
    if "line_end_rate" in result:
        print(f"a line ends at {result['line_end_rate']:.1%} of the word ends; knowing each "
              f"line's length so far would save {result['nats_saved_knowing_the_position']:.0f}"
              f" nats: perplexity {result['perplexity_knowing_the_position']:.4f}")


if __name__ == "__main__":
    main()

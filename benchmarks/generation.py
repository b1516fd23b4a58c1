"""Generation speed: tokens per second of :func:`seqlm.model.generation.generate`.

The model has the seed's size (one-hot characters of The Time Machine, one layer of
256 units, untrained: the speed does not depend on the weights). Each device generates
``--tokens`` tokens greedily (the seed's argmax) and by top-k sampling, ``--repeats``
times after one warm-up, and reports the median. Beside seqlm's generation, where the
tokens stay on the device until the end, it times the per-token loop that reads every
token back to the host (``host_loop``), which is what a GPU waits for at each token.

Run from the repository root::

    SEQLM_DATA_DIR=/path/to/folder/with/timemachine.txt \\
        python benchmarks/generation.py --devices cpu,cuda --json results-generation.json

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

from seqlm.data.corpus import build_corpus, load_text  # noqa: E402
from seqlm.data.tokenizers import CharTokenizer  # noqa: E402
from seqlm.model.generation import generate  # noqa: E402
from seqlm.model.rnn import RNNModel  # noqa: E402
from seqlm.plugins.manager import get_plugins  # noqa: E402

PREFIX = "time traveller"


@torch.no_grad()
def host_loop(model, vocab, tokenizer, prefix: str, length: int, greedy: bool,
              top_k: int, generator: torch.Generator | None) -> str:
    """Generation that reads each token back to the host before feeding it in."""
    device = next(model.parameters()).device
    tokens = tokenizer.tokenize([prefix])[0]
    logits, state = model(torch.tensor([vocab[list(tokens)]], device=device),
                          model.begin_state(1, device))
    picked: list[int] = []
    for _ in range(length):
        scores = logits[-1].float()
        if greedy:
            next_id = int(scores.argmax())
        else:
            scores = scores.cpu()
            scores[vocab.unk] = float("-inf")
            if top_k:
                cutoff = torch.topk(scores, top_k).values[-1]
                scores = scores.masked_fill(scores < cutoff, float("-inf"))
            next_id = int(torch.multinomial(torch.softmax(scores, -1), 1, generator=generator))
        picked.append(next_id)
        logits, state = model(torch.tensor([[next_id]], device=device), state)
    return tokenizer.detokenize(list(tokens) + vocab.to_tokens(picked))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tokens_per_second(run, length: int, repeats: int, device: torch.device) -> float:
    """The median speed over ``repeats`` timed runs, after one untimed warm-up."""
    run()
    speeds = []
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        run()
        _sync(device)
        speeds.append(length / (time.perf_counter() - started))
    return statistics.median(speeds)


def measure(device: torch.device, args: argparse.Namespace, corpus) -> list[dict]:
    """The rows for one device: seqlm and the host loop, greedy and sampled."""
    torch.manual_seed(args.seed)
    cell = get_plugins().get("cell", args.cell)(input_size=len(corpus.vocab),
                                                hidden_size=args.hidden, num_layers=1)
    model = RNNModel(cell, len(corpus.vocab)).to(device).eval()
    tokenizer = CharTokenizer()
    rows = []
    for mode in ("greedy", "sampled"):
        greedy = mode == "greedy"
        for name, fn in (("seqlm", _seqlm), ("host_loop", host_loop)):
            def run(fn=fn, greedy=greedy, name=name):
                generator = torch.Generator(device=device if name == "seqlm" else "cpu")
                generator.manual_seed(args.seed)
                fn(model, corpus.vocab, tokenizer, PREFIX, args.tokens, greedy, args.top_k,
                   generator)
            speed = tokens_per_second(run, args.tokens, args.repeats, device)
            rows.append({"device": str(device), "cell": args.cell, "mode": mode,
                         "generator": name, "tokens": args.tokens,
                         "tokens_per_s": round(speed, 1)})
            print(f"{device.type:5} {mode:8} {name:10} {speed:12,.0f} tokens/s", flush=True)
    return rows


def _seqlm(model, vocab, tokenizer, prefix, length, greedy, top_k, generator) -> str:
    return generate(model, vocab, tokenizer, prefix, length, greedy=greedy, top_k=top_k,
                    generator=generator)


def main(argv: list[str] | None = None) -> dict:
    """Measure, print a line per measurement, and write the JSON if asked."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="cpu,cuda",
                        help="comma-separated; cuda is skipped where it is missing")
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=500, help="tokens per generation")
    parser.add_argument("--top-k", type=int, default=5, help="for the sampled mode")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0: default")
    parser.add_argument("--data", default=None, help="text file (default: The Time Machine)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    corpus = build_corpus(load_text(args.data), CharTokenizer(), clean="letters")
    rows = []
    for name in args.devices.split(","):
        if name.startswith("cuda") and not torch.cuda.is_available():
            print(f"{name}: not available, skipped", flush=True)
            continue
        rows += measure(torch.device(name), args, corpus)
    result = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "python": platform.python_version(), "torch": torch.__version__,
                          "cpu_threads": torch.get_num_threads(),
                          "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                          else None},
              "date": time.strftime("%Y-%m-%d", time.gmtime()), "rows": rows}
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()

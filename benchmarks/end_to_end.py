"""The seed's job end to end: the whole ``seqlm run`` command against the seed's script.

The user waits for the whole command, not just for training, so this times complete
processes: ``seqlm run --val-fraction 0 --epochs N`` (imports, data, training,
checkpoints, plot, generation) and the seed's script doing the same job the seed's way
(``seed-job`` below: its imports, its cleaning and vocabulary, the training loop of
:mod:`benchmarks.seed_reference`, its plot and its prediction). The two alternate,
``--pairs`` times, with the order swapped every pair so that a change in the machine's
load hits both alike; the result is the median wall time of each and their ratio
(above 1: seqlm finishes first), printed and written as JSON.

Run from the repository root::

    SEQLM_DATA_DIR=/path/to/folder/with/timemachine.txt \\
        python benchmarks/end_to_end.py --pairs 5 --json results-end-to-end.json

This is a measurement, not a unit test; see ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = "timemachine.txt"


def seed_job(epochs: int, data: Path, out: Path, device_name: str = "cpu",
             max_tokens: int = 10000) -> None:
    """The seed's script: read, clean, train, plot, predict.

    Its imports are part of what it costs, so they happen here, as in the script. Its
    training time and speed go to ``out/seed-summary.json`` (named as seqlm names them
    in its ``summary.json``).
    """
    import collections
    import re

    import matplotlib
    import requests  # noqa: F401 - the seed's script imports it to download the book
    import torch
    from torch import nn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sys.path.insert(0, str(ROOT))
    from benchmarks import seed_reference as ref

    with open(data, encoding="utf-8") as f:
        lines = f.readlines()
    cleaned = [re.sub("[^A-Za-z]+", " ", line).strip().lower() for line in lines]
    tokens = [list(line) for line in cleaned if line]
    counter = collections.Counter(t for line in tokens for t in line)
    idx_to_token = ["<unk>"] + [t for t, _ in sorted(counter.items(), key=lambda x: x[1],
                                                     reverse=True)]
    token_to_idx = {t: i for i, t in enumerate(idx_to_token)}
    corpus = [token_to_idx[t] for line in tokens for t in line][:max_tokens]
    device = torch.device(device_name)
    net, updater = ref.build("lstm", len(idx_to_token), 256, 1.0, device)
    loss = nn.CrossEntropyLoss()
    perplexities = []
    tokens = 0
    started = time.perf_counter()
    for epoch in range(epochs):
        mean_loss, count = ref.train_epoch(net, corpus, 32, 35, loss, updater, device)
        tokens += count
        perplexities.append(ref.perplexity(mean_loss))
        if (epoch + 1) % 50 == 0:
            print(f"Epoch [{epoch + 1}/{epochs}], Perplexity: {perplexities[-1]:.5f}")
    seconds = time.perf_counter() - started  # every epoch ended in a read to the host
    print(f"Final Perplexity: {perplexities[-1]:.5f} (on {device})")
    (out / "seed-summary.json").write_text(json.dumps({
        "train_seconds": seconds, "tokens_per_s": tokens / seconds,
        "final_train_ppl": perplexities[-1]}), encoding="utf-8")
    plt.plot(range(1, epochs + 1), perplexities, label="train")
    plt.xlabel("Epoch")
    plt.ylabel("Perplexity")
    plt.legend()
    plt.grid(linestyle="--", alpha=0.7)
    plt.savefig(out / "perplexity.png")  # where the script shows it on a screen
    prefix = "time traveller"
    with torch.no_grad():
        state = net.begin_state(batch_size=1, device=device)
        outputs = [token_to_idx[prefix[0]]]
        for y in prefix[1:]:
            _, state = net(torch.tensor([[outputs[-1]]], device=device), state)
            outputs.append(token_to_idx[y])
        for _ in range(50):
            y, state = net(torch.tensor([[outputs[-1]]], device=device), state)
            outputs.append(int(y.argmax(dim=1).reshape(1)))
    print("".join(idx_to_token[i] for i in outputs))


def _data_dir(data: str | None) -> Path:
    folder = Path(data) if data else Path(os.environ.get("SEQLM_DATA_DIR", ""))
    if not (folder / BOOK).is_file():
        sys.exit(f"error: {folder / BOOK} not found; set SEQLM_DATA_DIR to the folder "
                 f"holding {BOOK} (or pass --data)")
    return folder


def commands(epochs: int, data_dir: Path, out: Path, seqlm: list[str],
             device: str | None = None) -> dict[str, list[str]]:
    """The two commands a pair runs, by side (seqlm's with no flag beyond the job's)."""
    on = ["--device", device] if device else []
    return {
        "seqlm": [*seqlm, "run", "--val-fraction", "0", "--epochs", str(epochs), *on,
                  "--out", str(out / "seqlm")],
        "seed": [sys.executable, str(Path(__file__).resolve()), "seed-job", "--epochs",
                 str(epochs), "--data", str(data_dir / BOOK), "--out", str(out / "seed"),
                 "--device", device or "cpu"],
    }


def training_speeds(out: Path) -> dict[str, float]:
    """Training tokens/s of each side of one pair, from the summaries they wrote."""
    seqlm = json.loads((out / "seqlm" / "summary.json").read_text(encoding="utf-8"))
    seed = json.loads((out / "seed" / "seed-summary.json").read_text(encoding="utf-8"))
    return {"seqlm": seqlm["tokens_per_s"], "seed": seed["tokens_per_s"]}


def timed(command: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one complete command (which must succeed)."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"error: {' '.join(command)} exited {done.returncode}:\n"
                 f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds


def summarize(times: dict[str, list[float]],
              speeds: dict[str, list[float]] | None = None) -> dict[str, object]:
    """Medians, the ratio of the seed's median to seqlm's, and the ratio of every pair.

    ``speeds`` (training tokens/s per side and pair) adds their medians and ratio.
    """
    seqlm, seed = statistics.median(times["seqlm"]), statistics.median(times["seed"])
    pairs = [round(b / a, 3) for a, b in zip(times["seqlm"], times["seed"], strict=True)]
    result: dict[str, object] = {
        "seqlm_median_s": round(seqlm, 3), "seed_median_s": round(seed, 3),
        "ratio": round(seed / seqlm, 3), "pair_ratios": pairs,
        "seqlm_s": [round(t, 3) for t in times["seqlm"]],
        "seed_s": [round(t, 3) for t in times["seed"]]}
    if speeds:
        fast, slow = statistics.median(speeds["seqlm"]), statistics.median(speeds["seed"])
        result.update({"seqlm_train_tokens_per_s": round(fast, 1),
                       "seed_train_tokens_per_s": round(slow, 1),
                       "train_ratio": round(fast / slow, 3)})
    return result


def main(argv: list[str] | None = None) -> dict[str, object] | None:
    """Run the pairs and report, or (``seed-job``) run the seed's side once."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", choices=["compare", "seed-job"], default="compare")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--data", default=None,
                        help="compare: folder with timemachine.txt; seed-job: the file")
    parser.add_argument("--out", type=Path, default=None, help="seed-job: folder for the plot")
    parser.add_argument("--device", default=None,
                        help="cpu or cuda for both sides (default: seqlm's auto, the seed "
                        "on the CPU)")
    parser.add_argument("--seqlm", default=f"{sys.executable} -m seqlm",
                        help="how to start seqlm (default: this Python's -m seqlm)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.mode == "seed-job":
        seed_job(args.epochs, Path(args.data), args.out or Path("."), args.device or "cpu")
        return None
    data_dir = _data_dir(args.data)
    env = {**os.environ, "SEQLM_DATA_DIR": str(data_dir)}
    times: dict[str, list[float]] = {"seqlm": [], "seed": []}
    speeds: dict[str, list[float]] = {"seqlm": [], "seed": []}
    with tempfile.TemporaryDirectory(prefix="seqlm-end-to-end-") as tmp:
        for pair in range(args.pairs):
            out = Path(tmp) / f"pair{pair + 1}"  # fresh folders: every run starts alike
            (out / "seed").mkdir(parents=True)
            runs = commands(args.epochs, data_dir, out, args.seqlm.split(), args.device)
            order = ("seqlm", "seed") if pair % 2 == 0 else ("seed", "seqlm")
            for side in order:
                times[side].append(timed(runs[side], env))
            for side, speed in training_speeds(out).items():
                speeds[side].append(speed)
            print(f"pair {pair + 1}: seqlm {times['seqlm'][-1]:.2f} s, "
                  f"seed {times['seed'][-1]:.2f} s", flush=True)
    job = f"seqlm run --val-fraction 0 --epochs {args.epochs}"
    if args.device:
        job += f" --device {args.device}"
    result = {"job": job, "date": time.strftime("%Y-%m-%d", time.gmtime()),
              **summarize(times, speeds),
              "machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "cpus": os.cpu_count(), "python": platform.python_version()},
              "commands": {k: " ".join(v) for k, v in runs.items()}}
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()

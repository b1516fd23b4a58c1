"""Train an ensemble of runs side by side and measure it on the text they held out.

Usage::

    python benchmarks/ensemble.py --config examples/recipes/timemachine-cpu.toml \\
        --members 4 --parallel 2 --out runs/ensemble [--dynamic] [-- SEQLM RUN OPTIONS]

Each member is ``seqlm run --config FILE --seed N --threads 1 --out OUT/member-N`` with
the options after ``--``; ``--parallel`` of them train at a time, each on one thread
(on a small CPU, two one-thread runs side by side get more done than one run on both
cores: a character model's matrices are too small to keep two threads busy). Then
``seqlm eval OUT/member-* --held-out --checkpoint C`` measures the ensemble (each token's
probability the mean of the members'; ``--checkpoint both`` takes each member's best and
last checkpoints) on exactly the text their validation figures came from, and with
``--dynamic`` under dynamic evaluation too, ``--parallel`` members at a time
(``seqlm eval --jobs``).

The wall-clock time from the first member's start to the last one's end, each member's
figures and the ensemble's are printed and written to ``OUT/ensemble.json``, with the
machine. Everything is written under ``--out``, which must not exist yet.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from importlib import metadata
from pathlib import Path


def machine() -> dict:
    """What the figures were measured on: the CPU (with its family, which tells AMD's
    generations apart where the name does not), its cores, torch, and the GPU if any."""
    info = {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "torch": metadata.version("torch"), "python": platform.python_version()}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        fields = dict(line.split(":", 1) for line in cpuinfo.read_text().splitlines()
                      if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["cpu"] = fields.get("model name", info["cpu"])
        info["cpu_family"] = fields.get("cpu family")
    import torch  # here only: the members train in processes of their own

    if torch.cuda.is_available():
        info["cuda"] = torch.cuda.get_device_name(0)
    return info


def _seqlm(*args: str) -> list[str]:
    return [sys.executable, "-m", "seqlm", *args]


def train_members(config: str, members: int, parallel: int, out: Path,
                  extra: list[str]) -> tuple[float, list[dict]]:
    """Train ``members`` runs, ``parallel`` at a time; the wall time and each one's record."""
    waiting = list(range(1, members + 1))
    running: dict[int, tuple[subprocess.Popen, float]] = {}
    records = []
    start = time.perf_counter()
    while waiting or running:
        while waiting and len(running) < parallel:
            seed = waiting.pop(0)
            folder = out / f"member-{seed}"
            command = _seqlm("run", "--config", config, "--seed", str(seed), "--threads", "1",
                             "--out", str(folder), "--predict", "0", *extra)
            with open(out / f"member-{seed}.log", "w", encoding="utf-8") as log:
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            running[seed] = (process, time.perf_counter())
        time.sleep(0.5)
        for seed, (process, began) in list(running.items()):
            if process.poll() is None:
                continue
            del running[seed]
            if process.returncode != 0:
                for other, _ in running.values():
                    other.terminate()
                tail = (out / f"member-{seed}.log").read_text(encoding="utf-8")[-2000:]
                raise SystemExit(f"member {seed} failed (exit {process.returncode}):\n{tail}")
            summary = json.loads((out / f"member-{seed}" / "summary.json").read_text())
            records.append({"run": str(out / f"member-{seed}"), "seed": seed,
                            "wall_s": time.perf_counter() - began,
                            "best_val_ppl": summary["best_val_ppl"],
                            "best_epoch": summary["best_epoch"],
                            "train_seconds": summary["train_seconds"],
                            "tokens_per_s": summary["tokens_per_s"]})
    return time.perf_counter() - start, sorted(records, key=lambda r: r["seed"])


def evaluate(runs: list[str], checkpoint: str, dynamic: bool, jobs: int,
             device: str = "cpu") -> tuple[dict, float]:
    """``seqlm eval RUNS --held-out --json`` on ``device``, ``jobs`` members at a time:
    the report and the seconds it took."""
    start = time.perf_counter()
    command = _seqlm("eval", *runs, "--held-out", "--json", "--checkpoint", checkpoint,
                     "--jobs", str(jobs), "--threads", "1", "--device", device,
                     *(["--dynamic"] if dynamic else []))
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"seqlm eval failed: {result.stderr.strip()}")
    return json.loads(result.stdout), time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="The members' recipe (TOML).")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=2,
                        help="Members training at a time, one thread each.")
    parser.add_argument("--out", type=Path, required=True, help="A new folder for it all.")
    parser.add_argument("--checkpoint", choices=("best", "last", "both", "all"), default="best",
                        help="Which checkpoints of each member the ensemble takes.")
    parser.add_argument("--dynamic", action="store_true",
                        help="Also measure the ensemble under dynamic evaluation.")
    parser.add_argument("--eval-device", default="cpu",
                        help="seqlm eval's --device (the members train as -- OPTIONS say).")
    parser.add_argument("extra", nargs=argparse.REMAINDER,
                        help="-- then options for every member's seqlm run.")
    args = parser.parse_args(argv)
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    if args.members < 1 or args.parallel < 1:
        parser.error("--members and --parallel must be at least 1")
    if args.out.exists():
        parser.error(f"--out {args.out} exists; give a new folder")
    args.out.mkdir(parents=True)
    wall, members = train_members(args.config, args.members, args.parallel, args.out, extra)
    report, eval_s = evaluate([m["run"] for m in members], args.checkpoint, args.dynamic,
                              args.parallel, args.eval_device)
    result = {
        "date": date.today().isoformat(),
        "machine": machine(),
        "command": {"config": args.config, "members": args.members,
                    "parallel": args.parallel, "checkpoint": args.checkpoint,
                    "eval_device": args.eval_device, "extra": extra},
        "training_wall_s": wall,
        "eval_s": eval_s,
        "members": members,
        "ensemble_val_ppl": report["perplexity"],
        "ensemble_tokens": report["tokens"],
        "ensemble_members": [{k: m[k] for k in ("run", "checkpoint", "epoch", "perplexity")}
                             for m in report["members"]],
        "dynamic": report.get("dynamic"),
    }
    (args.out / "ensemble.json").write_text(json.dumps(result, indent=2) + "\n")
    for m in members:
        print(f"member {m['seed']}: best val ppl {m['best_val_ppl']:.4f} (epoch "
              f"{m['best_epoch']}), {m['wall_s']:.0f} s")
    print(f"training: {wall:.0f} s wall clock for {args.members} members, "
          f"{args.parallel} at a time")
    print(f"ensemble of {len(report['members'])} checkpoints ({args.checkpoint}): val ppl "
          f"{report['perplexity']:.4f} over {report['tokens']:,} tokens")
    if report.get("dynamic"):
        print(f"ensemble, dynamic: {report['dynamic']['perplexity']:.4f} (static "
              f"{report['dynamic']['static_perplexity']:.4f} read the same way)")
    return result


if __name__ == "__main__":
    main()

"""Peak memory of the default ``seqlm run``, measured in a process of its own.

Usage: ``python benchmarks/peak_memory.py EPOCHS DEVICE OUT_DIR``. Prints one JSON line:
the process's peak resident memory and, on CUDA, the peak of torch's GPU allocator.
Memory does not grow with the number of epochs, so a few epochs stand for the full 500.
"""

from __future__ import annotations

import argparse
import json
import resource

import torch
from rich.console import Console

from seqlm.runs.stages import run


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Peak memory of the default seqlm run, as one JSON line.")
    parser.add_argument("epochs", type=int, help="epochs to train (memory does not grow "
                        "with them)")
    parser.add_argument("device", help="cpu, cuda, ...")
    parser.add_argument("out", help="the run folder (replaced)")
    args = parser.parse_args()
    epochs, device, out = args.epochs, args.device, args.out
    result = run(epochs=epochs, device=device, out=out, force=True,
                 console=Console(quiet=True))
    report = {
        "epochs": epochs,
        "device": str(result.device),
        # Linux reports ru_maxrss in KiB.
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    if result.device.type == "cuda":
        report["cuda_max_allocated_mib"] = round(
            torch.cuda.max_memory_allocated(result.device) / 2**20, 1)
    print(json.dumps(report))


if __name__ == "__main__":
    main()

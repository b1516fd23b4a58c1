"""Peak memory of the default ``seqlm run``, measured in a process of its own.

Usage: ``python benchmarks/peak_memory.py EPOCHS DEVICE OUT_DIR``. Prints one JSON line:
the process's peak resident memory and, on CUDA, the peak of torch's GPU allocator.
Memory does not grow with the number of epochs, so a few epochs stand for the full 500.
"""

from __future__ import annotations

import json
import resource
import sys

import torch
from rich.console import Console

from seqlm.runner import run


def main() -> None:
    epochs, device, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
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

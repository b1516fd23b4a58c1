"""How long ``seqlm eval --held-out --dynamic`` of an ensemble takes with each ``--jobs``.

Usage::

    python benchmarks/eval_jobs.py RUN [RUN ...] [--checkpoint last] [--jobs 1 2]
        [--out FILE]

For each ``--jobs`` value it runs ``seqlm eval RUNS --held-out --dynamic --json
--checkpoint C --jobs N --threads 1`` (as ``benchmarks/ensemble.py`` measures, one
torch thread per member) and records the wall-clock seconds and the ensemble's
figures, which must agree whatever the number of jobs. The machine and the
rows are printed as JSON, and written to ``--out`` if given.
"""

from __future__ import annotations

import argparse
import json
from datetime import date
from pathlib import Path

from ensemble import evaluate, machine


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders of one ensemble")
    parser.add_argument("--checkpoint", default="best")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", default=None, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    rows = []
    for jobs in args.jobs:
        report, seconds = evaluate(args.runs, args.checkpoint, True, jobs)
        rows.append({"jobs": jobs, "seconds": round(seconds, 1),
                     "members": len(report["members"]),
                     "perplexity": report["perplexity"],
                     "dynamic_perplexity": report["dynamic"]["perplexity"]})
        print(json.dumps(rows[-1]), flush=True)
    out = {"date": date.today().isoformat(), "machine": machine(), "runs": args.runs,
           "checkpoint": args.checkpoint, "rows": rows}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    main()

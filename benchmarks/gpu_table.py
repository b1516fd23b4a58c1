"""One markdown table from the JSON that ``benchmarks/gpu.sh`` writes, for the docs.

Reads, from the folder given (default ``benchmarks/``), whichever of these exist:
``end-to-end-gpu.json`` (:mod:`benchmarks.end_to_end`), ``results-gpu.json``
(:mod:`benchmarks.throughput`) and ``results-generation.json``
(:mod:`benchmarks.generation`), and prints one table with a row per measurement: what
the seed's code reaches, what seqlm reaches, and the ratio. The lines above the table
name the machine, so the table can be pasted into ``docs/performance.md`` as it is.

    python benchmarks/gpu_table.py results/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

FILES = {"end_to_end": "end-to-end-gpu.json", "throughput": "results-gpu.json",
         "generation": "results-generation.json"}


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}{unit}" if value >= 100 else f"{value:.2f}{unit}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def rows(end_to_end: dict | None, throughput: dict | None,
         generation: dict | None) -> list[tuple[str, str, str, str]]:
    """``(measurement, seed, seqlm, ratio)`` for every figure in the results given."""
    out: list[tuple[str, str, str, str]] = []
    if end_to_end:
        job = f"`{end_to_end['job']}`"
        if "train_ratio" in end_to_end:
            out.append((f"{job}: training tokens/s",
                        _num(end_to_end["seed_train_tokens_per_s"]),
                        _num(end_to_end["seqlm_train_tokens_per_s"]),
                        _ratio(end_to_end["train_ratio"])))
        out.append((f"{job}: whole command, seconds (median of "
                    f"{len(end_to_end['seqlm_s'])})",
                    _num(end_to_end["seed_median_s"]), _num(end_to_end["seqlm_median_s"]),
                    _ratio(end_to_end["ratio"])))
    for row in (throughput or {}).get("rows", []):
        size = "seed's size" if row["size"] == "seed" else row["size"]
        how = f"{row['precision']}{', graph' if row.get('cuda_graph') else ''}"
        out.append((f"benchmark: `{row['cell']}`, {size} ({how}), tokens/s",
                    _num(row.get("seed_tokens_per_s")), _num(row.get("seqlm_tokens_per_s")),
                    _ratio(row.get("ratio"))))
    by_mode: dict[str, dict[str, float]] = {}
    for row in (generation or {}).get("rows", []):
        if row["device"].startswith("cuda"):
            by_mode.setdefault(row["mode"], {})[row["generator"]] = row["tokens_per_s"]
    for mode, speeds in by_mode.items():
        seqlm, loop = speeds.get("seqlm"), speeds.get("host_loop")
        out.append((f"generation, {mode}: tokens/s (seed column: a read per token)",
                    _num(loop), _num(seqlm), _ratio(seqlm / loop if seqlm and loop else None)))
    return out


def machine_line(results: dict[str, Any]) -> str:
    """One line naming the GPU, torch and the date, from whatever the results say."""
    machine = next((r["machine"] for r in results.values() if r and "machine" in r), {})
    gpu = machine.get("cuda") or machine.get("gpu") or "unknown GPU"
    torch_version = machine.get("torch", "unknown")
    date = next((r["date"] for r in results.values() if r and "date" in r), None)
    return f"Measured on {gpu}, torch {torch_version}" + (f", {date}." if date else ".")


def table(results: dict[str, Any]) -> str:
    """The markdown: the machine line, a blank line, then the table."""
    lines = [machine_line(results), "", "| measurement | seed | seqlm | seqlm / seed |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in
              rows(results.get("end_to_end"), results.get("throughput"),
                   results.get("generation"))]
    return "\n".join(lines)


def load(folder: Path) -> dict[str, Any]:
    """The results found in ``folder``, by kind; a missing file gives None."""
    found: dict[str, Any] = {}
    for kind, name in FILES.items():
        path = folder / name
        found[kind] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    return found


def main(argv: list[str] | None = None) -> str:
    """Print the table for the folder in ``argv`` (default ``benchmarks``)."""
    parser = argparse.ArgumentParser(
        description="Print the markdown table of the GPU benchmark results in FOLDER.")
    parser.add_argument("folder", nargs="?", default="benchmarks", type=Path,
                        help="where benchmarks/gpu.sh wrote its JSON (default: benchmarks)")
    folder = parser.parse_args(argv).folder
    results = load(folder)
    if not any(results.values()):
        sys.exit(f"error: none of {', '.join(FILES.values())} is in {folder}; run "
                 "benchmarks/gpu.sh first")
    text = table(results)
    print(text)
    return text


if __name__ == "__main__":
    main()

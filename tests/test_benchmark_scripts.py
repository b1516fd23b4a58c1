"""The GPU table, the end-to-end comparison and the generation benchmark work on the CPU.

``benchmarks/gpu.sh`` runs on a GPU only; the table it ends with is printed from JSON,
which these tests feed with small fixtures in the scripts' own formats.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import end_to_end, generation, gpu_table  # noqa: E402

END_TO_END = {
    "job": "seqlm run --val-fraction 0 --epochs 500 --device cuda", "date": "2026-12-04",
    "seqlm_median_s": 12.5, "seed_median_s": 21.0, "ratio": 1.68, "pair_ratios": [1.68],
    "seqlm_s": [12.5], "seed_s": [21.0], "seqlm_train_tokens_per_s": 1200000.0,
    "seed_train_tokens_per_s": 290000.0, "train_ratio": 4.138,
}
THROUGHPUT = {
    "machine": {"torch": "2.11.0+cu130", "cuda": "NVIDIA H200", "cpu_count": 16},
    "rows": [
        {"device": "cuda", "cell": "lstm", "size": "seed", "precision": "tf32",
         "cuda_graph": True, "seed_tokens_per_s": 335219.6, "seqlm_tokens_per_s": 1052568.9,
         "ratio": 3.1399},
        {"device": "cuda", "cell": "lstm-scratch", "size": "b256-h1024-l2-book",
         "precision": "tf32", "cuda_graph": True, "seed_tokens_per_s": None,
         "seqlm_tokens_per_s": 793905.0, "ratio": None},
    ],
}
GENERATION = {"rows": [
    {"device": "cuda", "mode": "greedy", "generator": "seqlm", "tokens_per_s": 4000.0},
    {"device": "cuda", "mode": "greedy", "generator": "host_loop", "tokens_per_s": 2000.0},
    {"device": "cpu", "mode": "greedy", "generator": "seqlm", "tokens_per_s": 900.0},
]}


def test_the_table_is_one_markdown_table_with_a_row_per_figure(tmp_path):
    for kind, data in (("end_to_end", END_TO_END), ("throughput", THROUGHPUT),
                       ("generation", GENERATION)):
        (tmp_path / gpu_table.FILES[kind]).write_text(json.dumps(data))
    text = gpu_table.main([str(tmp_path)])
    lines = text.splitlines()
    assert lines[0] == "Measured on NVIDIA H200, torch 2.11.0+cu130, 2026-12-04."
    table = lines[2:]
    assert table[0] == "| measurement | seed | seqlm | seqlm / seed |"
    assert all(line.startswith("| ") and line.endswith(" |") and line.count(" | ") == 3
               for line in table)
    assert table[2] == ("| `seqlm run --val-fraction 0 --epochs 500 --device cuda`: training "
                        "tokens/s | 290,000 | 1,200,000 | 4.14x |")
    assert table[3].endswith("whole command, seconds (median of 1) | 21.00 | 12.50 | 1.68x |")
    assert table[4] == ("| benchmark: `lstm`, seed's size (tf32, graph), tokens/s | 335,220 | "
                        "1,052,569 | 3.14x |")
    assert table[5] == ("| benchmark: `lstm-scratch`, b256-h1024-l2-book (tf32, graph), "
                        "tokens/s | - | 793,905 | - |")
    # Generation on the GPU only, against the loop that reads every token.
    assert table[6] == ("| generation, greedy: tokens/s (seed column: a read per token) | "
                        "2,000 | 4,000 | 2.00x |")
    assert len(table) == 7


def test_missing_results_leave_their_rows_out_and_none_at_all_is_an_error(tmp_path):
    (tmp_path / gpu_table.FILES["throughput"]).write_text(json.dumps(THROUGHPUT))
    assert len(gpu_table.main([str(tmp_path)]).splitlines()) == 2 + 2 + 2
    with pytest.raises(SystemExit, match="none of end-to-end-gpu.json"):
        gpu_table.main([str(tmp_path / "empty")])


def test_end_to_end_summary_takes_medians_and_ratios():
    result = end_to_end.summarize({"seqlm": [10.0, 12.0, 11.0], "seed": [12.0, 12.0, 13.2]},
                                  {"seqlm": [3.0, 4.0, 5.0], "seed": [2.0, 2.0, 2.0]})
    assert result["seqlm_median_s"] == 11.0 and result["seed_median_s"] == 12.0
    assert result["ratio"] == round(12 / 11, 3)
    assert result["pair_ratios"] == [1.2, 1.0, 1.2]
    assert result["train_ratio"] == 2.0


def test_end_to_end_commands_run_plain_seqlm_against_the_seeds_script(tmp_path):
    runs = end_to_end.commands(500, tmp_path, tmp_path / "out", ["seqlm"], "cuda")
    assert runs["seqlm"] == ["seqlm", "run", "--val-fraction", "0", "--epochs", "500",
                             "--device", "cuda", "--out", str(tmp_path / "out" / "seqlm")]
    assert runs["seed"][2:] == ["seed-job", "--epochs", "500", "--data",
                                str(tmp_path / "timemachine.txt"), "--out",
                                str(tmp_path / "out" / "seed"), "--device", "cuda"]


@pytest.mark.slow
def test_end_to_end_runs_a_pair_of_real_commands(book_path, tmp_path):
    """Both sides as processes, one epoch each: the JSON has both sides' figures."""
    out = tmp_path / "e2e.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "end_to_end.py"), "--pairs", "1",
         "--epochs", "1", "--data", str(book_path.parent), "--json", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["seqlm_median_s"] > 0 and result["seed_median_s"] > 0
    assert result["seqlm_train_tokens_per_s"] > 0 and result["seed_train_tokens_per_s"] > 0
    assert list(tmp_path.iterdir()) == [out]  # its runs went to a temporary folder


def test_generation_benchmark_measures_both_ways_on_the_cpu(book_path, tmp_path, monkeypatch):
    monkeypatch.setenv("SEQLM_DATA_DIR", str(book_path.parent))
    result = generation.main(["--devices", "cpu", "--hidden", "8",
                              "--tokens", "5", "--repeats", "1", "--json",
                              str(tmp_path / "g.json")])
    rows = json.loads((tmp_path / "g.json").read_text())["rows"]
    assert rows == result["rows"]
    assert {(r["mode"], r["generator"]) for r in rows} == {
        ("greedy", "seqlm"), ("greedy", "host_loop"), ("sampled", "seqlm"),
        ("sampled", "host_loop")}
    assert all(r["tokens_per_s"] > 0 and r["tokens"] == 5 for r in rows)


def test_the_epoch_snapshot_benchmark_times_each_part_of_the_copy():
    from benchmarks import epoch_snapshot

    totals = epoch_snapshot.measure(3)
    assert set(totals) == {"state_dict", "cpu_copy", "pack_unpack"}
    assert all(seconds > 0 for seconds in totals.values())


def test_line_start_loss_splits_the_held_out_loss_by_position(book_path, tmp_path):
    import seqlm
    from benchmarks import line_start_loss
    from seqlm.data.text import clean_lines

    out = tmp_path / "run"
    seqlm.run(data=book_path, max_tokens=6000, epochs=2, hidden=16, batch_size=8,
              num_steps=10, predict=0, out=out)
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "line_start_loss.py"),
                             str(out), "--data", str(book_path), "--json"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    parts = report["parts"]
    assert report["tokens"] == 599  # the last 10% of 6,000 characters, less the first
    assert sum(p["tokens"] for p in parts.values()) == 599
    assert abs(sum(p["share_of_loss"] for p in parts.values()) - 1) < 1e-6
    # Every line of the held-out span starts once (its first target is no line start).
    lengths = [len(line) for line in clean_lines(book_path.read_text(encoding="utf-8"),
                                                 "letters")]
    starts, at = 0, 0
    for length in lengths:
        starts += 5401 <= at < 6000
        at += length
    assert parts["line start"]["tokens"] == starts > 5
    assert report["perplexity_knowing_the_position"] <= report["perplexity"]
    assert 0 < report["line_end_rate"] < 1
    # A word end is where a space or a line's end follows: the helper counts them so.
    assert list(line_start_loss.word_ends(["ab cd", "e"])) == [(2, False), (5, True),
                                                               (1, True)]


def test_the_ensemble_benchmark_trains_members_side_by_side_and_measures_them(book_path,
                                                                              tmp_path):
    out = tmp_path / "ensemble"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "ensemble.py"), "--config",
         str(ROOT / "examples" / "recipes" / "timemachine-cpu.toml"), "--members", "3",
         "--parallel", "2", "--out", str(out), "--", "--data", str(book_path),
         "--max-tokens", "3000", "--hidden", "16", "--num-layers", "1", "--embedding-dim",
         "8", "--batch-size", "8", "--num-steps", "10", "--epochs", "2"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "ensemble.json").read_text())
    members = report["members"]
    assert [m["seed"] for m in members] == [1, 2, 3]
    # Each member is its own run, with its own seed, on the same held-out text.
    assert len({m["best_val_ppl"] for m in members}) == 3
    for m in members:
        config = json.loads((Path(m["run"]) / "summary.json").read_text())["config"]
        assert config["seed"] == m["seed"] and config["threads"] == 1
        assert config["max_tokens"] == 3000 and config["precision"] == "fp32"
    assert report["ensemble_tokens"] == 299  # the last 10% of 3,000 characters, less one
    assert report["ensemble_val_ppl"] < sum(m["best_val_ppl"] for m in members) / 3
    assert report["dynamic"] is None and report["machine"]["cpu_count"] >= 1
    assert "ensemble of 3 checkpoints (best): val ppl" in result.stdout
    again = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ensemble.py"),
                            "--config", "x.toml", "--out", str(out)],
                           capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert again.returncode == 2 and "exists; give a new folder" in again.stderr


@pytest.fixture(scope="module")
def two_runs(book_path, tmp_path_factory) -> list[Path]:
    """Two tiny runs of 4,000 characters, seeds 0 and 1, members of one ensemble."""
    import seqlm

    root = tmp_path_factory.mktemp("two-runs")
    runs = [root / "a", root / "b"]
    for seed, out in enumerate(runs):
        seqlm.run(data=book_path, max_tokens=4000, epochs=3, hidden=16, batch_size=8,
                  num_steps=10, predict=0, seed=seed, out=out)
    return runs


def _benchmark_report(script: str, tmp_path: Path, *args: str) -> dict:
    """Run ``benchmarks/SCRIPT ARGS --out FILE`` and return the JSON it wrote."""
    report_path = tmp_path / "report.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args,
                             "--out", str(report_path)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return json.loads(report_path.read_text())


def test_dynamic_mixing_measures_what_seqlm_eval_measures(two_runs, tmp_path):
    from seqlm.runs.saved import evaluate_text
    from seqlm.training.dynamic_eval import DynamicSettings

    runs = two_runs
    report = _benchmark_report("dynamic_mixing.py", tmp_path, *map(str, runs))
    assert report["tokens"] == 399  # the last 10% of 4,000 characters, less the first
    assert [(m["run"], m["checkpoint"]) for m in report["members"]] == [
        (str(runs[0]), "best"), (str(runs[0]), "last"), (str(runs[1]), "best"),
        (str(runs[1]), "last")]
    # The ensemble of both checkpoints is what seqlm eval --checkpoint both --dynamic gives.
    expected = evaluate_text(runs, held_out=True, which="both",
                             dynamic=DynamicSettings())["dynamic"]
    both = report["ensembles"]["both"]
    assert both["dynamic"] == pytest.approx(expected["perplexity"], rel=1e-5)
    assert both["static"] == pytest.approx(expected["static_perplexity"], rel=1e-5)
    assert len(report["following_weights"]) == 3 and len(report["cache"]) == 3
    assert all(row["cache_alone"] > row["dynamic"] for row in report["cache"])


def test_following_weights_and_the_cache_of_dynamic_mixing(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as the script runs: its imports
    import torch

    from benchmarks import dynamic_mixing
    from seqlm.training.evaluation import ensemble_loss

    losses = torch.rand(3, 50, dtype=torch.float64) * 3
    # Weights spread evenly again after every token are the plain mean.
    assert torch.allclose(dynamic_mixing.following_weights(losses, 1.0, 1.0),
                          ensemble_loss(list(losses)))
    # Without the share, the weight moves to the member that keeps predicting better.
    better = torch.stack([torch.full((200,), 0.5), torch.full((200,), 3.0)]).double()
    mixed = dynamic_mixing.following_weights(better, 0.0, 1.0)
    assert mixed[0] > 0.5 + 0.1 and abs(mixed[-1] - 0.5) < 1e-6
    # A cache of the text so far learns a text that repeats itself.
    cache = dynamic_mixing.cache_losses([0, 1, 2, 3] * 50, 10, 3)
    assert len(cache) == 199 and cache[0] == pytest.approx(math.log(10))
    assert cache[-20:].max() < 0.05


def test_eval_jobs_times_each_number_of_jobs_with_the_same_figures(two_runs, tmp_path):
    report = _benchmark_report("eval_jobs.py", tmp_path, *map(str, two_runs), "--jobs", "1",
                               "2")
    one, two = report["rows"]
    assert (one["jobs"], two["jobs"], one["members"]) == (1, 2, 2)
    assert one["dynamic_perplexity"] == pytest.approx(two["dynamic_perplexity"], rel=1e-6)
    assert one["seconds"] > 0 and report["machine"]["cpu_count"] >= 1

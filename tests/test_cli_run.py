"""`seqlm run` end to end through click's runner, on small data."""

import json

from click.testing import CliRunner

from seqlm.cli import main

FAST = ["--epochs", "30", "--hidden", "32", "--batch-size", "8", "--num-steps", "10",
        "--predict", "12"]


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_run_writes_summary_metrics_plot_and_sample(small_text, tmp_path):
    out = tmp_path / "run"
    result = invoke("run", "--data", str(small_text), "--out", str(out), *FAST)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    for key in ("cell", "sampler", "tokenizer", "device", "epochs", "final_train_ppl",
                "tokens_per_s", "sample"):
        assert key in summary
    assert summary["cell"] == "lstm" and summary["sampler"] == "sequential"
    assert summary["device"] == "cpu"
    assert summary["epochs"] == 30
    assert summary["sample"].startswith("time traveller")
    assert len(summary["sample"]) == len("time traveller") + 12
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 31))
    assert rows[-1]["train_ppl"] == summary["final_train_ppl"]
    png = (out / "perplexity.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    # Plain progress lines (not a terminal) and the final report.
    assert "epoch 30/30" in result.output
    assert "final perplexity" in result.output and "tokens/s" in result.output
    assert "sample: time traveller" in result.output


def test_run_scratch_cell_with_sequential_sampler_exactly_as_written(small_text, tmp_path):
    result = invoke("run", "--cell", "lstm-scratch", "--sampler", "sequential",
                    "--data", str(small_text), "--out", str(tmp_path / "o"), *FAST)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["cell"] == "lstm-scratch"


def test_every_builtin_cell_and_sampler_and_word_tokenizer_runs(small_text, tmp_path):
    for i, extra in enumerate([
        ["--cell", "gru", "--sampler", "random"],
        ["--cell", "rnn", "--num-layers", "2"],
        ["--cell", "gru-scratch", "--num-layers", "2"],
        ["--cell", "rnn-scratch", "--sampler", "random"],
        ["--cell", "lstm", "--bidirectional"],
        ["--tokenizer", "word", "--prefix", "the time", "--batch-size", "2",
         "--num-steps", "4"],
    ]):
        out = tmp_path / str(i)
        result = invoke("run", "--data", str(small_text), "--out", str(out), *FAST,
                        *extra, "--epochs", "3")
        assert result.exit_code == 0, (extra, result.output)
        assert json.loads((out / "summary.json").read_text())["epochs"] == 3


def test_unknown_cell_lists_the_choices(small_text, tmp_path):
    result = CliRunner().invoke(main, ["run", "--cell", "transformer", "--data",
                                       str(small_text), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "cell 'transformer' not recognized. Choose one of:" in result.output
    assert "lstm-scratch" in result.output
    assert "Traceback" not in result.output


def test_a_misspelt_cell_gets_the_closest_name(small_text, tmp_path):
    result = CliRunner().invoke(main, ["run", "--cell", "lstmm", "--data", str(small_text),
                                       "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert result.output.startswith("Error: --cell 'lstmm' not recognized; did you mean "
                                    "'lstm'? Choose one of: ")
    upper = CliRunner().invoke(main, ["run", "--cell", "GRU", "--data", str(small_text),
                                      "--out", str(tmp_path / "x")])
    assert "--cell 'GRU' not recognized; did you mean 'gru'?" in upper.output
    assert not (tmp_path / "x").exists()


def test_bidirectional_refused_for_scratch_cells(small_text, tmp_path):
    result = CliRunner().invoke(main, ["run", "--cell", "lstm-scratch", "--bidirectional",
                                       "--data", str(small_text), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "does not accept --bidirectional" in result.output


def test_the_closing_lines_stay_whole_in_a_log_and_name_the_files_written(small_text,
                                                                           tmp_path):
    # CliRunner is no terminal, as a pipe or a CI log is not: 80 columns, no wrapping.
    out = tmp_path / ("a-folder-name-long-enough-to-pass-eighty-columns" * 2)
    result = invoke("run", "--data", str(small_text), "--out", str(out), *FAST,
                    "--val-fraction", "0.2")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    [final] = [line for line in lines if line.startswith("final perplexity")]
    assert "validation perplexity" in final and final.endswith("tokens/s on cpu")
    [outputs] = [line for line in lines if line.startswith("outputs in")]
    assert outputs == (f"outputs in {out}/ (summary.json, metrics.jsonl, perplexity.png, "
                       "checkpoint.json, best.json, status.json)")

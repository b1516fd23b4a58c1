"""`seqlm compare`: one picture of several runs' curves, and a table of what differs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import seqlm
from seqlm.cli import main

TINY = dict(batch_size=4, num_steps=5, max_tokens=400, predict=6, device="cpu", force=True)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    text = root / "small.txt"
    text.write_text("the time traveller was expounding a recondite matter to us\n" * 20)
    seqlm.run(cell="lstm", hidden=8, epochs=3, data=text, out=root / "runs" / "small", **TINY)
    seqlm.run(cell="gru", hidden=16, epochs=3, data=text, out=root / "runs" / "big", **TINY)
    return root / "runs" / "small", root / "runs" / "big"


def compare(*args):
    return CliRunner().invoke(main, ["compare", *map(str, args)])


def test_compare_draws_one_picture_and_tabulates_the_settings_that_differ(
    two_runs, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    result = compare(*two_runs)
    assert result.exit_code == 0, result.output
    picture = tmp_path / "compare.png"
    assert picture.read_bytes().startswith(PNG) and picture.stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["compare.png"]  # nothing else
    from matplotlib import image

    height, width, _ = image.imread(picture).shape
    assert (width, height) == (900, 550)
    # One column per run: the settings that differ, then the figures.
    rows = {line.split("│")[1].strip(): line.split("│")[2:4]
            for line in result.stdout.splitlines() if line.count("│") == 4}
    assert [v.strip() for v in rows["cell"]] == ["lstm", "gru"]
    assert [v.strip() for v in rows["hidden"]] == ["8", "16"]
    assert [v.strip() for v in rows["status"]] == ["finished", "finished"]
    summary = json.loads((two_runs[0] / "summary.json").read_text())
    assert rows["best val ppl"][0].strip() == f"{summary['best_val_ppl']:.4f}"
    assert "plot: compare.png" in result.stdout


def test_compare_json_names_the_differing_settings_and_labels_the_curves(two_runs, tmp_path):
    out = tmp_path / "c.png"
    result = compare(*two_runs, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["differing_settings"] == ["cell", "hidden"] and data["plot"] == str(out)
    small, big = data["runs"]
    assert small["label"] == "cell=lstm, hidden=8" and big["label"] == "cell=gru, hidden=16"
    summary = json.loads((two_runs[1] / "summary.json").read_text())
    assert big["final_val_ppl"] == pytest.approx(summary["final_val_ppl"])
    assert big["best_val_ppl"] == pytest.approx(summary["best_val_ppl"])
    assert out.read_bytes().startswith(PNG)


def test_runs_with_the_same_settings_are_labelled_by_folder(two_runs, tmp_path):
    twin = tmp_path / "twin"
    shutil.copytree(two_runs[0], twin)
    result = compare(two_runs[0], twin, "-o", tmp_path / "c.png", "--json")
    data = json.loads(result.stdout)
    assert data["differing_settings"] == []
    assert [r["label"] for r in data["runs"]] == ["small", "twin"]


@pytest.mark.parametrize("output, message", [
    ("missing/c.png", "does not exist; create it first"),
    ("c.txt", "name a picture ending in .png, .svg, .pdf"),
    ("notes.png", "exists and is not a picture seqlm compare made; give another -o"),
    ("folder.png", "is a folder"),
])
def test_compare_writes_only_a_picture_where_asked(two_runs, tmp_path, output, message):
    (tmp_path / "notes.png").write_text("my notes")
    (tmp_path / "folder.png").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = compare(*two_runs, "-o", tmp_path / output)
    assert result.exit_code == 2 and message in result.stderr
    assert result.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "notes.png").read_text() == "my notes"


def test_an_existing_picture_is_replaced(two_runs, tmp_path):
    out = tmp_path / "c.png"
    assert compare(*two_runs, "-o", out).exit_code == 0
    first = out.stat().st_mtime_ns
    assert compare(*two_runs, "-o", out).exit_code == 0
    assert out.stat().st_mtime_ns >= first and out.read_bytes().startswith(PNG)


def test_compare_never_writes_over_a_runs_own_files(two_runs):
    plot = two_runs[0] / "perplexity.png"
    before = plot.read_bytes()
    result = compare(*two_runs, "-o", plot)
    assert result.exit_code == 2
    assert "is one of the files a run writes in its own folder" in result.output
    assert plot.read_bytes() == before


def test_the_picture_follows_the_users_umask(two_runs, tmp_path):
    out = tmp_path / "c.png"
    assert compare(*two_runs, "-o", out).exit_code == 0
    mask = os.umask(0o022)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask


def test_a_folder_that_is_not_a_run_gets_one_line(two_runs, tmp_path):
    (tmp_path / "empty").mkdir()
    result = compare(two_runs[0], tmp_path / "empty", "-o", tmp_path / "c.png")
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {tmp_path / 'empty'} is not a seqlm run folder (it has "
                             "none of status.json, metrics.jsonl, checkpoint.json, "
                             "summary.json); give a folder made by seqlm run (seqlm runs "
                             "lists them)\n")
    assert not (tmp_path / "c.png").exists()


def test_an_older_run_without_metrics_gets_one_line(two_runs, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(two_runs[0] / "summary.json", old)
    result = compare(two_runs[0], old, "-o", tmp_path / "c.png")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "has no finished epoch in metrics.jsonl (made by an older seqlm" in result.stderr


@pytest.mark.parametrize("args, message", [
    (1, "needs at least two run folders"),
    (2, "the same run is given twice"),
])
def test_compare_needs_two_different_runs(two_runs, tmp_path, args, message):
    runs = [two_runs[0]] * args
    result = compare(*runs, "-o", tmp_path / "c.png")
    assert result.exit_code == 2 and message in result.stderr


def test_a_folder_of_foreign_files_or_a_file_is_refused_as_no_run(two_runs, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "summary.json").write_text('{"x": 1}')
    result = compare(two_runs[0], mine, "-o", tmp_path / "c.png")
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {mine} is not a seqlm run folder (its summary.json is "
                             "not seqlm's); give a folder made by seqlm run (seqlm runs lists "
                             "them)\n")
    afile = two_runs[1] / "metrics.jsonl"
    result = compare(two_runs[0], afile, "-o", tmp_path / "c.png")
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {afile} is a file, not a run folder; give a folder made "
                             "by seqlm run (seqlm runs lists them)\n")
    assert not (tmp_path / "c.png").exists()


def test_a_killed_run_is_compared_at_its_last_checkpoint(two_runs, tmp_path):
    from seqlm.runs.status import StatusRecorder, read_status

    killed = tmp_path / "killed"
    shutil.copytree(two_runs[1], killed)
    with (killed / "metrics.jsonl").open("a") as f:  # an epoch after the last checkpoint
        row = json.loads((killed / "metrics.jsonl").read_text().splitlines()[-1])
        f.write(json.dumps(dict(row, epoch=4, val_loss=0.1)) + "\n")
    StatusRecorder(killed, read_status(two_runs[1])["config"]).write("running")
    result = compare(two_runs[0], killed, "-o", tmp_path / "c.png", "--json")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["runs"][1]
    assert (run["status"], run["epochs"]) == ("failed", 3) and run["best_epoch"] <= 3
    assert "1 epoch(s) after its checkpoint of epoch 3 were not saved" in result.stderr
    (killed / "checkpoint.json").unlink()
    result = compare(two_runs[0], killed, "-o", tmp_path / "c.png")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert f"{killed} ended before it saved a checkpoint (its 4 epoch(s)" in result.stderr


def _diverged_copy(source, target):
    """A copy of a run whose every perplexity overflowed to inf."""
    shutil.copytree(source, target)
    rows = [json.loads(line) for line in (target / "metrics.jsonl").read_text().splitlines()]
    rows = [dict(row, train_loss=800.0, val_loss=900.0) for row in rows]
    (target / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def strict(text):
    """``text`` parsed as strict JSON: Infinity and NaN are no JSON."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_infinite_perplexities_are_strict_json_alike_in_runs_compare_and_eval(
        two_runs, tmp_path, monkeypatch):
    import warnings

    for name in ("inf1", "inf2"):
        _diverged_copy(two_runs[0], tmp_path / name)
    result = CliRunner().invoke(main, ["runs", str(tmp_path), "--json"])
    assert [r["final_train_ppl"] for r in strict(result.stdout)] == ["Infinity"] * 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = compare(tmp_path / "inf1", tmp_path / "inf2", "-o", tmp_path / "c.png",
                         "--json")
    assert result.exit_code == 0 and result.stderr == "", result.output
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert [r["best_val_ppl"] for r in strict(result.stdout)["runs"]] == ["Infinity"] * 2

    def diverged(*args, **kwargs):
        return {"perplexity": float("inf"), "bits_per_token": 1298.4}

    monkeypatch.setattr("seqlm.runs.saved.evaluate_text", diverged)
    result = CliRunner().invoke(main, ["eval", str(two_runs[0]), "--held-out", "--json"])
    assert strict(result.stdout)["perplexity"] == "Infinity"


def test_runs_of_different_tokenizations_get_a_note_and_show_max_tokens(two_runs, tmp_path):
    text = two_runs[0].parent.parent / "small.txt"
    words = tmp_path / "words"
    seqlm.run(cell="lstm", hidden=8, epochs=1, data=text, out=words, tokenizer="word",
              **dict(TINY, max_tokens=300))
    result = compare(two_runs[0], words, "-o", tmp_path / "c.png", "--json")
    assert result.exit_code == 0, result.output
    settings = json.loads(result.stdout)["differing_settings"]
    assert "tokenizer" in settings and "max_tokens" in settings
    assert result.stderr == ("note: the runs split their text into different tokens "
                             "(tokenizer: char, word): per-token figures (perplexity, bits per "
                             "token) of different tokenizations are not comparable; bits per "
                             "character of the same text would be\n")
    assert compare(*two_runs, "-o", tmp_path / "c.png").stderr == ""  # same tokens: no note


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_only_a_picture_seqlm_compare_made_is_replaced(two_runs, tmp_path, suffix):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    holiday = tmp_path / f"holiday{suffix}"
    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 1])
    fig.savefig(holiday)
    plt.close(fig)
    before = holiday.read_bytes()
    result = compare(*two_runs, "-o", holiday)
    assert result.exit_code == 2
    assert result.stderr == (f"Error: -o {holiday}: exists and is not a picture seqlm compare "
                             "made; give another -o (seqlm compare replaces only its own "
                             "pictures)\n")
    assert holiday.read_bytes() == before
    ours = tmp_path / f"compare{suffix}"
    for _ in range(2):  # written, then replaced: it carries seqlm compare's mark
        result = compare(*two_runs, "-o", ours)
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([holiday.name, ours.name])


def test_a_folder_that_cannot_be_written_names_the_picture_asked_for(
        two_runs, tmp_path, monkeypatch):
    import tempfile

    real = tempfile.mkstemp
    locked = tmp_path / "locked"
    locked.mkdir()

    def read_only(*args, **kwargs):  # as in a read-only folder, also for root
        folder = Path(kwargs.get("dir") or ".")
        if folder == locked:
            name = folder / f"{kwargs.get('prefix', '')}rkbj3tx6{kwargs.get('suffix', '')}"
            raise PermissionError(13, "Permission denied", str(name))
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    result = compare(*two_runs, "-o", locked / "compare.png")
    assert result.exit_code == 1
    assert result.stderr == (f"Error: could not write {locked / 'compare.png'} (Permission "
                             "denied); free some disk space or check the folder's "
                             "permissions\n")


def test_comparing_leaves_the_callers_matplotlib_as_it_was(two_runs, tmp_path):
    import matplotlib
    from matplotlib import pyplot as plt

    from seqlm.runs.compare import load_runs, plot_runs

    before = matplotlib.get_backend()
    matplotlib.use("pdf")  # a caller's own, as a notebook's inline backend is
    try:
        figures = plt.get_fignums()
        plot_runs(load_runs(list(two_runs)), ["a", "b"], tmp_path / "c.png")
        assert matplotlib.get_backend() == "pdf"
        assert plt.get_fignums() == figures
    finally:
        matplotlib.use(before)
    assert (tmp_path / "c.png").read_bytes().startswith(b"\x89PNG")

"""seqlm eval with several runs (an ensemble) and on the text a run held out (--held-out)."""

from __future__ import annotations

import json
import math
import shutil
import socket
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from seqlm.cli import main
from seqlm.data.corpus import text_tokens
from seqlm.errors import UsageError
from seqlm.runs.saved import evaluate_text, load_trained
from seqlm.training.evaluation import ensemble_loss, token_losses

SMALL = ["--max-tokens", "2000", "--hidden", "24", "--embedding-dim", "8", "--batch-size",
         "8", "--num-steps", "16", "--epochs", "2", "--optimizer", "adam", "--lr", "0.01",
         "--predict", "5"]


def _train(out: Path, *args: str) -> Path:
    result = CliRunner().invoke(main, ["run", "--out", str(out), *SMALL, *args])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory, book_path) -> dict[str, Path]:
    """Two runs alike but for their seed, on a copy of the book's opening (so that it can
    be changed), one with another cleaning, one holding out another part."""
    root = tmp_path_factory.mktemp("ensemble")
    text = root / "book.txt"
    text.write_text(book_path.read_text(encoding="utf-8")[:12000], encoding="utf-8")
    data = ["--data", str(text)]
    return {
        "a": _train(root / "a", *data, "--seed", "0"),
        "b": _train(root / "b", *data, "--seed", "1"),
        "raw": _train(root / "raw", *data, "--clean", "none"),
        "shorter": _train(root / "shorter", *data, "--max-tokens", "1800"),
        "text": text,
    }


def _eval(*args: str):
    return CliRunner().invoke(main, ["eval", *map(str, args)])


def _json(*args: str) -> dict:
    result = _eval(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # notes go to stderr, beside the JSON


def test_held_out_measures_exactly_what_validation_measured(runs):
    report = _json(runs["a"], "--held-out")
    summary = json.loads((runs["a"] / "summary.json").read_text())
    assert report["perplexity"] == pytest.approx(summary["best_val_ppl"], rel=1e-6)
    assert report["tokens"] == summary["val_tokens"] - 1
    assert report["held_out"] is True and report["epoch"] == summary["best_epoch"]


def test_the_ensemble_averages_the_members_probabilities_token_for_token(runs, tmp_path):
    # A text short enough to be read as one stream, so that the figure can be checked
    # against a plain loop over the two models.
    text = tmp_path / "t.txt"
    text.write_text("the time traveller smiled round at us then still smiling faintly\n"
                    * 20, encoding="utf-8")
    report = _json(runs["a"], runs["b"], "--data", text)
    probs = []
    for run in (runs["a"], runs["b"]):
        trained = load_trained(run)
        ids = torch.tensor(trained.vocab[text_tokens(text.read_text(), trained.tokenizer)])
        with torch.no_grad():
            logits, _ = trained.model(ids[:-1].unsqueeze(0), trained.model.begin_state(1, "cpu"))
        probs.append(torch.softmax(logits.float(), -1)[torch.arange(len(ids) - 1), ids[1:]])
    expected = -torch.log((probs[0] + probs[1]) / 2).mean().item()
    assert report["loss"] == pytest.approx(expected, rel=1e-5)
    members = report["members"]
    assert [m["run"] for m in members] == [str(runs["a"]), str(runs["b"])]
    for member, p in zip(members, probs, strict=True):
        assert member["loss"] == pytest.approx(-p.log().mean().item(), rel=1e-5)
    # Never worse than the members on average (the mean of probabilities, not of losses).
    assert report["loss"] < sum(m["loss"] for m in members) / 2
    assert report["epoch"] is None


def test_an_ensemble_of_one_model_twice_is_that_model(runs):
    trained = load_trained(runs["a"])
    ids = torch.tensor(trained.vocab[text_tokens(runs["text"].read_text(), trained.tokenizer,
                                                 "letters")])
    losses = token_losses(trained.model, ids, 8)
    assert torch.allclose(ensemble_loss([losses, losses]), losses, atol=1e-6)


def test_the_same_model_by_another_path_is_refused(runs, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(runs["a"], copy)
    for other in (copy, runs["a"] / "best.json"):
        result = _eval(runs["a"], other, "--held-out")
        assert result.exit_code == 2
        assert (f"{other} holds the same weights as {runs['a']} (best); an ensemble would "
                "count them twice, so give each model once") in " ".join(result.output.split())
    generated = CliRunner().invoke(main, ["generate", str(runs["a"]), str(copy)])
    assert generated.exit_code == 2 and "holds the same weights" in generated.output


def test_the_same_run_given_twice_is_refused(runs, monkeypatch):
    monkeypatch.chdir(runs["a"].parent)
    for args in ([runs["a"], runs["a"]], [runs["a"], "./a/"]):
        result = _eval(*args, runs["b"], "--held-out")
        assert result.exit_code == 2
        assert "the same run is given twice" in result.output
        assert "give different run folders" in result.output
    generated = CliRunner().invoke(main, ["generate", str(runs["a"]), "a"])
    assert generated.exit_code == 2 and "the same run is given twice" in generated.output


def test_a_checkpoints_file_is_that_checkpoint_whatever_checkpoint_is_asked(tmp_path,
                                                                            book_path):
    # A larger model on 2,000 characters overfits: its last checkpoint is not its best.
    run = _train(tmp_path / "o", "--data", str(book_path), "--hidden", "96", "--epochs", "12",
                 "--lr", "0.02", "--keep-every", "4")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_epoch"] < summary["epochs"]
    last = _json(run / "checkpoint.json", "--held-out")
    assert (last["checkpoint"], last["epoch"]) == ("last", summary["epochs"])
    assert last["perplexity"] == pytest.approx(summary["final_val_ppl"], rel=1e-6)
    kept = _json(run / "epoch-4.json", "--held-out")
    assert (kept["checkpoint"], kept["epoch"]) == ("epoch-4", 4)
    missing = _eval(run / "epoch-3.json", "--held-out")
    assert missing.exit_code == 1
    assert (f"no checkpoint at {run / 'epoch-3.json'}; {run} has best.json, checkpoint.json, "
            "epoch-4.json, epoch-8.json, epoch-12.json") in " ".join(missing.output.split())
    for which in ("last", "both", "all"):
        result = _eval(run / "best.json", "--held-out", "--checkpoint", which)
        assert result.exit_code == 2
        assert (f"best.json is one checkpoint's file; give its run folder to choose "
                f"--checkpoint {which}") in " ".join(result.output.split())


def test_both_checkpoints_of_an_averaged_run_are_two_members(tmp_path, book_path):
    # Under --average the best checkpoint may hold the average of the last epoch, whose
    # own weights the last checkpoint holds: one epoch, two models.
    run = _train(tmp_path / "avg", "--data", str(book_path), "--hidden", "96", "--epochs",
                 "6", "--lr", "0.02", "--average")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_is_average"] and summary["best_epoch"] == summary["epochs"]
    report = _json(run, "--held-out", "--checkpoint", "both")
    assert [(m["checkpoint"], m["epoch"]) for m in report["members"]] == [
        ("best", summary["epochs"]), ("last", summary["epochs"])]
    best, last = (m["perplexity"] for m in report["members"])
    assert best != pytest.approx(last, rel=1e-4)


def test_the_sentence_names_the_ensemble_and_each_member(runs):
    result = _eval(runs["a"], runs["b"], "--held-out")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert "held out char tokens (an ensemble of 2 runs" in lines[0]
    assert lines[1].startswith(f"  {runs['a']}: perplexity ")
    assert lines[2].startswith(f"  {runs['b']}: perplexity ")


def test_dynamic_evaluation_adapts_each_member(runs):
    report = _json(runs["a"], runs["b"], "--held-out", "--dynamic", "--dynamic-lr", "0",
                   "--dynamic-decay", "0")
    # Without steps, dynamic evaluation is static evaluation read the same way.
    assert report["dynamic"]["perplexity"] == pytest.approx(
        report["dynamic"]["static_perplexity"], rel=1e-5)
    adapting = _json(runs["a"], runs["b"], "--held-out", "--dynamic")
    assert all("dynamic_perplexity" in m for m in adapting["members"])
    assert adapting["dynamic"]["perplexity"] != pytest.approx(
        adapting["dynamic"]["static_perplexity"], rel=1e-4)


@pytest.mark.parametrize("other, problem", [
    ("raw", "uses --clean none, not --clean letters as"),
    ("shorter", "held out other text than"),
])
def test_runs_that_read_text_otherwise_are_refused_in_one_line(runs, other, problem):
    result = _eval(runs["a"], runs[other], "--held-out")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        next(line for line in result.stderr.splitlines() if line.startswith("Error: "))]
    assert f"{runs[other]} {problem} {runs['a']}" in result.stderr


def test_held_out_needs_a_held_out_part_and_the_same_text(runs, tmp_path):
    copy = tmp_path / "a"
    shutil.copytree(runs["a"], copy)
    changed = tmp_path / "book.txt"
    shutil.copy(runs["text"], changed)
    # The run's record names its text by absolute path: point this copy at another file.
    for name in ("checkpoint.json", "best.json"):
        record = json.loads((copy / name).read_text())
        record["state"]["config"]["data"] = str(changed)
        (copy / name).write_text(json.dumps(record))
    assert _eval(copy, "--held-out").exit_code == 0
    changed.write_text(changed.read_text() + "more", encoding="utf-8")
    result = _eval(copy, "--held-out")
    assert result.exit_code == 1
    assert f"{changed} has changed since the run trained on it" in result.stderr
    changed.unlink()
    result = _eval(copy, "--held-out")
    assert result.exit_code == 1 and "is no longer there" in result.stderr


def test_held_out_of_a_run_that_held_out_nothing_is_refused(tmp_path, book_path):
    run = _train(tmp_path / "r", "--data", str(book_path), "--val-fraction", "0")
    result = _eval(run, "--held-out")
    assert result.exit_code == 2
    assert "held out no text (--val-fraction 0)" in result.stderr


@pytest.mark.parametrize("args, message", [
    ([], "give --data FILE (a text to measure on) or --held-out"),
    (["--data", "x.txt", "--held-out"], "not both"),
])
def test_one_text_and_only_one(args, message):
    result = _eval("DIR", *args)
    assert result.exit_code == 2 and message in result.stderr


def test_the_library_takes_several_runs(runs):
    report = evaluate_text([runs["a"], runs["b"]], held_out=True)
    assert len(report["members"]) == 2
    assert report["perplexity"] < min(m["perplexity"] for m in report["members"]) * 1.01
    with pytest.raises(UsageError, match="at least one run folder"):
        evaluate_text([], held_out=True)


def test_ensemble_loss_is_the_mean_of_probabilities():
    a = torch.tensor([0.1, 2.0])
    b = torch.tensor([2.0, 0.1])
    mixed = ensemble_loss([a, b])
    expected = [-math.log((math.exp(-0.1) + math.exp(-2.0)) / 2)] * 2
    assert mixed.tolist() == pytest.approx(expected)


def test_both_checkpoints_make_two_members_where_they_differ(runs, tmp_path, book_path):
    # A larger model on 2,000 characters overfits well before its last epoch.
    run = _train(tmp_path / "overfit", "--data", str(book_path), "--hidden", "96",
                 "--epochs", "12", "--lr", "0.02")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_epoch"] < summary["epochs"]
    report = _json(run, "--held-out", "--checkpoint", "both")
    assert [(m["checkpoint"], m["epoch"]) for m in report["members"]] == [
        ("best", summary["best_epoch"]), ("last", summary["epochs"])]
    assert report["members"][0]["perplexity"] == pytest.approx(summary["best_val_ppl"],
                                                               rel=1e-6)
    assert report["members"][1]["perplexity"] == pytest.approx(summary["final_val_ppl"],
                                                               rel=1e-6)
    # A run whose best is its last epoch is one member, not the same weights twice.
    last_is_best = json.loads((runs["a"] / "summary.json").read_text())
    assert last_is_best["best_epoch"] == last_is_best["epochs"]
    assert len(_json(runs["a"], "--held-out", "--checkpoint", "both")["members"]) == 1
    result = _eval(run, "--held-out", "--checkpoint", "both")
    assert "(an ensemble of 2 checkpoints of 1 run, each token's" in result.output


def _val_ppl_by_epoch(run: Path) -> dict[int, float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {row["epoch"]: row["val_ppl"] for row in rows}


def _outputs_line(output: str) -> str:
    [line] = [line for line in output.splitlines() if line.startswith("outputs in")]
    return line


def test_keep_every_keeps_those_epochs_for_an_ensemble_of_snapshots(tmp_path, book_path):
    run = tmp_path / "kept"
    result = CliRunner().invoke(main, ["run", "--out", str(run), *SMALL, "--data",
                                       str(book_path), "--epochs", "5", "--keep-every", "2"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in run.glob("epoch-*.json")) == ["epoch-2.json", "epoch-4.json"]
    assert _outputs_line(result.output).endswith("status.json, epoch-2.json, epoch-4.json)")
    report = _json(run, "--held-out", "--checkpoint", "all")
    summary = json.loads((run / "summary.json").read_text())
    members = [(m["checkpoint"], m["epoch"]) for m in report["members"]]
    # The best, each kept epoch, the last: every epoch once.
    expected: list[tuple[str, int]] = []
    for name, epoch in [("best", summary["best_epoch"]), ("epoch-2", 2), ("epoch-4", 4),
                        ("last", 5)]:
        if epoch not in [e for _, e in expected]:
            expected.append((name, epoch))
    assert members == expected
    # A kept epoch holds that epoch's weights: it reads the held-out text as that epoch's
    # validation did.
    by_epoch = _val_ppl_by_epoch(run)
    for member in report["members"]:
        assert member["perplexity"] == pytest.approx(by_epoch[member["epoch"]], rel=1e-5)
    # seqlm's own files: --force clears them with the rest of the earlier run.
    again = _train(run, "--data", str(book_path), "--epochs", "2", "--force")
    assert not list(again.glob("epoch-*"))


def test_a_long_list_of_kept_epochs_is_named_by_its_ends(tmp_path, book_path):
    result = CliRunner().invoke(main, ["run", "--out", str(tmp_path / "k"), *SMALL, "--data",
                                       str(book_path), "--epochs", "4", "--keep-every", "1"])
    assert result.exit_code == 0, result.output
    assert _outputs_line(result.output).endswith(
        "status.json, epoch-1.json to epoch-4.json (4 kept epochs))")


def test_a_resumed_run_goes_on_keeping_epochs(tmp_path, book_path):
    run = _train(tmp_path / "r", "--data", str(book_path), "--epochs", "3", "--keep-every", "2")
    result = CliRunner().invoke(main, ["run", "--resume", str(run), "--epochs", "5"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in run.glob("epoch-*.json")) == ["epoch-2.json", "epoch-4.json"]
    assert json.loads((run / "summary.json").read_text())["config"]["keep_every"] == 2


def test_a_file_of_yours_at_a_kept_epochs_name_is_never_overwritten(tmp_path, book_path):
    run = _train(tmp_path / "f", "--data", str(book_path))
    mine = run / "epoch-2.json"
    mine.write_text("mine", encoding="utf-8")
    result = CliRunner().invoke(main, ["run", "--out", str(run), *SMALL, "--data",
                                       str(book_path), "--keep-every", "2", "--force"])
    assert result.exit_code == 2
    assert "epoch-2.json was not written by seqlm" in result.stderr
    assert mine.read_text(encoding="utf-8") == "mine"


def test_held_out_of_a_run_on_the_downloaded_book_asks_for_the_book(tmp_path, book_path,
                                                                      monkeypatch):
    monkeypatch.setenv("SEQLM_DATA_DIR", str(book_path.parent))
    run = _train(tmp_path / "book")  # no --data: the book, from the cache
    report = _json(run, "--held-out")
    best = json.loads((run / "summary.json").read_text())["best_val_ppl"]
    assert report["perplexity"] == pytest.approx(best, rel=1e-6)
    # Where the book is not cached and cannot be fetched, the fix is the book itself:
    # --data would measure some other text, and --held-out refuses it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("SEQLM_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("SEQLM_BOOK_URL", f"http://127.0.0.1:{closed}/book")
    monkeypatch.setenv("SEQLM_DOWNLOAD_RETRIES", "1")
    monkeypatch.setenv("SEQLM_DOWNLOAD_TIMEOUT", "0.5")
    result = _eval(run, "--held-out")
    assert result.exit_code == 1
    [line] = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert line.endswith("save the book as timemachine.txt in the folder SEQLM_DATA_DIR "
                         "names (SEQLM_DOWNLOAD_TIMEOUT and SEQLM_DOWNLOAD_RETRIES allow a "
                         "slow network more time)")
    assert "--data" not in line and "Traceback" not in result.output


def test_checkpoint_all_of_a_run_that_kept_no_epoch_says_so(runs):
    result = _eval(runs["a"], "--held-out", "--checkpoint", "all")
    assert result.exit_code == 0, result.output
    assert (f"note: {runs['a']} kept no epochs (seqlm run --keep-every N keeps them), so "
            "--checkpoint all takes its best and last checkpoints only") in " ".join(
                result.stderr.split())
    kept = _eval(runs["a"], "--held-out", "--checkpoint", "both")
    assert "kept no epochs" not in kept.stderr  # only where kept epochs were asked for
    # Its best is its last epoch: one member, and a word why.
    assert (f"note: {runs['a']}'s best checkpoint is its last (epoch 2), so --checkpoint "
            "both takes it once") in " ".join(kept.stderr.split())


def test_a_folder_given_as_data_is_refused_as_seqlm_run_refuses_it(runs, tmp_path):
    result = _eval(runs["a"], "--data", tmp_path)
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: --data {tmp_path}: is a folder; give the path "
                                      "of a text file in it")


def test_members_measured_side_by_side_give_the_figures_of_one_at_a_time(runs):
    from seqlm.training.dynamic_eval import DynamicSettings

    seen: list[tuple[int, int]] = []
    settings = DynamicSettings(steps=16)
    alone = evaluate_text([runs["a"], runs["b"]], held_out=True, dynamic=settings)
    side = evaluate_text([runs["a"], runs["b"]], held_out=True, dynamic=settings, jobs=2,
                         progress=lambda read, total: seen.append((read, total)))
    assert side["perplexity"] == pytest.approx(alone["perplexity"], rel=1e-6)
    assert side["dynamic"]["perplexity"] == pytest.approx(alone["dynamic"]["perplexity"],
                                                          rel=1e-6)
    assert [m["dynamic_perplexity"] for m in side["members"]] == pytest.approx(
        [m["dynamic_perplexity"] for m in alone["members"]], rel=1e-6)
    # One bar for both: the segments read by either, up to both members' whole count.
    reads = [read for read, _ in seen]
    assert reads == sorted(reads) and seen[-1][0] == seen[-1][1]
    assert {total for _, total in seen} == {seen[-1][1]}
    result = _eval(runs["a"], runs["b"], "--held-out", "--jobs", "0")
    assert result.exit_code == 2 and "--jobs" in result.output


def test_a_member_that_fails_is_the_error_and_leaves_no_thread_behind(runs, monkeypatch):
    import threading

    from seqlm.runs import saved
    from seqlm.training.dynamic_eval import DynamicSettings

    calls: list[int] = []
    real = saved.dynamic_token_losses

    def failing(model, ids, settings, progress=None):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("this member broke")
        return real(model, ids, settings, progress)

    monkeypatch.setattr(saved, "dynamic_token_losses", failing)
    with pytest.raises(RuntimeError, match="this member broke"):
        evaluate_text([runs["a"], runs["b"]], held_out=True, jobs=2,
                      dynamic=DynamicSettings(steps=16))
    assert not [t for t in threading.enumerate() if t.name.startswith("seqlm-eval")]


def test_members_take_turns_off_the_cpu_and_go_side_by_side_on_it():
    import threading
    from types import SimpleNamespace

    from seqlm.runs.saved import _per_member

    def where(device: str) -> list[str]:
        members = [SimpleNamespace(model=torch.nn.Linear(2, 2, device=device))
                   for _ in range(3)]
        return _per_member(members, 2, lambda i, m, check: threading.current_thread().name)

    assert all(name.startswith("seqlm-eval") for name in where("cpu"))
    # A CUDA model is not at hand everywhere; any device but the CPU takes the same path.
    assert where("meta") == ["MainThread"] * 3


def test_keep_every_beyond_the_last_epoch_says_it_keeps_none(tmp_path, book_path):
    result = CliRunner().invoke(main, ["run", "--out", str(tmp_path / "r"), *SMALL, "--data",
                                       str(book_path), "--keep-every", "5"])
    assert result.exit_code == 0, result.output
    assert ("note: --keep-every 5 keeps no epoch of 2; only the best and last checkpoints "
            "are kept") in " ".join(result.output.split())
    assert not list((tmp_path / "r").glob("epoch-*"))


def test_a_checkpoint_file_with_another_checkpoint_spelt_out_is_refused(runs):
    from seqlm.runs.saved import load_trained

    last = runs["a"] / "checkpoint.json"
    assert load_trained(last).epoch == load_trained(runs["a"], "last").epoch  # the file itself
    result = CliRunner().invoke(main, ["eval", str(last), "--held-out", "--checkpoint", "best"])
    assert result.exit_code == 2
    assert "is one checkpoint's file; give its run folder to choose --checkpoint best" in (
        result.output)
    best = CliRunner().invoke(main, ["eval", str(runs["a"] / "best.json"), "--held-out",
                                     "--checkpoint", "best"])
    assert best.exit_code == 0, best.output


def test_unknown_tokens_are_counted_among_the_tokens_measured(runs, tmp_path):
    text = tmp_path / "odd.txt"
    text.write_text("\u20ac" * 5 + "the", encoding="utf-8")  # a euro sign is no token of it
    result = CliRunner().invoke(main, ["eval", str(runs["raw"]), "--data", str(text), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    # Eight tokens, seven of them predicted (all but the first): four of those unknown.
    assert (figures["tokens"], figures["unknown_tokens"]) == (7, 4)

"""Bad input through `seqlm run`: one line naming the problem and the fix, the right exit
status, no traceback, and nothing the user had is touched."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqlm.cli import main

TINY = ["--epochs", "1", "--hidden", "4", "--batch-size", "2", "--num-steps", "4",
        "--predict", "3", "--val-fraction", "0"]


@pytest.fixture
def files(tmp_path: Path, small_text: Path) -> dict[str, Path]:
    """Text files of every kind a user might give to --data."""
    made = {
        "small": small_text,
        "empty": tmp_path / "empty.txt",
        "blank": tmp_path / "blank.txt",
        "latin1": tmp_path / "latin1.txt",
        "digits": tmp_path / "digits.txt",
        "tiny": tmp_path / "tiny.txt",
        "folder": tmp_path / "folder",
        "afile": tmp_path / "afile",
    }
    made["empty"].write_bytes(b"")
    made["blank"].write_bytes(b"  \n\t\n")
    made["latin1"].write_bytes("first line\nthe caf\u00e9 was closed\n".encode("latin-1"))
    made["digits"].write_text("1234 5678\n!!! ???\n")
    made["tiny"].write_text("hello world\n")
    made["folder"].mkdir()
    made["afile"].write_text("not a folder\n")
    return made


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(main, list(args), env={"SEQLM_DEBUG": "", **(env or {})})


def error_line(result) -> str:
    """The one error line; fails unless there is exactly one and no traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


# (case, arguments with {name} replaced by the paths above, exit status, pattern)
CASES = [
    ("missing data", ["--data", "{tmp}/nope.txt"], 1, r"nope.txt: no such file"),
    ("path under a file", ["--data", "{afile}/x.txt"], 1, r"no such file"),
    ("folder as data", ["--data", "{folder}"], 1, r"is a folder; give the path of a text file"),
    ("empty data", ["--data", "{empty}"], 1, r"the file is empty; give a file with some text"),
    ("blank data", ["--data", "{blank}"], 1, r"only white space"),
    ("not utf-8", ["--data", "{latin1}"], 1,
     r"not valid utf-8 at byte offset 18 \(line 2, byte 0xe9\); pass --encoding"),
    ("unknown encoding", ["--data", "{small}", "--encoding", "klingon"], 2,
     r"--encoding 'klingon': unknown text encoding; try utf-8"),
    ("nothing after cleaning", ["--data", "{digits}"], 1,
     r"nothing is left of the text after --clean letters"),
    ("corpus too short", ["--data", "{tiny}", "--batch-size", "32", "--num-steps", "35"], 1,
     r"has 11 tokens but batches of 32 x 35 .* need at least 1156"),
    ("word tokenizer on a tiny text", ["--data", "{tiny}", "--tokenizer", "word"], 1,
     r"has 2 tokens but batches of 2 x 4 .* need at least \d+"),
    ("zero batch size", ["--batch-size", "0"], 2, r"--batch-size must be .* at least 1, got 0"),
    ("negative num-steps", ["--num-steps", "-3"], 2, r"--num-steps must be .* at least 1"),
    ("zero hidden", ["--hidden", "0"], 2, r"--hidden must be"),
    ("zero layers", ["--num-layers", "0"], 2, r"--num-layers must be"),
    ("zero epochs", ["--epochs", "0"], 2, r"--epochs must be"),
    ("negative epochs", ["--epochs", "-2"], 2, r"--epochs must be"),
    ("zero lr", ["--lr", "0"], 2, r"--lr must be .*greater than 0"),
    ("negative lr", ["--lr", "-0.1"], 2, r"--lr must be"),
    ("infinite lr", ["--lr", "inf"], 2, r"--lr must be a finite number"),
    ("nan lr", ["--lr", "nan"], 2, r"--lr must be"),
    ("negative clip", ["--clip", "-1"], 2, r"--clip must be 0 \(off\) or more"),
    ("negative max-tokens", ["--max-tokens", "-5"], 2, r"--max-tokens must be 0"),
    ("negative predict", ["--predict", "-1"], 2, r"--predict must be 0 or more"),
    ("val-fraction 1", ["--val-fraction", "1"], 2,
     r"--val-fraction must be at least 0 and below 1"),
    ("val-fraction negative", ["--val-fraction", "-0.1"], 2, r"--val-fraction must be"),
    ("val-fraction nan", ["--val-fraction", "nan"], 2, r"--val-fraction must be"),
    ("empty prefix", ["--prefix", ""], 2, r"--prefix is empty"),
    ("prefix of unknown characters", ["--prefix", "\u00c9\u00c8"], 2,
     r"none of its tokens occurs in the training text"),
    ("prefix of unknown words", ["--prefix", "zorblax", "--tokenizer", "word",
                                 "--num-steps", "2"], 2, r"none of its tokens occurs"),
    ("blank prefix", ["--prefix", "   "], 2, r"--prefix is empty"),
    ("huge seed", ["--seed", str(2**70)], 2, r"--seed must be"),
    ("negative seed", ["--seed", "-1"], 2,
     r"--seed must be a whole number from 0 to 2\*\*64 - 1, got -1"),
    ("epochs beyond any run", ["--epochs", "99999999999999999999"], 2,
     r"--epochs 99999999999999999999 is more than 1,000,000"),
    ("cuda without cuda", ["--device", "cuda"], 2, r"CUDA is not available.*--device cpu"),
    ("cuda:7", ["--device", "cuda:7"], 2, r"--device cuda:7"),
    ("tpu", ["--device", "tpu"], 2, r"--device 'tpu' not recognized. Choose one of: auto"),
    ("unknown cell", ["--cell", "transformer"], 2,
     r"cell 'transformer' not recognized. Choose one of: .*gru.*lstm.*rnn"),
    ("unknown sampler", ["--sampler", "shuffle"], 2,
     r"sampler 'shuffle' not recognized. Choose one of: random, sequential"),
    ("unknown tokenizer", ["--tokenizer", "bytes"], 2,
     r"tokenizer 'bytes' not recognized. Choose one of: .*char.*word"),
    ("unknown trainer", ["--trainer", "magic"], 2,
     r"trainer 'magic' not recognized. Choose one of: .*default"),
    ("unknown cell option", ["--cell-opt", "colour=3"], 2, r"does not accept option 'colour'"),
    ("non-integer epochs", ["--epochs", "ten"], 2, r"'ten' is not a valid integer"),
    ("unknown option", ["--epoch", "3"], 2, r"No such option '--epoch'.*Did you mean .*--epochs"),
    ("out is a file", ["--out", "{afile}"], 2, r"afile"),
    ("out under a file", ["--out", "{afile}/run"], 2, r"cannot write there"),
]


@pytest.mark.parametrize("case, args, status, pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line(case, args, status, pattern, files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default runs/ folder, if one were made, lands here
    names = {name: str(path) for name, path in files.items()} | {"tmp": str(tmp_path)}
    argv = [a.format(**names) for a in args]
    if "--data" not in argv:
        argv += ["--data", str(files["small"])]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    result = invoke("run", *TINY, *argv)
    line = error_line(result)
    assert re.search(pattern, line), line
    assert result.exit_code == status, result.output
    # Refused before training: no run folder was filled.
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())
    assert files["afile"].read_text() == "not a folder\n"


def test_latin1_text_trains_with_encoding(files, tmp_path):
    text = files["latin1"]
    text.write_bytes(("caf\u00e9 " * 50 + "\n").encode("latin-1"))
    result = invoke("run", *TINY, "--data", str(text), "--encoding", "latin-1",
                    "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output


def test_non_empty_out_is_refused_and_left_alone(files, tmp_path):
    out = tmp_path / "previous"
    out.mkdir()
    (out / "summary.json").write_text('{"mine": true}\n')
    result = invoke("run", *TINY, "--data", str(files["small"]), "--out", str(out))
    line = error_line(result)
    assert result.exit_code == 2
    assert "not empty" in line and "--force" in line
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]
    assert (out / "summary.json").read_text() == '{"mine": true}\n'


def test_force_writes_into_a_non_empty_out(files, tmp_path):
    out = tmp_path / "previous"
    out.mkdir()
    (out / "notes.txt").write_text("kept\n")
    result = invoke("run", *TINY, "--data", str(files["small"]), "--out", str(out), "--force")
    assert result.exit_code == 0, result.output
    assert (out / "summary.json").is_file()
    assert (out / "notes.txt").read_text() == "kept\n"


def test_default_run_folders_are_never_reused(files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        result = invoke("run", *TINY, "--data", str(files["small"]))
        assert result.exit_code == 0, result.output
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2
    assert all((run / "summary.json").is_file() for run in runs)


def test_debug_flag_and_env_show_the_traceback(files):
    args = ["run", *TINY, "--data", str(files["empty"])]
    plain = CliRunner().invoke(main, args, env={"SEQLM_DEBUG": ""})
    assert plain.exit_code == 1 and isinstance(plain.exception, SystemExit)
    for argv, env in ((["--debug", *args], {"SEQLM_DEBUG": ""}), (args, {"SEQLM_DEBUG": "1"})):
        result = CliRunner().invoke(main, argv, env=env)
        # With debugging on, the error itself propagates (click's runner keeps it).
        assert type(result.exception).__name__ == "DataError", result.output
        assert result.exc_info is not None


def test_debug_flag_after_the_command_is_accepted(files):
    result = CliRunner().invoke(main, ["run", "--data", str(files["empty"]), "--debug"],
                                env={"SEQLM_DEBUG": ""})
    assert type(result.exception).__name__ == "DataError", result.output


def test_debug_as_the_value_of_an_option_is_a_value(files):
    result = invoke("run", *TINY, "--data", str(files["empty"]), "--prefix", "--debug")
    assert "the file is empty" in error_line(result)


def test_bad_cell_option_values_are_usage_errors(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the time traveller was here and there " * 60, encoding="utf-8")
    for cell, option, message in (
        ("lstm", "dropout=2", "cell 'lstm' rejected --cell-opt dropout=2"),
        ("lstm-scratch", "dropout=-0.5", "cell 'lstm-scratch' rejected --cell-opt dropout="),
        # Of the wrong type: refused before the cell is built.
        ("gru", "dropout=abc", "--cell-opt dropout=abc: option 'dropout' of cell 'gru' "
         "expects a finite number"),
    ):
        result = CliRunner().invoke(main, ["run", "--cell", cell, "--cell-opt", option,
                                           "--data", str(text), "--out", str(tmp_path / cell)])
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert "Traceback" not in result.output
        assert not (tmp_path / cell).exists()


@pytest.mark.parametrize("command", [["eval", "--held-out"], ["generate"], ["config"],
                                     ["compare", "{run}"]])
@pytest.mark.parametrize("given, pattern", [
    ("{folder}", r"has none\)|is not a seqlm run folder"),
    ("{tmp}/nope", r"nope: no such folder"),
    ("{afile}", r"is a file, not a run folder|is not a seqlm run folder"),
])
def test_a_path_that_is_no_run_is_a_usage_error_for_every_command(
    command, given, pattern, files, tmp_path
):
    run = tmp_path / "run"
    assert invoke("run", *TINY, "--data", str(files["small"]), "--out", str(run)).exit_code == 0
    names = {name: str(path) for name, path in files.items()} | {"tmp": str(tmp_path),
                                                                   "run": str(run)}
    result = invoke(*command[:1], *(a.format(**names) for a in command[1:]),
                    given.format(**names))
    assert re.search(pattern, error_line(result))
    assert result.exit_code == 2, result.output


def test_a_run_that_saved_no_checkpoint_is_not_a_usage_error(files, tmp_path):
    run = tmp_path / "run"
    assert invoke("run", *TINY, "--data", str(files["small"]), "--out", str(run)).exit_code == 0
    for checkpoint in run.glob("*.json"):
        if checkpoint.name in ("checkpoint.json", "best.json"):
            checkpoint.unlink()
    result = invoke("generate", str(run))
    assert "has none)" in error_line(result)
    assert result.exit_code == 1


@pytest.mark.parametrize("option", ["--out", "--data", "--resume"])
def test_an_empty_path_is_refused_not_read_as_the_current_folder(option, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine\n")
    result = invoke("run", *TINY, option, "", "--force")
    assert error_line(result) == f"Error: --{option[2:]} is empty; give a path, or leave " \
        f"{option} out"
    assert result.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_resuming_a_run_stopped_before_its_first_checkpoint_says_to_start_it_again(
    files, tmp_path
):
    run = tmp_path / "run"
    assert invoke("run", *TINY, "--data", str(files["small"]), "--out", str(run)).exit_code == 0
    for checkpoint in ("checkpoint.json", "best.json"):
        (run / checkpoint).unlink(missing_ok=True)
    result = invoke("run", "--resume", str(run))
    assert error_line(result) == (
        f"Error: --resume {run}: the run stopped before its first checkpoint, so there is "
        f"nothing to resume; start it again with seqlm run --out {run} --force and its "
        "settings")
    assert result.exit_code == 1


def test_warnings_and_notes_of_a_run_go_to_stderr(files, tmp_path):
    result = invoke("run", *TINY, "--data", str(files["small"]), "--out", str(tmp_path / "r"),
                    "--prefix", "The time", "--keep-every", "5")
    assert result.exit_code == 0, result.output
    assert "warning: --prefix 'The time'" in result.stderr
    assert "note: --keep-every 5 keeps no epoch" in result.stderr
    assert "warning:" not in result.stdout and "note:" not in result.stdout


def test_a_warm_up_as_long_as_the_run_is_noted(files, tmp_path):
    result = invoke("run", *TINY, "--data", str(files["small"]), "--out", str(tmp_path / "r"),
                    "--warmup-epochs", "1")
    assert result.exit_code == 0, result.output
    assert ("note: --warmup-epochs 1 is not shorter than --epochs 1, so the learning rate "
            "never reaches --lr") in result.stderr


def test_eval_refuses_an_unknown_encoding_even_with_held_out(files, tmp_path):
    run = tmp_path / "run"
    assert invoke("run", *TINY, "--data", str(files["small"]), "--out", str(run)).exit_code == 0
    result = invoke("eval", str(run), "--held-out", "--encoding", "klingon")
    assert "--encoding 'klingon': unknown text encoding" in error_line(result)
    assert result.exit_code == 2


def test_a_run_that_diverged_without_a_nan_says_so(files, tmp_path):
    result = invoke("run", "--epochs", "2", "--hidden", "16", "--batch-size", "4",
                    "--num-steps", "8", "--predict", "3", "--lr", "1000", "--clip", "0",
                    "--data", str(files["small"]), "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    assert "the run diverged; lower --lr, or keep --clip on" in result.stderr
    calm = invoke("run", *TINY, "--data", str(files["small"]), "--out", str(tmp_path / "c"))
    assert "diverged" not in calm.stderr


def test_notes_go_to_a_callers_console_and_beside_the_live_table_on_a_terminal(files,
                                                                              tmp_path):
    from rich.console import Console

    import seqlm
    from seqlm.runs.progress import notes_console, pipe_aware_console

    mine = Console(record=True, width=200)
    seqlm.run(data=files["small"], out=tmp_path / "r", epochs=1, hidden=4, batch_size=2,
              num_steps=4, predict=3, val_fraction=0, keep_every=5, console=mine)
    assert "note: --keep-every 5 keeps no epoch" in mine.export_text()
    terminal = pipe_aware_console(force_terminal=True)
    assert notes_console(terminal) is terminal  # above the live table, not through it
    piped = notes_console(pipe_aware_console(force_terminal=False))
    assert piped.stderr

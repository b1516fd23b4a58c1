"""A run folder as a careless or hostile user leaves it: seqlm deletes nothing it did not
write, writes through no link, and a failed start blocks no retry. Real files, real
``seqlm`` commands (through click's runner, in this process, to keep them fast)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqlm.cli import main
from seqlm.errors import OutputError, UsageError
from seqlm.storage.runfiles import MANIFEST, owned_files
from seqlm.storage.runlock import hold_run_folder
from seqlm.storage.safewrite import write_bytes_atomic

SMALL = ["--hidden", "8", "--batch-size", "4", "--num-steps", "8", "--max-tokens", "1500",
         "--predict", "5", "--device", "cpu"]


def seqlm(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def train(data: Path, out: Path, *extra: object, epochs: int = 2):
    result = seqlm("run", "--data", data, "--out", out, "--epochs", epochs, *SMALL, *extra)
    return result


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_force_deletes_only_seqlms_own_files_never_the_users(small_text, tmp_path):
    out = tmp_path / "u"
    out.mkdir()
    # Names that look like seqlm's tensor files, but the user's.
    mine = {"best-model.safetensors": b"my model", "checkpoint-final.safetensors": b"final",
            "notes.txt": b"keep me"}
    for name, data in mine.items():
        (out / name).write_bytes(data)
    result = train(small_text, out, "--force")
    assert result.exit_code == 0, result.output
    again = train(small_text, out, "--force", "--seed", 1)  # replaces the first run
    assert again.exit_code == 0, again.output
    for name, data in mine.items():
        assert (out / name).read_bytes() == data
    tensors = sorted(p.name for p in out.glob("*-????????.safetensors"))
    assert len(tensors) == 2  # one checkpoint, one best: the first run's are gone
    assert set(owned_files(out)) >= {"checkpoint.json", "best.json", "summary.json",
                                     "metrics.jsonl", "perplexity.png", *tensors}


def test_after_force_nothing_of_the_earlier_run_is_taken_for_the_new_one(small_text, tmp_path):
    out = tmp_path / "st"
    assert train(small_text, out).exit_code == 0
    assert (out / "best.json").exists()
    result = train(small_text, out, "--cell", "gru", "--val-fraction", "0", "--force",
                   epochs=1)
    assert result.exit_code == 0, result.output
    assert not (out / "best.json").exists()
    evaluated = seqlm("eval", out, "--data", small_text, "--json")
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.output)
    assert report["checkpoint"] == "last" and report["epoch"] == 1


@pytest.mark.parametrize("name", ["summary.json", "checkpoint.json", "metrics.jsonl",
                                  ".seqlm.lock", ".seqlm-files.json"])
def test_force_refuses_a_file_at_seqlms_names_that_seqlm_did_not_write(
    small_text, tmp_path, name
):
    out = tmp_path / "u"
    out.mkdir()
    (out / name).write_text("the user's own\n")
    before = _snapshot(out)
    result = train(small_text, out, "--force")
    assert result.exit_code == 2
    assert name in result.output and "not written by seqlm" in result.output
    assert "Traceback" not in result.output
    assert _snapshot(out) == before  # refused before anything was written


@pytest.mark.parametrize("name", [".seqlm.lock", ".seqlm-files.json"])
def test_a_users_file_at_the_lock_or_the_records_name_is_not_a_leftover(small_text, tmp_path,
                                                                       name):
    out = tmp_path / "u"
    out.mkdir()
    (out / name).write_text("the user's own\n")
    result = train(small_text, out)
    assert result.exit_code == 2 and "folder is not empty" in result.output
    assert (out / name).read_text() == "the user's own\n"
    assert [p.name for p in out.iterdir()] == [name]


def test_force_refuses_a_file_seqlm_wrote_but_the_user_changed(small_text, tmp_path):
    out = tmp_path / "u"
    assert train(small_text, out).exit_code == 0
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"note": "my own row"}\n')
    result = train(small_text, out, "--force")
    assert result.exit_code == 2 and "metrics.jsonl" in result.output
    assert "my own row" in (out / "metrics.jsonl").read_text()


def test_a_folder_where_seqlm_writes_a_file_is_an_error_before_training(small_text, tmp_path):
    out = tmp_path / "u"
    (out / "summary.json").mkdir(parents=True)
    result = train(small_text, out, "--force")
    assert result.exit_code == 2
    assert "summary.json is a folder" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]  # no training began


@pytest.mark.parametrize("name", ["metrics.jsonl", ".seqlm.lock", "perplexity.png"])
def test_no_write_follows_a_link_on_force_or_resume(small_text, tmp_path, name):
    out = tmp_path / "run"
    assert train(small_text, out).exit_code == 0
    outside = tmp_path / "outside.txt"
    outside.write_text("not seqlm's\n")
    (out / name).unlink()
    (out / name).symlink_to(outside)
    for args in (["run", "--resume", out, "--epochs", 3],
                 ["run", "--data", small_text, "--out", out, "--force", "--epochs", 1, *SMALL]):
        result = seqlm(*args)
        assert result.exit_code == 2, result.output
        assert f"{name} is a symbolic link (to {outside})" in result.output
        assert outside.read_text() == "not seqlm's\n"
        assert (out / name).is_symlink()


def test_a_hard_link_at_seqlms_names_is_refused(small_text, tmp_path):
    out = tmp_path / "run"
    assert train(small_text, out).exit_code == 0
    outside = tmp_path / "outside.txt"
    outside.write_text("not seqlm's\n")
    (out / ".seqlm.lock").unlink()
    os.link(outside, out / ".seqlm.lock")  # the lock is written in place
    result = seqlm("run", "--resume", out, "--epochs", 3)
    assert result.exit_code == 2
    assert ".seqlm.lock is a hard link" in result.output
    assert outside.read_text() == "not seqlm's\n"


def test_the_writers_themselves_never_follow_a_link(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("not seqlm's\n")
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "summary.json").symlink_to(outside)
    write_bytes_atomic(folder / "summary.json", b"{}")  # replaces the link itself
    assert not (folder / "summary.json").is_symlink()
    (folder / ".seqlm.lock").symlink_to(outside)
    with pytest.raises(UsageError, match="is a symbolic link"):
        with hold_run_folder(folder):
            pass
    assert outside.read_text() == "not seqlm's\n"


def test_a_failed_starts_leftovers_do_not_block_a_retry(small_text, tmp_path):
    out = tmp_path / "u"
    out.mkdir()
    # What a start stopped before its first epoch, and a kill mid-save, leave behind.
    (out / ".seqlm.lock").write_text("12345")
    (out / "metrics.jsonl").write_text("")
    stale = [".checkpoint.json-k3j_9x0a.tmp", ".checkpoint-0123abcd.safetensors-ab12cd34.tmp"]
    for name in stale:
        (out / name).write_bytes(b"\0" * 1000)
    result = train(small_text, out)
    assert result.exit_code == 0, result.output
    names = {p.name for p in out.iterdir()}
    assert not names & set(stale)
    assert "checkpoint.json" in names


def test_resume_removes_temporary_files_a_killed_save_left(small_text, tmp_path):
    out = tmp_path / "run"
    assert train(small_text, out).exit_code == 0
    stale = out / ".checkpoint-89abcdef.safetensors-zzzz_123.tmp"
    stale.write_bytes(b"\0" * 4096)
    # Not seqlm's naming exactly: the user's, kept.
    users = [out / ".notes.tmp", out / ".checkpoint.json-mine.tmp"]
    for path in users:
        path.write_text("the user's")
    result = seqlm("run", "--resume", out, "--epochs", 3)
    assert result.exit_code == 0, result.output
    assert not stale.exists()
    assert all(path.read_text() == "the user's" for path in users)


@pytest.mark.parametrize("name", ["r[/x]", "r[bold]y"])
def test_rich_markup_in_the_folder_name_is_shown_as_typed(small_text, tmp_path, name):
    out = tmp_path / name
    result = train(small_text, out)
    assert result.exit_code == 0, result.output
    assert f"outputs in {out}/" in result.output.replace("\n", "")
    assert (out / "checkpoint.json").is_file()


def test_the_run_folders_files_follow_the_users_umask(small_text, tmp_path):
    # Others (a TensorBoard server, a colleague) read runs as they read any file made
    # under this umask; seqlm's private temporary names must not make them owner-only.
    out = tmp_path / "run"
    assert train(small_text, out).exit_code == 0
    mask = os.umask(0o022)
    os.umask(mask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()
             if p.is_file() and p.name != ".seqlm.lock"}
    assert {"summary.json", "metrics.jsonl", "perplexity.png", "checkpoint.json"} <= set(modes)
    assert set(modes.values()) == {0o666 & ~mask}, modes


def test_an_unwritable_file_is_named(tmp_path):
    folder = tmp_path / "gone"
    with pytest.raises(OutputError, match=f"could not write {folder / 'summary.json'}"):
        write_bytes_atomic(folder / "summary.json", b"{}")


def test_the_record_lists_what_seqlm_wrote_with_sizes_and_hashes(small_text, tmp_path):
    out = tmp_path / "run"
    assert train(small_text, out).exit_code == 0
    record = json.loads((out / MANIFEST).read_text())["files"]
    for name, entry in record.items():
        assert entry["size"] == os.path.getsize(out / name)
    assert "summary.json" in record and "perplexity.png" in record

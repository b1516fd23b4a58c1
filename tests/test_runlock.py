"""A run folder has one writer at a time; a crashed writer never leaves it locked."""

import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

import seqlm
from seqlm.cli import main
from seqlm.errors import UsageError
from seqlm.storage.runlock import LOCK_NAME, hold_run_folder

SMALL = dict(hidden=8, max_tokens=1500, batch_size=4, num_steps=8, predict=5)


def _holder(folder):
    """A separate process that takes the folder's lock and waits."""
    code = textwrap.dedent(f"""
        import sys, time
        from seqlm.storage.runlock import LOCK_NAME, hold_run_folder
        with hold_run_folder({str(folder)!r}):
            print("held", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_is_refused_with_the_holders_pid(book_path, tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    proc = _holder(folder)
    try:
        result = CliRunner().invoke(main, ["run", "--data", str(book_path), "--epochs", "1",
                                           "--hidden", "8", "--out", str(folder), "--force"])
    finally:
        proc.kill()
        proc.wait()
    assert result.exit_code == 2
    assert f"is in use by another seqlm run (process {proc.pid})" in result.output
    assert "Traceback" not in result.output
    # The lock died with its process: the folder is usable again.
    with hold_run_folder(folder):
        pass


def test_resume_into_a_folder_in_use_leaves_its_files_alone(book_path, tmp_path):
    folder = tmp_path / "r"
    seqlm.run(data=book_path, out=folder, epochs=2, **SMALL)
    def files():
        return {p.name: p.read_bytes() for p in folder.iterdir()
                if p.is_file() and p.name != LOCK_NAME}

    before = files()
    with hold_run_folder(folder), pytest.raises(UsageError, match="in use"):
        seqlm.run(resume=folder, epochs=4)
    assert files() == before
    resumed = seqlm.run(resume=folder, epochs=4)  # released: the resume now goes ahead
    assert [m.epoch for m in resumed.history] == [1, 2, 3, 4]


def test_resuming_a_run_still_before_its_first_checkpoint_says_it_is_in_use(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / ".seqlm-files.json").write_text('{"format": "seqlm-run-files", "files": {}}')
    proc = _holder(folder)  # a run in its first epoch: the lock, and no checkpoint yet
    try:
        with pytest.raises(UsageError, match=f"is in use by another seqlm run "
                           f"\\(process {proc.pid}\\)"):
            seqlm.run(resume=folder, epochs=4)
    finally:
        proc.kill()
        proc.wait()
    # Once that process is gone, the folder is what it is: a run with nothing to resume.
    with pytest.raises(seqlm.SeqlmError, match="stopped before its first checkpoint"):
        seqlm.run(resume=folder, epochs=4)

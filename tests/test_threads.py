"""``--threads`` sets torch's CPU thread count, and may change when resuming."""

import pytest
import torch

import seqlm
from seqlm.errors import UsageError
from seqlm.interfaces import Callback

SMALL = dict(hidden=8, max_tokens=1500, batch_size=4, num_steps=8, predict=5)


class _ThreadsSeen(Callback):
    """Records torch's thread count as each epoch of a run ends."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_epoch_end(self, trainer, metrics) -> None:
        self.seen.append(torch.get_num_threads())


def test_threads_hold_for_the_run_and_may_change_on_resume(book_path, tmp_path):
    assert torch.get_num_threads() == 1  # the test fixture's setting
    first, resumed_seen = _ThreadsSeen(), _ThreadsSeen()
    seqlm.run(data=book_path, out=tmp_path / "r", epochs=1, threads=2, callbacks=[first],
              **SMALL)
    assert first.seen == [2]
    assert torch.get_num_threads() == 1  # the caller's count, given back
    resumed = seqlm.run(resume=tmp_path / "r", epochs=2, threads=3,
                        callbacks=[resumed_seen])
    assert resumed_seen.seen == [3]
    assert torch.get_num_threads() == 1
    assert [m.epoch for m in resumed.history] == [1, 2]


def test_a_run_gives_the_callers_random_generators_back(book_path, tmp_path):
    import random

    torch.manual_seed(1234)
    random.seed(1234)
    expected_torch, expected_python = torch.rand(3), random.random()
    torch.manual_seed(1234)
    random.seed(1234)
    seqlm.run(data=book_path, out=tmp_path / "r", epochs=1, seed=7, quiet=True, **SMALL)
    assert torch.equal(torch.rand(3), expected_torch)
    assert random.random() == expected_python
    # ... and also when the run fails after it seeded them.

    class Fails(Callback):
        def on_epoch_end(self, trainer, metrics) -> None:
            raise ValueError("a caller's callback failed")

    torch.manual_seed(1234)
    with pytest.raises(ValueError, match="callback failed"):
        seqlm.run(data=book_path, out=tmp_path / "f", epochs=1, seed=7, quiet=True,
                  callbacks=[Fails()], **SMALL)
    assert torch.equal(torch.rand(3), expected_torch)


def test_negative_threads_is_a_usage_error():
    with pytest.raises(UsageError, match="--threads"):
        seqlm.run(threads=-1)


@pytest.mark.parametrize("command", ["generate", "eval"])
def test_generate_and_eval_take_threads_too(command, book_path, tmp_path):
    from click.testing import CliRunner

    from seqlm.cli import main

    seqlm.run(data=book_path, out=tmp_path / "r", epochs=1, **SMALL)
    extra = ["--data", str(book_path)] if command == "eval" else []
    runner = CliRunner()
    result = runner.invoke(main, [command, str(tmp_path / "r"), "--threads", "2", *extra])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == 2
    too_many = runner.invoke(main, [command, str(tmp_path / "r"), "--threads", "100000",
                                    *extra])
    assert too_many.exit_code == 2
    assert "--threads 100000 is more than" in too_many.output
    negative = runner.invoke(main, [command, str(tmp_path / "r"), "--threads", "-1", *extra])
    assert negative.exit_code == 2
    assert "--threads must be a whole number, 0 or more, got -1" in negative.output
    assert torch.get_num_threads() == 2


def test_jobs_times_threads_is_held_to_the_same_limit(book_path, tmp_path):
    from click.testing import CliRunner

    from seqlm.cli import main
    from seqlm.config.bounds import max_threads

    seqlm.run(data=book_path, out=tmp_path / "r", epochs=1, **SMALL)
    limit = max_threads()
    # Each thread count alone is allowed; the jobs together would pass the limit.
    args = ["eval", str(tmp_path / "r"), str(tmp_path / "r"), "--held-out", "--jobs", "2",
            "--threads", str(limit // 2 + 1)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert (f"--jobs 2 with --threads {limit // 2 + 1} would run {2 * (limit // 2 + 1)} "
            f"threads, more than {limit}") in result.output


def test_threads_0_leaves_the_callers_count(book_path, tmp_path):
    seen = _ThreadsSeen()
    before = torch.get_num_threads()
    seqlm.run(data=book_path, out=tmp_path / "a", epochs=1, threads=before + 1, **SMALL)
    torch.set_num_threads(before + 2)  # the caller's own choice since
    seqlm.run(data=book_path, out=tmp_path / "b", epochs=1, threads=0, callbacks=[seen],
              **SMALL)
    assert seen.seen == [before + 2]
    assert torch.get_num_threads() == before + 2


def test_runs_without_a_seed_draw_on_and_differ(book_path, tmp_path):
    torch.manual_seed(1234)
    first = seqlm.run(data=book_path, out=tmp_path / "a", epochs=1, seed=None, quiet=True,
                      **SMALL)
    second = seqlm.run(data=book_path, out=tmp_path / "b", epochs=1, seed=None, quiet=True,
                       **SMALL)
    assert first.history[0].train_loss != second.history[0].train_loss

"""``--threads`` sets torch's CPU thread count, and may change when resuming."""

import pytest
import torch

import seqlm
from seqlm.errors import UsageError

SMALL = dict(hidden=8, max_tokens=1500, batch_size=4, num_steps=8, predict=5)


def test_threads_sets_torch_thread_count_and_may_change_on_resume(book_path, tmp_path):
    assert torch.get_num_threads() == 1  # the test fixture's setting
    seqlm.run(data=book_path, out=tmp_path / "r", epochs=1, threads=2, **SMALL)
    assert torch.get_num_threads() == 2
    resumed = seqlm.run(resume=tmp_path / "r", epochs=2, threads=1)
    assert torch.get_num_threads() == 1
    assert [m.epoch for m in resumed.history] == [1, 2]


def test_negative_threads_is_a_usage_error():
    with pytest.raises(UsageError, match="--threads"):
        seqlm.run(threads=-1)

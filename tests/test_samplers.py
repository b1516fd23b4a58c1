import pytest
import torch

from seqlm.data.samplers import RandomSampler, SequentialSampler


def corpus(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.long)


@pytest.mark.parametrize("cls", [RandomSampler, SequentialSampler])
def test_shapes_dtype_and_shift_by_one(cls):
    sampler = cls(batch_size=4, num_steps=5)
    batches = list(sampler(corpus(200)))
    assert batches
    for X, Y in batches:
        assert X.shape == Y.shape == (4, 5)
        assert X.dtype == Y.dtype == torch.int64
        assert torch.equal(Y, X + 1)  # arange corpus: next token is id + 1


def test_sequential_rows_continue_across_batches():
    sampler = SequentialSampler(batch_size=3, num_steps=4)
    assert sampler.contiguous is True
    for seed in range(5):
        torch.manual_seed(seed)
        batches = list(sampler(corpus(100)))
        for (X0, _), (X1, _) in zip(batches, batches[1:], strict=False):
            assert torch.equal(X1[:, 0], X0[:, -1] + 1)
        # Each row is one contiguous stream, equal-length, one after another.
        rows = torch.cat([X for X, _ in batches], dim=1)
        assert torch.equal(rows[:, 1:] - rows[:, :-1], torch.ones_like(rows[:, 1:]))


def test_sequential_batch_count_matches_the_seed_formula():
    # The seed: num_tokens = ((n - offset - 1) // b) * b; batches = (num_tokens // b) // steps.
    n, b, steps = 1000, 4, 7
    for seed in range(10):
        torch.manual_seed(seed)
        X, _ = next(iter(SequentialSampler(b, steps)(corpus(n))))
        offset = int(X[0, 0])
        assert 0 <= offset <= steps
        expected = (((n - offset - 1) // b) * b // b) // steps
        torch.manual_seed(seed)
        assert len(list(SequentialSampler(b, steps)(corpus(n)))) == expected


def test_random_subsequences_do_not_overlap_and_start_on_the_offset_grid():
    sampler = RandomSampler(batch_size=4, num_steps=5)
    assert sampler.contiguous is False
    for seed in range(5):
        torch.manual_seed(seed)
        batches = list(sampler(corpus(203)))
        starts = torch.cat([X[:, 0] for X, _ in batches]).tolist()
        assert len(starts) == len(set(starts))
        offset = min(starts) % 5
        assert 0 <= offset <= 4
        assert all((s - offset) % 5 == 0 for s in starts)
        # num_subseqs = (n - offset - 1) // steps, batches = num_subseqs // batch
        assert len(batches) == ((203 - offset - 1) // 5) // 4
        tokens = torch.cat([X.reshape(-1) for X, _ in batches]).tolist()
        assert len(tokens) == len(set(tokens))  # no token is used twice as input


def test_random_sampler_shuffles():
    torch.manual_seed(1)
    starts = [X[:, 0].tolist() for X, _ in RandomSampler(2, 3)(corpus(300))]
    flat = [s for batch in starts for s in batch]
    assert flat != sorted(flat)


@pytest.mark.parametrize("cls", [RandomSampler, SequentialSampler])
def test_min_tokens_always_gives_a_batch(cls):
    sampler = cls(batch_size=3, num_steps=4)
    for seed in range(30):
        torch.manual_seed(seed)
        assert len(list(sampler(corpus(sampler.min_tokens())))) >= 1


@pytest.mark.parametrize("cls", [RandomSampler, SequentialSampler])
def test_same_seed_same_batches(cls):
    torch.manual_seed(3)
    a = [X for X, _ in cls(4, 5)(corpus(300))]
    torch.manual_seed(3)
    b = [X for X, _ in cls(4, 5)(corpus(300))]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))

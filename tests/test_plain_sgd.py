"""Plain SGD without torch.optim: the same update and state as torch.optim.SGD, and the
default CPU job never pays for importing torch's compiler stack."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from seqlm.training.plain_sgd import PlainSGD
from seqlm.training.trainer import DefaultTrainer


def _twin_parameters(seed: int = 0) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    torch.manual_seed(seed)
    shapes = [(4, 3), (3,), (2, 2, 2)]
    first = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    second = [torch.nn.Parameter(p.detach().clone()) for p in first]
    return first, second


def _set_gradients(params: list[torch.nn.Parameter], step: int) -> None:
    generator = torch.Generator().manual_seed(step)
    for p in params:
        p.grad = torch.randn(p.shape, generator=generator)


def test_plain_sgd_makes_exactly_the_update_of_torch_optim_sgd():
    ours, theirs = _twin_parameters()
    plain = PlainSGD(ours, lr=0.7)
    reference = torch.optim.SGD(theirs, lr=0.7, foreach=True)
    for step in range(5):
        _set_gradients(ours, step)
        _set_gradients(theirs, step)
        plain.step()
        reference.step()
        plain.zero_grad()
        reference.zero_grad()
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
        assert a.grad is None


def test_a_parameter_without_a_gradient_is_left_alone():
    ours, _ = _twin_parameters()
    before = [p.detach().clone() for p in ours]
    ours[0].grad = torch.ones_like(ours[0])
    PlainSGD(ours, lr=1.0).step()
    assert torch.equal(ours[0], before[0] - 1)
    assert torch.equal(ours[1], before[1]) and torch.equal(ours[2], before[2])


def test_its_state_dict_is_torch_optim_sgds_and_loads_both_ways():
    ours, theirs = _twin_parameters()
    plain, reference = PlainSGD(ours, lr=0.3), torch.optim.SGD(theirs, lr=0.3, foreach=True)
    assert plain.state_dict() == reference.state_dict()

    reference.param_groups[0]["lr"] = 0.05
    plain.load_state_dict(reference.state_dict())
    assert plain.param_groups[0]["lr"] == 0.05

    plain.param_groups[0]["lr"] = 0.02
    reference.load_state_dict(plain.state_dict())
    assert reference.param_groups[0]["lr"] == 0.02


@pytest.mark.parametrize("saved", [
    {"param_groups": [{"lr": 1.0, "momentum": 0.9, "params": [0, 1, 2]}], "state": {}},
    {"param_groups": [{"lr": 1.0, "weight_decay": 0.1, "params": [0, 1, 2]}], "state": {}},
    {"param_groups": [{"lr": 1.0, "params": [0]}], "state": {}},
    {"param_groups": [], "state": {}},
    {"param_groups": [{"lr": 1.0, "params": [0, 1, 2]}], "state": {0: {"step": 3}}},
])
def test_a_state_plain_sgd_cannot_continue_is_refused_as_torch_refuses_it(saved):
    ours, _ = _twin_parameters()
    plain = PlainSGD(ours, lr=1.0)
    with pytest.raises(ValueError):
        plain.load_state_dict(saved)
    assert plain.param_groups[0]["lr"] == 1.0


@pytest.mark.parametrize(("options", "plain"), [
    ({}, True),
    ({"schedule": "cosine"}, False),
    ({"warmup_epochs": 1}, False),
    ({"weight_decay": 0.1}, False),
    ({"optimizer": "adamw"}, False),
])
def test_the_trainer_uses_plain_sgd_only_where_it_makes_the_same_update(options, plain):
    trainer = DefaultTrainer(lr=1.0, clip=1.0, epochs=2, **options)
    optimizer = trainer.make_optimizer(torch.nn.Linear(2, 2))
    assert isinstance(optimizer, PlainSGD) is plain
    assert isinstance(optimizer, torch.optim.Optimizer) is not plain


def test_the_default_cpu_job_never_imports_torchs_compiler_stack(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("the time machine travels through time and back again " * 40)
    script = (
        "import sys, seqlm\n"
        f"seqlm.run(data={str(text)!r}, out={str(tmp_path / 'run')!r}, epochs=2, hidden=8,"
        " batch_size=4, num_steps=5, predict=5)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"

"""docs/plugins/troubleshooting.md quotes the real messages: each quoted message, marked
``<!-- message: ID -->``, is compared with what seqlm prints in that situation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from plugin_dists import make_dist, run_seqlm
from torch import nn

import seqlm
import seqlm.errors
from seqlm.cli import main
from seqlm.data.samplers import SequentialSampler
from seqlm.interfaces import RecurrentCell

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins" / "troubleshooting.md"
RUN = ["--epochs", "1", "--hidden", "8", "--batch-size", "4", "--num-steps", "5",
       "--max-tokens", "400", "--predict", "5", "--device", "cpu"]


def quoted() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8")
    return dict(re.findall(r"<!-- message: ([\w-]+) -->\n```text\n(.*?)\n```", text, re.S))


class MinGRU(RecurrentCell):
    """A minimal GRU stand-in."""

    def __init__(self, input_size, hidden_size, num_layers=1, forget_bias: float = 1.0):
        super().__init__()
        self.W = nn.Parameter(torch.randn(input_size + hidden_size, hidden_size) * 0.1)

    def begin_state(self, batch_size, device):
        return torch.zeros(batch_size, self.hidden_size, device=device)

    def step(self, inputs, state):
        outputs = []
        for x in inputs:
            state = torch.tanh(torch.cat([x, state], dim=1) @ self.W)
            outputs.append(state)
        return torch.stack(outputs), state

    def forward(self, inputs, state):
        return self.step(inputs, state)


class BatchMajor(MinGRU):
    def forward(self, inputs, state):
        outputs, state = self.step(inputs, state)
        return outputs.transpose(0, 1), state


class OneArgument(MinGRU):
    def forward(self, inputs):
        return self.step(inputs, self.begin_state(inputs.shape[1], inputs.device))


class NeedsAlpha(MinGRU):
    def __init__(self, input_size, hidden_size, num_layers=1, *, alpha: float):
        super().__init__(input_size, hidden_size, num_layers)


class ChecksItsRange(MinGRU):
    def __init__(self, input_size, hidden_size, num_layers=1, forget_bias: float = 1.0):
        if not 0 <= forget_bias <= 5:
            raise seqlm.errors.UsageError(
                f"forget_bias must be between 0 and 5; got {forget_bias}")
        super().__init__(input_size, hidden_size, num_layers)


class Transposed(SequentialSampler):
    def __call__(self, corpus):
        for X, Y in super().__call__(corpus):
            yield X.T, Y.T


def plugin(**cells):
    class Plugin:
        @seqlm.hookimpl
        def register_cells(self, register):
            for name, cls in cells.items():
                register(name, cls)

        @seqlm.hookimpl
        def register_samplers(self, register):
            register("strided", Transposed)
    return Plugin()


@pytest.fixture
def installed():
    plugins = seqlm.get_plugins()
    keys = []

    def install(obj, dist="seqlm-mingru", version="0.1.0", display="mingru"):
        key = f"{display}-{len(keys)}"
        plugins.add(obj, key, distribution=dist, version=version, display=display)
        keys.append(key)

    yield install
    for key in keys:
        plugins.remove(key)


def error_line(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    return [line for line in result.output.splitlines() if line.startswith("Error:")][-1]


@pytest.fixture
def run_args(small_text, tmp_path):
    return ["--data", str(small_text), "--out", str(tmp_path / "run"), *RUN]


def test_every_quoted_message_has_a_check():
    assert set(quoted()) == set(SCENARIOS) | {"load-failures", "provenance"}


def _load_failures(tmp_path: Path) -> list[str]:
    make_dist(tmp_path, "seqlm-mingru", {"seqlm_mingru_missing": "import torch_extras\n"},
              {"mingru": "seqlm_mingru_missing"}, version="0.1.0")
    make_dist(tmp_path, "seqlm-typo", {"seqlm_typo_hooks": """
        import seqlm

        @seqlm.hookimpl
        def register_cell(register):
            pass
    """}, {"typo": "seqlm_typo_hooks"}, version="0.1.0")
    make_dist(tmp_path, "seqlm-argname", {"seqlm_argname_hooks": """
        import seqlm

        @seqlm.hookimpl
        def register_cells(reg):
            pass
    """}, {"argname": "seqlm_argname_hooks"}, version="0.1.0")
    done = run_seqlm(["list", "samplers"], tmp_path)
    return sorted(line for line in done.stderr.splitlines() if line.startswith("seqlm: plugin"))


def test_the_load_failure_lines(tmp_path):
    assert _load_failures(tmp_path) == sorted(quoted()["load-failures"].splitlines())


SCENARIOS = {
    "lazy-import": lambda install, args: (
        install(plugin(mingru="seqlm_mingru_gone.cell:MinGRU")),
        error_line("run", "--cell", "mingru", *args))[1],
    "conflict": lambda install, args: (
        install(plugin(mingru=MinGRU)),
        install(plugin(mingru=MinGRU), dist="seqlm-extra", version="1.0", display="extra"),
        error_line("run", "--cell", "mingru", *args))[2],
    "option-rejected": lambda install, args: (
        install(plugin(mingru=MinGRU)),
        error_line("run", "--cell", "mingru", "--cell-opt", "dropout=0.2", *args))[1],
    "option-type": lambda install, args: (
        install(plugin(mingru=MinGRU)),
        error_line("run", "--cell", "mingru", "--cell-opt", "forget_bias=high", *args))[1],
    "option-required": lambda install, args: (
        install(plugin(mingru=NeedsAlpha)),
        error_line("run", "--cell", "mingru", *args))[1],
    "unknown-name": lambda install, args: error_line("run", "--cell", "mingru", *args),
    "own-check": lambda install, args: (
        install(plugin(mingru=ChecksItsRange)),
        error_line("run", "--cell", "mingru", "--cell-opt", "forget_bias=9", *args))[1],
    "contract-cell": lambda install, args: (
        install(plugin(mingru=BatchMajor)),
        error_line("run", "--cell", "mingru", *args))[1],
    "contract-sampler": lambda install, args: (
        install(plugin(mingru=MinGRU)),
        error_line("run", "--sampler", "strided", *args))[1],
    "raised": lambda install, args: (
        install(plugin(mingru=OneArgument)),
        error_line("run", "--cell", "mingru", *args))[1],
    "builtin-refused": lambda install, args: (
        install(plugin(lstm=MinGRU)),
        next(i for i in seqlm.get_plugins().info.values()
             if i.distribution == "seqlm-mingru").refused[0])[1],
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_quoted_message_is_what_seqlm_prints(scenario, installed, run_args):
    assert SCENARIOS[scenario](installed, run_args) == quoted()[scenario]


def test_a_missing_plugin_names_the_package(installed, run_args, tmp_path):
    installed(plugin(mingru=MinGRU))
    assert CliRunner().invoke(main, ["run", "--cell", "mingru", *run_args]).exit_code == 0
    seqlm.get_plugins().remove("mingru-0")
    assert error_line("generate", str(tmp_path / "run")) == quoted()["provenance"]

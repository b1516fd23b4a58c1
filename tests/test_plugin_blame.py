"""An error raised in a plugin's code names the plugin; only seqlm's own bugs are
"unexpected"."""

from __future__ import annotations

import torch
from click.testing import CliRunner

import seqlm
from seqlm.cli import main
from seqlm.interfaces import RecurrentCell


class BrokenCell(RecurrentCell):
    """A cell whose forward pass fails, as a buggy plugin's might."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1) -> None:
        super().__init__(input_size, hidden_size, num_layers)
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def begin_state(self, batch_size, device):
        return torch.zeros(batch_size, self.hidden_size, device=device)

    def forward(self, inputs, state):
        return torch.mm(inputs[0], torch.zeros(3, 3)), state  # shapes that cannot match


class Plugin:
    @seqlm.hookimpl
    def register_cells(self, register):
        register("broken-blame-test", BrokenCell)


def test_a_plugins_failure_names_the_plugin_and_the_contract(small_text, tmp_path):
    plugins = seqlm.get_plugins()
    plugins.add(Plugin(), "broken-plugin", distribution="seqlm-broken", version="0.1")
    try:
        result = CliRunner().invoke(main, [
            "run", "--cell", "broken-blame-test", "--data", str(small_text), "--out",
            str(tmp_path / "run"), "--epochs", "1", "--hidden", "8", "--batch-size", "4",
            "--num-steps", "8", "--device", "cpu"])
    finally:
        plugins.remove("broken-plugin")
    assert result.exit_code == 1
    assert ("cell 'broken-blame-test' of plugin broken-plugin (seqlm-broken 0.1) failed: "
            "RuntimeError") in result.output
    assert "docs/plugins/contracts.md" in result.output
    assert "unexpected" not in result.output


def test_seqlms_own_errors_stay_unexpected():
    from seqlm.cli import describe_unexpected

    try:
        {}["missing"]
    except KeyError as error:
        assert describe_unexpected(error).startswith("unexpected KeyError")

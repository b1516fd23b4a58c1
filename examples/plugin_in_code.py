"""Add a cell without packaging it: register a plugin object in code, then train with it.

    python examples/plugin_in_code.py [PATH_TO_TEXT]

A pip-installable plugin does the same through an entry point; see docs/plugins/.
"""

import sys

import torch
from torch import nn

import seqlm
from seqlm.errors import UsageError
from seqlm.interfaces import RecurrentCell


class TinyMinimalRNN(RecurrentCell):
    """A one-layer RNN with a ReLU, written with plain tensor operations."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1) -> None:
        super().__init__(input_size, hidden_size, num_layers)
        if num_layers != 1:  # one layer only: say so rather than train another model
            raise UsageError(f"cell tiny-relu has one layer; drop --num-layers {num_layers}")
        self.W_x = nn.Parameter(torch.randn(input_size, hidden_size) * 0.01)
        self.W_h = nn.Parameter(torch.eye(hidden_size) * 0.5)
        self.b = nn.Parameter(torch.zeros(hidden_size))

    def begin_state(self, batch_size, device):
        return torch.zeros(batch_size, self.hidden_size, device=device)

    def forward(self, inputs, state):
        outputs = []
        for x in inputs:
            state = torch.relu(x @ self.W_x + state @ self.W_h + self.b)
            outputs.append(state)
        return torch.stack(outputs), state


class MyPlugin:
    @seqlm.hookimpl
    def register_cells(self, register):
        register("tiny-relu", TinyMinimalRNN)


plugins = seqlm.get_plugins()
plugins.add(MyPlugin(), name="my-plugin")
try:
    result = seqlm.run(
        data=sys.argv[1] if len(sys.argv) > 1 else None,
        cell="tiny-relu", hidden=128, epochs=30, lr=0.5,
        out="runs/example-plugin-in-code", force=True,
    )
    print(f"tiny-relu: final perplexity {result.summary['final_train_ppl']:.3f}")
    print(result.sample)
finally:
    plugins.remove("my-plugin")

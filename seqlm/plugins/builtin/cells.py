"""Built-in cells: torch's ``lstm``, ``gru``, ``rnn`` and their ``-scratch`` versions."""

from seqlm.hookspecs import hookimpl


@hookimpl
def register_cells(register):
    register("lstm", "seqlm.cells.torch_cells:TorchLSTM")
    register("gru", "seqlm.cells.torch_cells:TorchGRU")
    register("rnn", "seqlm.cells.torch_cells:TorchRNN")
    register("lstm-scratch", "seqlm.cells.scratch:ScratchLSTM")
    register("gru-scratch", "seqlm.cells.scratch:ScratchGRU")
    register("rnn-scratch", "seqlm.cells.scratch:ScratchRNN")

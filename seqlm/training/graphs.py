"""A training step over fixed buffers, replayed as a CUDA graph.

On a GPU, one step of a small recurrent model is hundreds of short kernels, and
launching them one by one from Python takes longer than running them. A CUDA graph
records the kernels of one step once and replays them all with a single launch. A
replay repeats the recorded work on the same memory, so the step must read its batch
and its initial state from fixed buffers and write everything it produces (the new
state, the summed loss, the updated weights) into fixed memory too. :class:`StaticStep`
holds those buffers around a step function and runs it eagerly for a few warm-up
batches, then records it and replays it for every later batch.

Without capture (``capture=False``) every call runs the step function eagerly over the
same buffers; the trainer's tests use that on the CPU to check that a step over fixed
buffers computes exactly what the ordinary loop computes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from seqlm.interfaces import State, map_state
from seqlm.training.graph_policy import GraphRecordingError


def state_tensors(state: State) -> tuple[torch.Tensor, ...]:
    """The tensors of a state, in order (a state is a tensor or a tuple of tensors)."""
    if isinstance(state, torch.Tensor):
        return (state,)
    return tuple(t for part in state for t in state_tensors(part))


def restructure(template: State, tensors: tuple[torch.Tensor, ...]) -> State:
    """``tensors`` arranged like ``template`` (the inverse of :func:`state_tensors`)."""
    remaining = iter(tensors)
    return map_state(lambda _: next(remaining), template)


class StaticStep:
    """One training step over fixed input, target, state and loss buffers.

    ``step(inputs, targets, state)`` trains on one batch and returns
    ``(loss, new_state)`` with the loss detached; :class:`StaticStep` feeds it its
    buffers, copies the new state back into the state buffers and adds
    ``loss * tokens`` to :attr:`loss_sum`. With ``capture=True`` (CUDA only) the first
    ``warmup`` calls run eagerly on a side stream (so that lazily created optimizer
    states, cuBLAS and cuDNN workspaces exist before recording), the next call records
    the step as a CUDA graph, and that call and every later one replay it.

    The optimizer's learning rates are part of the recording; :meth:`fits` refuses a
    batch once they change, and the caller builds a new :class:`StaticStep`.
    """

    def __init__(
        self,
        step: Callable[[torch.Tensor, torch.Tensor, State], tuple[torch.Tensor, State]],
        inputs: torch.Tensor,
        targets: torch.Tensor,
        state: State,
        learning_rates: list[float],
        capture: bool,
        warmup: int = 3,
    ) -> None:
        self._step = step
        self.inputs = inputs.clone()
        self.targets = targets.clone()
        self._template = state
        self.state = tuple(t.detach().clone() for t in state_tensors(state))
        self.loss_sum = torch.zeros((), device=inputs.device)
        self.learning_rates = list(learning_rates)
        self.capture = capture
        self._warmup_left = warmup if capture else 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._tokens = targets.numel()

    def fits(self, inputs: torch.Tensor, targets: torch.Tensor, state: State | None,
             learning_rates: list[float]) -> bool:
        """Whether this step can train on a batch of these shapes at these rates."""
        if inputs.shape != self.inputs.shape or targets.shape != self.targets.shape:
            return False
        if inputs.dtype != self.inputs.dtype or targets.dtype != self.targets.dtype:
            return False
        if state is not None and not self.holds(state):
            return False
        return list(learning_rates) == self.learning_rates

    def holds(self, state: State) -> bool:
        """Whether the state buffers have the shapes and dtypes of ``state``'s tensors."""
        tensors = state_tensors(state)
        return [(t.shape, t.dtype) for t in tensors] == [(t.shape, t.dtype)
                                                         for t in self.state]

    def set_state(self, state: State) -> None:
        """Start the next batch from ``state`` (copied into the state buffers)."""
        for buffer, value in zip(self.state, state_tensors(state), strict=True):
            buffer.copy_(value)

    def current_state(self) -> State:
        """A copy of the state that the last batch ended in."""
        return restructure(self._template, tuple(t.clone() for t in self.state))

    def take_loss_sum(self) -> torch.Tensor:
        """The summed ``loss * tokens`` since the last call, and start a new sum."""
        total = self.loss_sum.clone()
        self.loss_sum.zero_()
        return total

    def __call__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        """Train on one batch, starting from the state in the state buffers."""
        self.inputs.copy_(inputs)
        self.targets.copy_(targets)
        if not self.capture:
            self._run()
        elif self._warmup_left > 0:
            self._warmup_left -= 1
            with self._side_stream():
                self._run()
        else:
            if self._graph is None:
                self._graph = self._record()  # recording ran nothing: replay this batch
            self._graph.replay()

    @property
    def recorded(self) -> bool:
        """Whether the step has been recorded (and every later call replays it)."""
        return self._graph is not None

    def _side_stream(self) -> contextlib.AbstractContextManager[None]:
        # Warm-up runs on a side stream, as recording does, so that what the libraries
        # set up lazily belongs to a non-default stream. Only CUDA has streams.
        if self.inputs.device.type != "cuda":
            return contextlib.nullcontext()
        return _on_side_stream()

    def _record(self) -> torch.cuda.CUDAGraph:
        graph = torch.cuda.CUDAGraph()
        on_cuda = self.inputs.device.type == "cuda"
        stream = torch.cuda.current_stream() if on_cuda else None
        try:
            with torch.cuda.graph(graph):
                self._run()
        except RuntimeError as error:
            # Typically an operation that reads a value back to the host, or one that
            # CUDA cannot record; the eager loop runs the same step without recording.
            # Ending a broken recording can fail before torch switches back from its
            # recording stream, so switch back here for whatever runs next.
            if stream is not None:
                torch.cuda.set_stream(stream)
            raise GraphRecordingError.from_runtime_error(error) from error
        return graph

    def _run(self) -> None:
        loss, new_state = self._step(self.inputs, self.targets,
                                     restructure(self._template, self.state))
        for buffer, value in zip(self.state, state_tensors(new_state), strict=True):
            buffer.copy_(value.detach())
        self.loss_sum.add_(loss, alpha=self._tokens)  # one kernel: multiply and add


@contextlib.contextmanager
def _on_side_stream() -> Iterator[None]:
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        yield
    torch.cuda.current_stream().wait_stream(side)

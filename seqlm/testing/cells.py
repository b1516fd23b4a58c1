"""The rules of the RecurrentCell contract."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch.nn import functional as F

from seqlm.errors import SeqlmError
from seqlm.interfaces import RecurrentCell, detach_state
from seqlm.plugins.culprit import SUPER_INIT_FIX
from seqlm.plugins.door import forward_problem, state_problem
from seqlm.testing.basics import BATCH, HIDDEN_SIZE, INPUT_SIZE, STEPS, Rule, require


def _cell(cls: type, options: dict[str, Any], seed: int = 0) -> RecurrentCell:
    torch.manual_seed(seed)
    return cls(**{"input_size": INPUT_SIZE, "hidden_size": HIDDEN_SIZE, "num_layers": 1,
                  **options})


def _inputs(cell: RecurrentCell, steps: int = STEPS, batch: int = BATCH, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, INPUT_SIZE, (steps, batch), generator=generator)
    return ids, F.one_hot(ids, INPUT_SIZE).float()


def _run(cell: RecurrentCell, inputs: torch.Tensor, state=None):
    if state is None:
        state = cell.begin_state(inputs.shape[1], "cpu")
    return cell(inputs, state)


def cell_builds(cls: type, options: dict[str, Any]) -> None:
    """Built with keywords, the cell keeps its sizes and says its output size."""
    cell = _cell(cls, dict(options))
    require(isinstance(cell, RecurrentCell), "cell_builds",
             f"{cls.__qualname__} does not subclass seqlm.interfaces.RecurrentCell")
    for name, want in (("input_size", INPUT_SIZE), ("hidden_size", HIDDEN_SIZE)):
        value = getattr(cell, name, None)
        hint = f"; {SUPER_INIT_FIX}" if value is None else ""
        require(value == want, "cell_builds", f"self.{name} is {value!r}, expected {want}{hint}")
    require(isinstance(cell.output_size, int) and cell.output_size > 0, "cell_builds",
             f"self.output_size must be a positive int, got {cell.output_size!r}")


def cell_shapes(cls: type, options: dict[str, Any]) -> None:
    """forward returns time-major outputs and a state structured like begin_state's."""
    cell = _cell(cls, dict(options)).eval()
    begin = cell.begin_state(BATCH, "cpu")
    problem = state_problem(begin)
    require(problem is None, "cell_shapes", str(problem))
    _, inputs = _inputs(cell)
    with torch.no_grad():
        result = cell(inputs, begin)
    # Float inputs set the dtype; token ids (a cell that takes them) the default one.
    dtype = inputs.dtype if inputs.is_floating_point() else torch.get_default_dtype()
    problem = forward_problem(cell, result, begin, STEPS, BATCH, dtype)
    require(problem is None, "cell_shapes", str(problem))


def cell_state_carries_over_detached(cls: type, options: dict[str, Any]) -> None:
    """Two halves, the state carried and detached between them, equal the whole; the
    detached state holds no autograd history."""
    cell = _cell(cls, dict(options)).eval()
    _, inputs = _inputs(cell)
    whole, _ = _run(cell, inputs)
    halves = _run(cell, inputs[:2])
    # The state must be one detach_state can take: a wrong one is the cell's fault,
    # named here, rather than an error from seqlm's own detach_state below.
    problem = forward_problem(cell, halves, cell.begin_state(BATCH, "cpu"), 2, BATCH)
    require(problem is None, "cell_state_carries_over_detached", str(problem))
    first, state = halves
    detached = detach_state(state)
    tensors = [detached] if isinstance(detached, torch.Tensor) else list(detached)
    require(all(not t.requires_grad for t in tensors), "cell_state_carries_over_detached",
             "detach_state(state) still requires grad")
    second, _ = _run(cell, inputs[2:], detached)
    require(torch.allclose(torch.cat([first, second]), whole, atol=1e-5),
             "cell_state_carries_over_detached",
             "running the steps in two halves, carrying the state, differs from running "
             "them at once: forward must start from the state it is given")


def cell_gradients_reach_every_parameter(cls: type, options: dict[str, Any]) -> None:
    """A loss on the outputs gives every trainable parameter a finite gradient."""
    cell = _cell(cls, dict(options)).train()
    _, inputs = _inputs(cell)
    outputs, _ = _run(cell, inputs)
    outputs.float().square().sum().backward()
    for name, param in cell.named_parameters():
        if not param.requires_grad:
            continue
        require(param.grad is not None, "cell_gradients_reach_every_parameter",
                 f"parameter {name} got no gradient: it does not take part in forward")
        require(bool(torch.isfinite(param.grad).all()), "cell_gradients_reach_every_parameter",
                 f"parameter {name} got a non-finite gradient")


def cell_deterministic_under_a_seed(cls: type, options: dict[str, Any]) -> None:
    """The same seed builds the same weights and the same outputs."""
    runs = []
    for _ in range(2):
        cell = _cell(cls, dict(options), seed=5).eval()
        _, inputs = _inputs(cell)
        with torch.no_grad():
            runs.append(_run(cell, inputs)[0])
    require(torch.equal(runs[0], runs[1]), "cell_deterministic_under_a_seed",
             "two cells built and run under the same seed gave different outputs; draw "
             "random numbers from torch's generator")


def cell_stacks_num_layers(cls: type, options: dict[str, Any]) -> None:
    """Built with one layer more, the cell computes something else, or refuses the count
    with a UsageError or ValueError: a cell that ignores ``num_layers`` would train another
    model than the run records."""
    layers = options.get("num_layers", 1)
    try:
        more = _cell(cls, {**options, "num_layers": layers + 1}, seed=5).eval()
    except (SeqlmError, ValueError):
        return  # refused, as a one-layer design may
    fewer = _cell(cls, {**options, "num_layers": layers}, seed=5).eval()
    require(more.num_layers == layers + 1, "cell_stacks_num_layers",
             f"built with num_layers={layers + 1}, self.num_layers is {more.num_layers!r}")
    _, inputs = _inputs(fewer)
    with torch.no_grad():
        outputs = [_run(cell, inputs)[0] for cell in (fewer, more)]
    sizes = [sum(p.numel() for p in cell.parameters()) for cell in (fewer, more)]
    require(sizes[0] != sizes[1] or not torch.equal(*outputs), "cell_stacks_num_layers",
             f"built with num_layers={layers + 1} the cell has the parameters and outputs it "
             f"has with {layers}: it ignores num_layers; stack the layers, or refuse other "
             "counts with a seqlm.errors.UsageError")


def cell_state_dict_round_trip(cls: type, options: dict[str, Any]) -> None:
    """Weights saved with state_dict and loaded into a fresh cell give the same outputs."""
    cell = _cell(cls, dict(options), seed=1).eval()
    other = _cell(cls, dict(options), seed=2).eval()
    other.load_state_dict(copy.deepcopy(cell.state_dict()))
    _, inputs = _inputs(cell)
    with torch.no_grad():
        want, got = _run(cell, inputs)[0], _run(other, inputs)[0]
    require(torch.allclose(want, got), "cell_state_dict_round_trip",
             "a cell loaded from another's state_dict computes something else: keep every "
             "weight in a parameter or buffer")


def cell_token_ids_as_declared(cls: type, options: dict[str, Any]) -> None:
    """A cell that declares accepts_token_ids gives for ids what it gives for one-hot
    vectors; every cell takes float vectors."""
    cell = _cell(cls, dict(options)).eval()
    ids, one_hot = _inputs(cell)
    with torch.no_grad():
        from_vectors = _run(cell, one_hot)[0]
        if cls.accepts_token_ids:
            from_ids = _run(cell, ids)[0]
            require(torch.allclose(from_ids, from_vectors, atol=1e-5),
                     "cell_token_ids_as_declared",
                     "accepts_token_ids is true, but token ids give other outputs than the "
                     "same tokens as one-hot vectors")


def cell_bf16_as_declared(cls: type, options: dict[str, Any]) -> None:
    """A cell that declares supports_bf16 runs under bfloat16 autocast with finite
    outputs of the right shape."""
    if not cls.supports_bf16:
        return
    cell = _cell(cls, dict(options)).eval()
    _, inputs = _inputs(cell)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        begin = cell.begin_state(BATCH, "cpu")
        outputs, _ = cell(inputs, begin)
    require(tuple(outputs.shape) == (STEPS, BATCH, cell.output_size), "cell_bf16_as_declared",
             f"outputs under autocast are shaped {tuple(outputs.shape)}")
    require(bool(torch.isfinite(outputs.float()).all()), "cell_bf16_as_declared",
             "outputs under bfloat16 autocast are not finite")


CELL_RULES: tuple[Rule, ...] = (
    cell_builds, cell_shapes, cell_state_carries_over_detached,
    cell_gradients_reach_every_parameter, cell_deterministic_under_a_seed,
    cell_stacks_num_layers, cell_state_dict_round_trip, cell_token_ids_as_declared,
    cell_bf16_as_declared,
)

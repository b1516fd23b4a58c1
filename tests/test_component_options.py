"""--cell-opt, --sampler-opt, --trainer-opt and --tokenizer-opt: converted to the types the
constructor declares, and refused before the run folder is made when they do not fit."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from plugin_dists import TINY_RUN, run_seqlm

from seqlm.errors import UsageError
from seqlm.plugins.options import convert_options, convert_value


@pytest.mark.parametrize("args, expected", [
    (["--cell-opt", "bidirectional=yes"], "bidirectional is set with --bidirectional"),
    (["--cell-opt", "fused=maybe"],
     "--cell-opt fused=maybe: option 'fused' of cell 'lstm' expects a boolean"),
    (["--cell-opt", "weight_dropout=abc"],
     "option 'weight_dropout' of cell 'lstm' expects a finite number"),
    (["--sampler-opt", "stride=2"], "sampler 'sequential' does not accept option 'stride'"),
    (["--trainer-opt", "optimizer=adam"], "optimizer is set with --optimizer"),
    (["--trainer-opt", "warmup=1"], "trainer 'default' does not accept option 'warmup'"),
    (["--trainer-opt", "lr=0.1"], "seqlm passes lr to every trainer itself, so it cannot be "
     "a --trainer-opt; use --lr"),
    (["--trainer-opt", "device=cpu"], "use --device"),
    (["--sampler-opt", "batch_size=4"], "seqlm passes batch_size to every sampler itself"),
    (["--sampler-opt", "num_steps=4"], "use --num-steps"),
    (["--cell-opt", "hidden_size=4"], "use --hidden"),
    (["--cell-opt", "weight_dropout=nan"],
     "option 'weight_dropout' of cell 'lstm' expects a finite number"),
    (["--cell-opt", "weight_dropout=inf"], "expects a finite number"),
    (["--cell-opt", "weight_dropout=0.1", "--cell-opt", "weight-dropout=0.2"],
     "weight-dropout is given twice ('0.1' and '0.2'); give it once"),
])
def test_a_bad_option_is_a_usage_error_before_the_run_folder(tmp_path, small_text, args,
                                                              expected):
    out = tmp_path / "run"
    done = run_seqlm(["run", "--data", str(small_text), "--out", str(out), *TINY_RUN, *args])
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()


def _saved_cell_options(tmp_path, small_text, *args: str) -> dict:
    """The cell options a run with ``args`` recorded in its summary.json."""
    out = tmp_path / "run"
    done = run_seqlm(["run", "--data", str(small_text), "--out", str(out), *TINY_RUN, *args])
    assert done.returncode == 0, done.stderr
    return json.loads((out / "summary.json").read_text())["config"]["cell_options"]


def test_an_option_repeated_with_the_same_value_is_that_value(tmp_path, small_text):
    assert _saved_cell_options(tmp_path, small_text, "--cell-opt", "weight_dropout=0.1",
                               "--cell-opt", "weight_dropout=0.1") == {"weight_dropout": 0.1}


def test_values_get_the_constructors_types(tmp_path, small_text):
    assert _saved_cell_options(tmp_path, small_text, "--cell-opt", "fused=NO", "--cell-opt",
                               "weight_dropout=0.1") == {"fused": False, "weight_dropout": 0.1}


class Annotated:
    def __init__(self, flag: bool = False, count: int = 1, rate: float = 0.5,
                 label: str = "x", maybe: int | None = None,
                 mode: Literal["a", "b"] = "a", loose=None, guessed=3) -> None: ...


@pytest.mark.parametrize("key, text, want", [
    ("flag", "Yes", True), ("flag", "0", False), ("flag", "FALSE", False),
    ("count", "7", 7), ("rate", "1e-3", 1e-3), ("rate", "2", 2.0), ("label", "12", "12"),
    ("maybe", "none", None), ("maybe", "4", 4), ("mode", "b", "b"),
    ("loose", "[1, 2]", [1, 2]), ("loose", "text", "text"), ("guessed", "5", 5),
])
def test_text_converts_to_the_declared_type(key, text, want):
    got = convert_options("cell", "c", Annotated, {key: text})[key]
    assert got == want and type(got) is type(want)


@pytest.mark.parametrize("key, text, words", [
    ("flag", "maybe", "a boolean"), ("count", "1.5", "a whole number"),
    ("rate", "fast", "a finite number"), ("rate", "nan", "a finite number"),
    ("mode", "c", "one of a, b"),
    ("maybe", "x", "a whole number (such as 3) or none"),
])
def test_a_value_of_the_wrong_type_names_option_value_and_type(key, text, words):
    with pytest.raises(UsageError) as error:
        convert_options("cell", "c", Annotated, {key: text})
    want = f"--cell-opt {key}={text}: option {key!r} of cell 'c' expects {words}"
    assert want in str(error.value)


class Collections:
    def __init__(self, sizes: list[int] | None = None, rates: tuple[float, ...] = (),
                 pair: tuple[int, str] | None = None, weights: dict[str, float] | None = None,
                 anything: list | None = None) -> None: ...


@pytest.mark.parametrize("key, text, want", [
    ("sizes", "[1, 2.0, 3]", [1, 2, 3]), ("rates", "[1, 0.5]", (1.0, 0.5)),
    ("pair", '[2, "x"]', (2, "x")), ("weights", '{"a": 1}', {"a": 1.0}),
    ("anything", '[1, "x", null]', [1, "x", None]), ("sizes", "none", None),
])
def test_the_elements_of_a_list_or_object_convert_to_the_declared_type(key, text, want):
    got = convert_options("cell", "c", Collections, {key: text})[key]
    assert got == want and type(got) is type(want)
    if isinstance(want, (list, tuple)):
        assert [type(g) for g in got] == [type(w) for w in want]


@pytest.mark.parametrize("key, text, words", [
    ("sizes", '[1, "two"]', "a JSON list (such as [1, 2]) of which each is a whole number"),
    ("sizes", "[true]", "of which each is a whole number"),
    ("rates", "[1, NaN]", "of which each is a finite number"),
    ("pair", "[1]", "a JSON list of 2: a whole number (such as 3); text"),
    ("weights", '{"a": "b"}', 'a JSON object (such as {"a": 1}) of which each value is a '
     "finite number"),
])
def test_an_element_of_the_wrong_type_is_refused_with_the_type_of_each(key, text, words):
    with pytest.raises(UsageError) as error:
        convert_options("cell", "c", Collections, {key: text})
    assert f"--cell-opt {key}={text}: option {key!r} of cell 'c' expects" in str(error.value)
    assert words in str(error.value)


def test_the_options_listed_as_accepted_leave_out_those_with_a_flag_of_their_own(
        tmp_path, small_text):
    done = run_seqlm(["run", "--data", str(small_text), "--out", str(tmp_path / "r"),
                      *TINY_RUN, "--trainer-opt", "warmup=1"])
    listed = done.stderr.split("its options:")[1]
    assert "optimizer" not in listed and "precision" not in listed


def test_a_required_option_without_default_is_named():
    class Needs:
        def __init__(self, input_size, hidden_size, num_layers=1, *, alpha: float): ...

    with pytest.raises(UsageError, match="requires option 'alpha', which has no default; "
                       "pass --cell-opt alpha=VALUE"):
        convert_options("cell", "c", Needs, {}, fixed=("input_size", "hidden_size",
                                                       "num_layers"))


def test_typed_values_from_the_library_pass_through():
    assert convert_value(True, bool) is True
    assert convert_value(3, float) == 3.0
    with pytest.raises(ValueError):
        convert_value(True, int)


def test_resuming_with_the_same_options_as_typed_is_accepted(tmp_path, small_text):
    out = tmp_path / "run"
    args = ["--data", str(small_text), *TINY_RUN, "--cell-opt", "fused=no",
            "--cell-opt", "weight_dropout=0.1"]
    first = run_seqlm(["run", "--out", str(out), *args])
    assert first.returncode == 0, first.stderr
    again = run_seqlm(["run", "--resume", str(out), "--epochs", "3", "--cell-opt", "fused=false",
                       "--cell-opt", "weight_dropout=0.10"])
    assert again.returncode == 0, again.stderr
    other = run_seqlm(["run", "--resume", str(out), "--epochs", "4", "--cell-opt", "fused=true",
                       "--cell-opt", "weight_dropout=0.1"])
    assert other.returncode == 2 and "--cell-opt cannot change when resuming" in other.stderr


def test_converting_twice_gives_what_converting_once_gives():
    # seqlm checks a cell's options when it settles the run and again when it builds
    # the cell: a tuple converted once must pass the second time as it is.
    for key, text in (("sizes", "[1, 2]"), ("rates", "[1, 0.5]"), ("pair", '[2, "x"]'),
                      ("weights", '{"a": 1}'), ("anything", "[1]")):
        once = convert_options("cell", "c", Collections, {key: text})
        assert convert_options("cell", "c", Collections, once) == once


def test_a_tuple_option_reaches_the_cell_in_a_run(tmp_path, small_text):
    import seqlm
    from seqlm.cells.torch_cells import TorchLSTM

    seen = []

    class Scaled(TorchLSTM):
        def __init__(self, input_size, hidden_size, num_layers=1,
                     scales: tuple[float, ...] = (1.0,), gamma=(1, 2)):
            super().__init__(input_size, hidden_size, num_layers)
            seen.append((scales, gamma))

    class Plugin:
        @seqlm.hookimpl
        def register_cells(self, register):
            register("scaled-test", Scaled)

    plugins = seqlm.get_plugins()
    plugins.add(Plugin(), "scaled-test-plugin")
    try:
        seqlm.run(data=small_text, out=tmp_path / "r", cell="scaled-test", epochs=1,
                  hidden=8, batch_size=2, num_steps=5, predict=0,
                  cell_options={"scales": "[0.5, 2]", "gamma": '[3, "x"]'})
    finally:
        plugins.remove("scaled-test-plugin")
    # Annotated: each element a float; unannotated: the type of its default, a tuple.
    assert seen and all(s == ((0.5, 2.0), (3, "x")) for s in seen)
    assert [type(v) for v in seen[0][0]] == [float, float]

"""--cell-opt, --sampler-opt, --trainer-opt and --tokenizer-opt: converted to the types the
constructor declares, and refused before the run folder is made when they do not fit."""

from __future__ import annotations

import enum
import importlib.util
import json
from typing import Literal

import pytest
from plugin_dists import CELL_SOURCE, TINY_RUN, make_dist, run_seqlm, unique

from seqlm.config.recipes import load_recipe
from seqlm.errors import UsageError
from seqlm.plugins.options import convert_options, convert_value, same_options


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


#: A plugin cell whose module defers its annotations and imports numpy only for type
#: checkers, so that ``np.ndarray`` never resolves at run time.
DEFERRED_CELL = "from __future__ import annotations\n" + CELL_SOURCE + """
from typing import TYPE_CHECKING, Optional

import seqlm

if TYPE_CHECKING:
    import numpy as np


class DeferredCell(TanhCell):
    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 scale: float = 1, table: np.ndarray | None = None,
                 limit: Optional[int] = None, cap: int | None = None):
        super().__init__(input_size, hidden_size, num_layers, scale=0.01 * scale)


@seqlm.hookimpl
def register_cells(register):
    register("deferred-test", DeferredCell)
"""

CELL_ARGUMENTS = ("input_size", "hidden_size", "num_layers")


@pytest.fixture(scope="module")
def deferred(tmp_path_factory):
    """A plugin folder (for ``run_seqlm``) with the cell ``deferred-test``, and the class."""
    root = tmp_path_factory.mktemp("deferred")
    module = unique("deferred")
    make_dist(root, "seqlm-deferred", {module: DEFERRED_CELL}, {"deferred": module})
    spec = importlib.util.spec_from_file_location(module, root / f"{module}.py")
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return root, loaded.DeferredCell


@pytest.mark.parametrize("key, text, want", [
    ("scale", "0.5", 0.5), ("scale", "2", 2.0), ("limit", "3", 3), ("cap", "4", 4),
    ("limit", "none", None), ("cap", "none", None), ("table", "null", None),
    ("table", "[1, 2]", [1, 2]),
])
def test_an_annotation_that_does_not_resolve_leaves_the_others_their_types(deferred, key,
                                                                            text, want):
    got = convert_options("cell", "deferred-test", deferred[1], {key: text},
                          fixed=CELL_ARGUMENTS)[key]
    assert got == want and type(got) is type(want)


def test_a_cell_with_an_annotation_that_does_not_resolve_gets_its_float(deferred, tmp_path,
                                                                        small_text):
    out = tmp_path / "run"
    done = run_seqlm(["run", "--cell", "deferred-test", "--data", str(small_text), "--out",
                      str(out), *TINY_RUN, "--cell-opt", "scale=2"], deferred[0])
    assert done.returncode == 0, done.stderr
    saved = json.loads((out / "summary.json").read_text())["config"]["cell_options"]
    assert saved == {"scale": 2.0} and type(saved["scale"]) is float


def test_resuming_with_none_as_typed_before_is_accepted(deferred, tmp_path, small_text):
    out = tmp_path / "run"
    first = run_seqlm(["run", "--cell", "deferred-test", "--data", str(small_text), "--out",
                       str(out), *TINY_RUN, "--cell-opt", "limit=none", "--cell-opt",
                       "cap=None"], deferred[0])
    assert first.returncode == 0, first.stderr
    again = run_seqlm(["run", "--resume", str(out), "--epochs", "3", "--cell-opt",
                       "limit=none", "--cell-opt", "cap=NULL"], deferred[0])
    assert again.returncode == 0, again.stderr
    other = run_seqlm(["run", "--resume", str(out), "--epochs", "4", "--cell-opt", "limit=3",
                       "--cell-opt", "cap=none"], deferred[0])
    assert other.returncode == 2 and "--cell-opt cannot change when resuming" in other.stderr


@pytest.mark.parametrize("saved, given, same", [
    ({"maybe": None}, {"maybe": "none"}, True), ({"maybe": None}, {"maybe": "Null"}, True),
    ({"maybe": None}, {"maybe": "4"}, False), ({"maybe": 4}, {"maybe": "none"}, False),
    ({"rate": 0.5}, {"rate": "0.50"}, True), ({"loose": None}, {"loose": "null"}, True),
])
def test_saved_options_compare_as_the_run_converts_them(saved, given, same):
    assert same_options(saved, given, Annotated) is same
    assert same_options(saved, given) is same  # by the saved values' own types


def test_none_for_an_option_without_annotation_is_text_when_compared_by_the_constructor():
    # Read as JSON, ``none`` stays the text "none": only ``null`` gave the saved None.
    assert not same_options({"loose": None}, {"loose": "none"}, Annotated)
    assert same_options({"loose": "none"}, {"loose": "none"}, Annotated)


def test_a_saved_tuple_read_back_as_a_list_is_the_same_by_its_annotation():
    saved = {"rates": [1.0, 0.5], "pair": [2, "x"], "sizes": None}
    given = {"rates": "[1, 0.5]", "pair": '[2, "x"]', "sizes": "none"}
    assert same_options(saved, given, Collections)
    assert not same_options({**saved, "pair": [3, "x"]}, given, Collections)


class Color(enum.Enum):
    RED = 1
    GREEN = 2
    BLUE = 3


class Shade(str, enum.Enum):
    LIGHT = "l"
    DARK = "d"


class Coloured:
    def __init__(self, color: Color = Color.RED, shade: Shade | None = None,
                 guessed=Color.GREEN) -> None: ...


@pytest.mark.parametrize("key, value, want", [
    ("color", "blue", Color.BLUE), ("color", "BLUE", Color.BLUE), ("color", " Green ",
                                                                     Color.GREEN),
    ("color", "2", Color.GREEN), ("color", 3, Color.BLUE), ("color", Color.RED, Color.RED),
    ("shade", "dark", Shade.DARK), ("shade", "l", Shade.LIGHT), ("shade", "none", None),
    ("guessed", "red", Color.RED),
])
def test_an_enum_option_converts_by_name_or_value_to_the_member(key, value, want):
    assert convert_options("cell", "c", Coloured, {key: value})[key] is want


@pytest.mark.parametrize("key, value, words", [
    ("color", "purple", "one of red, green, blue"), ("color", "4", "one of red, green, blue"),
    ("color", True, "one of red, green, blue"), ("color", 1.5, "one of red, green, blue"),
    ("shade", "x", "one of light, dark or none"),
])
def test_an_enum_option_of_no_member_lists_the_choices(key, value, words):
    with pytest.raises(UsageError) as error:
        convert_options("cell", "c", Coloured, {key: value})
    message = str(error.value)
    assert f"option {key!r} of cell 'c' expects {words}" in message
    assert len(message.splitlines()) == 1


def test_an_enum_option_from_a_recipe_converts_from_text_or_a_number(tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[cell-opt]\ncolor = 2\nshade = "Light"\n', encoding="utf-8")
    options = load_recipe(recipe)["cell_options"]
    assert convert_options("cell", "c", Coloured, options) == {"color": Color.GREEN,
                                                                "shade": Shade.LIGHT}
    recipe.write_text("[cell-opt]\ncolor = 7\n", encoding="utf-8")
    with pytest.raises(UsageError, match="expects one of red, green, blue"):
        convert_options("cell", "c", Coloured, load_recipe(recipe)["cell_options"])


def test_converting_an_enum_option_twice_gives_the_member():
    once = convert_options("cell", "c", Coloured, {"color": "blue", "shade": "d"})
    assert convert_options("cell", "c", Coloured, once) == once


class Mode(enum.Enum):
    PLAIN = 1
    DOUBLED = 2


def test_a_run_with_an_enum_option_saves_it_by_name_and_resumes_and_generates(
    small_text, tmp_path, registered
):
    from click.testing import CliRunner
    from test_door_check import Tanh

    from seqlm.cli import main

    seen = []

    class Moded(Tanh):
        def __init__(self, input_size, hidden_size, num_layers=1, mode: Mode = Mode.PLAIN):
            super().__init__(input_size, hidden_size, num_layers)
            seen.append(mode)

    registered("cell", "moded", Moded)
    out = tmp_path / "run"
    first = CliRunner().invoke(main, ["run", "--cell", "moded", "--cell-opt", "mode=doubled",
                                      "--data", str(small_text), "--out", str(out),
                                      *TINY_RUN])
    assert first.exit_code == 0, first.output
    saved = json.loads((out / "summary.json").read_text())["config"]["cell_options"]
    assert saved == {"mode": "DOUBLED"}
    # Typed again as at training (or by the member's value): the same option.
    for epochs, typed in (("3", "mode=doubled"), ("4", "mode=2"), ("5", "mode=DOUBLED")):
        again = CliRunner().invoke(main, ["run", "--resume", str(out), "--epochs", epochs,
                                          "--cell-opt", typed])
        assert again.exit_code == 0, again.output
    changed = CliRunner().invoke(main, ["run", "--resume", str(out), "--epochs", "6",
                                        "--cell-opt", "mode=plain"])
    assert changed.exit_code == 2 and "cannot change when resuming" in changed.output
    generated = CliRunner().invoke(main, ["generate", str(out), "--length", "5"])
    assert generated.exit_code == 0, generated.output
    assert seen and set(seen) == {Mode.DOUBLED}  # the member, every time it was built


def test_numpy_numbers_are_taken_for_component_options():
    import numpy as np

    import seqlm

    converted = convert_options("cell", "lstm", seqlm.get_plugins().get("cell", "lstm"),
                                {"weight_dropout": np.float32(0.25)}, fixed=CELL_ARGUMENTS)
    assert converted == {"weight_dropout": 0.25}
    assert type(converted["weight_dropout"]) is float


def test_a_float_default_of_the_authors_own_may_be_infinite(registered, small_text, tmp_path):
    import math

    import seqlm
    from seqlm.data.samplers import SequentialSampler

    class Capped(SequentialSampler):
        def __init__(self, batch_size, num_steps, max_norm: float = math.inf):
            super().__init__(batch_size, num_steps)
            self.max_norm = max_norm

    registered("sampler", "capped", Capped)
    result = seqlm.run(data=small_text, out=tmp_path / "r", sampler="capped", epochs=1,
                       hidden=8, batch_size=4, num_steps=5, predict=3, quiet=True)
    assert len(result.history) == 1

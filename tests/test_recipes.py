"""Recipes as TOML files: seqlm run --config, seqlm config RUN, examples/recipes/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqlm.cli import main
from seqlm.cli import run as run_command
from seqlm.config.recipes import load_recipe, recipe_text
from tests.test_recipe_docs import recipe_args

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "examples" / "recipes").glob("*.toml"))
# Later options override the recipe's: a test's size.
SMALL = ["--max-tokens", "1500", "--hidden", "12", "--batch-size", "4", "--num-steps", "8",
         "--epochs", "1", "--predict", "5"]


def _config(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())["config"]


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_each_example_recipe_runs_an_epoch(recipe, book_path, tmp_path):
    out = tmp_path / "r"
    result = CliRunner().invoke(main, ["run", "--config", str(recipe), "--data",
                                       str(book_path), *SMALL, "--out", str(out)])
    assert result.exit_code == 0, result.output
    config = _config(out)
    assert config["epochs"] == 1 and config["hidden"] == 12  # the command line won
    for name, value in load_recipe(recipe).items():
        if f"--{name.replace('_', '-')}" not in SMALL:
            assert config[name] == value, name  # the recipe gave the rest


def test_the_documented_recipe_is_the_example_recipe():
    args = recipe_args(ROOT / "docs" / "training.md", "The recipe, on the whole book")
    typed = run_command.make_context("run", args).params
    defaults = run_command.make_context("run", []).params
    recipe = load_recipe(ROOT / "examples" / "recipes" / "timemachine.toml")

    def given(settings: dict) -> dict:
        # The command line gives --cell-opt values as text, converted later to the
        # types the cell declares; a recipe gives them typed.
        return {k: ({o: str(x) for o, x in v.items()} if isinstance(v, dict) else v)
                for k, v in settings.items() if v != defaults[k]}

    assert given(typed) == given(recipe)


def test_seqlm_config_prints_a_recipe_that_reruns_the_same_settings(book_path, tmp_path):
    first = tmp_path / "first"
    result = CliRunner().invoke(main, [
        "run", "--data", str(book_path), *SMALL, "--out", str(first), "--embedding-dim",
        "12", "--tie-weights", "--cell-opt", "weight_dropout=0.1", "--prefix", 'the "time"',
        "--average", "--patience", "3", "--sampler", "variable", "--lr", "0.5"])
    assert result.exit_code == 0, result.output
    printed = CliRunner().invoke(main, ["config", str(first)])
    assert printed.exit_code == 0, printed.output
    assert "tie-weights = true" in printed.output
    assert 'cell-opt = { weight_dropout = 0.1 }' in printed.output
    assert "sampler-opt = {}" in printed.output and "trainer-opt = {}" in printed.output
    recipe = tmp_path / "again.toml"
    recipe.write_text(printed.output, encoding="utf-8")
    second = tmp_path / "second"
    result = CliRunner().invoke(main, ["run", "--config", str(recipe), "--out", str(second)])
    assert result.exit_code == 0, result.output
    want, got = _config(first), _config(second)
    for key in ("out", "force"):
        want.pop(key), got.pop(key)
    assert got == want


def test_a_relative_data_path_is_read_from_the_recipes_folder(book_path, tmp_path):
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "book.txt").write_bytes(book_path.read_bytes())
    recipe = tmp_path / "r.toml"
    recipe.write_text('data = "texts/book.txt"\nmax-tokens = 1500\n', encoding="utf-8")
    assert load_recipe(recipe)["data"] == str((tmp_path / "texts" / "book.txt").resolve())


@pytest.mark.parametrize("body, message", [
    ("hiden = 12\n", "'hiden' is not a setting of seqlm run"),
    ("hidden = \"big\"\n", "'hidden' must be an integer, got \"big\""),
    ("epochs = true\n", "'epochs' must be an integer, got true"),
    ("average = 1\n", "'average' must be true or false, got 1"),
    ("log = \"tensorboard\"\n", "'log' must be an array ([\"a\", \"b\"]), got \"tensorboard\""),
    ("max_tokens = 3000\nmax-tokens = 2000\n",
     "'max_tokens' and 'max-tokens' are the same setting; keep one"),
    ("out = \"runs/x\"\n", "'out' names one run"),
    ("hidden = = 3\n", "is not valid TOML"),
    ("hiden = 12\n", "did you mean 'hidden'?"),
    ("batch_sise = 12\n", "did you mean 'batch-size'?"),
    # Values that only the run's own checks refuse name the recipe's key, not a flag.
    ("hidden = -5\n", ": hidden must be a whole number of at least 1, got -5"),
    ("clean = \"Letters\"\n", ": clean 'Letters' not recognized"),
    ("cuda-graph = \"yes\"\n", ": cuda-graph must be 'auto', true or false"),
    ("[cell-opt]\nfoo = 1\n", ": cell-opt foo = 1: cell 'lstm' does not accept option 'foo'"),
])
def test_a_bad_recipe_is_a_one_line_usage_error(body, message, tmp_path):
    recipe = tmp_path / "bad.toml"
    recipe.write_text(body, encoding="utf-8")
    result = CliRunner().invoke(main, ["run", "--config", str(recipe),
                                       "--out", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert result.output.startswith(f"Error: --config {recipe}")
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_a_missing_recipe_and_config_with_resume_are_usage_errors(tmp_path):
    result = CliRunner().invoke(main, ["run", "--config", str(tmp_path / "none.toml")])
    assert result.exit_code == 2 and "cannot read it" in result.output
    assert "give the path of a TOML recipe" in result.output
    recipe = tmp_path / "r.toml"
    recipe.write_text("hidden = 8\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["run", "--config", str(recipe), "--resume",
                                       str(tmp_path)])
    assert result.exit_code == 2 and "--config cannot be used with --resume" in result.output


def test_recipe_text_escapes_strings_and_leaves_out_run_specific_settings():
    text = recipe_text({"prefix": 'a "quoted"\\ line\n\x7f', "out": "runs/x", "lr": None,
                        "cell_options": {"odd key": [1, 2.5, True]}})
    import tomllib

    parsed = tomllib.loads(text)
    assert parsed == {"prefix": 'a "quoted"\\ line\n\x7f',
                      "cell-opt": {"odd key": [1, 2.5, True]}}


def test_a_typed_component_option_adds_to_the_recipes_table(book_path, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("cell-opt = { weight_dropout = 0.2, locked_dropout = true }\n")
    out = tmp_path / "r"
    result = CliRunner().invoke(main, ["run", "--config", str(recipe), "--data",
                                       str(book_path), *SMALL, "--out", str(out),
                                       "--cell-opt", "locked_dropout=false"])
    assert result.exit_code == 0, result.output
    # The typed key wins; the recipe's other key stays.
    assert _config(out)["cell_options"] == {"weight_dropout": 0.2, "locked_dropout": False}


@pytest.mark.parametrize("typed, given", [
    ([], '--config {recipe}: cell-opt weight_dropout = "high": '),
    (["--cell-opt", "weight_dropout=x"], "--cell-opt weight_dropout=x: "),
])
def test_a_bad_option_is_named_where_it_was_given(typed, given, book_path, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('cell-opt = { weight_dropout = "high" }\n')
    result = CliRunner().invoke(main, ["run", "--config", str(recipe), "--data",
                                       str(book_path), *SMALL, "--out", str(tmp_path / "r"),
                                       *typed])
    assert result.exit_code == 2
    assert result.output.startswith(
        "Error: " + given.format(recipe=recipe) + "option 'weight_dropout' of cell 'lstm' "
        "expects a finite number"), result.output
    assert not (tmp_path / "r").exists()


def test_a_bad_value_typed_over_the_recipe_keeps_its_flag(book_path, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("hidden = 12\n")
    result = CliRunner().invoke(main, ["run", "--config", str(recipe), "--hidden", "-5",
                                       "--data", str(book_path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.output.startswith("Error: --hidden must be a whole number of at least 1")

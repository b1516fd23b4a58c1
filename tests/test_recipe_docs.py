"""The recipe that README and docs/training.md print is one command, and it runs."""

import json
import shlex
from pathlib import Path

from click.testing import CliRunner

from seqlm.cli import main

ROOT = Path(__file__).resolve().parents[1]


def recipe_args(path: Path, heading: str) -> list[str]:
    """The arguments of the first ``seqlm run`` block after ``heading``, without --data."""
    text = path.read_text(encoding="utf-8")
    block = text[text.index(heading):].split("```bash\n", 1)[1].split("```", 1)[0]
    args = shlex.split(block.replace("\\\n", " "))
    assert args[:2] == ["seqlm", "run"], block
    args = args[2:]
    at = args.index("--data")
    return args[:at] + args[at + 2:]


def test_readme_and_training_doc_give_the_same_recipe():
    readme = recipe_args(ROOT / "README.md", "### A recipe that generalises")
    doc = recipe_args(ROOT / "docs" / "training.md", "The recipe, on the whole book")
    assert readme == doc


def test_the_documented_recipe_runs_and_records_its_settings(book_path, tmp_path):
    args = recipe_args(ROOT / "docs" / "training.md", "The recipe, on the whole book")
    # The same options, shrunk to a test's size: later options override earlier ones.
    small = ["--data", str(book_path), "--max-tokens", "3000", "--hidden", "16",
             "--batch-size", "4", "--num-steps", "8", "--epochs", "2", "--predict", "5",
             "--out", str(tmp_path / "r")]
    result = CliRunner().invoke(main, ["run", *args, *small])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "r" / "summary.json").read_text())["config"]
    assert config["cell_options"] == {"weight_dropout": 0.2}
    assert config["activation_reg"] == 4 and config["temporal_reg"] == 2
    assert config["optimizer"] == "adamw" and config["precision"] == "bf16"
    assert config["dropout"] == 0.45 and config["num_layers"] == 2

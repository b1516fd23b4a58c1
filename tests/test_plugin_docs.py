"""The plugin author's guide stays true: every hook documented and tested, tutorial works."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import re
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from plugin_dists import TINY_RUN

from seqlm import hookspecs
from seqlm.cli import main
from seqlm.plugins.manager import HOOKS, reset_plugins

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins"
TESTS = Path(__file__).resolve().parent


def hook_signature(name: str) -> str:
    params = inspect.signature(getattr(hookspecs, name)).parameters
    return f"{name}({', '.join(params)})"


def test_hooks_are_found():
    assert set(HOOKS) >= {"register_cells", "register_tokenizers", "register_samplers",
                          "register_trainers", "register_commands"}


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_reference_section_with_its_signature(hook):
    text = (DOCS / "hooks.md").read_text(encoding="utf-8")
    sections = re.findall(r"^## `(\w+)\((.*)\)`$", text, flags=re.M)
    assert hook in [name for name, _ in sections], f"docs/plugins/hooks.md lacks ## `{hook}`"
    documented = dict(sections)
    assert f"{hook}({documented[hook]})" == hook_signature(hook)
    section = text.split(f"## `{hook_signature(hook)}`")[1].split("\n## ")[0]
    assert "```python" in section and "@seqlm.hookimpl" in section, f"{hook}: no example"


def test_reference_documents_no_hook_that_does_not_exist():
    text = (DOCS / "hooks.md").read_text(encoding="utf-8")
    assert set(re.findall(r"^## `(\w+)\(", text, flags=re.M)) == set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test_of_its_own(hook):
    names = {
        node.name
        for path in TESTS.glob("test_*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef)
    }
    assert f"test_hook_{hook}" in names, f"no test named test_hook_{hook} in tests/"


def tutorial_files() -> dict[str, str]:
    text = (DOCS / "tutorial.md").read_text(encoding="utf-8")
    blocks = re.findall(r'^```\w+ title="([^"]+)"\n(.*?)^```$', text, flags=re.M | re.S)
    return dict(blocks)


def test_the_tutorial_plugin_installs_lists_and_trains(tmp_path, monkeypatch, small_text):
    files = tutorial_files()
    assert {"pyproject.toml", "seqlm_mingru/cell.py", "seqlm_mingru/plugin.py",
            "tests/test_mingru.py"} <= set(files)
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content, encoding="utf-8")
    # What `pip install -e .` leaves behind: the package importable, and a dist-info
    # folder with the entry points of pyproject.toml.
    # (A few lines of TOML read by pattern, as tomllib is not in Python 3.10.)
    pyproject = files["pyproject.toml"]
    name = re.search(r'^name = "(.+)"$', pyproject, flags=re.M)[1]
    version = re.search(r'^version = "(.+)"$', pyproject, flags=re.M)[1]
    table = pyproject.split("[project.entry-points.seqlm]\n")[1].split("\n\n")[0]
    dist_info = tmp_path / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (dist_info / "entry_points.txt").write_text("[seqlm]\n" + table.replace('"', "") + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("SEQLM_LOAD_PLUGINS", raising=False)
    reset_plugins()
    try:
        listed = CliRunner().invoke(main, ["plugins", "--json"])
        row = next(r for r in json.loads(listed.stdout) if r["distribution"] == "seqlm-mingru")
        assert row["status"] == "ok" and row["registered"] == {"cell": ["mingru"]}
        run = CliRunner().invoke(main, ["run", "--cell", "mingru", "--data", str(small_text),
                                        "--out", str(tmp_path / "run"), *TINY_RUN])
        assert run.exit_code == 0, run.output
        assert "sample: time traveller" in run.stdout
        # The tutorial's own tests pass.
        spec = importlib.util.spec_from_file_location("tutorial_tests",
                                                      tmp_path / "tests/test_mingru.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.test_shapes()
        module.test_registered_through_the_entry_point()
        marks = [m for m in module.test_conforms.pytestmark if m.name == "parametrize"]
        checks = marks[0].args[1]
        assert len(checks) >= 16  # every cell rule, for both settings
        for check in checks:
            module.test_conforms(check)
    finally:
        reset_plugins()
        for name in [m for m in sys.modules if m.startswith("seqlm_mingru")]:
            del sys.modules[name]

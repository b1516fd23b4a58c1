"""The package's layers, as docs/architecture.md lists them, hold in the code's imports.

Every import counts: at module level, inside functions, and under ``TYPE_CHECKING``. A
module may import from its own layer or a lower one, never from a higher one, and no
chain of imports between seqlm's modules may lead back to where it started.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "seqlm"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _owner(name: str) -> str:
    """The seqlm module that ``name`` (a module, or a name inside one) belongs to."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def imports_of(module: str) -> set[str]:
    """The seqlm modules ``module`` imports, anywhere in its code."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(_owner(a.name) for a in node.names if a.name.split(".")[0] == "seqlm")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "seqlm":
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else _owner(base))
    found.discard(module)
    return found


def layers() -> list[list[str]]:
    """The layers, lowest first, from the architecture page's numbered list."""
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = page.split("## Layers", 1)[1].split("\n## ", 1)[0]
    found = [re.findall(r"`(seqlm[\w.]*)`", line)
             for line in section.splitlines() if re.match(r"\d+\. ", line)]
    assert found, "docs/architecture.md has no numbered list of layers"
    return found


def layer_of(module: str, table: list[list[str]]) -> int:
    best, depth = None, -1
    for index, names in enumerate(table):
        for name in names:
            covers = module == name or module.startswith(name + ".")
            if covers and name.count(".") > depth:
                best, depth = index, name.count(".")
    assert best is not None, f"docs/architecture.md puts {module} in no layer"
    return best


def test_every_module_belongs_to_a_layer():
    table = layers()
    for module in MODULES:
        layer_of(module, table)


def test_no_module_imports_from_a_higher_layer():
    table = layers()
    upward = []
    for module in sorted(MODULES):
        mine = layer_of(module, table)
        for target in sorted(imports_of(module)):
            theirs = layer_of(target, table)
            if theirs > mine:
                upward.append(f"{module} (layer {mine + 1}) imports {target} "
                              f"(layer {theirs + 1})")
    assert not upward, "imports up the layers:\n" + "\n".join(upward)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def test_the_imports_between_modules_have_no_cycles():
    graph = {module: imports_of(module) for module in MODULES}
    cycles = _cycles(graph)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_the_cycle_finder_finds_cycles(graph, expected):
    assert _cycles(graph) == expected


def test_the_layer_check_sees_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "seqlm" / "data" / "sneaky.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from seqlm.runs.stages import run\n", encoding="utf-8")
    monkeypatch.setitem(MODULES, "seqlm.data.sneaky", fake)
    table = layers()
    targets = imports_of("seqlm.data.sneaky")
    assert targets == {"seqlm.runs.stages"}
    assert layer_of("seqlm.runs.stages", table) > layer_of("seqlm.data.sneaky", table)

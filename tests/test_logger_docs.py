"""docs/plugins/loggers.md: the example logger, installed from the page's own files, works."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import sys
from pathlib import Path

from plugin_dists import TINY_RUN, run_seqlm

from seqlm.plugins.manager import reset_plugins

PAGE = Path(__file__).resolve().parents[1] / "docs" / "plugins" / "loggers.md"


def page_files() -> dict[str, str]:
    text = PAGE.read_text(encoding="utf-8")
    return dict(re.findall(r'^```\w+ title="([^"]+)"\n(.*?)^```$', text, flags=re.M | re.S))


def install(root: Path) -> None:
    """Lay out the page's files and what `pip install -e .` leaves: a dist-info folder."""
    files = page_files()
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content, encoding="utf-8")
    pyproject = files["pyproject.toml"]
    name = re.search(r'^name = "(.+)"$', pyproject, flags=re.M)[1]
    version = re.search(r'^version = "(.+)"$', pyproject, flags=re.M)[1]
    table = pyproject.split("[project.entry-points.seqlm]\n")[1].split("\n\n")[0]
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[seqlm]\n" + table.replace('"', "") + "\n")


def test_the_example_logger_installs_lists_logs_and_passes_its_tests(
    tmp_path, small_text, monkeypatch
):
    assert {"pyproject.toml", "seqlm_csvlog/plugin.py", "seqlm_csvlog/logger.py",
            "tests/test_csvlog.py"} <= set(page_files())
    site = tmp_path / "site"
    install(site)
    listed = run_seqlm(["list", "callbacks", "--json"], pythonpath=site)
    assert listed.returncode == 0, listed.stderr
    row = next(r for r in json.loads(listed.stdout) if r["name"] == "csv")
    assert row["plugin"] == "csvlog (seqlm-csvlog 0.1.0)" and row["status"] == "ok"
    out = tmp_path / "run"
    done = run_seqlm(["run", "--log", "csv", "--data", str(small_text), "--out", str(out),
                      *TINY_RUN], pythonpath=site)
    assert done.returncode == 0, done.stderr
    with open(out / "csvlog" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [int(r["epoch"]) for r in rows] == [m["epoch"] for m in metrics] == [1, 2]
    assert [float(r["grad_norm"]) for r in rows] == [m["grad_norm"] for m in metrics]
    # The page's own test passes, with the plugin loaded in this process.
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("SEQLM_LOAD_PLUGINS", raising=False)
    reset_plugins()
    try:
        spec = importlib.util.spec_from_file_location("csvlog_tests",
                                                      site / "tests" / "test_csvlog.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        (tmp_path / "own").mkdir()
        module.test_one_row_per_epoch(tmp_path / "own")
    finally:
        reset_plugins()
        for name in [m for m in sys.modules if m.startswith("seqlm_csvlog")]:
            del sys.modules[name]

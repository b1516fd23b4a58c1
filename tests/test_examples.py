"""The examples run as their docstrings say, on a short text."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_example_runs(script, small_text, tmp_path):
    result = subprocess.run([sys.executable, str(EXAMPLES / script), str(small_text)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "perplexity" in result.stdout

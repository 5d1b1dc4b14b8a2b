"""Undefined names and unused imports are caught before a cluster job trips over them."""

import shutil
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.skipif(shutil.which("ruff") is None and not (ROOT / ".venv/bin/ruff").exists(),
                    reason="ruff not installed (pip install -e .[dev])")
def test_pyflakes_clean():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "--select", "F", "--output-format",
                          "concise", "clrepro", "tests", "bench"], cwd=ROOT, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stdout + out.stderr

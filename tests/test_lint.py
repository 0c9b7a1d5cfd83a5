"""Pyflakes' checks (ruff's F rules) and syntax errors (E9) on the package, tools, tests and dev scripts:
undefined names, unused imports and code no test reaches (a function body left without its def, an
``__all__`` naming nothing) fail here rather than in a user's run."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_code_passes_pyflakes_checks() -> None:
    pytest.importorskip("ruff", reason="ruff is in the test extras (make test installs it)")
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "F,E9", "--output-format",
                          "concise", "spine_det", "tools", "tests", "dev"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr

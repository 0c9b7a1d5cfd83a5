"""The house rules a linter checks (ruff, configured in ruff.toml: pyflakes, import placement, statements,
bugbear, pylint's errors, blind excepts) on the package, tools, tests and dev scripts: undefined names,
unused imports, a closure that sees a loop variable's last value or an unexplained ``except Exception``
fail here rather than in a user's run. ``make lint`` runs the same command."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_code_passes_the_linter() -> None:
    pytest.importorskip("ruff", reason="ruff is in the test extras (make test installs it)")
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--config", "ruff.toml", "--output-format",
                          "concise", "spine_det", "tools", "tests", "dev"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr

"""Which spine_det wrote a file: its version, and the git commit when it runs from a source checkout.

Stored in every checkpoint and metrics file (``spine_det_version``, ``git_commit``) so that a number
can be traced to the code that made it. Plain strings: a checkpoint stays readable with
``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Dict, Optional

from spine_det.version import __version__

# The source checkout this module lives in (an installed package has no .git beside it).
CHECKOUT = Path(__file__).resolve().parents[2]


def git_commit(repo: Optional[Path] = None) -> str:
    """``<sha>`` (``+dirty`` with local changes), or ``"unknown (...)"`` outside a git checkout."""
    repo = Path(repo or CHECKOUT)
    if not (repo / ".git").exists():  # an installed package: never another project's repository
        return "unknown (not a git checkout)"
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        if sha.returncode != 0:
            return "unknown (no commit yet)"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, capture_output=True,
                               text=True, timeout=10)
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"


@functools.lru_cache(maxsize=1)
def _commit_of_this_process() -> str:
    return git_commit()


def provenance() -> Dict[str, str]:
    """``{"spine_det_version": ..., "git_commit": ...}`` for the files this process writes (the commit
    is looked up once per process)."""
    return {"spine_det_version": __version__, "git_commit": _commit_of_this_process()}

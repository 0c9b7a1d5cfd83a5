"""Where a task's own profile file lives, for every config family (Mask R-CNN, LinkNet, classifier)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional


def task_profile_file(profile_yaml: str | Path, config_file: str | Path) -> Optional[Path]:
    """``<dir>/<profile>/<config stem>.yaml`` beside ``<dir>/<profile>.yaml``: what one task changes
    in a profile (merged after the profile), or None when the task has no such file."""
    p = Path(profile_yaml)
    task_p = p.parent / p.stem / f"{Path(config_file).stem}.yaml"
    return task_p if task_p.is_file() else None

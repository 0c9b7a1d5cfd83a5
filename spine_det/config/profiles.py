"""The one profile rule, for every config family (Mask R-CNN, LinkNet, the classifier, new families).

``--profile NAME`` merges ``profiles/NAME.yaml`` found beside the config file (else in the family's
shipped ``profiles/`` folder), then the task's own ``profiles/NAME/<config stem>.yaml`` if there is one.
``full`` (or nothing) merges nothing; a path to a ``.yaml`` file is used as the profile itself.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

FULL = "full"


def task_profile_file(profile_yaml: str | Path, config_file: str | Path) -> Optional[Path]:
    """``<dir>/<profile>/<config stem>.yaml`` beside ``<dir>/<profile>.yaml``: what one task changes
    in a profile (merged after the profile), or None when the task has no such file."""
    p = Path(profile_yaml)
    task_p = p.parent / p.stem / f"{Path(config_file).stem}.yaml"
    return task_p if task_p.is_file() else None


def profile_yaml(config_file: Optional[str | Path], profile: Optional[str],
                 default_dir: Optional[str | Path] = None) -> Optional[Path]:
    """The profile's own YAML (None for ``full``); FileNotFoundError naming where it was looked for."""
    if not profile or profile == FULL:
        return None
    p = Path(profile)
    if p.suffix in (".yaml", ".yml"):
        if not p.is_file():
            raise FileNotFoundError(f"profile not found: {p}")
        return p
    places = [Path(config_file).resolve().parent / "profiles"] if config_file else []
    if default_dir is not None:
        places.append(Path(default_dir))
    for folder in places:
        if (folder / f"{profile}.yaml").is_file():
            return folder / f"{profile}.yaml"
    where = " or ".join(str(f) for f in places) or "(no config file, no profile folder)"
    raise FileNotFoundError(f"profile {profile!r}: no {profile}.yaml in {where}")


def profile_files(config_file: Optional[str | Path], profile: Optional[str],
                  default_dir: Optional[str | Path] = None) -> List[Path]:
    """The YAML files ``profile`` merges over ``config_file``, in order (none for ``full``)."""
    p = profile_yaml(config_file, profile, default_dir)
    if p is None:
        return []
    task_p = task_profile_file(p, config_file) if config_file else None
    return [p] if task_p is None else [p, task_p]

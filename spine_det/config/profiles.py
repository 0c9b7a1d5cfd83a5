"""The one profile rule, for every config family (Mask R-CNN, LinkNet, the classifier, new families).

``--profile NAME`` merges ``profiles/NAME.yaml`` found beside the config file (else in the family's
shipped ``profiles/`` folder), then the task's own ``profiles/NAME/<config stem>.yaml`` if there is one.
``full`` (or nothing) merges nothing; a path to a ``.yaml`` file is used as the profile itself.
``auto`` (every tool's default) is ``cpu`` on a machine without a CUDA device and ``full`` on one with
it (:func:`resolve_profile`), so that a command copied from the README runs the schedule the machine can
finish, with no ImageNet / COCO download on a CPU.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

FULL = "full"
CPU = "cpu"
AUTO = "auto"

logger = logging.getLogger(__name__)

# torch (1.1 s) is imported by auto_profile only: every tool reads its profiles, few ask torch for a GPU.


def auto_profile(device: Optional[str] = None) -> Tuple[str, str]:
    """What ``auto`` means here: (profile, why). ``device`` (a tool's ``--device``) decides when given;
    otherwise whether torch sees a CUDA device."""
    if device:
        if device == "cpu":
            return CPU, "--device cpu"
        return FULL, f"--device {device}"
    import torch

    if torch.cuda.is_available():
        return FULL, f"CUDA device found ({torch.cuda.device_count()} visible)"
    return CPU, "no CUDA device found"


def resolve_profile(profile: Optional[str], device: Optional[str] = None,
                    report: Optional[Callable[[str], None]] = None) -> Optional[str]:
    """``profile`` with ``auto`` replaced by ``cpu`` or ``full`` (:func:`auto_profile`), the choice and
    its reason reported (default: logged), so that a run's log says which schedule it trained.
    Any other value is returned unchanged."""
    if profile != AUTO:
        return profile
    chosen, why = auto_profile(device)
    other = FULL if chosen == CPU else CPU
    (report or logger.info)(f"profile: {chosen} (--profile auto: {why}; give --profile {other} to override)")
    return chosen


def task_profile_file(profile_yaml: str | Path, config_file: str | Path) -> Optional[Path]:
    """``<dir>/<profile>/<config stem>.yaml`` beside ``<dir>/<profile>.yaml``: what one task changes
    in a profile (merged after the profile), or None when the task has no such file."""
    p = Path(profile_yaml)
    task_p = p.parent / p.stem / f"{Path(config_file).stem}.yaml"
    return task_p if task_p.is_file() else None


def profile_yaml(config_file: Optional[str | Path], profile: Optional[str],
                 default_dir: Optional[str | Path] = None) -> Optional[Path]:
    """The profile's own YAML (None for ``full``); FileNotFoundError naming where it was looked for."""
    if profile == AUTO:  # tools resolve (and log) it first; the API and the benchmark's digests may not
        profile = auto_profile()[0]
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


def add_profile_argument(parser: Any, full_means: str = "the config as written",
                         choices: Optional[Sequence[str]] = None, help_text: Optional[str] = None) -> None:
    """``--profile``, default ``auto``, as every training tool and the benchmark take it: one rule
    (:func:`resolve_profile`) for which schedule a command runs on this machine.
    ``full_means``: what the family's full profile is, said in the help (or ``help_text`` replaces it)."""
    parser.add_argument(
        "--profile", default=AUTO, choices=choices, metavar=None if choices else "{auto,cpu,full,PATH.yaml}",
        help=help_text or ("auto (default): cpu when no CUDA device is found, else full; the log says which. "
                      "cpu: merge profiles/cpu.yaml beside the config or shipped (small inputs, random init, a "
                      f"schedule a CPU finishes); full: {full_means}; or a YAML path. With --resume or "
                      "--eval-only on another machine, give the profile the run was trained with"))

"""What every model family's config shares: the ``SPINE`` data keys, the old names they replace, and the
finalize step that derives the task-implied keys, so leaf YAMLs say only what differs.

One set of names for the same facts in every family (Mask R-CNN, the segmentation networks, nnU-Net, the
classifier, the families of :mod:`spine_det.modeling.families`)::

    SPINE.DATA_ROOT   the raw dataset folder (--data-root)
    SPINE.CACHE_DIR   where its manifest / COCO files are cached ("" = the default cache)
    SPINE.SPLIT_SEED  patient split seed
    SPINE.TASKS       task names of spine_det.tasks, all of one view (one output per task)
    SPINE.VIEW        derived from SPINE.TASKS

(The classifier has the first three only: it reads both views, ``VIEWS``, and no task.)

:func:`finalize_spine_config` derives from ``SPINE.TASKS`` (spine_det/tasks.py): ``SPINE.VIEW``,
``OUTPUT_DIR`` (a ``{tasks}`` placeholder in the base config is filled with the tasks' name) and
whatever the family adds (Mask R-CNN: ``MODEL.ROI_HEADS.NUM_CLASSES`` and ``DATASETS``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Sequence

from spine_det.config import paths
from spine_det.tasks import TASKS, get_task, tasks_of_view

logger = logging.getLogger(__name__)

__all__ = ["RENAMED_KEYS", "add_spine_data_config", "finalize_spine_config", "rename_old_keys", "tasks_name",
           "validate_tasks"]

# Old key (LinkNet / classifier configs before one config system) -> the shared key. Still read (with a
# warning) from YAML files, command-line opts, run folders' config.yaml and the configs stored in older
# checkpoints, by every config that has the new key and not the old one.
RENAMED_KEYS: Dict[str, str] = {
    "DATA.ROOT": "SPINE.DATA_ROOT",
    "DATA.CACHE_DIR": "SPINE.CACHE_DIR",
    "DATA.SEED": "SPINE.SPLIT_SEED",
    "TASKS": "SPINE.TASKS",
}
OUTPUT_PLACEHOLDER = "{tasks}"


def add_spine_data_config(cfg: Any, tasks: bool = True) -> None:
    """Add the shared ``cfg.SPINE`` data keys (no-op for keys already there); call before merging a YAML.
    ``tasks`` False: the data location and split seed only, without ``TASKS`` / ``VIEW`` (the classifier)."""
    node = type(cfg)
    if "SPINE" not in cfg:
        cfg.SPINE = node()
    s = cfg.SPINE
    defaults = {"DATA_ROOT": "", "CACHE_DIR": "", "SPLIT_SEED": 0, **({"VIEW": "", "TASKS": []} if tasks else {})}
    for k, v in defaults.items():
        if k not in s:
            setattr(s, k, v)


def _has(cfg: Any, key: str) -> bool:
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def rename_old_keys(cfg: Any, data: Any, where: str) -> Any:
    """``data`` (a mapping about to be merged into ``cfg``) with the old keys of :data:`RENAMED_KEYS`
    moved to their new names, each with a deprecation warning naming the new key. Keys the target
    config still has (a config family that kept the old name) are left alone."""
    if not isinstance(data, dict):
        return data
    for old, new in RENAMED_KEYS.items():
        if _has(cfg, old) or not _has(cfg, new):
            continue
        head, _, leaf = old.rpartition(".")
        parent = data
        for part in filter(None, head.split(".")):
            parent = parent.get(part) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or leaf not in parent:
            continue
        value = parent.pop(leaf)
        if head and not parent:  # an emptied DATA: {} must not be merged as an unknown node
            grand = data
            for part in head.split(".")[:-1]:
                grand = grand[part]
            grand.pop(head.split(".")[-1])
        logger.warning("%s: config key %s is deprecated, read as %s (rename it there)", where, old, new)
        dest = data
        *nodes, last = new.split(".")
        for part in nodes:
            dest = dest.setdefault(part, {})
        dest[last] = value
    return data


def rename_old_opts(cfg: Any, opts: Sequence[str], where: str = "command-line override") -> List[str]:
    """KEY VALUE ``opts`` with old keys replaced by their new names (warning as :func:`rename_old_keys`)."""
    out = list(opts)
    for i in range(0, len(out) - 1, 2):
        old = out[i]
        new = RENAMED_KEYS.get(old)
        if new and not _has(cfg, old) and _has(cfg, new):
            logger.warning("%s: config key %s is deprecated, read as %s", where, old, new)
            out[i] = new
    return out


def validate_tasks(cfg: Any) -> List[str]:
    """``SPINE.TASKS`` checked against spine_det.tasks: known names, all of one view, matching SPINE.VIEW."""
    tasks = [get_task(t).name for t in cfg.SPINE.TASKS]
    if not tasks:
        raise ValueError("config has no SPINE.TASKS; start from one of the shipped configs/<task>.yaml files")
    views = {TASKS[t].view for t in tasks}
    if len(views) != 1:
        raise ValueError(f"SPINE.TASKS mixes views {sorted(views)}; one model predicts one view")
    if cfg.SPINE.VIEW and cfg.SPINE.VIEW not in views:
        raise ValueError(f"SPINE.VIEW={cfg.SPINE.VIEW!r} but SPINE.TASKS are of view {views.pop()!r}")
    return tasks


def tasks_name(tasks: Sequence[str]) -> str:
    """The name of a task list in folder and dataset names: the task, ``<view>`` for a whole view, or
    the tasks joined by ``+``."""
    tasks = list(tasks)
    if len(tasks) == 1:
        return tasks[0]
    view = TASKS[tasks[0]].view
    if tasks == [t.name for t in tasks_of_view(view)]:
        return view
    return "+".join(tasks)


def output_name(tasks: Sequence[str]) -> str:
    """``OUTPUT_DIR``'s last folder: the task, or ``<view>_all`` for a whole view (as the configs are named)."""
    name = tasks_name(tasks)
    return f"{name}_all" if name in ("ap", "lat") else name


def finalize_spine_config(cfg: Any) -> List[str]:
    """Derive the task-implied keys in place (``SPINE.VIEW``, ``OUTPUT_DIR``'s ``{tasks}``); returns the
    tasks. A config without tasks (a bare default config) is left as it is."""
    if not list(cfg.SPINE.TASKS):
        return []
    tasks = validate_tasks(cfg)
    cfg.SPINE.TASKS = tasks
    cfg.SPINE.VIEW = TASKS[tasks[0]].view
    if OUTPUT_PLACEHOLDER in str(cfg.OUTPUT_DIR):
        cfg.OUTPUT_DIR = str(cfg.OUTPUT_DIR).replace(OUTPUT_PLACEHOLDER, output_name(tasks))
    return tasks


def shipped_config(name: str) -> Path:
    """A config file or folder shipped with the package (``"linknet/lat_vertebra.yaml"``,
    ``"linknet/profiles"``) as a path, in a checkout and in an installed package alike."""
    folder = paths.config_dir() / name
    return folder if folder.is_dir() else paths.resolve_config_file(name)

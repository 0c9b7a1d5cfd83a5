"""The files ``spine-det predict`` writes into one film's output folder, and the record of what made them.

Per task ``<task>_mask.png``, ``<task>_instances.json``, ``<task>_overlay.png`` and (instance models)
``<task>_instances.png``; beside them :data:`RECORD_NAME`, which says what made them: model family,
tasks, checkpoint (SHA-1 and path), config file (SHA-1) and threshold. Readers of a prediction folder
(``eval-instances``, ``measure-cobb --source instances``) take whatever files are there, so a folder
must never hold one model's mask beside another model's label map:

- a folder whose record matches the current run (or that holds none of these files) is written;
- a folder holding these files from other settings, or from an unrecorded run, is refused unless the
  user passes ``--overwrite``; then this tool's own files are removed first (:func:`clear_outputs`:
  only the names above, never any other file) and the new record is written before the new outputs,
  so an interrupted run leaves a folder whose record says what is in it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

from spine_det.data.films import OUTPUT_SUFFIXES
from spine_det.tasks import TASK_NAMES
from spine_det.utils.fileio import atomic_write_json, file_sha1
from spine_det.version import __version__

RECORD_NAME = "predicted_by.json"
# the record's entries that decide whether two runs write the same files (the paths and the version do not)
IDENTITY_KEYS = ("model", "tasks", "checkpoint_sha1", "config_sha1", "score_threshold")


def output_names(tasks: Sequence[str] = TASK_NAMES) -> List[str]:
    """Every file name ``predict`` may write for ``tasks`` (default: any task)."""
    return [f"{t}{s}" for t in tasks for s in OUTPUT_SUFFIXES]


def tool_outputs(folder: Union[str, Path]) -> List[Path]:
    """This tool's files present in ``folder`` (outputs of any task, and the record); nothing else."""
    folder = Path(folder)
    return [folder / n for n in (*output_names(), RECORD_NAME) if (folder / n).is_file()]


def predictor_threshold(predictor: Any) -> Optional[float]:
    """The threshold a predictor applies: Mask R-CNN's instance score, LinkNet's probability (None: none)."""
    for attr in ("score_threshold", "threshold"):
        v = getattr(predictor, attr, None)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return round(float(v), 6)
    return None


def make_record(model: str, checkpoint: Union[str, Path], predictor: Any,
                config_file: Optional[Union[str, Path]] = None) -> Dict[str, Any]:
    """What made a run's outputs: the record written beside them."""
    return {
        "model": model,
        "tasks": list(predictor.tasks),
        "checkpoint": str(Path(checkpoint).expanduser().resolve()),
        "checkpoint_sha1": file_sha1(checkpoint),
        "config_file": str(Path(config_file).resolve()) if config_file else None,
        "config_sha1": file_sha1(config_file) if config_file else None,
        "score_threshold": predictor_threshold(predictor),
        "spine_det_version": __version__,
    }


def read_record(folder: Union[str, Path]) -> Optional[Dict[str, Any]]:
    """The record in ``folder``; None when absent or unreadable (then the folder's outputs are of unknown origin)."""
    try:
        data = json.loads((Path(folder) / RECORD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def same_settings(a: Optional[Dict[str, Any]], b: Optional[Dict[str, Any]]) -> bool:
    return a is not None and b is not None and all(a.get(k) == b.get(k) for k in IDENTITY_KEYS)


def describe(record: Optional[Dict[str, Any]]) -> str:
    """A record in a few words, for messages."""
    if record is None:
        return "no record of what made them"
    sha = str(record.get("checkpoint_sha1") or "?")[:8]
    return (f"{record.get('model')} {'+'.join(record.get('tasks') or [])} from {Path(str(record.get('checkpoint'))).name} "
            f"(sha1 {sha}), threshold {record.get('score_threshold')}")


@dataclass
class FolderState:
    """One output folder against the current run: ``fresh`` (none of this tool's files), ``same`` (its
    record matches), ``other`` (files of other or unknown settings: ``record`` is theirs, or None)."""

    folder: Path
    state: str
    record: Optional[Dict[str, Any]] = None


def folder_state(folder: Union[str, Path], record: Dict[str, Any]) -> FolderState:
    folder = Path(folder)
    present = tool_outputs(folder)
    if not present:
        return FolderState(folder, "fresh")
    old = read_record(folder)
    return FolderState(folder, "same" if same_settings(old, record) else "other", old)


def has_all_masks(folder: Union[str, Path], tasks: Sequence[str]) -> bool:
    """Whether ``folder`` holds every task's mask (written last of a task's files)."""
    return all((Path(folder) / f"{t}_mask.png").is_file() for t in tasks)


def clear_outputs(folder: Union[str, Path]) -> List[Path]:
    """Remove this tool's files from ``folder`` (only :func:`tool_outputs`); returns what was removed."""
    removed = tool_outputs(folder)
    for p in removed:
        p.unlink()
    return removed


def start_folder(folder: Union[str, Path], record: Dict[str, Any], replace: bool) -> None:
    """Make ``folder`` ready for this run's outputs: with ``replace``, this tool's old files go first;
    then the record is written (before the outputs, so it always says what the folder holds)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if replace:
        clear_outputs(folder)
    atomic_write_json(folder / RECORD_NAME, record)

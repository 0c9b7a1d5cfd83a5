"""The seed report's own figures, carried beside our numbers and always labelled as the report's.

They were measured on the report's private dataset (978 patients of the Indian
Spinal Injuries Centre), not on the data this benchmark runs on, so every table
prints them under :data:`REPORTED_LABEL` and never in a column of our own.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from spine_det.modeling.registry import families, family_keys
from spine_det.tasks import get_task

REPORTED_LABEL = "reported on the private dataset"
REPORTED_CITATION = "Raman & Kapoor, 'Segmentation of a Novel Spine Dataset' (seed report), test set, mean per image"
RESOURCE = Path(__file__).resolve().parent.parent / "resources" / "reported_results.csv"


def model_keys() -> Dict[str, str]:
    """Model names in the report's CSV -> our model keys: a registered family's label (or its key)."""
    out: Dict[str, str] = {}
    for s in families():
        out[s.label] = out[s.key] = s.key
    return out


@dataclass(frozen=True)
class ReportedScore:
    """One (model, task) row of the report's tables."""

    source: str
    model: str  # our key: a registered model family
    task: str
    dice: float
    jaccard: float
    tpr: float
    label: str = REPORTED_LABEL


def load_reported(path: Optional[Path | str] = None) -> Dict[Tuple[str, str], ReportedScore]:
    """Read the report's figures: ``{(model, task): ReportedScore}``."""
    path = Path(path) if path is not None else RESOURCE
    if not path.is_file():
        raise FileNotFoundError(f"reported results not found: {path}")
    out: Dict[Tuple[str, str], ReportedScore] = {}
    keys = model_keys()
    with open(path, newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f), start=2):
            try:
                model = keys[row["model"]]
                task = get_task(row["task"]).name
                score = ReportedScore(
                    source=row["source"], model=model, task=task,
                    dice=float(row["dice"]), jaccard=float(row["jaccard"]), tpr=float(row["tpr"]),
                )
            except (KeyError, ValueError) as e:
                raise ValueError(f"{path}: line {i}: bad row {row} ({e})") from None
            out[(model, task)] = score
    return out


def reported_rows(tasks: List[str], path: Optional[Path | str] = None) -> List[ReportedScore]:
    """The report's rows for ``tasks``, in task then model (registry) order."""
    table = load_reported(path)
    return [table[(m, t)] for t in tasks for m in family_keys() if (m, t) in table]

"""Measure every patient of a split: shared by ``tools/measure.py`` and ``tools/eval_morphometry.py``."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from spine_det.data.io import DataError, read_image
from spine_det.morphometry.pipeline import MeasureConfig, measure_patient
from spine_det.morphometry.report import write_report
from spine_det.morphometry.sources import load_view_masks
from spine_det.morphometry.units import add_millimetres, read_metas
from spine_det.utils.progress import progress as progress_bar

logger = logging.getLogger(__name__)

GROUND_TRUTH = "ground_truth.json"


@dataclass
class PatientResult:
    patient_id: str
    label: str
    split: str
    record: Dict[str, Any]
    patient_dir: Path  # folder holding AP/ and LAT/ (and the phantom's ground_truth.json)


def group_patients(manifest, split: Optional[str] = None) -> List[Dict[str, Any]]:
    """[{patient_id, label, split, views: {view: ViewSample}}] in manifest order."""
    groups: Dict[str, Dict[str, Any]] = {}
    for s in manifest.select(split=split):
        g = groups.setdefault(s.patient_id, {"patient_id": s.patient_id, "label": s.label, "split": s.split, "views": {}})
        g["views"][s.view] = s
    return list(groups.values())


class MissingPredictionError(DataError):
    """A patient with no prediction file at all under --pred-dir."""


def measure_group(
    group: Dict[str, Any],
    cfg: MeasureConfig,
    source: str = "gt",
    pred_dir: Optional[Union[str, os.PathLike]] = None,
    out_dir: Optional[Union[str, os.PathLike]] = None,
    overlays: bool = True,
) -> PatientResult:
    """Measure one patient (both views where present); write its JSON / overlay if ``out_dir``."""
    views = group["views"]
    masks = {v: load_view_masks(s, source, pred_dir) for v, s in views.items()}
    if source != "gt" and all(m is None for vm in masks.values() for m in vm.values()):
        # zero levels would be called "Normal": a missing prediction is an error, never a result
        keys = ", ".join(f"{Path(pred_dir or '') / s.key}/" for s in views.values())
        raise MissingPredictionError(pred_dir or "", f"no prediction for this patient (looked in {keys})", group["patient_id"])
    meta = {"patient_id": group["patient_id"], "label": group["label"], "split": group["split"], "source": source,
            "images": {v: s.image for v, s in views.items()}}
    record = measure_patient(masks.get("lat"), masks.get("ap"), cfg, meta)
    add_millimetres(record, *read_metas({v: s.image for v, s in views.items()}))  # mm where the film says
    any_sample = next(iter(views.values()))
    pdir = Path(any_sample.image).parent.parent
    if out_dir is not None:
        imgs = {v: read_image(s.image) for v, s in views.items()} if overlays else {}
        write_report(record, out_dir, group["patient_id"], imgs.get("lat"), imgs.get("ap"))
    return PatientResult(group["patient_id"], group["label"], group["split"], record, pdir)


def measure_split(
    manifest,
    split: Optional[str],
    cfg: MeasureConfig,
    source: str = "gt",
    pred_dir: Optional[Union[str, os.PathLike]] = None,
    out_dir: Optional[Union[str, os.PathLike]] = None,
    overlays: bool = True,
    limit: Optional[int] = None,
    progress: bool = True,
) -> List[PatientResult]:
    """Measure all patients of ``split`` (None = all); a patient whose files fail is logged and skipped,
    but a ``pred_dir`` without any prediction for some patients is refused (DataError naming the first)."""
    groups = group_patients(manifest, split)[:limit]
    out: List[PatientResult] = []
    missing: List[MissingPredictionError] = []
    for g in progress_bar(groups, desc=f"morphometry {split or 'all'}", unit="patient", disable=not progress):
        try:
            out.append(measure_group(g, cfg, source, pred_dir, out_dir, overlays))
        except MissingPredictionError as e:
            missing.append(e)
        except DataError as e:
            logger.warning("skipping %s: %s", g["patient_id"], e)
    if missing:
        raise DataError(
            pred_dir or "",
            f"--pred-dir has no {source} prediction for {len(missing)} of {len(groups)} patients of split "
            f"{split or 'all'} (first: {missing[0]}); predict them with spine-det predict --data-root ... --split "
            f"{split or 'all'} --output {pred_dir}")
    return out


def load_ground_truth(result: PatientResult) -> Dict[str, Any]:
    """The phantom's ground_truth.json of a patient; DataError if it has none (real data)."""
    path = result.patient_dir / GROUND_TRUTH
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "no ground truth (morphometry evaluation needs phantom data from spine-det make-phantom)",
                        result.patient_id) from None
    except (OSError, ValueError) as e:
        raise DataError(path, f"unreadable ground truth ({e})", result.patient_id) from None

"""Where the masks to measure come from: ground truth, or predictions on disk.

Prediction folder convention (written by ``tools/predict.py``; any of these is accepted,
first match wins), with ``<key>`` = ``ViewSample.key`` (``<patient_id>/<view>``)::

    <pred-dir>/<key>/<task>_instances.npz   # "masks" (N, H, W) bool [+ "scores" (N,)]   (instance models)
    <pred-dir>/<key>/<task>_instances.png   # integer label map, 0 = background        (instance models)
    <pred-dir>/<key>/<task>_mask.png        # binary mask (every model)
    <pred-dir>/<key>/<task>.png             # binary mask
    <pred-dir>/<key>/<Mask_Stem>.png        # binary mask named like the dataset's masks

Binary masks are split into 8-connected components; instance files keep
touching vertebrae apart, which is why the output of a model family with instance masks
(``ModelFamily.instance_masks``, e.g. Mask R-CNN) is measured from them. A source is ``gt`` or the
key of a registered model family (:mod:`spine_det.modeling.registry`).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import cv2
import numpy as np

from spine_det.data.io import DataError, read_mask
from spine_det.modeling.registry import family_keys, get_family
from spine_det.morphometry.levels import instance_level_hints
from spine_det.tasks import get_task

logger = logging.getLogger(__name__)

GT = "gt"


def __getattr__(name: str):
    if name == "SOURCES":  # computed: ground truth, then every registered model family
        return sources()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sources() -> tuple:
    """Valid ``source`` values: ``gt`` and the key of every registered model family."""
    return (GT, *family_keys())


def _reads_instances(source: str) -> bool:
    return get_family(source).instance_masks
LAT_TASKS = ("lat_vertebra", "lat_disk_height", "lat_spinous_process", "lat_posterior_line")
AP_TASKS = ("ap_vertebra", "ap_pedicle")
INSTANCE_TASKS = ("lat_vertebra", "ap_vertebra")

MaskOrInstances = Union[np.ndarray, List[np.ndarray]]


def _label_png(path: Path) -> Tuple[List[np.ndarray], List[int]]:
    """(one mask per label, the labels) of an integer label image, 0 = background."""
    lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise DataError(path, "unreadable instance label image")
    if lab.ndim == 3:
        lab = lab[..., 0]
    ids = [int(v) for v in np.unique(lab) if v != 0]
    return [lab == v for v in ids], ids


def _scored_npz(path: Path, score_threshold: float) -> Tuple[List[np.ndarray], Optional[List[float]]]:
    """(masks, scores or None when the file has none) of the instances scoring >= ``score_threshold``."""
    try:
        with np.load(path) as z:
            masks = np.asarray(z["masks"])
            scores = np.asarray(z["scores"], dtype=np.float64) if "scores" in z.files else None
    except (OSError, KeyError, ValueError) as e:
        raise DataError(path, f"unreadable instance file ({e}); expected an .npz with 'masks' (N, H, W)") from None
    if masks.ndim != 3:
        raise DataError(path, f"'masks' has shape {masks.shape}, expected (N, H, W)")
    keep = [k for k in range(len(masks)) if scores is None or scores[k] >= score_threshold]
    return ([masks[k] > 0.5 if masks.dtype != bool else masks[k] for k in keep],
            None if scores is None else [float(scores[k]) for k in keep])


def _png_instances(path: Path) -> Tuple[List[np.ndarray], List[int], Optional[List[object]]]:
    """(one mask per label, the labels, the ``instances`` of the ``_instances.json`` beside it or None when
    it is absent, unreadable or lists fewer instances than the labels) of an ``_instances.png``."""
    masks, ids = _label_png(path)
    side = path.with_name(path.name[: -len("_instances.png")] + "_instances.json")
    try:
        inst = json.loads(side.read_text(encoding="utf-8")).get("instances") if side.is_file() else None
    except (OSError, ValueError, AttributeError):
        inst = None
    if not isinstance(inst, list) or (ids and max(ids) > len(inst)):
        inst = None
    return masks, ids, inst


def load_hinted_instances(path: Path, score_threshold: float = 0.5
                          ) -> Tuple[List[np.ndarray], Optional[List[float]], Optional[List[float]]]:
    """:func:`load_scored_instances` plus the ``level_number`` a landmark model gave each instance (NaN where
    absent; None when no instance carries one, as for every other model and for ``.npz`` files), from one
    read of the files."""
    if path.name.endswith("_instances.npz"):
        return (*_scored_npz(path, score_threshold), None)
    masks, ids, inst = _png_instances(path)
    if inst is None:
        return masks, None, None
    mine = [inst[v - 1] for v in ids]
    scores = [float(i.get("score", 1.0)) if isinstance(i, dict) else 1.0 for i in mine]
    return masks, scores, instance_level_hints(mine)


def load_scored_instances(path: Path, score_threshold: float = 0.5) -> Tuple[List[np.ndarray], Optional[List[float]]]:
    """Instance masks with the model's score of each: an ``.npz`` with "scores" (instances below
    ``score_threshold`` left out, as :func:`load_prediction` does), or an ``_instances.png`` label map (kept
    whole: it is already the model's pasted output) with the ``_instances.json`` that ``predict`` writes
    beside it (label k = its k-th instance). Scores are None where the files carry none."""
    return load_hinted_instances(path, score_threshold)[:2]


def find_prediction(pred_dir: Union[str, os.PathLike], key: str, task: str, instances: bool) -> Optional[Path]:
    """The first prediction file for (image key, task) in the convention above, or None."""
    folder = Path(pred_dir) / key
    names = []
    if instances:
        names += [f"{task}_instances.npz", f"{task}_instances.png"]
    names += [f"{task}_mask.png", f"{task}.png", f"{get_task(task).mask_stem}.png"]
    for n in names:
        p = folder / n
        if p.is_file():
            return p
    return None


def load_prediction(path: Path, shape=None, score_threshold: float = 0.5) -> MaskOrInstances:
    """A prediction file -> list of instance masks (instance files) or one binary mask."""
    if path.name.endswith("_instances.npz"):
        return _scored_npz(path, score_threshold)[0]
    if path.name.endswith("_instances.png"):
        return _label_png(path)[0]
    return read_mask(path, shape)


def load_view_masks(
    sample,
    source: str = "gt",
    pred_dir: Optional[Union[str, os.PathLike]] = None,
    score_threshold: float = 0.5,
) -> Dict[str, Optional[MaskOrInstances]]:
    """Masks of one ViewSample for morphometry (task name -> mask / instances / None)."""
    known = sources()
    if source not in known:
        raise ValueError(f"unknown source {source!r}; expected one of {known}")
    tasks = LAT_TASKS if sample.view == "lat" else AP_TASKS
    shape = (sample.height, sample.width)
    out: Dict[str, Optional[MaskOrInstances]] = {}
    for task in tasks:
        if source == GT:
            path = sample.masks.get(task)
            out[task] = read_mask(path, shape) if path else None
            continue
        if pred_dir is None:
            raise ValueError(f"--pred-dir is required for source {source!r}")
        p = find_prediction(pred_dir, sample.key, task, instances=_reads_instances(source) and task in INSTANCE_TASKS)
        if p is None:
            logger.debug("no %s prediction for %s in %s", task, sample.key, pred_dir)
        out[task] = load_prediction(p, shape, score_threshold) if p is not None else None
    return out

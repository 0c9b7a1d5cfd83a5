"""Tuning the paste thresholds (instance score, mask probability) on the validation split.

We run the model once on the val split keeping the raw (unpasted) mask probabilities, paste at
every grid point, score with the very metric of the evaluator (no dilation, same conventions:
:mod:`spine_det.evaluation.semantic_evaluator`) and keep the best per task. The choice is
saved as ``<OUTPUT_DIR>/thresholds.json`` (:mod:`spine_det.evaluation.thresholds`, which reads
it back wherever the model is used).
"""
from __future__ import annotations

import copy
import logging
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import spine_det.compat  # noqa: F401  (shims before detectron2)
import torch
from detectron2.modeling.postprocessing import detector_postprocess

from spine_det.config import split_dataset_names
from spine_det.data.io import read_mask
from spine_det.evaluation.metrics import METRICS, ScoreTable
from spine_det.evaluation.semantic_evaluator import SparseMask, instances_to_task_masks, score_sparse
from spine_det.evaluation.thresholds import DEFAULT, save_thresholds
from spine_det.utils.progress import progress as progress_bar

logger = logging.getLogger(__name__)

SCORE_GRID: Tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
MASK_GRID: Tuple[float, ...] = (0.2, 0.3, 0.4, 0.5)


def choose_best(table: Mapping[Tuple[float, float], float], default: Tuple[float, float] = DEFAULT) -> Tuple[float, float]:
    """Grid point ``(score_thr, mask_thr)`` with the highest mean Dice; ties go to the one nearest ``default``.

    NaN entries are ignored; an empty/all-NaN table returns ``default``.
    """
    best: Optional[Tuple[float, float]] = None
    best_key: Optional[tuple] = None
    for point, dice in table.items():
        if dice is None or math.isnan(dice):
            continue
        dist = abs(point[0] - default[0]) + abs(point[1] - default[1])
        key = (round(float(dice), 12), -dist)
        if best_key is None or key > best_key:
            best, best_key = (float(point[0]), float(point[1])), key
    return best if best is not None else default


def collect_raw_predictions(model, data_loader, max_images: Optional[int] = None) -> List[Tuple[dict, Any]]:
    """(input dict, raw Instances at network resolution with mask probabilities) for every image."""
    out: List[Tuple[dict, Any]] = []
    model.eval()
    with torch.no_grad():
        for inputs in progress_bar(data_loader, desc="predict (raw)", leave=False):
            raws = model.inference(inputs, do_postprocess=False)
            for inp, raw in zip(inputs, raws):
                inp = {k: v for k, v in inp.items() if k != "image"}
                out.append((inp, raw.to("cpu")))
            if max_images and len(out) >= max_images:
                break
    return out


def paste(raw, height: int, width: int, mask_threshold: float):
    """Detectron2's postprocessing of one raw result at the original size, with our mask threshold."""
    return detector_postprocess(copy.deepcopy(raw), height, width, mask_threshold=mask_threshold)


def sweep(
    preds: Sequence[Tuple[dict, Any]],
    tasks: Sequence[str],
    score_grid: Sequence[float] = SCORE_GRID,
    mask_grid: Sequence[float] = MASK_GRID,
) -> Dict[str, Dict[Tuple[float, float], Dict[str, float]]]:
    """Per task and grid point, the mean Dice/Jaccard/TPR over images (the evaluator's metric)."""
    tables: Dict[str, Dict[Tuple[float, float], ScoreTable]] = {
        t: {(s, m): ScoreTable() for s in score_grid for m in mask_grid} for t in tasks
    }
    gt_cache: Dict[Tuple[str, Tuple[int, int]], SparseMask] = {}
    for inp, raw in preds:
        h, w = int(inp["height"]), int(inp["width"])
        files = inp.get("mask_files") or {}
        for m in mask_grid:
            inst = paste(raw, h, w, m)
            for s in score_grid:
                masks = instances_to_task_masks(inst, tasks, s, (h, w))
                for t in tasks:
                    f = files.get(t)
                    if not f:
                        continue
                    key = (f, (h, w))
                    if key not in gt_cache:
                        gt_cache[key] = SparseMask.from_dense(read_mask(f, (h, w)))
                    tables[t][(s, m)].extend([{"image_id": inp["image_id"], **score_sparse(masks[t], gt_cache[key])}])
    return {
        t: {p: {k: float(tab.summary()[k]) for k in METRICS} for p, tab in per.items() if tab.rows}
        for t, per in tables.items()
    }


def choose_thresholds(
    swept: Mapping[str, Mapping[Tuple[float, float], Mapping[str, float]]], default: Tuple[float, float] = DEFAULT
) -> Dict[str, Dict[str, float]]:
    """Per task: the best grid point on mean Dice, with its validation scores."""
    out: Dict[str, Dict[str, float]] = {}
    for task, table in swept.items():
        s, m = choose_best({p: v["dice"] for p, v in table.items()}, default)
        vals = table.get((s, m), {})
        out[task] = {"score_threshold": s, "mask_threshold": m, **{f"val_{k}": float(v) for k, v in vals.items()}}
    return out


def tune_on_val(trainer_cls, cfg, model, split: str = "val") -> Dict[str, Dict[str, float]]:
    """Sweep the thresholds on ``split`` of the config's datasets and save ``OUTPUT_DIR/thresholds.json``."""
    tasks = list(cfg.SPINE.TASKS)
    preds: List[Tuple[dict, Any]] = []
    for name in split_dataset_names(cfg, split):
        preds += collect_raw_predictions(model, trainer_cls.build_test_loader(cfg, name))
    if not preds:
        logger.warning("no %s images: thresholds not tuned", split)
        return {}
    chosen = choose_thresholds(sweep(preds, tasks))
    path = save_thresholds(cfg.OUTPUT_DIR, chosen, {"split": split, "images": len(preds)})
    logger.info("Thresholds chosen on %s (%d images), saved to %s: %s", split, len(preds), path, chosen)
    return chosen


def evaluate_with(
    preds: Sequence[Tuple[dict, Any]], tasks: Sequence[str], chosen: Mapping[str, Mapping[str, float]]
) -> Dict[str, Dict[str, float]]:
    """Per task, mean Dice/Jaccard/TPR at that task's chosen thresholds (e.g. on the test split)."""
    out: Dict[str, Dict[str, float]] = {}
    for t in tasks:
        c = chosen.get(t, {"score_threshold": DEFAULT[0], "mask_threshold": DEFAULT[1]})
        res = sweep(preds, [t], (c["score_threshold"],), (c["mask_threshold"],))
        out[t] = next(iter(res[t].values())) if res.get(t) else {}
    return out


__all__ = [
    "MASK_GRID",
    "SCORE_GRID",
    "choose_best",
    "choose_thresholds",
    "collect_raw_predictions",
    "evaluate_with",
    "paste",
    "sweep",
    "tune_on_val",
]

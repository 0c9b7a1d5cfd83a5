"""Per-object quality of predicted instances against ground-truth instances (e.g. 17 vertebrae).

Pixel Dice says how much of the spine is covered; it does not say whether each vertebra came out
as one instance — which Cobb angles and morphometry need. Conventions:

* A ground-truth object is **detected** when a predicted instance has IoU ≥ ``iou`` with it, pairs
  taken one-to-one, greedily by IoU (each prediction serves at most one object).
* A prediction is a **merge** when it covers at least ``cover`` of the area of two or more
  ground-truth objects (two vertebrae came out as one instance).
* A ground-truth object is **split** when two or more predictions each cover at least ``cover`` of it.
* A prediction that detects no object is a **false positive**.

Label maps: 0 = background, k > 0 = one object / instance (any integer ids).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np


@dataclass
class InstanceMatch:
    """Counts for one image."""

    gt: int
    pred: int
    detected: int
    merges: int
    splits: int
    false_positives: int
    mean_iou_detected: float  # over detected objects; nan when none
    pairs: List[Tuple[int, int]] = field(default_factory=list)  # (gt id, pred id) of each detection
    levels_checked: int = 0  # detections whose predicted and true level names are both known (set by the caller)
    levels_correct: int = 0  # ... of which the names agree

    def as_dict(self) -> Dict[str, float]:
        d = asdict(self)
        d.pop("pairs")
        return d


def overlap_table(gt: np.ndarray, pred: np.ndarray):
    """(gt ids, pred ids, intersection[g, p], gt areas, pred areas) of two label maps of one shape."""
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"label maps differ in shape: {gt.shape} vs {pred.shape}")
    g_ids, g_inv = np.unique(gt, return_inverse=True)
    p_ids, p_inv = np.unique(pred, return_inverse=True)
    inter = np.bincount(g_inv.ravel() * len(p_ids) + p_inv.ravel(), minlength=len(g_ids) * len(p_ids))
    inter = inter.reshape(len(g_ids), len(p_ids))
    g_keep, p_keep = g_ids != 0, p_ids != 0
    g_area = inter.sum(axis=1)[g_keep]
    p_area = inter.sum(axis=0)[p_keep]
    return g_ids[g_keep], p_ids[p_keep], inter[np.ix_(g_keep, p_keep)], g_area, p_area


def match_instances(gt: np.ndarray, pred: np.ndarray, iou: float = 0.5, cover: float = 0.3) -> InstanceMatch:
    """Detected / merged / split / false-positive counts of ``pred`` against ``gt`` (label maps)."""
    g_ids, p_ids, inter, g_area, p_area = overlap_table(gt, pred)
    n_g, n_p = len(g_ids), len(p_ids)
    if n_g == 0 or n_p == 0:
        return InstanceMatch(n_g, n_p, 0, 0, 0, n_p, float("nan"))
    union = g_area[:, None] + p_area[None, :] - inter
    ious = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    pairs = sorted(((ious[g, p], g, p) for g, p in zip(*np.nonzero(ious >= iou))), reverse=True)
    used_g, used_p, matched, ids = set(), set(), [], []
    for v, g, p in pairs:
        if g in used_g or p in used_p:
            continue
        used_g.add(g)
        used_p.add(p)
        matched.append(v)
        ids.append((int(g_ids[g]), int(p_ids[p])))
    covered = inter / np.maximum(g_area[:, None], 1) >= cover  # [g, p]: p covers >= cover of g
    merges = int(np.sum(covered.sum(axis=0) >= 2))
    splits = int(np.sum(covered.sum(axis=1) >= 2))
    return InstanceMatch(n_g, n_p, len(matched), merges, splits, n_p - len(used_p),
                         float(np.mean(matched)) if matched else float("nan"), ids)


def summarise(matches: Sequence[InstanceMatch], expected: int = 0) -> Dict[str, float]:
    """Means over images, and the share of images whose every annotated object was detected; with
    ``expected`` (e.g. 17), also the share with that many detected."""
    if not matches:
        return {"images": 0}
    def arr(f: str) -> np.ndarray:
        return np.array([getattr(m, f) for m in matches], dtype=np.float64)

    out: Dict[str, float] = {
        "images": len(matches),
        "gt_per_image": float(arr("gt").mean()),
        "pred_per_image": float(arr("pred").mean()),
        "detected_per_image": float(arr("detected").mean()),
        "detected_share": float(arr("detected").sum() / max(arr("gt").sum(), 1)),
        "merges_per_image": float(arr("merges").mean()),
        "images_with_a_merge": float(np.mean(arr("merges") > 0)),
        "splits_per_image": float(arr("splits").mean()),
        "false_positives_per_image": float(arr("false_positives").mean()),
        "mean_iou_detected": float(np.nanmean(arr("mean_iou_detected"))) if np.isfinite(arr("mean_iou_detected")).any() else float("nan"),
    }
    out["images_with_all_detected"] = float(np.mean((arr("detected") >= arr("gt")) & (arr("gt") > 0)))
    if arr("levels_checked").sum() > 0:  # order-aware post-processing named the instances
        out["levels_checked"] = int(arr("levels_checked").sum())
        out["level_named_correctly"] = float(arr("levels_correct").sum() / arr("levels_checked").sum())
    if expected:  # e.g. 17 vertebrae: how many images have that many annotated, and all of them found
        out["expected_per_image"] = expected
        out["images_with_all_expected_detected"] = float(np.mean(arr("detected") >= expected))
    return out


__all__ = ["InstanceMatch", "match_instances", "overlap_table", "summarise"]

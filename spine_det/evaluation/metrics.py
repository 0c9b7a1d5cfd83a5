"""Per-image segmentation metrics shared by the Mask R-CNN evaluator, LinkNet and the benchmark.

One implementation, so that every number in every table means the same thing.

Conventions (the report averaged per image; we do the same and fix the empty cases):

* Dice = 2|P∩G| / (|P|+|G|), Jaccard = |P∩G| / |P∪G|, TPR = |P∩G| / |G|.
* Ground truth and prediction both empty: Dice = Jaccard = 1 (a correct "nothing here").
* Ground truth empty, prediction not: Dice = Jaccard = 0.
* TPR is undefined (NaN) where the ground truth is empty and is left out of its mean.
* Reported figures are means over images; the counts of each empty case are reported beside them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Sequence

import numpy as np

# torch is imported only where a caller passes tensors (and so has loaded it): the benchmark's tables import
# this module without it.

METRICS = ("dice", "jaccard", "tpr")


def _as_bool(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    return a if a.dtype == bool else a > 0


def binary_scores(pred: Any, gt: Any) -> Dict[str, float]:
    """Dice, Jaccard and TPR of two binary masks of the same shape (see module conventions)."""
    p, g = _as_bool(pred), _as_bool(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {p.shape} differs from ground truth shape {g.shape}")
    n_p = int(np.count_nonzero(p))
    n_g = int(np.count_nonzero(g))
    inter = int(np.count_nonzero(np.logical_and(p, g))) if n_p and n_g else 0
    return scores_from_counts(inter, n_p, n_g)


def scores_from_counts(intersection: int, n_pred: int, n_gt: int) -> Dict[str, float]:
    """The same scores from pixel counts (lets callers count on the GPU or in tiles)."""
    union = n_pred + n_gt - intersection
    if n_gt == 0:
        empty_ok = 1.0 if n_pred == 0 else 0.0
        return {"dice": empty_ok, "jaccard": empty_ok, "tpr": math.nan}
    return {
        "dice": 2.0 * intersection / (n_pred + n_gt),
        "jaccard": intersection / union,
        "tpr": intersection / n_gt,
    }


def paste_instances(masks: Any, scores: Any, score_threshold: float, shape: Sequence[int]) -> np.ndarray:
    """Union of the instance masks whose score ≥ threshold, as one boolean mask of ``shape``.

    ``masks`` is (N, H, W) (bool or probabilities already thresholded by the
    model's postprocessing), ``scores`` is (N,). Works on numpy arrays or torch tensors.
    """
    shape = tuple(int(s) for s in shape)
    if masks is None or len(masks) == 0:
        return np.zeros(shape, dtype=bool)
    keep = _as_float(scores) >= score_threshold
    if not keep.any():
        return np.zeros(shape, dtype=bool)
    if hasattr(masks, "detach"):
        import torch

        sel = masks[torch.as_tensor(keep, device=masks.device)]
        out = sel.bool().any(dim=0).cpu().numpy()
    else:
        out = _as_bool(np.asarray(masks)[keep]).any(axis=0)
    if out.shape != shape:
        raise ValueError(f"instance masks have shape {out.shape}, expected {shape}")
    return out


def _as_float(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64).reshape(-1)


@dataclass
class ScoreTable:
    """Per-image scores of one model on one dataset, with the summary the tables print."""

    rows: List[Dict[str, Any]] = field(default_factory=list)

    def add(self, image_id: Any, pred: Any, gt: Any, **extra: Any) -> Dict[str, float]:
        """Score one image and keep the row; returns the scores."""
        p, g = _as_bool(pred), _as_bool(gt)
        s = binary_scores(p, g)
        self.rows.append(
            {"image_id": image_id, **extra, **s, "pred_pixels": int(np.count_nonzero(p)), "gt_pixels": int(np.count_nonzero(g))}
        )
        return s

    def extend(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Add rows computed elsewhere (for example gathered from other processes)."""
        self.rows.extend(dict(r) for r in rows)

    def summary(self) -> Dict[str, Any]:
        """Means over images and the counts of each empty-mask case."""
        rows = sorted(self.rows, key=lambda r: str(r["image_id"]))
        out: Dict[str, Any] = {}
        for m in METRICS:
            vals = np.array([r[m] for r in rows], dtype=np.float64)
            vals = vals[~np.isnan(vals)]
            out[m] = float(vals.mean()) if vals.size else math.nan
        n_empty_gt = sum(1 for r in rows if r["gt_pixels"] == 0)
        out["counts"] = {
            "images": len(rows),
            "empty_gt": n_empty_gt,
            "empty_gt_nonempty_pred": sum(1 for r in rows if r["gt_pixels"] == 0 and r["pred_pixels"] > 0),
            "empty_pred_nonempty_gt": sum(1 for r in rows if r["gt_pixels"] > 0 and r["pred_pixels"] == 0),
            "tpr_images": len(rows) - n_empty_gt,
        }
        out["convention"] = (
            "mean over images; gt and prediction both empty -> dice=jaccard=1; gt empty, prediction not -> 0; "
            "TPR left out where gt is empty"
        )
        return out

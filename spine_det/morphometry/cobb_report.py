"""Cobb angles per image from landmarks or masks: one record, an overlay, and a summary over images.

The glue between :mod:`~spine_det.morphometry.cobb` (angles from corners),
:mod:`~spine_det.morphometry.quads` (corners from masks) and the tool
``tools/measure_cobb.py``; no file walking here except reading one
``landmarks.json``.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from spine_det.data.aasce import VERTEBRA_NAMES, read_landmarks_file
from spine_det.morphometry.cobb import ANGLE_NAMES, CobbResult, angle_scores, cobb_angles, smape_per_image
from spine_det.morphometry.levels import LevelAssignment, assign_levels, instance_level_hints, kept_masks
from spine_det.morphometry.quads import _split, fill_quad, quads_from_instances, quads_from_mask, quads_of_ordered

# BGR per angle, as drawn on the overlay
ANGLE_COLOURS = {"PT": (60, 60, 255), "MT": (60, 220, 60), "TL": (255, 150, 40)}


def read_landmarks_json(path: Union[str, Path]) -> Dict[str, object]:
    """``AP/landmarks.json`` -> {"corners": (N, 4, 2), "names": [...], "true": [PT, MT, TL] or None, "source_name"}."""
    d = read_landmarks_file(path)
    corners, names = d["corners"], list(d.get("vertebrae") or [])
    true = None
    ca = d.get("cobb_angles")
    if isinstance(ca, dict) and all(k in ca for k in ANGLE_NAMES):
        true = [float(ca[k]) for k in ANGLE_NAMES]
    return {"corners": corners, "names": names or None, "true": true, "source_name": d.get("source_name")}


def corners_from_prediction(pred, method: str = "endplates") -> np.ndarray:
    """A list of instance masks, or one binary mask (split into vertebrae) -> ordered (N, 4, 2) corners."""
    if pred is None:
        return np.zeros((0, 4, 2))
    if isinstance(pred, np.ndarray) and pred.ndim == 2:
        return quads_from_mask(pred, method)
    return quads_from_instances(list(pred), method)


def levelled_corners(pred, method: str = "endplates", scores: Optional[Sequence[float]] = None,
                     names: Optional[Sequence[str]] = None) -> Tuple[np.ndarray, List[str], Optional[LevelAssignment]]:
    """Like :func:`corners_from_prediction`, after order-aware post-processing
    (:func:`spine_det.morphometry.levels.assign_levels`): at most one vertebra per level, each named.
    Returns (corners top to bottom, their level names, the assignment)."""
    names = list(names or VERTEBRA_NAMES)
    if pred is None:
        return np.zeros((0, 4, 2)), [], None
    fits: Optional[List[Optional[str]]] = None
    if isinstance(pred, np.ndarray) and pred.ndim == 2:
        pieces, fits = _split(pred)
        scores = None
    else:
        pieces = list(pred)
    a = assign_levels(pieces, scores, names)
    ordered = list(zip(kept_masks(pieces, a), a.groups))
    return quads_of_ordered(ordered, method, fits), list(a.names), a


def read_predicted_quads(path: Union[str, Path]) -> Tuple[np.ndarray, List[float], Optional[List[float]]]:
    """The corners a landmark model predicted (``<task>_instances.json`` of ``spine-det predict``, each
    instance's ``quad``: TL, TR, BL, BR in film pixels), their scores and level numbers (None when the model
    has no level channel); ValueError when it has no corners."""
    d = json.loads(Path(path).read_text(encoding="utf-8"))
    inst = [i for i in d.get("instances") or [] if isinstance(i, dict)]
    if inst and not all("quad" in i for i in inst):
        raise ValueError(f"{path}: its instances carry no 'quad' corners (predicted by a landmark model?); "
                         f"use --source instances")
    quads = np.asarray([i["quad"] for i in inst], dtype=np.float64).reshape(-1, 4, 2)
    return quads, [float(i.get("score", 1.0)) for i in inst], instance_level_hints(inst)


def levelled_quads(quads: np.ndarray, scores: Optional[Sequence[float]], shape: Tuple[int, int],
                   names: Optional[Sequence[str]] = None, level_hints: Optional[Sequence[float]] = None
                   ) -> Tuple[np.ndarray, List[str], Optional[LevelAssignment]]:
    """Predicted corners after the order-aware post-processing of :func:`levelled_corners` (run on the
    filled quadrilaterals, with the model's level numbers as hints where it gives them): at most one per
    level (the best-scoring of a level's group), top to bottom, each named. The corners are kept as
    predicted, not fitted again."""
    quads = np.asarray(quads, dtype=np.float64).reshape(-1, 4, 2)
    if len(quads) == 0:
        return np.zeros((0, 4, 2)), [], None
    sc = np.ones(len(quads)) if scores is None else np.asarray(scores, dtype=np.float64)
    a = assign_levels([fill_quad(q, shape) for q in quads], sc, list(names or VERTEBRA_NAMES), level_hints=level_hints)
    kept = [max(g, key=lambda k: sc[k]) for g in a.groups]
    return quads[kept] if kept else np.zeros((0, 4, 2)), list(a.names), a


def measure_one(corners: np.ndarray, image_height: float, true: Optional[Sequence[float]] = None,
                names: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """One image's record: angles, end vertebrae, the S / upper-half classification, vertebrae found, SMAPE."""
    n = int(len(corners))
    rec: Dict[str, object] = {"n_vertebrae": n}
    if n >= 2:
        if names is not None and len(names) != n:
            names = None
        r = cobb_angles(corners, image_height=image_height, names=names)
        rec.update({k: r.angles[k] for k in ANGLE_NAMES})
        for k in ANGLE_NAMES:
            u, lo = r.ends[k]
            rec[f"{k}_ends"] = f"{r.names[u]}-{r.names[lo]}"
        rec["s_curve"] = r.s_curve
        rec["result"] = r
    else:  # nothing to measure: scored as 0 deg, as a challenge entry that found no spine would be
        rec.update({k: 0.0 for k in ANGLE_NAMES})
        rec.update({f"{k}_ends": "" for k in ANGLE_NAMES})
        rec["s_curve"] = None
        rec["result"] = None
    if true is not None:
        rec.update({f"true_{k}": float(v) for k, v in zip(ANGLE_NAMES, true)})
        rec["smape"] = float(smape_per_image([rec[k] for k in ANGLE_NAMES], [true])[0])
    return rec


def summarise(records: Sequence[Dict[str, object]], source: str) -> Dict[str, object]:
    """SMAPE, MAE per angle, vertebrae found, over the records that have a ground truth."""
    scored = [r for r in records if "true_PT" in r]
    found = np.array([r["n_vertebrae"] for r in records], dtype=np.float64)
    out: Dict[str, object] = {
        "source": source,
        "n_images": len(records),
        "mean_vertebrae_found": float(found.mean()) if len(found) else math.nan,
        "share_all_17": float((found == 17).mean()) if len(found) else math.nan,
        "n_s_curve": int(sum(1 for r in records if r.get("s_curve"))),
    }
    if scored:
        pred = [[r[k] for k in ANGLE_NAMES] for r in scored]
        true = [[r[f"true_{k}"] for k in ANGLE_NAMES] for r in scored]
        out.update(angle_scores(pred, true))
        out["n_scored"] = out.pop("n_images")
        out["n_images"] = len(records)
    return out


def summary_markdown(s: Dict[str, object]) -> str:
    def f(k, d=2):
        v = s.get(k)
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{d}f}"

    lines = [
        f"# Cobb angles ({s['source']})",
        "",
        "SMAPE = mean over images of 100 * sum|pred - true| / sum(pred + true) over PT, MT, TL (AASCE 2019); "
        "MAE in degrees. PT is the largest curve, as the dataset's angles.csv defines it.",
        "",
        "| images | scored | SMAPE % | MAE PT | MAE MT | MAE TL | MAE all | vertebrae found | all 17 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {s['n_images']} | {s.get('n_scored', 0)} | {f('smape')} | {f('mae_PT')} | {f('mae_MT')} | {f('mae_TL')} "
        f"| {f('mae')} | {f('mean_vertebrae_found', 1)} | {f('share_all_17')} |",
        "",
    ]
    return "\n".join(lines)


def draw_overlay(grey: np.ndarray, corners: np.ndarray, result: Optional[CobbResult], max_side: int = 1600,
                 names: Optional[Sequence[str]] = None) -> np.ndarray:
    """The X-ray with every vertebra's endplates (thin, yellow), its level name beside it when ``names``
    are given (one per vertebra), and per curve the lines of its two end vertebrae (the direction the
    angle uses) extended across the spine (thin, white) and out to the curve's side in its colour,
    labelled "PT 43.4 deg (T5-T10)"."""
    img = np.asarray(grey)
    if img.ndim == 2:
        img = cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_GRAY2BGR)
    else:
        img = img.astype(np.uint8).copy()
    h, w = img.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        img = cv2.resize(img, (int(round(w * scale)), int(round(h * scale))), interpolation=cv2.INTER_AREA)
    c = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2) * scale
    th = max(1, int(round(2 * scale * max(h, w) / 1600)))

    def P(p):
        return (int(round(p[0])), int(round(p[1])))

    for q in c:
        cv2.line(img, P(q[0]), P(q[1]), (0, 230, 255), th, cv2.LINE_AA)
        cv2.line(img, P(q[2]), P(q[3]), (0, 230, 255), th, cv2.LINE_AA)
        cv2.line(img, P(q[0]), P(q[2]), (0, 150, 180), max(1, th // 2), cv2.LINE_AA)
        cv2.line(img, P(q[1]), P(q[3]), (0, 150, 180), max(1, th // 2), cv2.LINE_AA)
    font = cv2.FONT_HERSHEY_SIMPLEX
    fs = max(0.4, 0.9 * img.shape[0] / 1600)
    if names is not None and len(names) == len(c):
        for q, name in zip(c, names):  # the level just left of the body, small, outlined for any background
            (tw, tht), _ = cv2.getTextSize(name, font, 0.7 * fs, 1)
            x, y = min(q[0][0], q[2][0]) - tw - 4, (q[0][1] + q[2][1]) / 2 + tht / 2
            org = (int(max(2, x)), int(min(max(y, tht + 2), img.shape[0] - 2)))
            cv2.putText(img, name, org, font, 0.7 * fs, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(img, name, org, font, 0.7 * fs, (0, 230, 255), 1, cv2.LINE_AA)
    if result is None or len(c) < 2:
        return img
    span = float(np.median(np.linalg.norm(c[:, 1] - c[:, 0], axis=1))) * 1.6
    # PT and MT always share an end vertebra, TL shares one with PT or with MT: each curve draws its
    # lines on its own side of the spine (from the centre out), so a shared vertebra shows both colours
    tl_side = -1 if set(result.ends["TL"]) & set(result.ends["PT"]) else 1
    label_side = {"PT": 1, "MT": -1, "TL": tl_side}
    for k in ANGLE_NAMES:
        for idx in result.ends[k]:
            q = c[idx]
            left, right = (q[0] + q[2]) / 2, (q[1] + q[3]) / 2
            centre, d = (left + right) / 2, right - left
            d = d / (np.linalg.norm(d) or 1.0)
            cv2.line(img, P(centre - span * d), P(centre + span * d), (235, 235, 235), 1, cv2.LINE_AA)
    for k in ANGLE_NAMES:
        col = ANGLE_COLOURS[k]
        ends = result.ends[k]
        for idx in ends:
            q = c[idx]
            left, right = (q[0] + q[2]) / 2, (q[1] + q[3]) / 2
            centre, d = (left + right) / 2, right - left
            d = d / (np.linalg.norm(d) or 1.0)
            cv2.line(img, P(centre), P(centre + label_side[k] * span * d), col, th + 2, cv2.LINE_AA)
        u, lo = ends
        mid = (c[u].mean(0) + c[lo].mean(0)) / 2
        side = label_side[k]
        x = mid[0] + side * span * 1.05
        text = f"{k} {result.angles[k]:.1f} deg ({result.names[u]}-{result.names[lo]})"
        (tw, tht), _ = cv2.getTextSize(text, font, fs, max(1, th))
        org = (int(x if side > 0 else x - tw), int(mid[1]))
        org = (min(max(org[0], 2), img.shape[1] - tw - 2), min(max(org[1], tht + 2), img.shape[0] - 2))
        cv2.putText(img, text, org, font, fs, (0, 0, 0), max(1, th) + 2, cv2.LINE_AA)
        cv2.putText(img, text, org, font, fs, col, max(1, th), cv2.LINE_AA)
    return img


CSV_FIELDS = ["image", "source_name", "n_vertebrae", "missing_levels", *ANGLE_NAMES, *[f"{k}_ends" for k in ANGLE_NAMES],
              "s_curve",
              *[f"true_{k}" for k in ANGLE_NAMES], "smape", "error"]


def records_csv(records: Sequence[Dict[str, object]]) -> str:
    """The per-image rows as CSV text (angles to 3 decimals)."""
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
    wr.writeheader()
    for r in records:
        row = {k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in r.items() if k in CSV_FIELDS}
        wr.writerow(row)
    return buf.getvalue()

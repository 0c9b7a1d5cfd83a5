"""Compare morphometry records with the phantom's ``ground_truth.json``.

Measured bodies are matched to ground-truth levels by centroid (Hungarian
assignment, at most half a level's spacing apart), so a missing or extra body
costs only itself. Grade agreement is the linearly weighted Cohen's kappa.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from spine_det.evaluation.classification import rates
from spine_det.morphometry.grading import NOT_MEASURED

HEIGHT_KEYS = (("ha", "anterior_height_px"), ("hm", "middle_height_px"), ("hp", "posterior_height_px"))


def weighted_kappa(a: Sequence[int], b: Sequence[int], n_classes: Optional[int] = None, weights: str = "linear") -> float:
    """Cohen's kappa with linear (|i-j|) or quadratic ((i-j)^2) disagreement weights; NaN if undefined."""
    a = np.asarray(a, int)
    b = np.asarray(b, int)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("kappa needs two 1-D rating lists of equal length")
    if len(a) == 0:
        return float("nan")
    k = n_classes or int(max(a.max(), b.max())) + 1
    obs = np.zeros((k, k))
    np.add.at(obs, (a, b), 1.0)
    obs /= obs.sum()
    exp = np.outer(obs.sum(1), obs.sum(0))
    i, j = np.indices((k, k))
    w = np.abs(i - j) if weights == "linear" else (i - j) ** 2 if weights == "quadratic" else None
    if w is None:
        raise ValueError(f"unknown weights {weights!r}")
    den = float((w * exp).sum())
    if den == 0:
        return 1.0 if float((w * obs).sum()) == 0 else float("nan")
    return 1.0 - float((w * obs).sum()) / den


def _gt_centroid(level: Dict[str, Any], key: str) -> np.ndarray:
    return np.mean(np.array(list(level[key].values()), float), axis=0)


def match_levels(measured: Sequence[Dict[str, Any]], levels: Sequence[Dict[str, Any]], corner_key: str) -> List[tuple]:
    """(measured index, level index) pairs whose centroids lie within half a level spacing."""
    if not measured or not levels:
        return []
    g = np.array([_gt_centroid(lv, corner_key) for lv in levels])
    m = np.array([v["centroid"] for v in measured], float)
    d = np.linalg.norm(m[:, None] - g[None], axis=-1)
    spacing = float(np.median(np.linalg.norm(np.diff(g, axis=0), axis=1))) if len(g) > 1 else float("inf")
    r, c = linear_sum_assignment(d)
    return [(int(i), int(j)) for i, j in zip(r, c) if d[i, j] <= 0.5 * spacing]


def compare_patient(record: Dict[str, Any], gt: Dict[str, Any]) -> Dict[str, Any]:
    """Per matched level: measured vs true heights, grades, widths, IPD; plus the patient call vs label."""
    levels = gt["levels"]
    rows: List[Dict[str, Any]] = []
    lat = record.get("lat", {}).get("vertebrae", [])
    for i, j in match_levels(lat, levels, "lat_corners"):
        v, lv = lat[i], levels[j]
        row: Dict[str, Any] = {"level": lv["name"], "true_grade": lv["genant_grade"], "grade": v["grade"],
                               "true_loss": lv["height_loss_ratio"], "loss": v["loss"],
                               "fracture_type": lv["fracture_type"], "flags": v["flags"],
                               "expected_height": v.get("expected_height"), "true_expected": lv["expected_height_px"]}
        for mk, gk in HEIGHT_KEYS:
            row[mk] = v[mk]
            row["true_" + mk] = lv[gk]
        rows.append(row)
    ap_rows: List[Dict[str, Any]] = []
    ap = record.get("ap", {}).get("vertebrae", [])
    for i, j in match_levels(ap, levels, "ap_corners"):
        v, lv = ap[i], levels[j]
        ap_rows.append({"level": lv["name"], "width": v["width"], "true_width": lv["ap_body_width_px"],
                        "ipd": v["ipd"], "true_ipd": lv["interpedicular_distance_px"]})
    return {
        "levels": rows,
        "ap_levels": ap_rows,
        "n_true_levels": len(levels),
        "n_lat_bodies": len(lat),
        "label": gt["label"],
        "call": record["call"]["label"],
        "max_grade": record["call"]["max_grade"],
        "max_listhesis_pct": record["call"]["max_listhesis_pct"],
    }


def _pct_err(meas: Any, true: Any) -> Optional[float]:
    if meas is None or true is None or not true:
        return None
    return 100.0 * abs(float(meas) - float(true)) / float(true)


def summarize(comparisons: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Height errors (% of true), grade kappa / confusion, AP errors, patient-level accuracy."""
    rows = [r for c in comparisons for r in c["levels"]]
    out: Dict[str, Any] = {"patients": len(comparisons), "matched_levels": len(rows),
                           "true_levels": int(sum(c["n_true_levels"] for c in comparisons))}
    for mk, _ in HEIGHT_KEYS:
        e = [x for x in (_pct_err(r[mk], r["true_" + mk]) for r in rows) if x is not None]
        out[f"{mk}_mae_pct"] = float(np.mean(e)) if e else float("nan")
        out[f"{mk}_p90_pct"] = float(np.percentile(e, 90)) if e else float("nan")
    all_e = [out[f"{mk}_mae_pct"] for mk, _ in HEIGHT_KEYS]
    out["height_mae_pct"] = float(np.nanmean(all_e)) if any(x == x for x in all_e) else float("nan")
    graded = [r for r in rows if r["grade"] is not None and r["grade"] >= 0]
    out["graded_levels"] = len(graded)
    t = [r["true_grade"] for r in graded]
    p = [r["grade"] for r in graded]
    out["grade_kappa_linear"] = weighted_kappa(t, p, 4) if graded else float("nan")
    out["grade_exact_agreement"] = float(np.mean(np.array(t) == np.array(p))) if graded else float("nan")
    conf = np.zeros((4, 4), int)
    for a, b in zip(t, p):
        conf[a, b] += 1
    out["grade_confusion_true_by_pred"] = conf.tolist()
    # a level is "fractured" at grade >= 1; an absent class scores 0 here (as this table always has)
    fr = rates(np.array(t) >= 1, np.array(p) >= 1, undefined=0.0)
    out["fracture_sensitivity"] = float(fr["sensitivity"]) if graded else float("nan")
    out["fracture_specificity"] = float(fr["specificity"]) if graded else float("nan")
    ap_rows = [r for c in comparisons for r in c["ap_levels"]]
    for k in ("width", "ipd"):
        e = [x for x in (_pct_err(r[k], r["true_" + k]) for r in ap_rows) if x is not None]
        out[f"ap_{k}_mae_pct"] = float(np.mean(e)) if e else float("nan")
    # a patient with nothing measured has no call to score (NOT_MEASURED): left out, and counted
    called = [c for c in comparisons if c["call"] != NOT_MEASURED]
    out["patients_called"] = len(called)
    out["patients_not_measured"] = len(comparisons) - len(called)
    pt = rates([c["label"] == "Damaged" for c in called], [c["call"] == "Damaged" for c in called])
    out["patient_accuracy"] = float(pt["accuracy"])
    out["patient_sensitivity"] = float(pt["sensitivity"])
    out["patient_specificity"] = float(pt["specificity"])
    out["patient_confusion"] = {k: pt[k] for k in ("tp", "fn", "tn", "fp")}
    return out


def calibrate_pad(comparisons: Sequence[Dict[str, Any]], current_pad: float) -> float:
    """The pad (px) that removes the median height bias on these patients (training split)."""
    d = [r["true_" + mk] - r[mk] for c in comparisons for r in c["levels"] for mk, _ in HEIGHT_KEYS
         if r[mk] is not None and r["true_" + mk] is not None]
    return float(current_pad + np.median(d)) if d else current_pad


def calibrate_height_scale(comparisons: Sequence[Dict[str, Any]], current: Dict[str, float],
                           min_levels: int = 20) -> Dict[str, float]:
    """Per-height factors (``ha``/``hm``/``hp``) that remove the median relative bias left after the pad."""
    out = dict(current)
    for mk, _ in HEIGHT_KEYS:
        q = [r["true_" + mk] / r[mk] for c in comparisons for r in c["levels"]
             if r[mk] and r["true_" + mk] is not None]
        if len(q) >= min_levels:
            out[mk] = round(float(current.get(mk, 1.0) * np.median(q)), 4)
    return out


def calibrate_ipd_pad(comparisons: Sequence[Dict[str, Any]], current: float) -> float:
    """The IPD pad (px) that removes the median IPD bias on these patients."""
    d = [r["true_ipd"] - r["ipd"] for c in comparisons for r in c["ap_levels"] if r["ipd"] is not None]
    return float(current - np.median(d)) if d else current


def calibrate_expected_scale(comparisons: Sequence[Dict[str, Any]], current: float) -> float:
    """Scale that maps the neighbour-based expected height onto the true un-fractured height (normal levels)."""
    q = [r["true_expected"] / r["expected_height"] for c in comparisons for r in c["levels"]
         if r["expected_height"] and r["true_grade"] == 0 and r["grade"] is not None and r["grade"] >= 0]
    return float(current * np.median(q)) if q else current

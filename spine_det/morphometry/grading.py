"""Genant semi-quantitative grades from measured heights, and the patient-level call.

Genant: grade 0 < 20 %, 1 = 20-25 %, 2 = 25-40 %, 3 > 40 % loss of the anterior,
middle or posterior height against the height the vertebra should have.

Expected height: the vertebra is not compared with its own posterior wall (a
crush fracture lowers it too) but with its neighbours. Body heights grow down
the column, so a plain median of the neighbours is biased at the ends of the
field (T10 would be compared with taller T11/T12). We fit one robust
(Theil-Sen) slope of reference height against position along the spine over the
patient's trustworthy bodies, carry each of up to ``neighbours`` bodies above and
below to the vertebra's position along that slope, and take their median. Two
passes: the second excludes bodies the first found fractured (or flagged
merged / fragment / partial), so one fracture does not hide another.

With ``own_shape`` the loss is at least the body's own wedge / biconcave
deficit against its posterior wall (1 - min(ha, hm) / hp), which needs no
neighbour and so is immune to their natural size scatter.

The reference height of a neighbour is the tallest of its three heights
(``ref="max"``: least affected by normal wedging and endplate concavity) or its
posterior height (``ref="hp"``, the textbook choice); see ``GradingConfig``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from spine_det.evaluation.classification import rates

GENANT_BOUNDS = (0.20, 0.25, 0.40)
# The call of a patient with no graded vertebra and no listhesis finding (an AP-only dataset such as
# AASCE, empty masks, every body flagged, NaN lengths): nothing says Normal, so it is not called so,
# and patient-level scores leave it out, counting it (spine_det.morphometry.evaluate.summarize).
NOT_MEASURED = "Not measured"


def genant_grade(loss: float, bounds: Sequence[float] = GENANT_BOUNDS) -> int:
    """Grade of a height-loss ratio (0..1): 0 below bounds[0], 1, 2, 3 above bounds[2]. NaN -> -1."""
    if loss != loss:
        return -1
    return int(sum(loss >= b for b in bounds))


@dataclass
class GradingConfig:
    """Knobs of grading and of the patient call (the call's thresholds are fitted on the training split)."""

    neighbours: int = 2  # bodies on each side used for the expected height
    ref: str = "max"  # "max" (tallest of ha/hm/hp) or "hp"
    use_slope: bool = True  # carry neighbours along the column's height trend
    own_shape: bool = True  # loss is also at least 1 - min(ha, hm) / hp (wedge / biconcavity of the body itself)
    expected_scale: float = 1.0  # neighbours' reference heights x this = un-fractured height (calibrated on train)
    exclude_loss: float = 0.15  # neighbours with a first-pass loss above this are not used
    bounds: Tuple[float, float, float] = GENANT_BOUNDS
    patient_min_grade: int = 1  # Damaged if any grade >= this ...
    listhesis_pct: float = 10.0  # ... or any |centre step| >= this (% of endplate depth)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GradingConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "bounds" in known:
            known["bounds"] = tuple(known["bounds"])
        return cls(**known)


def _ref_height(h: Dict[str, float], ref: str) -> float:
    if ref == "hp":
        return h["hp"]
    if ref == "max":
        return float(np.nanmax([h["ha"], h["hm"], h["hp"]]))
    raise ValueError(f"unknown reference height {ref!r}; expected 'max' or 'hp'")


def theil_sen_slope(x: np.ndarray, y: np.ndarray) -> float:
    """Median of pairwise slopes (0 if fewer than 2 distinct x)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    i, j = np.triu_indices(len(x), 1)
    dx = x[j] - x[i]
    ok = np.abs(dx) > 1e-9
    return float(np.median((y[j] - y[i])[ok] / dx[ok])) if ok.any() else 0.0


def expected_heights(
    heights: Sequence[Dict[str, float]],
    positions: Sequence[float],
    usable: Sequence[bool],
    cfg: GradingConfig,
) -> np.ndarray:
    """Expected (un-fractured) height of every body from its usable neighbours; NaN if it has none."""
    n = len(heights)
    ref = np.array([_ref_height(h, cfg.ref) for h in heights])
    t = np.asarray(positions, float)
    use = np.asarray(usable, bool) & np.isfinite(ref)
    slope = theil_sen_slope(t[use], ref[use]) if cfg.use_slope and use.sum() >= 3 else 0.0
    out = np.full(n, np.nan)
    for i in range(n):
        cand = []
        for side in (-1, 1):
            got, j = 0, i + side
            while 0 <= j < n and got < cfg.neighbours:
                if use[j]:
                    cand.append(ref[j] + slope * (t[i] - t[j]))
                    got += 1
                j += side
        if cand:
            out[i] = float(np.median(cand)) * cfg.expected_scale
    return out


def grade_vertebrae(
    heights: Sequence[Dict[str, float]],
    positions: Sequence[float],
    trusted: Sequence[bool],
    cfg: Optional[GradingConfig] = None,
) -> List[Dict[str, float]]:
    """Per body: expected height, loss, Genant grade and crush ratio (hp / expected); two passes."""
    cfg = cfg or GradingConfig()
    trusted = np.asarray(trusted, bool)
    low = np.array([np.nanmin([h["ha"], h["hm"], h["hp"]]) for h in heights]) if heights else np.zeros(0)
    usable = trusted.copy()
    exp = np.full(len(heights), np.nan)
    for _ in range(2):
        exp = expected_heights(heights, positions, usable, cfg)
        loss = 1.0 - low / exp
        usable = trusted & ~(loss > cfg.exclude_loss)
    out = []
    for i, h in enumerate(heights):
        e = float(exp[i])
        ls = float(1.0 - low[i] / e) if np.isfinite(e) and e > 0 and trusted[i] else float("nan")
        if cfg.own_shape and trusted[i] and h["hp"] > 0 and ls == ls:
            ls = max(ls, float(1.0 - np.nanmin([h["ha"], h["hm"]]) / h["hp"]))
        out.append({
            "expected_height": e,
            "loss": ls,
            "grade": genant_grade(ls, cfg.bounds),
            "crush": float(h["hp"] / e) if np.isfinite(e) and e > 0 else float("nan"),
        })
    return out


def patient_call(grades: Sequence[int], listhesis_pcts: Sequence[float], cfg: GradingConfig) -> Dict[str, object]:
    """Damaged if any grade >= ``patient_min_grade`` or any |listhesis| >= ``listhesis_pct``; else Normal when
    at least one vertebra was graded, else :data:`NOT_MEASURED` (zero measured levels are no evidence)."""
    g = [x for x in grades if x >= 0]
    lis = [abs(x) for x in listhesis_pcts if x == x]
    max_grade = max(g) if g else -1
    max_lis = max(lis) if lis else 0.0
    reasons = []
    if max_grade >= cfg.patient_min_grade:
        reasons.append(f"grade {max_grade} fracture")
    if max_lis >= cfg.listhesis_pct:
        reasons.append(f"listhesis {max_lis:.1f}%")
    label = "Damaged" if reasons else "Normal"
    if not reasons and not g:
        label = NOT_MEASURED
        reasons.append("no vertebra graded in the lateral view")
    return {
        "label": label,
        "max_grade": max_grade,
        "max_listhesis_pct": max_lis,
        "reasons": reasons,
        "measured_levels": len(g),
    }


def fit_patient_rule(
    max_grades: Sequence[int], max_listhesis: Sequence[float], labels: Sequence[str], cfg: Optional[GradingConfig] = None
) -> Tuple[GradingConfig, float]:
    """Choose (min grade, listhesis %) that maximise balanced accuracy on the given (training) patients.

    The listhesis threshold is the middle of the best-scoring range (the largest
    margin on both sides); with equal scores the higher grade wins (fewer false alarms).
    """
    cfg = cfg or GradingConfig()
    y = np.array([lb == "Damaged" for lb in labels])
    g = np.asarray(max_grades)
    lis = np.asarray(max_listhesis, float)
    grid = np.arange(3.0, 40.01, 0.5)
    best_score, best_lt, best_mg = -1.0, float(grid[-1]), 1
    for mg in (3, 2, 1):
        scores = []
        for lt in grid:
            scores.append(round(rates(y, (g >= mg) | (lis >= lt), undefined=0.0)["balanced_accuracy"], 9))
        scores = np.array(scores)
        top = scores.max()
        if top > best_score:
            # the longest run of thresholds reaching the top score, and its middle
            hit = np.flatnonzero(scores == top)
            runs = np.split(hit, np.flatnonzero(np.diff(hit) > 1) + 1)
            run = max(runs, key=len)
            best_score, best_lt, best_mg = float(top), float(grid[run[len(run) // 2]]), mg
    out = GradingConfig.from_dict({**cfg.to_dict(), "patient_min_grade": best_mg, "listhesis_pct": best_lt})
    return out, best_score

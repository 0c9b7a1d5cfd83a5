"""Binary classification figures, in one place: accuracy, sensitivity, specificity, balanced
accuracy, ROC-AUC and the confusion matrix, for the Normal/Damaged classifier and for every rule
that calls a patient or a vertebra (morphometry's fracture and patient calls).

Positive = Damaged (or fractured). A rate whose denominator is zero is ``undefined`` (NaN unless
the caller asks for another value), so an absent class never reads as a perfect or a zero score.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Sequence, Tuple

import numpy as np

# scipy.stats (0.5 s) is imported by roc_auc only: the morphometry tools import this module for its rates.

STRATEGIES: Tuple[str, ...] = ("average", "ap", "lat")  # view strategies; order = tie-break preference


def _ratio(num: int, den: int, undefined: float) -> float:
    return num / den if den else undefined


def rates(truth: Sequence[bool], predicted: Sequence[bool], undefined: float = math.nan) -> Dict[str, Any]:
    """Counts and rates of binary calls: ``n``, ``tp``, ``fn``, ``tn``, ``fp``, ``accuracy``,
    ``sensitivity`` (positive recall), ``specificity`` (negative recall), ``balanced_accuracy`` and
    ``confusion_matrix`` [[TN, FP], [FN, TP]] (rows = truth: negative, positive)."""
    y = np.asarray(truth).astype(bool)
    p = np.asarray(predicted).astype(bool)
    if y.shape != p.shape:
        raise ValueError(f"truth {y.shape} and calls {p.shape} differ in shape")
    tp, fn = int((y & p).sum()), int((y & ~p).sum())
    tn, fp = int((~y & ~p).sum()), int((~y & p).sum())
    n = int(y.size)
    sens, spec = _ratio(tp, tp + fn, undefined), _ratio(tn, tn + fp, undefined)
    return {
        "n": n, "tp": tp, "fn": fn, "tn": tn, "fp": fp,
        "accuracy": _ratio(tp + tn, n, undefined),
        "sensitivity": sens,
        "specificity": spec,
        "balanced_accuracy": 0.5 * (sens + spec),
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); NaN if one class is absent."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    from scipy.stats import rankdata

    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_classification_metrics(labels: Sequence[int], probs: Sequence[float], threshold: float = 0.5) -> Dict[str, Any]:
    """Accuracy, sensitivity (Damaged recall), specificity (Normal recall), ROC-AUC, confusion matrix.

    ``confusion_matrix`` is [[TN, FP], [FN, TP]] with rows = truth (Normal, Damaged).
    """
    y = np.asarray(labels).astype(int)
    p = np.asarray(probs, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} differ in shape")
    r = rates(y == 1, p >= threshold)
    return {
        "n": r["n"],
        "accuracy": r["accuracy"],
        "sensitivity": r["sensitivity"],
        "specificity": r["specificity"],
        "roc_auc": roc_auc(y, p),
        "confusion_matrix": r["confusion_matrix"],
        "threshold": threshold,
    }


def combine_views(probs_ap: Sequence[float], probs_lat: Sequence[float]) -> Dict[str, np.ndarray]:
    """Per-patient probabilities of each strategy; a missing view (NaN) falls back to the other."""
    ap = np.asarray(probs_ap, dtype=np.float64)
    lat = np.asarray(probs_lat, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        avg = np.where(np.isnan(ap), lat, np.where(np.isnan(lat), ap, (ap + lat) / 2.0))
    return {
        "average": avg,
        "ap": np.where(np.isnan(ap), lat, ap),
        "lat": np.where(np.isnan(lat), ap, lat),
    }


def select_view_strategy(
    val_probs_ap: Sequence[float], val_probs_lat: Sequence[float], labels: Sequence[int], threshold: float = 0.5,
    strategies: Sequence[str] = STRATEGIES,
) -> Tuple[str, Dict[str, float]]:
    """The report's rule: the most accurate of AP only, LAT only and their average, on validation.

    Returns ``(name, {name: accuracy})`` over ``strategies`` (a run that trained one view offers only
    that one: the others would silently repeat it). Ties go to the higher ROC-AUC, then to the order
    of :data:`STRATEGIES` (average first: it uses both X-rays).
    """
    y = np.asarray(labels).astype(int)
    combos = combine_views(val_probs_ap, val_probs_lat)
    acc = {k: binary_classification_metrics(y, v, threshold)["accuracy"] for k, v in combos.items()}
    auc = {k: roc_auc(y, v) for k, v in combos.items()}

    def key(name: str) -> Tuple[float, float, int]:
        a = acc[name] if not math.isnan(acc[name]) else -1.0
        u = auc[name] if not math.isnan(auc[name]) else -1.0
        return (a, u, -STRATEGIES.index(name))

    unknown = [k for k in strategies if k not in STRATEGIES]
    if unknown or not strategies:
        raise ValueError(f"strategies must be a non-empty subset of {STRATEGIES}, got {list(strategies)}")
    best = max(strategies, key=key)
    return best, {k: acc[k] for k in strategies}

"""Which connected components of a semantic model's mask are instances, and which are specks.

A LinkNet / smp mask's fringe breaks into specks: hundreds of 8-connected components per real film,
each of which used to be listed as an instance. A component smaller than a minimum area is a speck
and leaves the instance list; the mask itself (and so its Dice) is the model's, specks included.

The minimum is chosen on the validation films at the end of training (:func:`choose_min_area`) and
stored in the checkpoint under :data:`CHECKPOINT_KEY` (``{task: rule}``, plain data). It is a share of
the film's pixels, since films differ in resolution: the cut, between two component sizes seen on
validation, that maximises instance F1 against the ground-truth instances (a component is a true
instance when its IoU with one of them is at least :data:`MATCH_IOU`, paired one-to-one as
``eval-instances`` pairs them). A checkpoint written before this has no minimum; then the film's own
components give it (:func:`relative_min_area`): a component smaller than :data:`RELATIVE_SHARE` of the
area-weighted median component (the size of the component holding the median foreground pixel: a
vertebra when a film has 17 vertebrae and 300 specks, where the plain median would be a speck).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import cv2
import numpy as np

from spine_det.evaluation.instance_quality import match_instances

CHECKPOINT_KEY = "component_filter"
MATCH_IOU = 0.5
RELATIVE_SHARE = 0.1
VALIDATION_RULE = "validation_f1"
RELATIVE_RULE = "relative_to_weighted_median"


def component_areas(mask: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(label map, areas): the 8-connected components of ``mask`` (label k has ``areas[k - 1]`` pixels)."""
    n, labels = cv2.connectedComponents(np.asarray(mask).astype(np.uint8), connectivity=8)
    return labels, np.bincount(labels.ravel(), minlength=n)[1:]


def validation_film(pred_mask: np.ndarray, gt_labels: np.ndarray, iou: float = MATCH_IOU) -> Tuple[np.ndarray, np.ndarray, int]:
    """What one validation film adds to the choice: each predicted component's area as a share of the
    film's pixels, whether it is a true instance (IoU >= ``iou`` with a ground-truth instance of the
    label map ``gt_labels``, one-to-one), and the number of ground-truth instances."""
    labels, areas = component_areas(pred_mask)
    m = match_instances(gt_labels, labels, iou=iou)
    matched = np.zeros(len(areas), bool)
    for _, p in m.pairs:
        matched[p - 1] = True
    return areas / float(labels.size), matched, int(m.gt)


def choose_min_area(films: Iterable[Tuple[np.ndarray, np.ndarray, int]]) -> Dict[str, Any]:
    """The minimum component area (share of the film's pixels) that maximises instance F1 over the
    films of :func:`validation_film`; ties go to the smallest minimum (keep the most). The minimum sits
    halfway, on a log scale, between the largest dropped and the smallest kept component, 0.0 when
    keeping every component is best. When the films cannot tell (no ground-truth instance, or no
    component is a true instance: F1 is 0 at every cut) ``min_area_share`` is None and ``reason`` says
    why; :func:`drop_specks` then takes the relative rule."""
    films = list(films)
    n_gt = sum(int(g) for _, _, g in films)
    areas = np.concatenate([np.asarray(a, np.float64) for a, _, _ in films]) if films else np.zeros(0)
    matched = np.concatenate([np.asarray(m, bool) for _, m, _ in films]) if films else np.zeros(0, bool)
    base = {"rule": VALIDATION_RULE, "iou": MATCH_IOU, "films": len(films), "components": int(len(areas)),
            "ground_truth_instances": n_gt}
    if n_gt == 0 or not matched.any():
        return {**base, "min_area_share": None,
                "reason": "no ground-truth instance on the validation films" if n_gt == 0 else
                          f"no component of the validation films matched a ground-truth instance (IoU >= {MATCH_IOU:g})"}
    order = np.argsort(areas, kind="stable")
    areas, matched = areas[order], matched[order]
    n = len(areas)
    # cut i drops the i smallest components; only cuts between two distinct sizes can be drawn
    cuts = [0] + [i for i in range(1, n + 1) if i == n or areas[i] > areas[i - 1]]
    tp_from = np.concatenate([np.cumsum(matched[::-1])[::-1], [0]])  # true components among areas[i:]
    best_i, best_f1 = 0, -1.0
    f1_of = {}
    for i in cuts:
        tp = int(tp_from[i])
        fp = (n - i) - tp
        f1 = 2 * tp / (2 * tp + fp + (n_gt - tp))
        f1_of[i] = f1
        if f1 > best_f1 + 1e-12:
            best_i, best_f1 = i, f1
    # best_i < n: dropping every component scores F1 0, which keeping them all ties at worst
    minimum = 0.0 if best_i == 0 else math.sqrt(float(areas[best_i - 1]) * float(areas[best_i]))
    return {
        **base,
        "min_area_share": minimum,
        "dropped_on_validation": best_i,
        "instance_f1": round(best_f1, 4),
        "instance_f1_keeping_all": round(f1_of[0], 4),
        "true_instances_kept": round(int(tp_from[best_i]) / int(tp_from[0]), 4),
    }


def relative_min_area(areas: Sequence[int], share: float = RELATIVE_SHARE) -> float:
    """``share`` of the area-weighted median component area (0.0 without components)."""
    a = np.sort(np.asarray(areas, np.float64))
    if a.size == 0:
        return 0.0
    cum = np.cumsum(a)
    return float(share * a[int(np.searchsorted(cum, cum[-1] / 2.0))])


def drop_specks(instances: List[Dict[str, Any]], shape: Sequence[int],
                rule: Optional[Mapping[str, Any]] = None) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """(kept instances, what was done): instances (dicts with ``area``) below the minimum of ``rule``
    (from the checkpoint; None: :func:`relative_min_area` of these instances) are dropped; the second
    value is the record for the prediction's JSON (rule, minimum in pixels, how many dropped)."""
    areas = [int(i.get("area", 0)) for i in instances]
    pixels = int(shape[0]) * int(shape[1])
    if rule is not None and rule.get("min_area_share") is not None:
        share = float(rule["min_area_share"])
        minimum = share * pixels
        record: Dict[str, Any] = {"rule": VALIDATION_RULE, "min_area_share": share,
                                  "about": "chosen on the validation films at the end of training: the minimum "
                                           "area that maximised instance F1 (IoU >= %g)" % float(rule.get("iou", MATCH_IOU))}
    else:
        minimum = relative_min_area(areas)
        why = (f"validation could not choose a minimum ({rule['reason']})" if rule is not None and rule.get("reason")
               else "the checkpoint holds no minimum chosen on validation")
        record = {"rule": RELATIVE_RULE, "share": RELATIVE_SHARE,
                  "about": f"{why}: components smaller than {RELATIVE_SHARE:g} x the area-weighted median "
                           "component area of this film"}
    kept = [i for i, a in zip(instances, areas) if a >= minimum]
    record.update({"min_area": int(math.ceil(minimum)), "components": len(instances),
                   "dropped": len(instances) - len(kept), "dropped_area": sum(a for a in areas if a < minimum),
                   "mask": "unchanged: the specks stay in the mask (its Dice is the model's); only this list drops them"})
    return kept, record


__all__ = ["CHECKPOINT_KEY", "MATCH_IOU", "RELATIVE_SHARE", "choose_min_area", "component_areas", "drop_specks",
           "relative_min_area", "validation_film"]

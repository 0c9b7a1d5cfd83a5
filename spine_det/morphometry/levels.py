"""Order-aware post-processing of vertebra instances: at most one instance per level, each named (T1..L5).

A detector (Mask R-CNN), a semantic mask split at the discs, or any other source of vertebra
candidates gives false positives beside the spine, two candidates for one body and gaps where a
body was missed. The Cobb angle takes its end vertebrae from whatever is left, so one stray
candidate can set an angle. The challenge entries that lead AASCE 2019 therefore fit the candidates
to the expected list of levels before they measure. This module does that in three steps:

1. **Along the spine.** Specks are dropped and same-level pieces united (:func:`quads._order`); a
   robust curve is fitted through the centroids and candidates whose centroid lies more than
   ``OFF_CURVE`` x the median body size beside it are rejected.
2. **Levels by dynamic programming.** The remaining candidates, in order along the curve, are matched to
   strictly increasing levels of the view's list. The cost of a match says how well the gap between
   two consecutive matched candidates fits the anatomical distance between their levels' centres
   (body + disc heights, the mean adult table the phantom draws from, times one scale per film, searched
   on a grid), and how well the change of their areas fits the change of the levels' body areas (a
   scale-free term). A candidate may be left out (cost grows with its score), a level may be missing
   (cost per level, less at the ends of the list, where a film's field may stop). Where the model itself
   says which level a candidate is (the landmark family's level number), matching it elsewhere costs
   ((level - hint) / ``LEVEL_HINT_TOL``)^2, at most ``LEVEL_HINT_CAP``: the gaps and sizes cannot tell
   which end of the list is missing, the hints can, and one wild hint is outvoted by its neighbours.
3. **Result.** Per input candidate its level name or None (rejected), and the kept candidates in
   level order, with the names the Cobb report then prints ("T5-T11").

Everything is a function of the candidates, their scores and hints: no image, no training.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from spine_det.data.aasce import VERTEBRA_NAMES
from spine_det.data.phantom.anatomy import ALL_LEVELS, mean_level_dimensions
from spine_det.morphometry.quads import _curve_coords, _order, _pixels
from spine_det.morphometry.vertebrae import fit_spine_curve

SAME_LEVEL_GAP = 0.25  # candidates closer than this x the median gap along the curve are one level (united or
# the weaker dropped); tighter than quads' 0.45: on a full spine the upper thoracic pitch is ~half the lumbar one
OFF_CURVE = 1.0  # reject a candidate whose centroid lies this x the median sqrt(area) beside the curve
GAP_TOL = 0.25  # relative sd of a gap between matched neighbours around its anatomical value
SIZE_TOL = 0.35  # sd of the change of log area between matched neighbours around the table's change
MISSING_COST = 3.0  # per level skipped between two matched candidates
END_COST = (3.0, 3.0)  # per level of the list left unmatched above the first / below the last match
REJECT_COST = (0.5, 4.0)  # leaving a candidate out costs a + b x score
# END_COST and REJECT_COST were chosen on the 48 AASCE validation films (phantom-initialised Mask R-CNN, seed 0)
# among (1, 4) / (1, 1) / (2, 2) / (3, 3) / (5, 5) and (1, 6) / (0.5, 4): Cobb SMAPE 17.4 -> 17.2, level named
# correctly 53 % -> 74 % (the detector misses L5 in 38 % of films, so a bottom-anchored count shifts the names)
MAX_CANDIDATES_PER_LEVEL = 3  # more candidates than this x levels: only the highest-scoring ones enter the fit
SCALE_STEPS = 41  # scales (px per mm along the spine) tried per film
LEVEL_HINT_TOL = 1.0  # sd, in levels, of a model's level number around the true level; of 0.25 / 0.5 / 1 the one
# naming most vertebrae right on the 48 AASCE validation films (landmarks with levels, seed 0: 74 / 77 / 80 %)
LEVEL_HINT_CAP = 4.0  # a hint costs at most this (a truncated quadratic): one wild hint cannot move the fit


@dataclass
class LevelAssignment:
    """The outcome for one film: per input candidate its level (None: rejected or a speck), and why."""

    levels: List[Optional[str]]  # one per input mask, in input order
    groups: List[List[int]] = field(default_factory=list)  # per kept candidate: the input masks united in it
    names: List[str] = field(default_factory=list)  # level of each kept candidate
    missing: List[str] = field(default_factory=list)  # levels of the list with no candidate, inside the matched run
    rejected: Dict[int, str] = field(default_factory=dict)  # input index -> why ("off the curve", "no level", ...)
    scale: float = float("nan")  # px per mm along the spine of the best fit

    def as_dict(self) -> Dict[str, object]:
        return {"levels": self.levels, "names": self.names, "missing": self.missing,
                "rejected": {str(k): v for k, v in self.rejected.items()}, "scale_px_per_mm": self.scale}


def level_centres_mm(names: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """(centre position along the spine, body area) per level in mm / mm^2, from the mean adult table;
    names outside the table (C1..C6, S1, custom) get even 25 mm steps and equal areas."""
    if all(n in ALL_LEVELS for n in names):
        dims = mean_level_dimensions(names)
        h, disc = dims["height"], dims["disc"]
        steps = h[:-1] / 2 + disc[:-1] + h[1:] / 2
        return np.concatenate([[0.0], np.cumsum(steps)]), h * dims["width"]
    return np.arange(len(names)) * 25.0, np.ones(len(names))


def _scale_free_costs(t: np.ndarray, log_area: np.ndarray, reject: np.ndarray, pos: np.ndarray,
                      log_size: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The parts of the matching costs that do not depend on the film's scale, computed once per film:
    (transition cost without the gap term (i', l', i, l), inf where not increasing; gaps (i', i);
    level distances (l', l), 1 where not increasing; cumulative reject costs)."""
    n, L = len(t), len(pos)
    gap = t[None, :] - t[:, None]  # (i', i)
    dpos = pos[None, :] - pos[:, None]  # (l', l)
    dsize = log_size[None, :] - log_size[:, None]
    dlog = log_area[None, :] - log_area[:, None]
    valid = (np.arange(n)[:, None] < np.arange(n)[None, :])[:, None, :, None] & (dpos > 0)[None, :, None, :]
    sz = (dlog[:, None, :, None] - dsize[None, :, None, :]) / SIZE_TOL
    skipped = np.maximum(np.arange(L)[None, :] - np.arange(L)[:, None] - 1, 0)  # (l', l)
    cum = np.concatenate([[0.0], np.cumsum(reject)])  # rejects strictly between i' and i: cum[i] - cum[i' + 1]
    between = cum[None, :-1] - cum[1:, None]  # (i', i)
    fixed = np.where(valid, sz ** 2 + MISSING_COST * skipped[None, :, None, :] + between[:, None, :, None], np.inf)
    return fixed, gap, np.where(dpos > 0, dpos, 1.0), cum


def _dp(fixed: np.ndarray, gap: np.ndarray, dpos: np.ndarray, cum: np.ndarray,
        scale: float, unary: Optional[np.ndarray] = None) -> Tuple[float, List[Tuple[int, int]]]:
    """Best matching (candidate i -> level l, both increasing) at one scale: (cost, [(i, l), ...]);
    ``unary`` (i, l): an extra cost of matching candidate i to level l (the level hints)."""
    n, L = gap.shape[0], dpos.shape[0]
    u = np.zeros((n, L)) if unary is None else unary
    expected = scale * dpos[None, :, None, :]
    g = (gap[:, None, :, None] - expected) / (GAP_TOL * expected)
    trans = fixed + g ** 2 + u[None, None, :, :]  # (i', l', i, l)
    cost = cum[:-1][:, None] + END_COST[0] * np.arange(L)[None, :] + u  # start: i first matched, at level l
    back = np.full((n, L, 2), -1, dtype=np.int64)
    for i in range(1, n):
        cand = cost[:i, :, None] + trans[:i, :, i, :]  # (i', l', l)
        flat = cand.reshape(-1, L)
        k = np.argmin(flat, axis=0)
        best = flat[k, np.arange(L)]
        better = best < cost[i]
        cost[i] = np.where(better, best, cost[i])
        back[i, better, 0] = k[better] // L
        back[i, better, 1] = k[better] % L
    final = cost + (cum[-1] - cum[1:])[:, None] + END_COST[1] * (L - 1 - np.arange(L))[None, :]
    i, l = np.unravel_index(int(np.argmin(final)), final.shape)
    total = float(final[i, l])
    path = [(int(i), int(l))]
    while back[path[-1][0], path[-1][1], 0] >= 0:
        pi, pl = back[path[-1][0], path[-1][1]]
        path.append((int(pi), int(pl)))
    return total, path[::-1]


def hint_costs(hints: np.ndarray, names: Sequence[str], tol: float = LEVEL_HINT_TOL) -> np.ndarray:
    """(candidates, levels) cost of each candidate at each level of ``names`` given its hint (a level number
    on ALL_LEVELS: C7 = 0, T1 = 1, ..., L5 = 17): ((number of the level - hint) / tol)^2; 0 where the hint is
    NaN or the name is not in ALL_LEVELS; at most ``LEVEL_HINT_CAP``."""
    num = np.array([float(ALL_LEVELS.index(n)) if n in ALL_LEVELS else np.nan for n in names])
    d = (num[None, :] - np.asarray(hints, dtype=np.float64).reshape(-1, 1)) / float(tol)
    return np.minimum(np.nan_to_num(d ** 2, nan=0.0), LEVEL_HINT_CAP)


def assign_levels(masks: Sequence[np.ndarray], scores: Optional[Sequence[float]] = None,
                  names: Sequence[str] = VERTEBRA_NAMES, off_curve: float = OFF_CURVE,
                  level_hints: Optional[Sequence[float]] = None, hint_tol: Optional[float] = None) -> LevelAssignment:
    """Fit vertebra candidates (boolean masks of one film, any order) to the level list ``names`` (top to
    bottom); see the module docstring. ``scores``: the detector's confidence per mask (None: all 1);
    ``level_hints``: the model's level number per mask (C7 = 0 .. L5 = 17; NaN or None: no hint), trusted
    to ``hint_tol`` levels (None: ``LEVEL_HINT_TOL``)."""
    n_in = len(masks)
    hint_tol = LEVEL_HINT_TOL if hint_tol is None else float(hint_tol)
    sc = np.ones(n_in) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(sc) != n_in:
        raise ValueError(f"{len(sc)} scores for {n_in} masks")
    hints = np.full(n_in, np.nan) if level_hints is None else np.asarray(level_hints, dtype=np.float64).reshape(-1)
    if len(hints) != n_in:
        raise ValueError(f"{len(hints)} level hints for {n_in} masks")
    if len(names) == 0:
        raise ValueError("an empty level list")
    out = LevelAssignment(levels=[None] * n_in)
    ms = [np.asarray(m) > 0 for m in masks]
    areas_in = np.array([float(m.sum()) for m in ms])
    alive = [i for i in range(n_in) if areas_in[i] > 0]
    if len(alive) >= 3:  # off the curve first: a big false positive beside the spine must not displace a body
        cents = np.array([_pixels(ms[i]).mean(0) for i in alive])
        _, s = _curve_coords(fit_spine_curve(cents), cents)
        size = float(np.median(np.sqrt(areas_in[alive])))
        off = np.abs(s) > off_curve * size
        out.rejected.update({i: "off the curve" for i, bad in zip(alive, off) if bad})
        alive = [i for i, bad in zip(alive, off) if not bad]
    grouped = [(m, [alive[j] for j in o])
               for m, o in _order([ms[i] for i in alive], scores=[sc[i] for i in alive], same_level_gap=SAME_LEVEL_GAP)]
    kept = {i for _, o in grouped for i in o}
    out.rejected.update({i: "speck, or same level as a kept one" for i in range(n_in)
                         if i not in kept and i not in out.rejected})
    if not grouped:
        return out
    cands = [(m, o, float(max(sc[j] for j in o))) for m, o in grouped]
    if len(cands) > MAX_CANDIDATES_PER_LEVEL * len(names):  # the DP is (candidates x levels)^2: keep the likeliest
        top = sorted(np.argsort([-c[2] for c in cands], kind="stable")[: MAX_CANDIDATES_PER_LEVEL * len(names)])
        for k in set(range(len(cands))) - set(top):
            out.rejected.update({j: "beyond the candidate cap" for j in cands[k][1]})
        cands = [cands[k] for k in top]
    cents = np.array([_pixels(m).mean(0) for m, _, _ in cands])
    areas = np.array([float(m.sum()) for m, _, _ in cands])
    t = _curve_coords(fit_spine_curve(cents), cents)[0] if len(cands) >= 3 else cents[:, 1].copy()
    order = np.argsort(t, kind="stable")
    cands = [cands[k] for k in order]
    t, areas = t[order], areas[order]
    pos, body = level_centres_mm(names)
    cand_hints = np.array([hints[max(o, key=lambda j: sc[j])] for _, o, _ in cands])  # the best-scoring member's
    unary = hint_costs(cand_hints, names, hint_tol) if np.isfinite(cand_hints).any() else None
    if len(cands) == 1:
        path = [(0, int(np.argmin(unary[0])) if unary is not None
                 else int(np.argmin(np.abs(np.log(body / body.mean())))))]
        scale = float("nan")
    else:
        reject = np.array([REJECT_COST[0] + REJECT_COST[1] * c[2] for c in cands])
        gaps = np.diff(t)
        med_gap = float(np.median(gaps[gaps > 0])) if (gaps > 0).any() else 1.0
        steps = np.diff(pos)
        lo, hi = 0.5 * med_gap / steps.max(), 1.6 * med_gap / steps.min()
        fixed, gap, dpos, cum = _scale_free_costs(t, np.log(areas), reject, pos, np.log(body))
        best = (np.inf, [], float("nan"))
        for scale in np.geomspace(lo, hi, SCALE_STEPS):
            total, p = _dp(fixed, gap, dpos, cum, float(scale), unary)
            if total < best[0]:
                best = (total, p, float(scale))
        _, path, scale = best
    matched = {i: l for i, l in path}
    for i, (_, o, _) in enumerate(cands):
        if i in matched:
            for j in o:
                out.levels[j] = names[matched[i]]
            out.groups.append(list(o))
            out.names.append(names[matched[i]])
        else:
            out.rejected.update({j: "no level" for j in o})
    first, last = min(matched.values()), max(matched.values())
    out.missing = [names[k] for k in range(first, last + 1) if k not in set(matched.values())]
    out.scale = scale
    return out


def kept_masks(masks: Sequence[np.ndarray], assignment: LevelAssignment) -> List[np.ndarray]:
    """The kept candidates top to bottom, each the union of its group (same-level pieces)."""
    out = []
    for g in assignment.groups:
        m = np.asarray(masks[g[0]]) > 0
        for j in g[1:]:
            m = m | (np.asarray(masks[j]) > 0)
        out.append(m)
    return out


def instance_level_hints(instances: Sequence[object]) -> Optional[List[float]]:
    """The ``level_number`` of each instance dict (a landmark model's hint; NaN where absent), or None when
    no instance carries one."""
    hints = [float(i["level_number"]) if isinstance(i, dict) and i.get("level_number") is not None else float("nan")
             for i in instances]
    return hints if np.isfinite(hints).any() else None


def name_instance_levels(task: str, prediction) -> Dict[str, object]:
    """A predictor's vertebra instances (``prediction.instances`` dicts with their ``score``, and
    ``prediction.instance_masks``): each dict gets its ``level`` (T1..L5; None when the post-processing
    drops it as off the spine or a same-level duplicate); returns ``{"levels": {names, missing, rejected,
    scale}}`` for the prediction's JSON, or {} for a task without levels (only vertebral bodies have
    them) or a model without instance masks. The instances and masks stay as the model gave them."""
    if getattr(prediction, "instance_masks", None) is None or not task.endswith("_vertebra") or not prediction.instances:
        return {}
    a = assign_levels([prediction.instance_masks[k] for k in range(len(prediction.instances))],
                      [float(i.get("score", 1.0)) for i in prediction.instances],
                      level_hints=instance_level_hints(prediction.instances))
    for inst, level in zip(prediction.instances, a.levels):
        inst["level"] = level
    rec = a.as_dict()
    rec.pop("levels")
    return {"levels": rec}


__all__ = ["LEVEL_HINT_CAP", "LEVEL_HINT_TOL", "LevelAssignment", "assign_levels", "hint_costs", "instance_level_hints", "kept_masks",
           "level_centres_mm", "name_instance_levels"]

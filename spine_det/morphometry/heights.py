"""LAT morphometry of ordered bodies: heights, shape ratios, discs and listhesis steps.

Heights (px), in each body's own frame (see :mod:`spine_det.morphometry.vertebrae`):

* anterior ``ha`` = |sup_ant - inf_ant|, posterior ``hp`` = |sup_post - inf_post|
  (plus one pixel, see ``PIXEL_PAD``);
* middle ``hm`` = the mask's extent along the body axis in a thin band through the
  middle of the body (so a depressed, biconcave endplate is measured where it is
  lowest, not at its rim);
* ratios: wedge = ha/hp, biconcavity = hm/hp; crush = hp/expected is added by
  :mod:`spine_det.morphometry.grading` once the expected height is known.

Listhesis between a body and the one below it: the offsets of the anterior lines
(inf_ant above vs sup_ant below), of the posterior lines and of the endplate
midpoints, measured across the mean axis of the pair, as % of the lower body's
superior endplate depth; positive = the upper body lies anterior (anterolisthesis).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from spine_det.morphometry.vertebrae import PIXEL_PAD, Body, SpineCurve, components

MID_BAND = 0.12  # half width of the middle band, as a fraction of the body depth


def _dist(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(p) - np.asarray(q)))


def chord_along_axis(b: Body, at: float, band: float, pad: float = PIXEL_PAD) -> Tuple[float, np.ndarray]:
    """Extent (px) of the body's pixels along its axis within |across - at| <= band, and its end points."""
    loc = b.local(b.pixels)
    sel = np.abs(loc[:, 0] - at) <= band
    if sel.sum() < 2:
        return float("nan"), np.full((2, 2), np.nan)
    # per column of the band, take the extent; the median resists a ragged band edge
    cols = np.round(loc[sel, 0]).astype(int)
    lo, hi = [], []
    for c in np.unique(cols):
        v = loc[sel, 1][cols == c]
        lo.append(v.min())
        hi.append(v.max())
    ext = np.array(hi) - np.array(lo)
    k = int(np.argsort(ext)[len(ext) // 2])
    ends = np.stack([b.centroid + at * b.across + lo[k] * b.axis, b.centroid + at * b.across + hi[k] * b.axis])
    return float(np.median(ext) + pad), ends


def body_heights(b: Body, pad: float = PIXEL_PAD) -> Dict[str, float]:
    """Anterior, middle, posterior heights (px), endplate depth (px) and wedge / biconcavity ratios.

    ``pad`` is added to every length measured between extreme pixel centres.
    """
    sa, sp, ip, ia = b.corners
    ha = _dist(sa, ia) + pad
    hp = _dist(sp, ip) + pad
    depth = 0.5 * (_dist(sa, sp) + _dist(ia, ip)) + pad
    loc = b.local(b.corners)
    mid = float(loc[:, 0].mean())
    hm, _ = chord_along_axis(b, mid, max(0.75, MID_BAND * depth / 2), pad)
    return {
        "ha": ha,
        "hm": hm,
        "hp": hp,
        "depth": depth,
        "wedge": ha / hp if hp > 0 else float("nan"),
        "biconcavity": hm / hp if hp > 0 else float("nan"),
    }


def _perp(axis: np.ndarray) -> np.ndarray:
    return np.array([-axis[1], axis[0]])


def listhesis_step(upper: Body, lower: Body) -> Dict[str, float]:
    """Offsets (% of the lower body's endplate depth) of anterior line, posterior line and endplate centres.

    Positive = the upper body is displaced towards side a (LAT: anterior).
    """
    axis = upper.axis + lower.axis
    axis /= np.linalg.norm(axis)
    across = _perp(axis)
    if across @ (upper.across + lower.across) < 0:
        across = -across
    sa_u, sp_u, ip_u, ia_u = upper.corners
    sa_l, sp_l, ip_l, ia_l = lower.corners
    depth = _dist(sa_l, sp_l) + PIXEL_PAD
    ant = float((sa_l - ia_u) @ across)  # > 0: upper's anterior corner lies on side a of lower's
    post = float((sp_l - ip_u) @ across)
    mid = float((0.5 * (sa_l + sp_l) - 0.5 * (ia_u + ip_u)) @ across)
    return {
        "anterior_pct": 100.0 * ant / depth,
        "posterior_pct": 100.0 * post / depth,
        "centre_pct": 100.0 * mid / depth,
        "centre_px": mid,
    }


@dataclass
class Disc:
    """One disc component assigned to the gap between bodies ``upper`` and ``upper + 1``."""

    upper: int
    centroid: np.ndarray
    height: float  # median extent along the local axis over the central half of the disc (px)
    area: int
    flags: List[str] = field(default_factory=list)


def middle_segment(b: Body) -> np.ndarray:
    """End points (2, 2) of the middle-height chord, for drawing."""
    loc = b.local(b.corners)
    depth = 0.5 * (_dist(b.corners[0], b.corners[1]) + _dist(b.corners[3], b.corners[2]))
    return chord_along_axis(b, float(loc[:, 0].mean()), max(0.75, MID_BAND * depth / 2))[1]


def disc_heights(
    disc_mask: Optional[np.ndarray], bodies: Sequence[Body], curve: Optional[SpineCurve], pad: float = PIXEL_PAD
) -> List[Disc]:
    """Assign each disc component to the gap between the two ordered bodies around it and measure it."""
    if disc_mask is None or curve is None or len(bodies) < 2:
        return []
    ts = np.array([b.t for b in bodies])
    out: List[Disc] = []
    for comp in components(disc_mask, min_area=5):
        ys, xs = np.nonzero(comp)
        pix = np.stack([xs, ys], -1).astype(np.float64)
        c = pix.mean(0)
        t, tan = curve.project(c[None])
        k = int(np.searchsorted(ts, t[0]) - 1)
        flags: List[str] = []
        if k < 0 or k >= len(bodies) - 1:
            k = int(np.clip(k, 0, len(bodies) - 2))
            flags.append("outside_column")
        up, lo = bodies[k], bodies[k + 1]
        axis = up.axis + lo.axis
        axis /= np.linalg.norm(axis)
        across = _perp(axis)
        d = pix - c
        a, l = d @ across, d @ axis
        lo_a, hi_a = np.percentile(a, [25, 75])
        sel = (a >= lo_a) & (a <= hi_a)
        cols = np.round(a[sel]).astype(int)
        ext = [np.ptp(l[sel][cols == v]) for v in np.unique(cols)]
        h = float(np.median(ext) + pad) if ext else float("nan")
        out.append(Disc(k, c, h, int(len(pix)), flags))
    # two components in one gap: keep both but flag them
    seen: Dict[int, int] = {}
    for d in out:
        seen[d.upper] = seen.get(d.upper, 0) + 1
    for d in out:
        if seen[d.upper] > 1:
            d.flags.append("several_in_gap")
    return sorted(out, key=lambda d: d.upper)

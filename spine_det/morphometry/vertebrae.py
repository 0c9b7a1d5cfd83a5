"""Instances -> ordered vertebral bodies with a robust orientation and four corners.

Why not sort by y: on a lordotic / scoliotic column, with a vertebra split in two
or two fused into one, y-order mislabels levels. We fit a smooth curve through the
centroids (in the column's own PCA frame, outliers trimmed), order bodies by arc
length along it, and orient each body by its endplates (refined from the curve
tangent), so that tilt, wedging and curvature do not bias the corners.

Conventions (image pixels, x = column, y = row):

* ``axis``: unit vector along the column, pointing caudally (down the spine).
* ``across``: unit vector perpendicular to it, pointing from side ``a`` to side
  ``b``. LAT: a = anterior, b = posterior. AP: a = image left, b = image right.
* ``corners``: ``(4, 2)`` float (x, y) in the order superior-a, superior-b,
  inferior-b, inferior-a (LAT: sup-ant, sup-post, inf-post, inf-ant).

Corners are mask *pixel centres*; lengths between them miss about one pixel
(half a pixel at each end), which :data:`PIXEL_PAD` adds back.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

logger = logging.getLogger(__name__)

PIXEL_PAD = 1.0  # px added to lengths measured between extreme pixel centres
MERGED_AREA = 1.7  # area > this x median area -> "merged"
MERGED_HEIGHT = 1.6  # height > this x neighbours' median -> "merged"
MISSING_GAP = 1.6  # centroid gap > this x median spacing -> "missing level"
FRAGMENT_AREA = 0.45  # area < this x median -> fragment (a split vertebra or a speck)
MIN_AREA_FRACTION = 0.08  # components under this x median area are dropped as noise

SPLIT_GAP = 0.55  # centroid gap < this x median spacing -> two pieces of one vertebra
BAD_FLAGS = ("merged", "fragment", "partial", "split")  # bodies not measured / not used as neighbours


@dataclass
class Body:
    """One vertebral body measured in the image (pixels)."""

    index: int  # order along the spine, 0 = most cranial
    centroid: np.ndarray  # (x, y)
    area: int
    t: float  # arc length of the centroid's projection on the spine curve (px)
    axis: np.ndarray  # unit, caudal
    across: np.ndarray  # unit, side a -> side b
    corners: np.ndarray  # (4, 2): sup_a, sup_b, inf_b, inf_a
    pixels: np.ndarray = field(repr=False)  # (N, 2) float (x, y) pixel centres
    flags: List[str] = field(default_factory=list)
    touches_border: bool = False

    def local(self, pts: np.ndarray) -> np.ndarray:
        """(N, 2) image points -> (N, 2) (across, along) coordinates about the centroid."""
        d = np.asarray(pts, dtype=np.float64) - self.centroid
        return np.stack([d @ self.across, d @ self.axis], axis=-1)

    @property
    def ok(self) -> bool:
        """Trustworthy for measurement (no merge / fragment / border flag)."""
        return not any(f in self.flags for f in BAD_FLAGS)


@dataclass
class SpineCurve:
    """A smooth curve through the body centroids: ``r = poly(s)`` in a PCA frame."""

    mean: np.ndarray
    e_s: np.ndarray  # unit, along the column (caudal)
    e_r: np.ndarray  # unit, perpendicular
    coef: np.ndarray  # np.polyfit coefficients of r(s)
    s_range: Tuple[float, float]
    samples: np.ndarray = field(repr=False)  # (M, 2) dense points
    arc: np.ndarray = field(repr=False)  # (M,) cumulative arc length

    def project(self, pts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Arc length and unit caudal tangent at the nearest curve point of each (x, y)."""
        pts = np.atleast_2d(np.asarray(pts, dtype=np.float64))
        d2 = ((pts[:, None, :] - self.samples[None, :, :]) ** 2).sum(-1)
        k = d2.argmin(axis=1)
        return self.arc[k], self.tangent_at(k)

    def tangent_at(self, k: np.ndarray) -> np.ndarray:
        s = self._s[k]
        dr = np.polyval(np.polyder(self.coef), s) if len(self.coef) > 1 else np.zeros_like(s)
        tan = self.e_s[None, :] + dr[:, None] * self.e_r[None, :]
        return tan / np.linalg.norm(tan, axis=1, keepdims=True)

    _s: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]


def fit_spine_curve(centroids: np.ndarray, degree: int = 3, margin: float = 0.25) -> SpineCurve:
    """Fit ``r(s)`` through centroids in their PCA frame, trimming outliers (> 3 MAD) twice."""
    c = np.asarray(centroids, dtype=np.float64).reshape(-1, 2)
    if len(c) == 0:
        raise ValueError("no centroids to fit a spine curve through")
    mean = c.mean(0)
    if len(c) >= 2:
        _, _, vt = np.linalg.svd(c - mean, full_matrices=False)
        e_s = vt[0]
    else:
        e_s = np.array([0.0, 1.0])
    if e_s[1] < 0:  # caudal = down the image
        e_s = -e_s
    e_r = np.array([-e_s[1], e_s[0]])
    s = (c - mean) @ e_s
    r = (c - mean) @ e_r
    deg = int(max(0, min(degree, len(c) - 3 if len(c) >= 4 else len(c) - 1)))
    keep = np.ones(len(c), dtype=bool)
    coef = np.array([0.0])
    for _ in range(3):
        d = min(deg, max(0, int(keep.sum()) - 2))
        coef = np.polyfit(s[keep], r[keep], d) if keep.sum() > d else np.array([float(np.median(r))])
        res = np.abs(r - np.polyval(coef, s))
        mad = np.median(res[keep]) + 1e-6
        new_keep = res <= max(3.0 * 1.4826 * mad, 2.0)
        if new_keep.sum() < max(3, deg + 2) or (new_keep == keep).all():
            break
        keep = new_keep
    lo, hi = float(s.min()), float(s.max())
    span = max(hi - lo, 1.0)
    ss = np.linspace(lo - margin * span - 50, hi + margin * span + 50, 2000)
    pts = mean + ss[:, None] * e_s + np.polyval(coef, ss)[:, None] * e_r
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    curve = SpineCurve(mean, e_s, e_r, coef, (lo, hi), pts, arc)
    curve._s = ss
    return curve


def components(mask: np.ndarray, min_area: int = 20) -> List[np.ndarray]:
    """8-connected components of a binary mask as boolean masks (tiny specks dropped)."""
    m = (np.asarray(mask) > 0).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    return [lab == i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area]


def _pixels(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.stack([xs, ys], axis=-1).astype(np.float64)


def _rect_axis(pix: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """The minimum-area rectangle side direction closest to ``hint`` (unit, same sense)."""
    if len(pix) < 5:
        return hint
    (_, _), (_, _), ang = cv2.minAreaRect(pix.astype(np.float32))
    a = np.deg2rad(ang)
    cands = [np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])]
    best = max(cands, key=lambda d: abs(float(d @ hint)))
    return best if best @ hint >= 0 else -best


def _corners(loc: np.ndarray) -> np.ndarray:
    """Indices of the 4 extreme pixels along the scaled diagonals: sup_a, sup_b, inf_b, inf_a."""
    ha = max(np.ptp(loc[:, 0]) / 2, 1.0)
    hl = max(np.ptp(loc[:, 1]) / 2, 1.0)
    a, l = loc[:, 0] / ha, loc[:, 1] / hl
    return np.array([np.argmax(-a - l), np.argmax(a - l), np.argmax(a + l), np.argmax(-a + l)])


def orient_body(pix: np.ndarray, hint_axis: np.ndarray, across_sign: np.ndarray, iterations: int = 3) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Axis, across vector and corners of one body.

    Starts from the minimum-area-rectangle side nearest the curve tangent (falls
    back to the tangent when they disagree by > 30 deg), then re-estimates the
    axis as the normal of the mean endplate direction (sup_a->sup_b, inf_a->inf_b).
    ``across_sign`` is any vector pointing roughly from side a to side b.
    """
    centroid = pix.mean(0)
    hint = hint_axis / np.linalg.norm(hint_axis)
    axis = _rect_axis(pix, hint)
    if abs(float(axis @ hint)) < np.cos(np.deg2rad(30)):
        axis = hint
    across = np.array([-axis[1], axis[0]])
    if across @ across_sign < 0:
        across = -across
    idx = _corners(np.stack([(pix - centroid) @ across, (pix - centroid) @ axis], -1))
    for _ in range(iterations):
        c = pix[idx]
        e = (c[1] - c[0]) + (c[2] - c[3])
        if np.linalg.norm(e) < 1e-6:
            break
        across_new = e / np.linalg.norm(e)
        axis_new = np.array([across_new[1], -across_new[0]])
        if axis_new @ axis < 0:
            axis_new = -axis_new
        if abs(float(axis_new @ hint)) < np.cos(np.deg2rad(40)):
            break  # endplates implausible (merged / odd shape): keep the previous frame
        axis, across = axis_new, np.array([-axis_new[1], axis_new[0]])
        if across @ across_sign < 0:
            across = -across
        new_idx = _corners(np.stack([(pix - centroid) @ across, (pix - centroid) @ axis], -1))
        if (new_idx == idx).all():
            break
        idx = new_idx
    return axis, across, pix[idx].copy(), centroid


def extract_bodies(
    instances: Sequence[np.ndarray],
    side_a: str = "left",
    min_area_fraction: float = MIN_AREA_FRACTION,
) -> Tuple[List[Body], Optional[SpineCurve]]:
    """Order instance masks along the spine and orient each; flag merged / fragment / partial ones.

    ``side_a``: which image side is side ``a`` of the across vector ("left" or
    "right"); LAT: the anterior side, AP: "left".
    """
    if side_a not in ("left", "right"):
        raise ValueError(f"side_a must be 'left' or 'right', got {side_a!r}")
    masks = [np.asarray(m) > 0 for m in instances]
    masks = [m for m in masks if m.any()]
    if not masks:
        return [], None
    areas = np.array([m.sum() for m in masks], dtype=np.float64)
    med = float(np.median(areas))
    masks = [m for m, a in zip(masks, areas) if a >= min_area_fraction * med]
    masks, rejoined = _rejoin_split(masks, med)
    masks, notes = _separate_touching(masks, med, ["rejoined" if r else "" for r in rejoined])
    pix_list = [_pixels(m) for m in masks]
    cents = np.array([p.mean(0) for p in pix_list])
    curve = fit_spine_curve(cents)
    t, tan = curve.project(cents)
    order = np.argsort(t)
    sign = np.array([1.0, 0.0]) if side_a == "left" else np.array([-1.0, 0.0])
    bodies: List[Body] = []
    for rank, k in enumerate(order):
        pix = pix_list[k]
        # across_sign: perpendicular to the tangent, pointing to side b in the image
        tn = tan[k]
        perp = np.array([-tn[1], tn[0]])
        if perp @ sign < 0:
            perp = -perp
        axis, across, corners, c = orient_body(pix, tn, perp)
        m = masks[k]
        border = bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
        bodies.append(Body(rank, c, int(len(pix)), float(t[k]), axis, across, corners, pix, touches_border=border))
        if notes[k]:
            bodies[-1].flags.append(notes[k])
    flag_bodies(bodies)
    return bodies, curve


def _rejoin_split(masks: List[np.ndarray], med_area: float) -> Tuple[List[np.ndarray], List[bool]]:
    """Union pairs of small pieces that lie closer than SPLIT_GAP x the median spacing and add up to one body.

    A vertebra split across two instances is a known failure of 2-D segmenters;
    measuring each half would report two crushed vertebrae.
    """
    rejoined = [False] * len(masks)
    if len(masks) < 4:
        return masks, rejoined
    cents = np.array([_pixels(m).mean(0) for m in masks])
    curve = fit_spine_curve(cents)
    t, _ = curve.project(cents)
    order = list(np.argsort(t))
    gaps = np.diff(t[order])
    med_gap = float(np.median(gaps))
    areas = np.array([m.sum() for m in masks], dtype=np.float64)
    out: List[np.ndarray] = []
    flags: List[bool] = []
    i = 0
    while i < len(order):
        k = order[i]
        if i + 1 < len(order):
            k2 = order[i + 1]
            small = areas[k] < 0.8 * med_area and areas[k2] < 0.8 * med_area
            if small and gaps[i] < SPLIT_GAP * med_gap and areas[k] + areas[k2] < 1.4 * med_area:
                out.append(masks[k] | masks[k2])
                flags.append(True)
                i += 2
                continue
        out.append(masks[k])
        flags.append(rejoined[k])
        i += 1
    return out, flags


def _separate_touching(
    masks: List[np.ndarray], med_area: float, notes: List[str], max_iter: int = 6
) -> Tuple[List[np.ndarray], List[str]]:
    """Cut components of > MERGED_AREA x median area that erode apart into >= 2 body-sized cores.

    Neighbouring masks drawn with soft edges often touch at a corner across a
    thin disc; a few erosions split them, and each pixel goes back to its
    nearest core. Truly fused blobs do not split and stay "merged".
    """
    out: List[np.ndarray] = []
    done: List[str] = []
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    for m, note in zip(masks, notes):
        if m.sum() <= MERGED_AREA * med_area:
            out.append(m)
            done.append(note)
            continue
        cur = m.astype(np.uint8)
        pieces: List[np.ndarray] = []
        for _ in range(max_iter):
            cur = cv2.erode(cur, kernel)
            n, lab, stats, _ = cv2.connectedComponentsWithStats(cur, connectivity=8)
            big = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= 0.3 * med_area]
            if len(big) >= 2:
                seeds = np.zeros(m.shape, np.int32)
                for k, i in enumerate(big, 1):
                    seeds[lab == i] = k
                # nearest core for every pixel of the original component
                dist = []
                for k in range(1, len(big) + 1):
                    dist.append(cv2.distanceTransform((seeds != k).astype(np.uint8), cv2.DIST_L2, 3))
                owner = np.argmin(np.stack(dist), 0)
                pieces = [m & (owner == k) for k in range(len(big))]
                break
            if not big:
                break
        if pieces:
            out.extend(pieces)
            done.extend(["separated"] * len(pieces))
        else:
            out.append(m)
            done.append(note)
    return out, done


def body_height(b: Body) -> float:
    """Extent of the body along its axis (px), for merge checks."""
    loc = b.local(b.pixels)
    return float(np.ptp(loc[:, 1]) + PIXEL_PAD)


def flag_bodies(bodies: List[Body]) -> None:
    """Add "merged", "fragment", "partial", "missing_above" / "missing_below" flags in place."""
    if not bodies:
        return
    areas = np.array([b.area for b in bodies], dtype=np.float64)
    heights = np.array([body_height(b) for b in bodies])
    med_area = float(np.median(areas))
    depths = np.array([float(np.ptp(b.local(b.pixels)[:, 0])) for b in bodies])
    med_depth = float(np.median(depths))
    for i, b in enumerate(bodies):
        if b.touches_border:
            b.flags.append("partial")
        nb = [heights[j] for j in range(max(0, i - 2), min(len(bodies), i + 3)) if j != i]
        nb_h = float(np.median(nb)) if nb else heights[i]
        if areas[i] > MERGED_AREA * med_area or (len(nb) >= 2 and heights[i] > MERGED_HEIGHT * nb_h):
            b.flags.append("merged")
        elif areas[i] < FRAGMENT_AREA * med_area and not b.touches_border and depths[i] < 0.7 * med_depth:
            # small AND narrow: a speck or a piece; a crushed body keeps its full depth
            b.flags.append("fragment")
    if len(bodies) >= 3:
        ts = np.array([b.t for b in bodies])
        gaps = np.diff(ts)
        # spacing between trustworthy neighbours, so a merged body does not inflate the median
        good = [g for g, a, c in zip(gaps, bodies[:-1], bodies[1:]) if a.ok and c.ok]
        med_gap = float(np.median(good if good else gaps))
        for i, g in enumerate(gaps):
            a, c = bodies[i], bodies[i + 1]
            if "merged" in a.flags or "merged" in c.flags:
                continue
            if g > MISSING_GAP * med_gap:
                a.flags.append("missing_below")
                c.flags.append("missing_above")
            elif g < SPLIT_GAP * med_gap:
                for x in (a, c):
                    if "split" not in x.flags:
                        x.flags.append("split")


def gap_levels(bodies: Sequence[Body]) -> List[int]:
    """Estimated number of missing levels in each gap between consecutive bodies."""
    if len(bodies) < 3:
        return [0] * max(0, len(bodies) - 1)
    ts = np.array([b.t for b in bodies])
    gaps = np.diff(ts)
    med = float(np.median(gaps))
    return [max(0, int(round(g / med)) - 1) if "missing_below" in a.flags else 0 for g, a in zip(gaps, bodies[:-1])]


def instances_from_label_map(labels: np.ndarray) -> List[np.ndarray]:
    """Instance masks from an integer label image (0 = background)."""
    lab = np.asarray(labels)
    return [lab == v for v in np.unique(lab) if v != 0]

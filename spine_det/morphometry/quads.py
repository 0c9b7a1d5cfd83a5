"""Vertebra masks -> ordered vertebral-body quadrilaterals (TL, TR, BL, BR) for Cobb angles.

Three steps, each usable alone:

* :func:`fit_quad`: one instance mask -> its four corners. ``"endplates"`` fits a
  line to the upper and to the lower boundary (and to both sides) in the body's
  own frame and intersects them, so a wedged body keeps two different endplate
  tilts; ``"rect"`` takes the minimum-area rectangle (one tilt for both);
  ``"sides"`` takes the direction from the two lateral borders only (for pieces
  cut out of a merged mask, whose upper / lower borders are cut lines).
* :func:`order_instances`: instance masks (e.g. a Mask R-CNN label map) -> masks
  ordered top to bottom along a curve through their centroids, with specks
  dropped and the two pieces of one vertebra (same level, small) united.
* :func:`split_semantic`: one binary mask (e.g. LinkNet) -> instance masks:
  connected components, then merged neighbours cut at the minima of the mask's
  width profile along the spine's centreline (the discs).

:func:`quads_from_instances` / :func:`quads_from_mask` chain them. Corners are
pixel (x, y) with x = column, y = row, in the dataset's order TL, TR, BL, BR;
rasterise with :func:`rasterise_quads` for the inverse direction (tests, ceilings).
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks
from scipy.spatial import cKDTree

from spine_det.morphometry.vertebrae import fit_spine_curve

FIT_METHODS = ("endplates", "rect", "sides")
MIN_AREA_FRACTION = 0.2  # instances under this x median area are specks
SAME_LEVEL_GAP = 0.45  # centroid gap < this x median gap -> the same level (two pieces or a duplicate)
DISC_DEPTH = 0.2  # a width minimum is a disc when this much shallower than the bodies either side
MIN_PITCH_FRACTION = 0.35  # discs at least this x the median body width apart
NOTCH_DEPTH = 0.04  # a border notch (disc) at least this x the body width deep sets the cut's tilt
MERGED_PITCHES = 1.45  # a component longer than this x the pitch along the spine holds several bodies
PITCH_PER_WIDTH = 0.9  # body height + disc over body width on AP views (AASCE landmarks: (85 + 38) / 138 px)


# ----------------------------------------------------------------------------- rasterising


def _polygon(quad: np.ndarray) -> np.ndarray:
    """TL, TR, BL, BR -> the polygon TL, TR, BR, BL."""
    q = np.asarray(quad, dtype=np.float64).reshape(4, 2)
    return q[[0, 1, 3, 2]]


def fill_quad(quad, shape: Tuple[int, int], offset=(0.0, 0.0)) -> np.ndarray:
    """Boolean mask of one quadrilateral (sub-pixel vertices; ``offset`` is subtracted from the corners)."""
    shift = 4
    poly = np.round((_polygon(quad) - np.asarray(offset, dtype=np.float64)) * (1 << shift)).astype(np.int32)
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [poly], 1, lineType=cv2.LINE_8, shift=shift)
    return m.astype(bool)


def rasterise_quads(corners, shape: Tuple[int, int]) -> np.ndarray:
    """uint16 label map, k = k-th quadrilateral (1-based, top first); overlaps go to the lower one."""
    lab = np.zeros(shape, np.uint16)
    for k, q in enumerate(np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2), 1):
        lab[fill_quad(q, shape)] = k
    return lab


# ----------------------------------------------------------------------------- one instance


def _pixels(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.stack([xs, ys], axis=-1).astype(np.float64)


def _frame(pix: np.ndarray, axis_hint: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(across, axis): the minimum-area-rectangle sides, ``axis`` the one nearest ``axis_hint`` (caudal),
    ``across`` pointing to the image right."""
    hint = np.asarray(axis_hint, dtype=np.float64)
    hint = hint / (np.linalg.norm(hint) or 1.0)
    axis = hint
    if len(pix) >= 5:
        (_, _), (_, _), ang = cv2.minAreaRect(pix.astype(np.float32))
        a = np.deg2rad(ang)
        cands = [np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])]
        axis = max(cands, key=lambda d: abs(float(d @ hint)))
        if axis @ hint < 0:
            axis = -axis
    across = np.array([-axis[1], axis[0]])  # rotate axis by -90 deg: (0, 1) -> (-1, 0)
    if across[0] < 0 or (across[0] == 0 and across[1] < 0):
        across = -across
    return across, axis


def _edge_line(u: np.ndarray, w: np.ndarray, lower: bool, trim: float = 0.15) -> Tuple[float, float]:
    """Line w = a * u + b through the extreme w (min, or max if ``lower``) of each 1-px bin of u,
    over the central (1 - 2 * trim) of the u range (corners are rounded in masks), least squares
    with one pass of outlier trimming."""
    bins = np.floor(u).astype(np.int64)
    order = np.lexsort((-w if lower else w, bins))
    b_sorted = bins[order]
    first = np.ones(len(order), bool)
    first[1:] = b_sorted[1:] != b_sorted[:-1]
    uu, ww = u[order][first], w[order][first]
    lo, hi = np.quantile(uu, [trim, 1 - trim]) if len(uu) > 4 else (uu.min(), uu.max())
    keep = (uu >= lo) & (uu <= hi)
    if keep.sum() < 2:
        keep = np.ones(len(uu), bool)
    if len(np.unique(uu[keep])) < 2:
        return 0.0, float(ww[keep].mean())
    a, b = np.polyfit(uu[keep], ww[keep], 1)
    res = np.abs(ww[keep] - (a * uu[keep] + b))
    tol = max(2.0, 3.0 * np.median(res))
    k2 = res <= tol
    if k2.sum() >= 2 and not k2.all() and len(np.unique(uu[keep][k2])) >= 2:
        a, b = np.polyfit(uu[keep][k2], ww[keep][k2], 1)
    return float(a), float(b)


def _intersect(end: Tuple[float, float], side: Tuple[float, float]) -> np.ndarray:
    """Intersection of w = a u + b (endplate) and u = c w + d (side), as (u, w)."""
    a, b = end
    c, d = side
    den = 1.0 - a * c
    if abs(den) < 1e-9:
        den = 1e-9
    w = (a * d + b) / den
    return np.array([c * w + d, w])


def fit_quad(mask: np.ndarray, method: str = "endplates", axis_hint=(0.0, 1.0), offset=(0.0, 0.0)) -> np.ndarray:
    """(4, 2) corners TL, TR, BL, BR of one vertebral-body mask, image pixels.

    ``axis_hint``: the spine's caudal direction here (default: down the image);
    picks which rectangle side is the body's axis. ``offset`` (x, y) is added to
    the result (for masks cropped out of a larger image).
    """
    if method not in FIT_METHODS:
        raise ValueError(f"unknown fit method {method!r}; expected one of {FIT_METHODS}")
    pix = _pixels(np.asarray(mask) > 0)
    if len(pix) < 3:
        raise ValueError(f"mask has {len(pix)} pixels; a body needs at least 3")
    across, axis = _frame(pix, np.asarray(axis_hint, dtype=np.float64))
    c0 = pix.mean(0)
    d = pix - c0
    u, w = d @ across, d @ axis
    if method == "sides":
        # the body's lateral borders fix its direction; its ends are cut lines, not endplates
        left = _edge_line(w, u, lower=False)
        right = _edge_line(w, u, lower=True)
        slope = 0.5 * (left[0] + right[0])  # du/dw of the mean side
        ax = np.array([slope, 1.0]) / math.hypot(slope, 1.0)  # (u, w) of the side direction
        ac = np.array([ax[1], -ax[0]])
        pu, pw = u * ac[0] + w * ac[1], u * ax[0] + w * ax[1]
        lu = np.array([pu.min() - 0.5, pu.max() + 0.5])
        lw = np.array([pw.min() - 0.5, pw.max() + 0.5])
        box = np.array([[lu[0], lw[0]], [lu[1], lw[0]], [lu[0], lw[1]], [lu[1], lw[1]]])
        local = box[:, :1] * ac + box[:, 1:] * ax
    elif method == "rect":
        lu = np.array([u.min() - 0.5, u.max() + 0.5])
        lw = np.array([w.min() - 0.5, w.max() + 0.5])
        local = np.array([[lu[0], lw[0]], [lu[1], lw[0]], [lu[0], lw[1]], [lu[1], lw[1]]])
    else:
        top = _edge_line(u, w, lower=False)
        bottom = _edge_line(u, w, lower=True)
        left = _edge_line(w, u, lower=False)
        right = _edge_line(w, u, lower=True)
        local = np.array([_intersect(top, left), _intersect(top, right), _intersect(bottom, left), _intersect(bottom, right)])
        # boundary pixel centres lie half a pixel inside the outline
        local += np.array([[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]])
        span_u, span_w = np.ptp(u) + 1, np.ptp(w) + 1
        if not np.isfinite(local).all() or (np.abs(local) > 2 * max(span_u, span_w)).any():
            return fit_quad(mask, "rect", axis_hint, offset)  # degenerate lines (a speck, a sliver)
    pts = c0 + local[:, :1] * across + local[:, 1:] * axis
    return pts + np.asarray(offset, dtype=np.float64)


# ----------------------------------------------------------------------------- many instances


def _bbox_crop(mask: np.ndarray, pad: int = 1) -> Tuple[np.ndarray, Tuple[int, int]]:
    ys, xs = np.nonzero(mask)
    y0, x0 = max(0, ys.min() - pad), max(0, xs.min() - pad)
    y1, x1 = ys.max() + pad + 1, xs.max() + pad + 1
    return mask[y0:y1, x0:x1], (x0, y0)


def order_instances(masks: Sequence[np.ndarray], min_area_fraction: float = MIN_AREA_FRACTION) -> List[np.ndarray]:
    """Instance masks ordered top to bottom along the spine; specks dropped, same-level pieces united.

    Two instances at (nearly) the same place along the spine are one vertebra
    seen twice or cut in two: they are united when together they are not bigger
    than a body (1.4 x median area), else the smaller one is dropped.
    """
    return [m for m, _ in _order(masks, min_area_fraction)]


def _order(masks: Sequence[np.ndarray], min_area_fraction: float = MIN_AREA_FRACTION,
           scores: Optional[Sequence[float]] = None, same_level_gap: float = SAME_LEVEL_GAP,
           ) -> List[Tuple[np.ndarray, List[int]]]:
    """:func:`order_instances`, each result with the indices of the input masks it came from. With
    ``scores``, of two same-level instances too big to unite the higher-scoring one stays (else the larger)."""
    rank = (lambda o, m: (max(scores[i] for i in o), m.sum())) if scores is not None else (lambda o, m: m.sum())
    ms = [(np.asarray(m) > 0, [i]) for i, m in enumerate(masks)]
    ms = [(m, o) for m, o in ms if m.any()]
    if not ms:
        return []
    areas = np.array([m.sum() for m, _ in ms], dtype=np.float64)
    med = float(np.median(areas))
    ms = [x for x, a in zip(ms, areas) if a >= min_area_fraction * med]
    if len(ms) < 3:
        return sorted(ms, key=lambda x: float(np.nonzero(x[0])[0].mean()))
    cents = np.array([_pixels(m).mean(0) for m, _ in ms])
    curve = fit_spine_curve(cents)
    t = _arc_positions(curve, cents)
    order = list(np.argsort(t))
    gaps = np.diff(t[order])
    med_gap = float(np.median(gaps)) if len(gaps) else 0.0
    med = float(np.median([m.sum() for m, _ in ms]))
    out: List[Tuple[np.ndarray, List[int]]] = []
    last_t = -np.inf
    for k in order:
        m, o = ms[k]
        if out and t[k] - last_t < same_level_gap * med_gap:
            prev, po = out[-1]
            union = prev | m
            if union.sum() <= 1.4 * med:
                out[-1] = (union, po + o)
            elif rank(o, m) > rank(po, prev):
                out[-1] = (m, o)
            last_t = float(_arc_positions(curve, _pixels(out[-1][0]).mean(0)[None])[0])
            continue
        out.append((m, o))
        last_t = float(t[k])
    return out


def _arc_positions(curve, pts: np.ndarray) -> np.ndarray:
    """Arc length of the nearest curve point of each point (a KD-tree: many pixels, many samples)."""
    return _curve_coords(curve, pts)[0]


def _curve_coords(curve, pts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(arc length t, signed offset s to the image-right of the curve) of each point."""
    p = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    _, idx = cKDTree(curve.samples).query(p)
    tan = np.gradient(curve.samples, axis=0)
    tan /= np.linalg.norm(tan, axis=1, keepdims=True)
    nrm = np.stack([-tan[:, 1], tan[:, 0]], axis=1)
    nrm[nrm[:, 0] < 0] *= -1  # towards the image right
    d = p - curve.samples[idx]
    # refined along the local tangent: continuous, not quantised to the sample spacing
    return curve.arc[idx] + (d * tan[idx]).sum(1), (d * nrm[idx]).sum(1)


def _disc_lines(cuts: Sequence[int], bins: np.ndarray, s: np.ndarray, width: float) -> List[Tuple[float, float, float, float, bool]]:
    """Per cut, the disc as a line in (t, s): through the deepest notch of the left border and of the
    right border within 0.3 x width of the cut (t_left, s_left, t_right, s_right). Perpendicular to the
    centreline (t_left = t_right = cut) where either notch is shallower than NOTCH_DEPTH x width
    (no visible disc on that side) or they would tilt the line more than 35 deg; the last field
    says whether the line follows notches (True) or is that perpendicular fallback."""
    nb = int(bins.max()) + 1
    left = np.full(nb, np.inf)
    right = np.full(nb, -np.inf)
    np.minimum.at(left, bins, s)
    np.maximum.at(right, bins, s)
    have = np.isfinite(left)
    idx = np.arange(nb)
    if have.sum() < 2:
        return [(float(c), 0.0, float(c), 1.0, False) for c in cuts]
    left = gaussian_filter1d(np.interp(idx, idx[have], left[have]), 1.5)
    right = gaussian_filter1d(np.interp(idx, idx[have], right[have]), 1.5)
    half = max(2, int(0.3 * width))
    lines = []
    for c in cuts:
        lo, hi = max(0, c - half), min(nb, c + half + 1)
        tl = lo + int(np.argmax(left[lo:hi]))  # the left border comes furthest in (largest s)
        tr = lo + int(np.argmin(right[lo:hi]))
        sl, sr = float(left[tl]), float(right[tr])
        # notch depths: how far each border comes in at the notch, against its course on both sides
        dl = sl - max(left[lo:tl + 1].min(), left[tl:hi].min())
        dr = min(right[lo:tr + 1].max(), right[tr:hi].max()) - sr
        real = min(dl, dr) >= max(2.0, NOTCH_DEPTH * width)
        if not real or sr - sl <= 1 or abs(tr - tl) > math.tan(math.radians(35)) * (sr - sl):
            tl = tr = c
            real = False
        lines.append((float(tl), sl, float(tr), sr if sr > sl else sl + 1.0, bool(real)))
    return lines


def _centreline(mask: np.ndarray, degree: int = 5):
    """A smooth curve through the row centres of the mask (the spine's centreline on an AP view)."""
    ys, xs = np.nonzero(mask)
    rows = np.unique(ys)
    sums = np.bincount(ys, weights=xs, minlength=mask.shape[0])
    counts = np.bincount(ys, minlength=mask.shape[0])
    step = max(1, len(rows) // 400)
    r = rows[::step]
    centres = np.stack([sums[r] / counts[r], r.astype(np.float64)], axis=1)
    return fit_spine_curve(centres, degree=degree)


def _disc_cuts(profile: np.ndarray, width: float) -> Tuple[List[int], float]:
    """Where to cut a width profile (pixels per 1 px of arc) into vertebrae: indices of the cuts.

    Runs of zero width (real gaps) always separate. Inside each run of mask, the
    number of bodies is its length over the pitch (body + disc along the spine),
    the pitch being the median spacing of the clear discs (minima DISC_DEPTH below
    the bodies either side, and the gaps), or PITCH_PER_WIDTH x the median width
    when fewer than three are clear. The cuts are the deepest minima that keep
    every piece at least 0.6 pitch long; a piece still several pitches long is cut evenly.
    Returns the cuts and the pitch.
    """
    n = len(profile)
    if n < 5:
        return [], PITCH_PER_WIDTH * width
    sm = gaussian_filter1d(profile.astype(np.float64), sigma=max(1.0, 0.04 * width))
    on = profile > 0
    # runs of mask along the arc
    edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
    runs = list(zip(edges[0::2], edges[1::2]))  # [start, end)
    idx, _ = find_peaks(-sm, distance=max(2, int(MIN_PITCH_FRACTION * width)))
    depth = {}
    for i in idx:
        lo, hi = max(0, i - int(1.2 * width)), min(n, i + int(1.2 * width) + 1)
        ref = min(sm[lo:i].max(initial=0.0), sm[i + 1:hi].max(initial=0.0))
        if ref > 0 and on[i]:
            depth[int(i)] = sm[i] / ref
    clear = sorted([i for i, r in depth.items() if r <= 1.0 - DISC_DEPTH]
                   + [int((a + b) // 2) for (_, a), (b, _) in zip(runs[:-1], runs[1:])])
    spacing = np.diff(clear)
    prior = PITCH_PER_WIDTH * width
    pitch = float(np.median(spacing)) if len(spacing) >= 3 else prior
    if not 0.6 * prior <= pitch <= 1.4 * prior:  # too few clear discs to trust their spacing
        pitch = prior
    cuts: List[int] = []  # gaps between runs need no cut: the components are apart already
    for a, b in runs:
        k = int(round((b - a) / pitch))
        if k <= 1:
            continue
        inside = sorted((r, i) for i, r in depth.items() if a < i < b)
        chosen: List[int] = []
        for r, i in inside:
            if len(chosen) == k - 1 or r > 0.97:
                break
            pts = sorted([a, b] + chosen + [i])
            if min(np.diff(pts)) >= 0.6 * pitch:
                chosen.append(i)
        # pieces still holding several pitches (no dip between their bodies): cut evenly
        pts = sorted([a, b] + chosen)
        for lo, hi in zip(pts[:-1], pts[1:]):
            m = int(round((hi - lo) / pitch))
            chosen += [int(lo + j * (hi - lo) / m) for j in range(1, m)]
        cuts.extend(chosen)
    return _split_long_pieces(sorted(cuts), runs, depth), pitch


def _split_long_pieces(cuts: List[int], runs, depth, window: int = 3, ratio: float = 1.6) -> List[int]:
    """Cut again any piece at least ``ratio`` x as long as its neighbours' median (vertebrae grow
    down the spine, so one global pitch leaves two small upper bodies together): at its deepest
    minima when they leave pieces of at least 0.6 x that length, else evenly."""
    for _ in range(3):
        bounds = sorted(set([a for a, _ in runs] + [b for _, b in runs] + cuts))
        pieces = [(lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if any(a <= lo and hi <= b for a, b in runs)]
        lengths = np.array([hi - lo for lo, hi in pieces], dtype=np.float64)
        added = []
        for i, (lo, hi) in enumerate(pieces):
            nb = np.concatenate([lengths[max(0, i - window):i], lengths[i + 1:i + 1 + window]])
            if len(nb) < 2:
                continue
            ref = float(np.median(nb))
            k = int(round((hi - lo) / ref))
            if (hi - lo) < ratio * ref or k < 2:
                continue
            inside = sorted((r, j) for j, r in depth.items() if lo < j < hi)
            chosen: List[int] = []
            for _r, j in inside:
                if len(chosen) == k - 1:
                    break
                if min(np.diff(sorted([lo, hi] + chosen + [j]))) >= 0.6 * ref:
                    chosen.append(j)
            if len(chosen) < k - 1:
                chosen = [int(lo + j * (hi - lo) / k) for j in range(1, k)]
            added += chosen
        if not added:
            break
        cuts = sorted(cuts + added)
    return cuts


def split_semantic(mask: np.ndarray, min_area: int = 20) -> List[np.ndarray]:
    """A binary vertebra mask -> one mask per vertebra (unordered; see :func:`order_instances`).

    Connected components first; touching neighbours are cut apart where the
    mask's width along the spine (pixel count per unit of arc length of its
    centreline) dips: at the discs. Each cut runs along the disc, from the notch
    of the left border to the notch of the right border near the dip.
    """
    return _split(mask, min_area)[0]


def _split(mask: np.ndarray, min_area: int = 20) -> Tuple[List[np.ndarray], List[Optional[str]]]:
    """:func:`split_semantic`, plus per piece the corner fit it needs: None for a whole component
    (the caller's choice), "endplates" when cut along notched discs, "sides" when cut across."""
    m = np.asarray(mask) > 0
    if not m.any():
        return [], []
    n, lab, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    keep = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area]
    if not keep:
        return [], []
    fg = np.isin(lab, keep)
    ys, xs = np.nonzero(fg)
    pix = np.stack([xs, ys], axis=1).astype(np.float64)
    curve = _centreline(fg)
    t, s = _curve_coords(curve, pix)
    t0 = np.floor(t.min())
    bins = (t - t0).astype(np.int64)
    profile = np.bincount(bins).astype(np.float64)  # pixels per 1 px of arc = width
    width = float(np.median(profile[profile > 0]))
    cuts, pitch = _disc_cuts(profile, width)
    # which slab between the disc lines: the number of lines the pixel lies below
    seg = np.zeros(len(t), np.int64)
    lines = _disc_lines(cuts, bins, s, width)
    for tl, sl, tr, sr, _ in lines:
        seg += (t - t0) > tl + (s - sl) * (tr - tl) / (sr - sl)
    comp = lab[ys, xs]
    # a component shorter than MERGED_PITCHES x the pitch along the spine is one body (tilted bodies
    # overlap their neighbours along the arc, so a cut meant for a merged neighbour may cross it): uncut
    t_lo = np.full(n, np.inf)
    t_hi = np.full(n, -np.inf)
    np.minimum.at(t_lo, comp, t)
    np.maximum.at(t_hi, comp, t)
    single = (t_hi - t_lo) < MERGED_PITCHES * pitch
    seg[single[comp]] = 0
    key = comp.astype(np.int64) * (len(cuts) + 2) + seg
    keys, counts = np.unique(key, return_counts=True)
    n_pieces = np.bincount(keys // (len(cuts) + 2))
    pieces: List[np.ndarray] = []
    fits: List[Optional[str]] = []
    for k, cnt in zip(keys, counts):
        if cnt < min_area:
            continue
        sel = key == k
        piece = np.zeros(m.shape, bool)
        piece[ys[sel], xs[sel]] = True
        pieces.append(piece)
        if n_pieces[k // (len(cuts) + 2)] <= 1:
            fits.append(None)  # a whole component: its borders are its own
            continue
        j = int(k % (len(cuts) + 2))  # between lines j - 1 and j
        ends = [lines[i][4] for i in (j - 1, j) if 0 <= i < len(lines)]
        # ends cut along notched discs are endplates; a perpendicular cut is not, the sides are
        fits.append("endplates" if all(ends) else "sides")
    return pieces, fits


def quads_from_instances(masks: Sequence[np.ndarray], method: str = "endplates",
                         fits: Optional[Sequence[Optional[str]]] = None) -> np.ndarray:
    """Instance masks -> (N, 4, 2) corners, ordered top to bottom (see :func:`order_instances`).

    ``fits``: per mask, a fit method that overrides ``method`` (None: use ``method``);
    :func:`quads_from_mask` passes what each piece of a split needs.
    """
    return quads_of_ordered(_order(masks), method, fits)


def quads_of_ordered(ordered: Sequence[Tuple[np.ndarray, List[int]]], method: str = "endplates",
                     fits: Optional[Sequence[Optional[str]]] = None) -> np.ndarray:
    """(N, 4, 2) corners of masks already in spine order, one per vertebra (e.g. by
    :func:`spine_det.morphometry.levels.assign_levels`), each with the input indices it came from."""
    if not ordered:
        return np.zeros((0, 4, 2))
    cents = np.array([_pixels(m).mean(0) for m, _ in ordered])
    hints = _axis_hints(cents)
    out = []
    for (m, origin), h in zip(ordered, hints):
        crop, off = _bbox_crop(m)
        own = [fits[i] for i in origin if fits is not None and fits[i] is not None]
        use = own[0] if own and method == "endplates" else method
        out.append(fit_quad(crop, use, axis_hint=h, offset=off))
    return np.array(out)


def quads_from_mask(mask: np.ndarray, method: str = "endplates") -> np.ndarray:
    """A binary mask -> (N, 4, 2) corners: :func:`split_semantic`, then :func:`quads_from_instances`
    (pieces cut across a merged component without a visible disc are fitted by their sides)."""
    pieces, fits = _split(mask)
    return quads_from_instances(pieces, method, fits)


def _axis_hints(cents: np.ndarray) -> np.ndarray:
    """Caudal direction at each centroid from its neighbours (down the image for a lone one)."""
    n = len(cents)
    if n < 2:
        return np.tile([0.0, 1.0], (max(n, 0), 1))
    d = np.gradient(cents, axis=0)
    d[d[:, 1] < 0] *= -1
    norm = np.linalg.norm(d, axis=1, keepdims=True)
    d = np.where(norm > 0, d / np.where(norm > 0, norm, 1), [0.0, 1.0])
    return d


def instances_from_label_map(labels: np.ndarray) -> List[np.ndarray]:
    """Instance masks from an integer label image (0 = background), in label order."""
    lab = np.asarray(labels)
    return [lab == v for v in np.unique(lab) if v != 0]

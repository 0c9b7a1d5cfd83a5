"""Mask-free crop of the spine column, so the classifier spends its pixels on the vertebrae.

A fracture is a local height loss of one vertebral body: a few pixels in a whole
radiograph shrunk to classifier size. The column is found from the image alone
(no masks, so inference needs nothing else): vertebrae are the densest, most
edge-rich vertical band of a spine X-ray. We score each column by its *local
bone contrast* (the image minus a heavily blurred copy, positive part, plus its
gradient energy), smooth the score, and take the window of the requested width
with the highest score.

* :func:`find_spine_column` -> ``(x0, x1)``: one straight band (good for AP).
* :func:`spine_centerline` -> centre x for every row: the band re-found in
  horizontal slabs and fitted with a low-order polynomial, so it follows the
  lordosis of a lateral view.
* :func:`crop_spine` -> the crop itself: ``"column"`` (straight band) or
  ``"centerline"`` (each row resampled around the fitted centre line, which
  straightens a curved spine).
"""
from __future__ import annotations

from typing import Tuple

import cv2
import numpy as np

CROP_MODES = ("none", "column", "centerline")

_WORK_H = 256  # the search runs on a copy of this height (cheap, scale-free)


def _work_copy(img: np.ndarray) -> Tuple[np.ndarray, float]:
    """Grey float32 copy at about _WORK_H rows and its scale (work px / image px)."""
    if img.ndim == 3:
        img = img.mean(axis=2)
    a = img.astype(np.float32)
    s = min(1.0, _WORK_H / a.shape[0])
    if s < 1.0:
        a = cv2.resize(a, (max(1, round(a.shape[1] * s)), max(1, round(a.shape[0] * s))), interpolation=cv2.INTER_AREA)
    return a, s


def bone_energy(img: np.ndarray) -> np.ndarray:
    """Per-pixel evidence of bone: positive local contrast plus gradient magnitude, each scaled to [0, 1].

    The local mean is a Gaussian of sigma ~6% of the height, i.e. wider than a
    vertebral body: soft tissue and exposure gradients cancel, bone stays.
    """
    a = img.astype(np.float32)
    h = a.shape[0]
    sigma = max(2.0, 0.06 * h)
    local = np.clip(a - cv2.GaussianBlur(a, (0, 0), sigma), 0, None)
    sm = cv2.GaussianBlur(a, (0, 0), max(0.7, 0.004 * h))
    gx = cv2.Sobel(sm, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(sm, cv2.CV_32F, 0, 1, ksize=3)
    grad = np.sqrt(gx * gx + gy * gy)

    def unit(x: np.ndarray) -> np.ndarray:
        hi = float(np.percentile(x, 99.5))
        return np.clip(x / hi, 0, 1) if hi > 0 else x

    return unit(local) + unit(grad)


def _best_window(profile: np.ndarray, width: int) -> int:
    """Centre of the ``width``-wide window with the largest sum of ``profile``.

    The centre is the profile's centroid inside that window: when the band is
    narrower than the window, every window holding it ties, the centroid does not.
    """
    n = len(profile)
    width = int(max(1, min(width, n)))
    c = np.concatenate([[0.0], np.cumsum(profile, dtype=np.float64)])
    sums = c[width:] - c[: n - width + 1]
    x0 = int(np.argmax(sums))
    seg = profile[x0 : x0 + width]
    if seg.sum() <= 0:
        return x0 + width // 2
    return int(round(x0 + float((seg * np.arange(len(seg))).sum() / seg.sum())))


def _column_profile(energy: np.ndarray, rows: Tuple[int, int], margin: float) -> np.ndarray:
    """Column score over ``rows``, outer ``margin`` of the width zeroed (burned-in markers and labels)."""
    prof = energy[rows[0] : rows[1]].sum(axis=0).astype(np.float64)
    w = len(prof)
    m = int(round(margin * w))
    if m > 0:
        prof[:m] = 0
        prof[w - m :] = 0
    return cv2.GaussianBlur(prof.reshape(1, -1), (0, 0), max(1.0, 0.01 * w)).ravel()


def find_spine_column(
    img: np.ndarray, width_frac: float = 0.3, rows: Tuple[float, float] = (0.05, 0.75), margin: float = 0.08
) -> Tuple[int, int]:
    """``(x0, x1)`` in image pixels of the vertical band, ``width_frac`` of the image height wide,
    with the most bone evidence between the row fractions ``rows`` (the pelvis sits below 0.75).

    The band is clipped to the image; when the image is narrower than the band the whole width is returned.
    """
    a, s = _work_copy(img)
    H, W = a.shape
    prof = _column_profile(bone_energy(a), (int(rows[0] * H), max(int(rows[0] * H) + 1, int(rows[1] * H))), margin)
    bw = int(round(width_frac * H))
    c = _best_window(prof, bw) / s
    full_w = img.shape[1]
    half = width_frac * img.shape[0] / 2.0
    x0 = int(round(min(max(0.0, c - half), max(0.0, full_w - 2 * half))))
    return x0, int(min(full_w, round(x0 + 2 * half)))


def spine_centerline(
    img: np.ndarray, width_frac: float = 0.3, bands: int = 8, degree: int = 2, rows: Tuple[float, float] = (0.0, 0.8),
    margin: float = 0.08,
) -> np.ndarray:
    """Centre x (image px, float) of the spine for every image row.

    The band of ``width_frac`` is found in each of ``bands`` horizontal slabs of
    ``rows``, each search limited to +-``width_frac`` around the global column (so
    a rib or the pelvis cannot pull it away), and a polynomial of ``degree`` is
    fitted through the slab centres weighted by their evidence; rows above the
    first / below the last slab centre keep the fit's end value (no runaway
    extrapolation over the pelvis), clipped to the image.
    """
    a, s = _work_copy(img)
    H, W = a.shape
    e = bone_energy(a)
    r0, r1 = int(rows[0] * H), max(int(rows[0] * H) + bands, int(rows[1] * H))
    bw = int(round(width_frac * H))
    g = _best_window(_column_profile(e, (r0, r1), margin), bw)
    lo, hi = max(0, g - bw), min(W, g + bw + 1)
    ys, xs, ws = [], [], []
    edges = np.linspace(r0, r1, bands + 1).astype(int)
    for y0, y1 in zip(edges[:-1], edges[1:]):
        prof = _column_profile(e, (y0, y1), margin)[lo:hi]
        if prof.size == 0 or not np.isfinite(prof).all() or prof.max() <= 0:
            continue
        c = lo + _best_window(prof, bw)
        ys.append((y0 + y1) / 2.0)
        xs.append(float(c))
        ws.append(float(prof.max()))
    yy = np.arange(img.shape[0], dtype=np.float64) * s
    if len(ys) <= degree:
        cx = np.full(img.shape[0], g, dtype=np.float64)
    else:
        coef = np.polyfit(np.asarray(ys), np.asarray(xs), degree, w=np.sqrt(np.asarray(ws) / max(ws)))
        # hold the end values outside the fitted slabs: a polynomial runs away over the pelvis
        cx = np.polyval(coef, np.clip(yy, min(ys), max(ys)))
    return np.clip(cx / s, 0, img.shape[1] - 1)


def crop_spine(
    img: np.ndarray, mode: str = "centerline", width_frac: float = 0.3, rows: Tuple[float, float] = (0.0, 1.0)
) -> np.ndarray:
    """The spine crop of ``img``: rows ``rows`` (fractions of the height), ``width_frac`` x height wide.

    ``"none"`` returns ``img`` unchanged. Outside the image the crop is zero
    (like the letterbox padding). The search always looks at the whole image.
    """
    if mode == "none":
        return img
    if not (0.0 <= rows[0] < rows[1] <= 1.0):
        raise ValueError(f"crop rows must satisfy 0 <= start < end <= 1, got {tuple(rows)}")
    r0, r1 = int(round(rows[0] * img.shape[0])), max(1, int(round(rows[1] * img.shape[0])))
    if mode == "column":
        x0, x1 = find_spine_column(img, width_frac)
        return img[r0:r1, x0:x1].copy()
    if mode != "centerline":
        raise ValueError(f"unknown crop mode {mode!r}; expected one of {CROP_MODES}")
    cx = spine_centerline(img, width_frac)[r0:r1]
    w = max(1, int(round(width_frac * img.shape[0])))
    off = np.arange(w, dtype=np.float32) - (w - 1) / 2.0
    map_x = (cx.astype(np.float32)[:, None] + off[None, :]).astype(np.float32)
    map_y = np.repeat(np.arange(r0, r1, dtype=np.float32)[:, None], w, axis=1)
    return cv2.remap(img, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


__all__ = ["CROP_MODES", "bone_energy", "find_spine_column", "spine_centerline", "crop_spine"]

"""Cobb angles from vertebra corners, as the AASCE 2019 challenge (SpineWeb dataset 16) defines them.

The dataset's ``angles.csv`` is the output of the challenge organisers' MATLAB
script run on its landmarks; reproducing it (not a textbook Cobb rule) is what
makes a SMAPE against it meaningful. Read off that script, the definition is:

* Each vertebra has ONE direction, not two endplates: the vector from the
  midpoint of its left side, (TL + BL) / 2, to the midpoint of its right side,
  (TR + BR) / 2 -- the mean of its upper and lower endplate directions.
* Column 1 ("PT") is the largest angle between any two vertebrae: the major
  curve, wherever it lies. Its end vertebrae are ``u`` (upper) and ``l`` (lower).
* Whether the spine is "S"-shaped is decided on the centreline of the 2N
  endplate midpoints ((TL + TR) / 2, (BL + BR) / 2 per vertebra): S when the
  points 0 .. 2N-3 do not all lie (weakly) on one side of the chord from the
  first to the last point.
* Not S: column 2 ("MT") is the angle between the top vertebra and ``u``;
  column 3 ("TL") the angle between ``l`` and the bottom vertebra.
* S, and the major curve's ends (their lower-endplate midpoints, averaged) lie
  in the upper half of the image: MT = the largest angle between ``u`` and any
  vertebra above it (curve above the major one), TL = the largest between ``l``
  and any vertebra below it (curve below).
* S, major curve in the lower half: MT = the largest angle between ``u`` and a
  vertebra ``u2`` above it, TL = the largest between ``u2`` and a vertebra above
  ``u2`` (two curves above the major one).

So the three columns are named PT / MT / TL after the dataset, but column 1 is
always the largest curve; which anatomical region each column describes depends
on the case. :class:`CobbResult` therefore carries the end vertebrae of each.
The image height enters the definition (the "upper half" test), and angles
must be computed in pixels: the dataset's normalised landmarks are anisotropic
(x / width, y / height) and give different angles.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from spine_det.data.aasce import ANGLE_NAMES, VERTEBRA_NAMES  # the dataset's names

# Corner order of the (N, 4, 2) arrays, as in the dataset: TL, TR, BL, BR.


@dataclass
class CobbResult:
    """The three angles (degrees), the end vertebrae of each, and how the case was classified."""

    angles: Dict[str, float]
    ends: Dict[str, Tuple[int, int]]  # angle name -> (upper, lower) vertebra index, 0 = top
    s_curve: bool
    major_in_upper_half: Optional[bool]  # None when not S (the test is not made)
    names: List[str] = field(default_factory=list)  # vertebra names, index -> name

    def end_names(self) -> Dict[str, Tuple[str, str]]:
        return {k: (self.names[u], self.names[l]) for k, (u, l) in self.ends.items()}

    def as_list(self) -> List[float]:
        return [self.angles[k] for k in ANGLE_NAMES]


def _as_corners(corners) -> np.ndarray:
    c = np.asarray(corners, dtype=np.float64)
    if c.ndim == 2 and c.shape[1] == 2 and c.shape[0] % 4 == 0:
        c = c.reshape(-1, 4, 2)
    if c.ndim != 3 or c.shape[1:] != (4, 2):
        raise ValueError(f"corners must be (N, 4, 2) (TL, TR, BL, BR per vertebra), got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError("corners contain NaN or inf")
    return c


def vertebra_vectors(corners) -> np.ndarray:
    """(N, 2): left-side midpoint -> right-side midpoint of each vertebra (the direction the angles use)."""
    c = _as_corners(corners)
    return (c[:, 1] + c[:, 3]) / 2 - (c[:, 0] + c[:, 2]) / 2


def tilts_deg(corners) -> np.ndarray:
    """Signed tilt of each vertebra to the image horizontal, degrees (positive: right side lower)."""
    v = vertebra_vectors(corners)
    return np.degrees(np.arctan2(v[:, 1], v[:, 0]))


def endplate_midpoints(corners) -> np.ndarray:
    """(2N, 2): upper then lower endplate midpoint of each vertebra, top to bottom (the centreline)."""
    c = _as_corners(corners)
    top = (c[:, 0] + c[:, 1]) / 2
    bottom = (c[:, 2] + c[:, 3]) / 2
    return np.stack([top, bottom], axis=1).reshape(-1, 2)


def is_s_curve(centreline, tol: float = 0.0) -> bool:
    """True when points 0 .. M-3 of the centreline are not all on one side of the first-to-last chord.

    The reference tests the signs of (y_i - y_M)/(y_1 - y_M) - (x_i - x_M)/(x_1 - x_M);
    that is the cross product with the chord divided by a constant, so we use
    the cross product (same signs, no division by zero on a vertical chord).
    ``tol`` (pixels of signed distance) ignores points that close to the chord;
    0 reproduces the reference.
    """
    p = np.asarray(centreline, dtype=np.float64)
    if len(p) < 3:
        return False
    chord = p[0] - p[-1]
    d = p[: len(p) - 2] - p[-1]
    cross = chord[0] * d[:, 1] - chord[1] * d[:, 0]
    if tol > 0:
        cross = np.where(np.abs(cross) <= tol * np.linalg.norm(chord), 0.0, cross)
    return bool((cross > 0).any() and (cross < 0).any())


def pairwise_angles(vectors) -> np.ndarray:
    """(N, N) angles between the vertebra vectors, radians (cosines rounded to 8 decimals as the reference)."""
    v = np.asarray(vectors, dtype=np.float64)
    mod = np.linalg.norm(v, axis=1)
    if (mod <= 0).any():
        raise ValueError("a vertebra has coinciding left and right sides (zero-length direction)")
    cos = np.round((v @ v.T) / np.outer(mod, mod), 8)
    return np.arccos(np.clip(cos, -1.0, 1.0))


def cobb_angles(corners, image_height: float, names: Optional[Sequence[str]] = None, s_tol: float = 0.0) -> CobbResult:
    """The three AASCE Cobb angles of one spine (see the module docstring for the definition).

    ``corners``: (N, 4, 2) pixel (x, y) of TL, TR, BL, BR per vertebra, top to
    bottom (N >= 2; the dataset has N = 17, T1..L5). ``image_height`` in pixels
    (the S-curve branch compares the major curve with the image's mid-height).
    ``names``: one per vertebra (default T1..L5 when N = 17, else "#1", "#2", ...).
    """
    c = _as_corners(corners)
    n = len(c)
    if n < 2:
        raise ValueError(f"need at least 2 vertebrae for a Cobb angle, got {n}")
    if names is None:
        names = list(VERTEBRA_NAMES) if n == len(VERTEBRA_NAMES) else [f"#{i + 1}" for i in range(n)]
    elif len(names) != n:
        raise ValueError(f"{len(names)} names for {n} vertebrae")
    ang = pairwise_angles(vertebra_vectors(c))
    # column-wise max then the first maximal column: with a symmetric matrix that is the upper end vertebra
    maxt = ang.max(axis=0)
    u = int(np.argmax(maxt))
    lo = int(np.argmax(ang[:, u]))
    mid = endplate_midpoints(c)
    s = is_s_curve(mid, tol=s_tol)
    major_upper: Optional[bool] = None
    if not s:
        mt, mt_ends = ang[0, u], (0, u)
        tl, tl_ends = ang[n - 1, lo], (lo, n - 1)
    else:
        above = ang[u, : u + 1]
        u2 = int(np.argmax(above))
        mt, mt_ends = above[u2], (u2, u)
        # the lower-endplate midpoints of the two end vertebrae, against the image's mid-height
        major_upper = bool(mid[2 * u + 1, 1] + mid[2 * lo + 1, 1] < image_height)
        if major_upper:
            below = ang[lo, lo:]
            l2 = lo + int(np.argmax(below))
            tl, tl_ends = below[l2 - lo], (lo, l2)
        else:
            above2 = ang[u2, : u2 + 1]
            u3 = int(np.argmax(above2))
            tl, tl_ends = above2[u3], (u3, u2)
    deg = np.degrees([maxt[u], mt, tl])
    return CobbResult(
        angles={k: float(a) for k, a in zip(ANGLE_NAMES, deg)},
        ends={"PT": (u, lo), "MT": mt_ends, "TL": tl_ends},
        s_curve=s,
        major_in_upper_half=major_upper,
        names=list(names),
    )


# ----------------------------------------------------------------------------- metrics


def smape_per_image(pred, true) -> np.ndarray:
    """100 * sum|pred - true| / sum(pred + true) over the angles of each image (rows); 0/0 -> 0."""
    p = np.atleast_2d(np.asarray(pred, dtype=np.float64))
    t = np.atleast_2d(np.asarray(true, dtype=np.float64))
    if p.shape != t.shape:
        raise ValueError(f"prediction shape {p.shape} differs from ground truth shape {t.shape}")
    num = np.abs(p - t).sum(axis=1)
    den = (p + t).sum(axis=1)
    out = np.zeros(len(p))
    nz = den != 0
    out[nz] = 100.0 * num[nz] / den[nz]
    return out


def smape(pred, true) -> float:
    """The AASCE challenge metric: mean over images of :func:`smape_per_image` (percent)."""
    per = smape_per_image(pred, true)
    return float(per.mean()) if len(per) else float("nan")


def angle_scores(pred, true, names: Sequence[str] = ANGLE_NAMES) -> Dict[str, float]:
    """SMAPE (percent), MAE (degrees) per angle and over all angles, and the image count."""
    p = np.atleast_2d(np.asarray(pred, dtype=np.float64))
    t = np.atleast_2d(np.asarray(true, dtype=np.float64))
    err = np.abs(p - t)
    out: Dict[str, float] = {"n_images": int(len(p)), "smape": smape(p, t)}
    for i, k in enumerate(names):
        out[f"mae_{k}"] = float(err[:, i].mean()) if len(p) else float("nan")
    out["mae"] = float(err.mean()) if len(p) else float("nan")
    return out

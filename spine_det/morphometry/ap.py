"""AP morphometry: vertebral body widths and interpedicular distance per level.

A widened interpedicular distance at one level is the AP sign of a burst
fracture; a body wider than its neighbours hints at the same. Pedicles are
paired per level by position: each pedicle goes to the body whose span along the
spine curve holds its centroid (nearest body otherwise), then the most medial
pedicle on each side of the body's midline forms the pair. The distance is
between their *medial* borders (the radiological IPD), across the body axis.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from spine_det.morphometry.vertebrae import PIXEL_PAD, Body, SpineCurve, components


def body_width(b: Body, pad: float = PIXEL_PAD) -> float:
    """Mean length of the two endplates (corner to corner), px."""
    sa, sb, ib, ia = b.corners
    return float(0.5 * (np.linalg.norm(sb - sa) + np.linalg.norm(ib - ia)) + pad)


def pair_pedicles(
    pedicle_mask: Optional[np.ndarray], bodies: Sequence[Body], curve: Optional[SpineCurve], pad: float = PIXEL_PAD
) -> List[Dict[str, object]]:
    """Per body: its left/right pedicle centroids and the interpedicular distance (NaN if not both found)."""
    out: List[Dict[str, object]] = [
        {"ipd": float("nan"), "pedicles": [], "flags": []} for _ in bodies
    ]
    if pedicle_mask is None or curve is None or not bodies:
        return out
    ts = np.array([b.t for b in bodies])
    spans = []
    for b in bodies:
        loc = b.local(b.pixels)
        spans.append((loc[:, 1].min(), loc[:, 1].max()))
    per_body: List[List[np.ndarray]] = [[] for _ in bodies]
    for comp in components(pedicle_mask, min_area=4):
        ys, xs = np.nonzero(comp)
        pix = np.stack([xs, ys], -1).astype(np.float64)
        c = pix.mean(0)
        t, _ = curve.project(c[None])
        k = None
        for i, b in enumerate(bodies):
            along = float((c - b.centroid) @ b.axis)
            if spans[i][0] <= along <= spans[i][1]:
                k = i if k is None or abs(ts[i] - t[0]) < abs(ts[k] - t[0]) else k
        if k is None:
            k = int(np.argmin(np.abs(ts - t[0])))
        per_body[k].append(pix)
    for i, (b, peds) in enumerate(zip(bodies, per_body)):
        left = [p for p in peds if float((p.mean(0) - b.centroid) @ b.across) < 0]
        right = [p for p in peds if float((p.mean(0) - b.centroid) @ b.across) >= 0]
        rec = out[i]
        rec["pedicles"] = [[float(x) for x in p.mean(0)] for p in peds]
        if len(left) > 1 or len(right) > 1:
            rec["flags"].append("extra_pedicle")  # type: ignore[union-attr]
        if not left or not right:
            rec["flags"].append("pedicle_missing")  # type: ignore[union-attr]
            continue
        # the most medial component on each side
        lp = max(left, key=lambda p: float((p.mean(0) - b.centroid) @ b.across))
        rp = min(right, key=lambda p: float((p.mean(0) - b.centroid) @ b.across))
        l_edge = float(((lp - b.centroid) @ b.across).max())
        r_edge = float(((rp - b.centroid) @ b.across).min())
        # medial borders: the extreme pixel centres lie half a pixel inside each border
        rec["ipd"] = r_edge - l_edge - pad
        rec["pedicle_centre_distance"] = float(np.linalg.norm(rp.mean(0) - lp.mean(0)))
    return out

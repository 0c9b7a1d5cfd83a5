"""Dev: two statistics that compare the phantom's AP films and masks with real ones.

    python dev/real_vs_phantom_stats.py REAL_ROOT PHANTOM_ROOT [--n 40]

* contrast: (mean grey inside the vertebra mask - mean in a 4-px ring around it) / the image's grey SD,
  at 256 px height, for the top, middle and bottom third of the annotated column;
* gap: 1 - mean body height / mean centre spacing of consecutive annotated bodies (full resolution).
REAL_ROOT holds Training/<film>/AP/{AP.jpg,Ap_Vertebra.png} (training films only: calibration never
looks at the test split); PHANTOM_ROOT is make_phantom output.
"""
import argparse
from pathlib import Path

import cv2
import numpy as np


def contrast(pairs):
    out = []
    for im_p, m_p in pairs:
        g = cv2.imread(str(im_p), cv2.IMREAD_GRAYSCALE).astype(float)
        m = cv2.imread(str(m_p), cv2.IMREAD_GRAYSCALE) > 0
        s = 256 / g.shape[0]
        g = cv2.resize(g, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        m = cv2.resize(m.astype(np.uint8), (g.shape[1], g.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
        rows = np.flatnonzero(m.any(1))
        r0, r1 = rows[0], rows[-1]
        ring = cv2.dilate(m.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~m
        res = []
        for a, b in ((r0, r0 + (r1 - r0) // 3), (r0 + (r1 - r0) // 3, r0 + 2 * (r1 - r0) // 3), (r0 + 2 * (r1 - r0) // 3, r1)):
            band = np.zeros_like(m)
            band[a:b] = True
            res.append((g[m & band].mean() - g[ring & band].mean()) / g.std())
        out.append(res)
    return np.round(np.mean(out, 0), 3)


def gap(paths):
    out = []
    for p in paths:
        m = (cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) > 0).astype(np.uint8)
        n, lab, _, cen = cv2.connectedComponentsWithStats(m)
        if n < 4:
            continue
        idx = np.argsort(cen[1:, 1]) + 1
        hs = []
        for i in idx:
            ys, xs = np.nonzero(lab == i)
            (_, _), (w, h), _ = cv2.minAreaRect(np.stack([xs, ys], 1).astype(np.float32))
            hs.append(min(w, h))
        sp = np.linalg.norm(np.diff(cen[idx], axis=0), axis=1)
        out.append(1 - np.mean(hs) / np.mean(sp))
    return round(float(np.mean(out)), 3)


ap = argparse.ArgumentParser()
ap.add_argument("real", type=Path)
ap.add_argument("phantom", type=Path)
ap.add_argument("--n", type=int, default=40)
a = ap.parse_args()
for name, dirs in (("real", sorted(a.real.glob("Training/*/AP"))[: a.n]),
                   ("phantom", sorted(a.phantom.glob("Training/*/*/AP"))[: a.n])):
    pairs = [(d / "AP.jpg", d / "Ap_Vertebra.png") for d in dirs]
    print(f"{name}: contrast top/mid/bottom {contrast(pairs)}, gap {gap([q for _, q in pairs])} ({len(pairs)} films)")

#!/usr/bin/env python
"""Developer check: Cobb angles on the raw AASCE 2019 / SpineWeb-16 files, no importer needed.

    python dev/check_cobb_aasce.py --source path/to/boostnet_labeldata [--splits test training] [--mask-route]

1. From the ground-truth landmarks (``labels/<split>/landmarks.csv``: the x of the
   68 points, then their y, normalised by the image width / height; scaled to
   pixels with the JPEG's size), computes the three angles with
   ``spine_det.morphometry.cobb`` and scores them against ``angles.csv``.
2. With ``--mask-route``: rasterises each vertebra's quadrilateral into a mask,
   fits the corners back from the masks and scores again (the ceiling of
   measuring from perfect instance masks); then rasterises all quadrilaterals
   into ONE binary mask (touching neighbours merge), splits it into vertebrae
   and scores that (the ceiling of the semantic-mask route).

Prints aggregate figures only; writes nothing unless --out is given (then a
summary JSON of aggregate figures). The dataset is research-use only: nothing
derived from it belongs in the repository.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from spine_det.data.io import image_size
from spine_det.morphometry.cobb import angle_scores, cobb_angles


def load_split(source: Path, split: str):
    lab = source / "labels" / split
    with open(lab / "filenames.csv", newline="") as f:
        names = [r[0].strip() for r in csv.reader(f) if r]
    lm = np.loadtxt(lab / "landmarks.csv", delimiter=",", ndmin=2)
    ang = np.loadtxt(lab / "angles.csv", delimiter=",", ndmin=2)
    if not (len(names) == len(lm) == len(ang)) or lm.shape[1] != 136 or ang.shape[1] != 3:
        raise SystemExit(f"error: {lab}: {len(names)} names, landmarks {lm.shape}, angles {ang.shape}; expected N, (N, 136), (N, 3)")
    sizes = [image_size(source / "data" / split / n) for n in names]  # (h, w)
    corners = []
    for row, (h, w) in zip(lm, sizes):
        pts = np.stack([row[:68] * w, row[68:] * h], axis=1)  # all x, then all y
        corners.append(pts.reshape(17, 4, 2))
    return names, np.array(corners), ang, np.array(sizes)


def gt_route(corners, sizes):
    out, ss = [], 0
    for c, (h, _w) in zip(corners, sizes):
        r = cobb_angles(c, image_height=h)
        out.append(r.as_list())
        ss += r.s_curve
    return np.array(out), ss


def touching(c: np.ndarray) -> np.ndarray:
    """Quads grown along the spine until neighbours share an edge (each disc closed at its midpoint)."""
    c = c.copy()
    for k in range(len(c) - 1):
        mid_l = (c[k, 2] + c[k + 1, 0]) / 2
        mid_r = (c[k, 3] + c[k + 1, 1]) / 2
        c[k, 2], c[k + 1, 0] = mid_l, mid_l
        c[k, 3], c[k + 1, 1] = mid_r, mid_r
    return c


def _crop(c: np.ndarray, margin: int = 40):
    x0, y0 = np.floor(c.reshape(-1, 2).min(0)).astype(int) - margin
    x1, y1 = np.ceil(c.reshape(-1, 2).max(0)).astype(int) + margin
    return np.array([x0, y0], float), (int(y1 - y0), int(x1 - x0))


def mask_route_scores(corners, sizes, true, methods=("endplates", "rect"), routes=None):
    """Angles from rasterised GT quads: instances (fit back), semantic (split), semantic with touching quads."""
    import cv2

    from spine_det.morphometry.quads import instances_from_label_map, quads_from_instances, quads_from_mask, rasterise_quads

    preds = {}
    found = {}
    for c, (h, _w) in zip(corners, sizes):
        off, shape = _crop(c)
        local = c - off
        lab = rasterise_quads(local, shape)
        sem = lab > 0
        sem_touch = rasterise_quads(touching(local), shape) > 0
        sem_bridge = cv2.dilate(sem.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (41, 41))) > 0
        sem_bridge = cv2.erode(sem_bridge.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (31, 31))) > 0
        runs = {}
        for m in methods:
            runs[f"instances/{m}"] = lambda m=m, lab=lab: quads_from_instances(instances_from_label_map(lab), m)
        runs["semantic/endplates"] = lambda sem=sem: quads_from_mask(sem)
        runs["bridged/endplates"] = lambda sem_bridge=sem_bridge: quads_from_mask(sem_bridge)
        runs["touching/endplates"] = lambda sem_touch=sem_touch: quads_from_mask(sem_touch)
        for name, fn in runs.items():
            if routes and name not in routes:
                continue
            q = fn()
            found.setdefault(name, []).append(len(q))
            if len(q) >= 2:
                a = cobb_angles(q + off, image_height=h).as_list()
            else:
                a = [0.0, 0.0, 0.0]
            preds.setdefault(name, []).append(a)
    clean = np.array([not annotation_quirk(c) for c in corners])
    out = {}
    for name, p in preds.items():
        p = np.array(p)
        s = angle_scores(p, true)
        n = np.array(found[name])
        s["mean_found"] = float(n.mean())
        s["share_17"] = float((n == 17).mean())
        s["smape_clean"] = angle_scores(p[clean], true[clean])["smape"] if clean.any() else float("nan")
        s["n_clean"] = int(clean.sum())
        out[name] = s
    return out


def annotation_quirk(c: np.ndarray) -> bool:
    """Landmarks that no top-to-bottom reading of masks can reproduce: vertebrae listed out of
    top-to-bottom order, or two neighbours less than half the median spacing apart (drawn on top
    of each other)."""
    cy = c.mean(1)[:, 1]
    g = np.diff(cy)
    return bool((g <= 0).any() or (g < 0.5 * np.median(g)).any())


def fmt(s):
    return f"SMAPE {s['smape']:.3f} %  MAE PT {s['mae_PT']:.3f} MT {s['mae_MT']:.3f} TL {s['mae_TL']:.3f} (all {s['mae']:.3f}) deg  n={s['n_images']}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True, type=Path, help="the boostnet_labeldata folder")
    ap.add_argument("--splits", nargs="+", default=["test", "training"], choices=("test", "training"))
    ap.add_argument("--mask-route", action="store_true", help="also score the rasterise -> fit -> angle routes")
    ap.add_argument("--routes", nargs="+", default=None,
                    help="mask routes to run (default all): instances/endplates instances/rect semantic/endplates "
                         "bridged/endplates touching/endplates")
    ap.add_argument("--limit", type=int, default=None, help="only the first N images per split (mask route)")
    ap.add_argument("--out", type=Path, default=None, help="write the aggregate figures as JSON here")
    args = ap.parse_args(argv)
    summary = {}
    for split in args.splits:
        names, corners, true, sizes = load_split(args.source, split)
        pred, n_s = gt_route(corners, sizes)
        s = angle_scores(pred, true)
        err = np.abs(pred - true)
        s["max_abs_err"] = float(err.max())
        s["n_s_curve"] = int(n_s)
        summary[f"{split}/gt_landmarks"] = s
        print(f"{split:9s} GT landmarks : {fmt(s)}  max |err| {err.max():.3f} deg, S-curves {n_s}")
        if args.mask_route:
            k = len(names) if args.limit is None else min(args.limit, len(names))
            t0 = time.time()
            res = mask_route_scores(corners[:k], sizes[:k], true[:k], routes=args.routes)
            for route, s in res.items():
                summary[f"{split}/{route}"] = s
                extra = "  ".join(f"{a} {b:.3g}" for a, b in s.items() if a not in ("smape", "mae", "mae_PT", "mae_MT", "mae_TL", "n_images"))
                print(f"{split:9s} {route:13s}: {fmt(s)}  {extra}")
            print(f"          ({time.time() - t0:.0f} s)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

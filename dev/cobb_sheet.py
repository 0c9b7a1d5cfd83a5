"""One picture of Cobb overlays side by side, films left to right: per film, the ground truth and each prediction run of
``spine-det measure-cobb`` (each vertebra outlined and labelled with its level, the three angles with
their end vertebrae), downscaled, with the film's SMAPE under each prediction.

    python dev/cobb_sheet.py --runs "ground truth=out/cobb_gt" "Mask R-CNN=out/cobb_mr" --films 4 --out sheet.jpg

Films are the first ``--films`` of the first run's ``cobb_angles.csv`` (its order: sorted by image key),
so the pick does not depend on any score.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Dict, List, Optional

import cv2
import numpy as np


def read_rows(run: Path) -> Dict[str, Dict[str, str]]:
    with open(run / "cobb_angles.csv", newline="") as f:
        return {r["image"]: r for r in csv.DictReader(f)}


def tile(img: Optional[np.ndarray], height: int, caption: str) -> np.ndarray:
    if img is None:
        img = np.zeros((height, height // 3, 3), np.uint8)
    scale = height / img.shape[0]
    img = cv2.resize(img, (max(1, int(round(img.shape[1] * scale))), height), interpolation=cv2.INTER_AREA)
    bar = np.full((34, img.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, caption, (4, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, img])


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", nargs="+", required=True, help="LABEL=measure-cobb output folder (with overlays/)")
    ap.add_argument("--films", type=int, default=4, help="films (rows) in the sheet (default 4)")
    ap.add_argument("--height", type=int, default=620, help="tile height in px (default 620)")
    ap.add_argument("--out", required=True, type=Path, help="output JPEG")
    a = ap.parse_args(argv)
    runs = [(lab, Path(d)) for lab, d in (r.split("=", 1) for r in a.runs)]
    rows = [read_rows(d) for _, d in runs]
    keys = sorted(rows[0])[: a.films]
    lines = []
    for key in keys:
        tiles = []
        for (label, d), table in zip(runs, rows):
            r = table.get(key, {})
            ov = cv2.imread(str(d / "overlays" / (key.replace("/", "__") + ".png")))
            sm = r.get("smape")
            caption = f"{label}" + (f", SMAPE {float(sm):.1f}" if sm not in (None, "") and label != runs[0][0] else "")
            tiles.append(tile(ov, a.height, caption))
        lines.append(np.hstack([np.pad(t, ((0, 0), (0, 6), (0, 0)), constant_values=255) for t in tiles]))
    height = max(x.shape[0] for x in lines)  # the films side by side, a white gap between them
    sheet = np.hstack([np.pad(x, ((0, height - x.shape[0]), (0, 18), (0, 0)), constant_values=255) for x in lines])
    a.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(a.out), sheet, [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"{len(keys)} films x {len(runs)} runs -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Dev: zero-shot lat_vertebra Dice of a trained checkpoint (LinkNet, Mask R-CNN, ...) on real lateral films.

    python dev/score_real_lat.py CHECKPOINT DATA_ROOT [--family linknet|maskrcnn|...] [--split Test]
        [--out scores.json] [--overlays DIR] [--n-overlays 8]

DATA_ROOT holds ``<split>/<patient>/LAT/LAT.<ext>`` + ``Lat_Vertebra.png`` (e.g. what dev/lat_quads_to_root.py
writes from rough self-made body quadrilaterals). Scores are per-film Dice / Jaccard / TPR from
spine_det.evaluation.metrics at each film's own resolution, and their mean, the numbers tools/predict.py
+ the package's evaluators would give (the sibling of dev/score_real_ap.py for the LAT view).
"""
import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from spine_det.data.io import IMAGE_SUFFIXES, read_image, read_mask
from spine_det.engine.predictor import build_predictor
from spine_det.evaluation.metrics import binary_scores

TASK = "lat_vertebra"

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("checkpoint")
ap.add_argument("data_root", type=Path)
ap.add_argument("--family", default="linknet", help="model family key (spine_det.modeling.registry)")
ap.add_argument("--split", default="Test")
ap.add_argument("--out", type=Path)
ap.add_argument("--overlays", type=Path)
ap.add_argument("--n-overlays", type=int, default=8)
a = ap.parse_args()
pred = build_predictor(a.family, a.checkpoint)
films = []
for d in sorted((a.data_root / a.split).glob("*/LAT")):
    im = next((f for f in sorted(d.iterdir()) if f.stem.lower() == "lat" and f.suffix.lower() in IMAGE_SUFFIXES), None)
    if im is not None and (d / "Lat_Vertebra.png").exists():
        films.append((im, d / "Lat_Vertebra.png"))
rows, t0, tiles = [], time.perf_counter(), []
for k, (im_p, m_p) in enumerate(films):
    img = read_image(im_p)
    gt = read_mask(m_p, shape=img.shape)
    m = pred(img)[TASK].mask
    rows.append({"image": im_p.parent.parent.name, **binary_scores(m, gt)})
    print(f"{rows[-1]['image']}: dice {rows[-1]['dice']:.3f}")
    if a.overlays is not None and k < a.n_overlays:
        ov = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        for mk, col in ((gt, (0, 200, 0)), (m, (0, 0, 255))):
            cs, _ = cv2.findContours(mk.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(ov, cs, -1, col, 3)
        tiles.append(cv2.resize(ov, (int(ov.shape[1] * 600 / ov.shape[0]), 600), interpolation=cv2.INTER_AREA))
dice = np.array([r["dice"] for r in rows])
summary = {"checkpoint": a.checkpoint, "family": a.family, "films": len(rows), "dice_mean": float(dice.mean()),
           "dice_median": float(np.median(dice)), "jaccard_mean": float(np.mean([r["jaccard"] for r in rows])),
           "tpr_mean": float(np.nanmean([r["tpr"] for r in rows])), "seconds": round(time.perf_counter() - t0, 1)}
print(json.dumps(summary, indent=1))
if a.out:
    a.out.write_text(json.dumps({"summary": summary, "per_film": rows}, indent=1))
if tiles:
    a.overlays.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(a.overlays / "overlays.png"), np.concatenate(tiles, 1))

"""Dev: zero-shot ap_vertebra Dice of a LinkNet checkpoint on real AP radiographs.

    python dev/score_real_ap.py CHECKPOINT DATA_ROOT [--split Test] [--out scores.json] [--overlays DIR N]

DATA_ROOT holds ``<split>/<patient>/AP/AP.jpg`` + ``Ap_Vertebra.png`` (the imported real data). Scores are
mean per-image Dice / Jaccard / TPR from spine_det.evaluation.metrics at each image's own resolution,
the same numbers tools/predict.py + the package's evaluators would give.
"""
import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from spine_det.data.io import read_image, read_mask
from spine_det.engine.semseg_predictor import SemSegPredictor
from spine_det.evaluation.metrics import binary_scores

ap = argparse.ArgumentParser()
ap.add_argument("checkpoint")
ap.add_argument("data_root", type=Path)
ap.add_argument("--split", default="Test")
ap.add_argument("--out", type=Path)
ap.add_argument("--overlays", type=Path)
ap.add_argument("--n-overlays", type=int, default=8)
a = ap.parse_args()
pred = SemSegPredictor.from_checkpoint(a.checkpoint)
dirs = sorted(p.parent for p in (a.data_root / a.split).glob("*/AP/AP.jpg"))
rows, t0, tiles = [], time.perf_counter(), []
for k, d in enumerate(dirs):
    img = read_image(d / "AP.jpg")
    gt = read_mask(d / "Ap_Vertebra.png", shape=img.shape)
    m = pred.predict_masks(img)["ap_vertebra"]
    s = binary_scores(m, gt)
    rows.append({"image": d.parent.name, **s})
    if a.overlays is not None and k < a.n_overlays:
        ov = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        for mk, col in ((gt, (0, 200, 0)), (m, (0, 0, 255))):
            cs, _ = cv2.findContours(mk.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(ov, cs, -1, col, 4)
        tiles.append(cv2.resize(ov, (int(ov.shape[1] * 600 / ov.shape[0]), 600), interpolation=cv2.INTER_AREA))
dice = np.array([r["dice"] for r in rows])
summary = {"checkpoint": a.checkpoint, "images": len(rows), "dice_mean": float(dice.mean()),
           "dice_median": float(np.median(dice)), "jaccard_mean": float(np.mean([r["jaccard"] for r in rows])),
           "tpr_mean": float(np.nanmean([r["tpr"] for r in rows])), "seconds": round(time.perf_counter() - t0, 1)}
print(json.dumps(summary, indent=1))
if a.out:
    a.out.write_text(json.dumps({"summary": summary, "per_image": rows}, indent=1))
if tiles:
    a.overlays.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(a.overlays / "overlays.png"), np.concatenate(tiles, 1))

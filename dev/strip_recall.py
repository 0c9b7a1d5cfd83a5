"""Dev: how much of the ground truth the spine strip keeps (issue 30, item 1).

For each film of a split, the share of ground-truth vertebra pixels inside the strip's columns, for
  - the strip of a trained SpineStripRCNN checkpoint (its pass 1 on the whole film), when --checkpoint is given;
  - the mask-free column finder of spine_det.data.spine_crop at several widths (no model), for comparison.
Prints one Markdown table (mean recall, worst film, films keeping >= 99 % / 99.9 %, strip width / film width).

    python dev/strip_recall.py --data-root DATA [--split train] [--checkpoint RUN/model_best.pth] [--every 1]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from spine_det.data.io import read_image, read_mask
from spine_det.data.prepare import prepare_dataset
from spine_det.data.spine_crop import find_spine_column
from spine_det.engine.predictor import MaskRCNNPredictor


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True)
    p.add_argument("--split", default="train")
    p.add_argument("--task", default="ap_vertebra")
    p.add_argument("--checkpoint", help="a Mask R-CNN checkpoint trained with SPINE.INPUT.STRIP.ENABLED")
    p.add_argument("--every", type=int, default=1, help="every n-th film (1: all)")
    args = p.parse_args()
    manifest = prepare_dataset(args.data_root, convert=False).manifest
    items = manifest.select(split=args.split, task=args.task)[:: args.every]
    pred = MaskRCNNPredictor.from_checkpoint(args.checkpoint) if args.checkpoint else None
    rows: dict = {}
    for it in items:
        grey = read_image(it.image)
        gt = read_mask(it.masks[args.task]) > 0
        cols = gt.sum(axis=0).astype(np.float64)
        total = max(cols.sum(), 1.0)
        w = grey.shape[1]
        boxes = {f"mask-free column, {f:.2f} x height": find_spine_column(grey, f) for f in (0.2, 0.25, 0.3)}
        if pred is not None:
            with torch.no_grad():
                x = pred._model_input(grey)
                boxes["pass 1 of the trained model (default)"] = pred.model.strip_columns_for(x)
        for name, (x0, x1) in boxes.items():
            rows.setdefault(name, []).append((cols[x0:x1].sum() / total, (x1 - x0) / w))
    print(f"{len(items)} films ({args.split}), task {args.task}\n")
    print("| strip | mean recall | worst film | films >= 99 % | films >= 99.9 % | strip width / film width |")
    print("|---|---|---|---|---|---|")
    for name, v in rows.items():
        a = np.asarray(v)
        print(f"| {name} | {a[:, 0].mean():.4f} | {a[:, 0].min():.3f} | {100 * (a[:, 0] >= 0.99).mean():.1f} % | "
              f"{100 * (a[:, 0] >= 0.999).mean():.1f} % | {a[:, 1].mean():.2f} |")


if __name__ == "__main__":
    main()

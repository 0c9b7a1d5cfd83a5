"""Where does a Mask R-CNN lose Dice on one task: in its boxes, or in its masks inside them?

For every image of a split it pastes the model's instances as the evaluator does (the thresholds
saved beside the checkpoint), then scores three masks against the ground truth:

* ``dice``: the prediction (what the benchmark reports);
* ``box_oracle``: the ground truth kept only inside the predicted boxes - the Dice a perfect mask
  head would reach with these detections (1 - box_oracle is what the detections cost);
* ``gt_in_boxes``: the share of ground-truth pixels inside some predicted box.

It also reports instances per image and the mean width (pixels per row) of prediction and
ground truth on rows where both have pixels, which tells a line drawn too thick from one missed.

    python dev/instance_error_budget.py --checkpoint RUN/model_best.pth --data-root DATA \
        --task lat_anterior_line [--split test] [--split-seed 0]
"""
from __future__ import annotations

import argparse
import json
from typing import Dict, List

import numpy as np


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = int(a.sum()) + int(b.sum())
    return 1.0 if s == 0 else 2.0 * int((a & b).sum()) / s


def boxes_mask(shape, instances: List[Dict]) -> np.ndarray:
    """The union of the instances' boxes ([x, y, w, h], pixel edges rounded outwards)."""
    out = np.zeros(shape, bool)
    for inst in instances:
        x, y, w, h = inst["bbox"]
        out[int(np.floor(y)):int(np.ceil(y + h)), int(np.floor(x)):int(np.ceil(x + w))] = True
    return out


def image_budget(pred_mask: np.ndarray, instances: List[Dict], gt: np.ndarray) -> Dict[str, float]:
    boxes = boxes_mask(gt.shape, instances)
    rows = [r for r in range(gt.shape[0]) if gt[r].any() and pred_mask[r].any()]
    return {
        "dice": dice(pred_mask, gt),
        "box_oracle": dice(gt & boxes, gt),
        "gt_in_boxes": float((gt & boxes).sum() / max(int(gt.sum()), 1)),
        "instances": float(len(instances)),
        "gt_width": float(np.mean([gt[r].sum() for r in rows])) if rows else float("nan"),
        "pred_width": float(np.mean([pred_mask[r].sum() for r in rows])) if rows else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a Mask R-CNN run's model_best.pth (its config is read beside it)")
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--task", required=True)
    ap.add_argument("--split", default="test", choices=["train", "val", "test"])
    ap.add_argument("--split-seed", type=int, default=0)
    args = ap.parse_args()

    from spine_det.api import Predictor
    from spine_det.data.io import read_image, read_mask
    from spine_det.data.layout import scan_dataset

    predictor = Predictor.from_checkpoint(args.checkpoint).predictor
    manifest = scan_dataset(args.data_root, seed=args.split_seed)
    samples = manifest.select(split=args.split, task=args.task)
    if not samples:
        raise SystemExit(f"no {args.split} image with a {args.task} mask under {args.data_root}")
    per_image = []
    for s in samples:
        pred = predictor(read_image(s.image))[args.task]
        per_image.append(image_budget(pred.mask, pred.instances, read_mask(s.masks[args.task])))
    summary = {k: round(float(np.nanmean([r[k] for r in per_image])), 4) for k in per_image[0]}
    print(json.dumps({"task": args.task, "split": args.split, "images": len(per_image), **summary}))


if __name__ == "__main__":
    main()

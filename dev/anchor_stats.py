#!/usr/bin/env python
"""Box sizes and aspect ratios of the COCO annotations, per task: what the anchors must cover.

Reads ``spine_<task>_<split>.json`` from a COCO folder (``--coco-dir``) or prepares a
data root (``--data-root``, cached; ``--instances`` picks the instance definition of
lines / spinous processes, see spine_det.data.instances) and prints quantiles of box
width, height, sqrt(area) (the anchor "size") and aspect h/w (Detectron2's
ASPECT_RATIOS), optionally rescaled to the network input (``--short-side``)::

    python dev/anchor_stats.py --data-root datasets/phantom --tasks lat_anterior_line --instances per_level
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def box_stats(coco: dict, short_side: Optional[int] = None) -> Dict[str, np.ndarray]:
    """Arrays of w, h, sqrt(w*h), h/w of every annotation (scaled so the image's short side = short_side)."""
    sizes = {img["id"]: (img["height"], img["width"]) for img in coco["images"]}
    w, h = [], []
    for a in coco["annotations"]:
        bw, bh = float(a["bbox"][2]), float(a["bbox"][3])
        s = 1.0
        if short_side:
            s = short_side / float(min(sizes[a["image_id"]]))
        w.append(max(bw, 1.0) * s)
        h.append(max(bh, 1.0) * s)
    w_, h_ = np.asarray(w), np.asarray(h)
    return {"w": w_, "h": h_, "size": np.sqrt(w_ * h_), "aspect_h_w": h_ / np.maximum(w_, 1e-6)}


def format_stats(name: str, stats: Dict[str, np.ndarray], n_images: int) -> List[str]:
    n = len(stats["w"])
    lines = [f"{name}: {n} boxes in {n_images} images ({n / max(n_images, 1):.1f} per image)"]
    if n == 0:
        return lines
    lines.append("  " + "quantile".ljust(12) + "".join(f"{q:>9.2f}" for q in QUANTILES))
    for k in ("w", "h", "size", "aspect_h_w"):
        lines.append("  " + k.ljust(12) + "".join(f"{v:9.2f}" for v in np.quantile(stats[k], QUANTILES)))
    return lines


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--coco-dir", type=Path, help="folder with spine_<task>_<split>.json")
    src.add_argument("--data-root", type=Path, help="dataset folder (prepared and cached like train_net.py)")
    p.add_argument("--cache-dir", type=Path, default=None, help="cache of --data-root (default: the usual one)")
    p.add_argument("--tasks", default="lat_anterior_line,lat_posterior_line,ap_spinous_process")
    p.add_argument("--split", default="train", choices=("train", "val", "test"))
    p.add_argument("--instances", default="components",
                   help="instance definition of lines and spinous processes (components, whole, per_level[:N])")
    p.add_argument("--short-side", type=int, default=0, help="rescale boxes to this input short side (0 = original px)")
    args = p.parse_args(argv)
    from spine_det.tasks import parse_tasks

    tasks = parse_tasks(args.tasks)
    coco_dir = args.coco_dir
    if args.data_root is not None:
        from spine_det.data.instances import parse_spec, task_kind
        from spine_det.data.prepare import prepare_dataset

        parse_spec(args.instances)
        defs = {t: args.instances for t in tasks if task_kind(t) != "OTHER" and args.instances != "components"}
        coco_dir = prepare_dataset(args.data_root, cache_dir=args.cache_dir, tasks=tasks, definitions=defs).coco_dir
    for task in tasks:
        f = Path(coco_dir) / f"spine_{task}_{args.split}.json"
        if not f.is_file():
            raise SystemExit(f"error: {f}: no such COCO file")
        try:
            coco = json.loads(f.read_text())
        except ValueError as e:
            raise SystemExit(f"error: {f}: not JSON ({e})") from None
        scale = f", short side {args.short_side}" if args.short_side else ", original px"
        print("\n".join(format_stats(f"{task} [{args.instances}{scale}]", box_stats(coco, args.short_side or None), len(coco["images"]))))


if __name__ == "__main__":
    main()

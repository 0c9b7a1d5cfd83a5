"""Draw the ground truth over the X-rays, to check the data before training (cf. Detectron2's tools/visualize_data.py).

Example:
    spine-det visualize-data --data-root "/data/spine" --out output/vis --source coco --split train --num 8

--source masks draws the original mask files; --source coco draws the decoded
COCO instances (each instance outlined, with its box), so the two can be compared.
One colour per class; both views; one PNG per X-ray.
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from spine_det.data.coco import coco_json_name
from spine_det.data.io import DataError, read_image, read_mask
from spine_det.data.prepare import prepare_dataset
from spine_det.data.rle import decode_segmentation
from spine_det.tasks import SPLITS, VIEWS, tasks_of_view
from spine_det.utils.cli import non_negative_int, positive_int, reports_user_errors
from spine_det.utils.fileio import atomic_path
from spine_det.utils.logs import setup_logging
from spine_det.utils.overlay import overlay_masks
from spine_det.utils.paths import prepare_output, refuse_inside

logger = logging.getLogger("spine_det.visualize_data")


def _coco_layers(coco_dir: Path, split: str) -> Dict[str, Tuple[List[Tuple[str, np.ndarray]], List]]:
    """key → (per-instance layers, boxes) from the view JSONs (or the task JSONs when those are missing)."""
    out: Dict[str, Tuple[list, list]] = {}
    files = [coco_dir / coco_json_name(v, split) for v in VIEWS]
    if not all(f.is_file() for f in files):
        files = sorted(coco_dir.glob(f"spine_*_{split}.json"))
    for f in files:
        coco = json.loads(f.read_text())
        tasks = {c["id"]: c.get("task") for c in coco["categories"]}
        images = {img["id"]: img for img in coco["images"]}
        for img in coco["images"]:
            out.setdefault(img["key"], ([], []))
        for a in coco["annotations"]:
            img = images[a["image_id"]]
            m = decode_segmentation(a["segmentation"], img["height"], img["width"])
            layers, boxes = out[img["key"]]
            layers.append((tasks[a["category_id"]], m))
            boxes.append((tasks[a["category_id"]], a["bbox"]))
    return out


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True, help="folder with Training/ (and optionally Test/)")
    p.add_argument("--out", required=True, help="folder for the PNGs")
    p.add_argument("--source", choices=("masks", "coco"), default="masks", help="draw the mask files or the COCO instances")
    p.add_argument("--split", choices=SPLITS, default="train")
    p.add_argument("--num", type=positive_int, default=8, help="X-rays per view")
    p.add_argument("--max-size", type=non_negative_int, default=1400, help="longest side of the PNGs (0: full size)")
    p.add_argument("--seed", type=int, default=0, help="seed of the patient-level splits")
    p.add_argument("--cache-dir", default=None, help="cache folder (default: $SPINE_DET_CACHE or ~/.cache/spine_det/...)")
    p.add_argument("--strict", action="store_true", help="fail on the first bad file instead of skipping it")
    return p


@reports_user_errors
def main(argv: Optional[List[str]] = None) -> int:
    setup_logging()
    args = get_parser().parse_args(argv)
    refuse_inside(args.out, args.data_root)  # never inside the data root (prepared once the data is read)
    prepared = prepare_dataset(
        args.data_root, cache_dir=args.cache_dir, seed=args.seed, strict=args.strict, convert=args.source == "coco"
    )
    coco = _coco_layers(prepared.coco_dir, args.split) if args.source == "coco" else {}
    prepare_output(args.out, args.data_root)  # writable; one writer at a time
    out_dir = Path(args.out)
    written = 0
    for view in VIEWS:
        for s in prepared.manifest.select(split=args.split, view=view)[: args.num]:
            try:
                image = read_image(s.image)
                if args.source == "masks":
                    layers = [
                        (t.name, read_mask(s.masks[t.name], shape=image.shape))
                        for t in tasks_of_view(view)
                        if s.masks.get(t.name)
                    ]
                    boxes: list = []
                else:
                    layers, boxes = coco.get(s.key, ([], []))
            except DataError as exc:
                if args.strict:
                    raise exc.with_patient(s.patient_id) from None
                logger.warning("skipped: %s", exc.with_patient(s.patient_id))
                continue
            vis = overlay_masks(image, layers, boxes)
            if args.max_size and max(vis.shape[:2]) > args.max_size:
                f = args.max_size / max(vis.shape[:2])
                vis = cv2.resize(vis, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{args.split}_{s.key}").strip("_") + f"_{args.source}.png"
            with atomic_path(out_dir / name) as tmp:
                if not cv2.imwrite(str(tmp), vis):
                    raise OSError(f"cannot write {out_dir / name}")
            written += 1
    print(f"wrote {written} images to {out_dir}")
    return 0


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

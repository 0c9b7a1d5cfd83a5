#!/usr/bin/env python
"""Segment spine X-rays with a trained model: per task a mask PNG, the instances (JSON) and an overlay.

    python tools/predict.py --checkpoint output/maskrcnn/lat_vertebra/model_best.pth --input LAT.jpg --output out/
    python tools/predict.py --checkpoint ckpt.pth --input folder/ --output out/          # every image inside
    python tools/predict.py --model linknet --checkpoint linknet.pth --input scan.dcm --output out/

The config is read from ``config.yaml`` beside the checkpoint unless --config-file
is given. Outputs go to ``<output>/<image stem>/<task>_mask.png``,
``<task>_instances.json`` and ``<task>_overlay.png``; inputs are never overwritten.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

logger = logging.getLogger("spine_det.predict")

# One colour (BGR) per task, in spine_det.tasks order.
_COLOURS = [(0, 0, 255), (0, 200, 0), (255, 0, 0), (0, 200, 255), (255, 0, 255), (255, 255, 0), (0, 128, 255), (128, 0, 255)]


def list_inputs(path: Path) -> List[Path]:
    from spine_det.data.io import IMAGE_SUFFIXES

    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (*IMAGE_SUFFIXES, ".dicom"))
        if not files:
            raise SystemExit(f"error: no images ({', '.join(IMAGE_SUFFIXES)}) in {path}")
        return files
    raise SystemExit(f"error: input not found: {path}")


def overlay(grey: np.ndarray, masks: Dict[str, np.ndarray], task_order: List[str]) -> np.ndarray:
    """Grey image with each task's mask tinted in its colour."""
    from spine_det.tasks import TASK_NAMES

    out = np.repeat(grey[:, :, None], 3, axis=2).astype(np.float32)
    for task in task_order:
        colour = np.array(_COLOURS[TASK_NAMES.index(task) % len(_COLOURS)] if task in TASK_NAMES else (0, 0, 255), np.float32)
        m = masks[task]
        out[m] = 0.55 * out[m] + 0.45 * colour
    return np.clip(out, 0, 255).astype(np.uint8)


def write_outputs(out_dir: Path, grey: np.ndarray, preds, source: Path) -> None:
    import cv2

    from spine_det.utils.fileio import atomic_path, atomic_write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    for task, p in preds.items():
        with atomic_path(out_dir / f"{task}_mask.png") as tmp:
            cv2.imwrite(str(tmp), p.mask.astype(np.uint8) * 255)
        atomic_write_json(out_dir / f"{task}_instances.json",
                          {"image": str(source), "task": task, "height": int(grey.shape[0]), "width": int(grey.shape[1]),
                           "bbox_mode": "XYWH", "instances": p.instances})
        with atomic_path(out_dir / f"{task}_overlay.png") as tmp:
            cv2.imwrite(str(tmp), overlay(grey, {task: p.mask}, [task]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, help="an image (jpg/png/tif/dcm) or a folder of them")
    ap.add_argument("--output", required=True, help="output folder (must not be inside the input folder)")
    ap.add_argument("--checkpoint", required=True, help="trained weights (model_best.pth)")
    ap.add_argument("--config-file", default=None, help="config of the checkpoint (default: config.yaml beside it)")
    ap.add_argument("--model", default="maskrcnn", choices=("maskrcnn", "linknet"), help="which predictor")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--score-threshold", type=float, default=None, help="Mask R-CNN: paste instances with score ≥ this")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    src = Path(args.input).expanduser().resolve()
    out = Path(args.output).expanduser().resolve()
    inputs = list_inputs(src)
    if src.is_dir() and (out == src or src in out.parents):
        raise SystemExit(f"error: output {out} lies inside the input folder {src}; choose another folder")

    from spine_det.data.io import DataError, read_image
    from spine_det.engine.predictor import CheckpointError, build_predictor

    kwargs = {"config_file": args.config_file, "device": args.device}
    if args.score_threshold is not None:
        kwargs["score_threshold"] = args.score_threshold
    try:
        predictor = build_predictor(args.model, args.checkpoint, **kwargs)
    except (CheckpointError, FileNotFoundError, KeyError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None

    from tqdm import tqdm

    failed = 0
    for f in tqdm(inputs, desc="predict", disable=len(inputs) < 2):
        try:
            grey = read_image(f)
        except DataError as e:
            if len(inputs) == 1:
                raise SystemExit(f"error: {e}") from None
            logger.error("skipped: %s", e)
            failed += 1
            continue
        rel = f.relative_to(src).with_suffix("") if src.is_dir() else Path(f.stem)
        dest = out / rel
        if dest.resolve() in {p.resolve() for p in inputs}:
            raise SystemExit(f"error: refusing to overwrite input {dest}")
        write_outputs(dest, grey, predictor(grey), f)
    logger.info("wrote predictions for %d image(s) to %s%s", len(inputs) - failed, out, f" ({failed} failed)" if failed else "")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

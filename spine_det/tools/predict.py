"""Segment spine X-rays with a trained model: per task a mask PNG, the instances (JSON) and an overlay.

    spine-det predict --checkpoint output/maskrcnn/lat_vertebra/model_best.pth --input LAT.jpg --output out/
    spine-det predict --checkpoint ckpt.pth --input folder/ --output out/          # every image inside
    spine-det predict --model linknet --checkpoint linknet.pth --input scan.dcm --output out/
    python -m spine_det.tools.predict --checkpoint ckpt.pth --data-root datasets/phantom --split test --output out/pred

--model is the key of a registered model family (spine_det.modeling.registry; see --help for the
list); without it the family is read from the checkpoint.

The config is read from ``config.yaml`` beside the checkpoint unless --config-file
is given. Outputs go to ``<output>/<image stem>/<task>_mask.png``,
``<task>_instances.json`` and ``<task>_overlay.png``; a model with instance masks (Mask R-CNN) also writes
``<task>_instances.png``, a 16-bit label map (0 = background, k = k-th instance
of the JSON) that keeps touching vertebrae apart. With ``--data-root`` every
image of the split (and view) is predicted into ``<output>/<patient id>/<view>/``,
the layout ``tools/measure.py`` / ``tools/eval_morphometry.py --pred-dir`` read.
Inputs are never overwritten.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

logger = logging.getLogger("spine_det.predict")


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


def write_outputs(out_dir: Path, grey: np.ndarray, preds, source: Path) -> None:
    import cv2

    from spine_det.morphometry.levels import name_instance_levels
    from spine_det.utils.fileio import atomic_path, atomic_write_json
    from spine_det.utils.overlay import overlay_masks

    out_dir.mkdir(parents=True, exist_ok=True)
    for task, p in preds.items():
        extra = name_instance_levels(task, p)
        atomic_write_json(out_dir / f"{task}_instances.json",
                          {"image": str(source), "task": task, "height": int(grey.shape[0]), "width": int(grey.shape[1]),
                           "bbox_mode": "XYWH", **extra, "instances": p.instances})
        with atomic_path(out_dir / f"{task}_overlay.png") as tmp:
            # the task's colour of every other tool's pictures; an instance model's boxes drawn too, with levels
            with_box = [i for i in p.instances if "bbox" in i] if p.instance_masks is not None else []
            boxes = [(task, i["bbox"]) for i in with_box]
            cv2.imwrite(str(tmp), overlay_masks(grey, [(task, p.mask)], boxes=boxes,
                                                box_labels=[i.get("level") for i in with_box]))
        if p.instance_masks is not None:
            with atomic_path(out_dir / f"{task}_instances.png") as tmp:
                cv2.imwrite(str(tmp), p.label_map())
        # the mask last: --skip-existing takes a present mask to mean this task's files are all there
        with atomic_path(out_dir / f"{task}_mask.png") as tmp:
            cv2.imwrite(str(tmp), p.mask.astype(np.uint8) * 255)


def dataset_inputs(args) -> List[Tuple[Path, Path]]:
    """(image, output folder) for every image of the requested split/view of a dataset."""
    from spine_det.data.prepare import prepare_dataset

    out = output_outside(args.output, args.data_root)
    manifest = prepare_dataset(args.data_root, seed=args.seed, convert=False).manifest
    samples = manifest.select(split=None if args.split == "all" else args.split,
                              view=None if args.view == "all" else args.view)
    if not samples:
        raise SystemExit(f"error: no {args.view} images in split {args.split} of {args.data_root}")
    return [(Path(s.image), out / s.key) for s in samples]


def output_outside(output: str | Path, source: str | Path) -> Path:
    """The resolved output folder; refuses one inside a source folder, where predictions would be
    read back as inputs (and, under a data root, change its fingerprint)."""
    from spine_det.utils.paths import OutputLocationError, prepare_output

    src = Path(source).expanduser().resolve()
    try:
        return prepare_output(output, src if src.is_dir() else None, label="input folder")
    except OutputLocationError as e:
        raise SystemExit(f"error: {e}") from None


def folder_inputs(args) -> List[Tuple[Path, Path]]:
    src = Path(args.input).expanduser().resolve()
    out = output_outside(args.output, src)
    return separate_same_stems([(f, out / (f.relative_to(src).with_suffix("") if src.is_dir() else Path(f.stem)))
                                for f in list_inputs(src)])


def separate_same_stems(jobs: List[Tuple[Path, Path]]) -> List[Tuple[Path, Path]]:
    """Inputs that would share an output folder (``scan.jpg`` + ``scan.png``, or names differing
    only by case) get the suffix in theirs (``scan_jpg/``, ``scan_png/``) instead of overwriting
    each other."""
    from collections import defaultdict

    groups = defaultdict(list)
    for i, (_, dest) in enumerate(jobs):
        groups[str(dest).casefold()].append(i)
    out = list(jobs)
    for idx in groups.values():
        if len(idx) > 1:
            for i in idx:
                f, dest = jobs[i]
                out[i] = (f, dest.with_name(f"{dest.name}_{f.suffix.lstrip('.').lower()}"))
            logger.warning("inputs %s share a name: outputs kept apart in %s", ", ".join(jobs[i][0].name for i in idx),
                           ", ".join(out[i][1].name + "/" for i in idx))
    if len({str(d).casefold() for _, d in out}) != len(out):
        raise SystemExit("error: inputs whose names differ only by case and suffix; rename them")
    return out


def probability(text: str) -> float:
    """argparse type: a finite number in [0, 1] (nan, inf and -0.5 are refused)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= v <= 1.0:  # also False for nan
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}")
    return v


def model_of_checkpoint(checkpoint: str) -> str:
    """The family key a checkpoint was written by (what --model defaults to): the Python API's answer."""
    from spine_det.api import checkpoint_model

    return checkpoint_model(checkpoint, how_to_choose="give --model")


def main(argv: Optional[List[str]] = None) -> int:
    from spine_det.modeling.registry import families

    specs = families()
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="models: " + "; ".join(f"{s.key} = {s.description or s.label}" for s in specs))
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="an image (jpg/png/tif/dcm) or a folder of them")
    src.add_argument("--data-root", type=Path, help="a dataset (Training/ [Test/] layout): predict its images by split")
    ap.add_argument("--output", required=True, help="output folder (must not be inside the input folder or data root)")
    ap.add_argument("--split", default="test", choices=("train", "val", "test", "all"), help="with --data-root (default: test)")
    ap.add_argument("--view", default="all", choices=("ap", "lat", "all"), help="with --data-root: which view (default: all)")
    ap.add_argument("--seed", type=int, default=0, help="with --data-root: split seed (as for every other tool)")
    ap.add_argument("--skip-existing", action="store_true",
                    help="resume: skip images whose output folder already holds every task's mask")
    ap.add_argument("--checkpoint", required=True, help="trained weights (model_best.pth)")
    ap.add_argument("--config-file", default=None, help="config of the checkpoint (default: config.yaml beside it)")
    ap.add_argument("--model", default=None, choices=[s.key for s in specs],
                    help="which model family (default: the one that wrote --checkpoint)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--score-threshold", type=probability, default=None,
                    help="the predictor's threshold in [0, 1] (instance models: paste instances with score ≥ this; "
                         "semantic models: probability threshold)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from spine_det.data.io import DataError

    try:
        jobs = dataset_inputs(args) if args.data_root is not None else folder_inputs(args)
    except DataError as e:
        raise SystemExit(f"error: {e}") from None
    out = Path(args.output).expanduser().resolve()
    inputs = {f.resolve() for f, _ in jobs}

    from spine_det.data.io import read_image
    from spine_det.engine.predictor import CheckpointError, build_predictor

    from spine_det.engine.distributed import DeviceUnavailableError, check_device

    try:
        check_device(args.device)
    except DeviceUnavailableError as e:
        raise SystemExit(f"error: {e}") from None
    kwargs = {"config_file": args.config_file, "device": args.device}
    if args.score_threshold is not None:
        kwargs["score_threshold"] = args.score_threshold
    try:
        model = args.model or model_of_checkpoint(args.checkpoint)
        predictor = build_predictor(model, args.checkpoint, **kwargs)
    except (CheckpointError, FileNotFoundError, KeyError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None

    from tqdm import tqdm

    failed = skipped = written = 0
    for f, dest in tqdm(jobs, desc="predict", disable=len(jobs) < 2):
        if dest.resolve() in inputs:
            raise SystemExit(f"error: refusing to overwrite input {dest}")
        if args.skip_existing and all((dest / f"{t}_mask.png").is_file() for t in predictor.tasks):
            skipped += 1
            continue
        try:
            grey = read_image(f)
        except DataError as e:
            if len(jobs) == 1:
                raise SystemExit(f"error: {e}") from None
            logger.error("skipped: %s", e)
            failed += 1
            continue
        write_outputs(dest, grey, predictor(grey), f)
        written += 1
    logger.info("wrote predictions for %d image(s) to %s%s%s", written, out,
                f" ({skipped} already there)" if skipped else "", f" ({failed} failed)" if failed else "")
    return 1 if failed else 0


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

"""Score predicted instances object by object: how many vertebrae came out, merged or split.

    spine-det predict --checkpoint runs/maskrcnn/ap_vertebra/model_best.pth --data-root DATA --split test --view ap --output pred/maskrcnn
    spine-det eval-instances --data-root DATA --pred-dir pred/maskrcnn --task ap_vertebra --out results/instances_maskrcnn

Ground truth: the task's instance label map (``<mask stem>_instances.png``, e.g. written by
`spine-det import-aasce`: one label per vertebra) or, without one, the 8-connected components of
the mask. Predictions: ``<pred-dir>/<patient>/<view>/<task>_instances.png`` (Mask R-CNN) or, without
one, ``<task>_mask.png`` (LinkNet and other semantic models) as its connected components or, with
``--split-mask``, split into vertebrae at the discs as the Cobb-angle route does
(spine_det.morphometry.quads.split_semantic). Conventions
(detected = IoU >= 0.5 one-to-one; merge = one instance covering >= 30 % of two objects; split =
one object covered >= 30 % by two instances) are in spine_det/evaluation/instance_quality.py.
Writes per_image.csv, summary.json and summary.md to --out. An image without a prediction is an
error (listed), never a silent zero.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import sys
from pathlib import Path
from typing import List, Optional

import cv2
import numpy as np

from spine_det.data.io import read_label_map, read_mask
from spine_det.data.prepare import prepare_dataset
from spine_det.evaluation.instance_quality import match_instances, summarise
from spine_det.morphometry.levels import assign_levels, kept_masks
from spine_det.morphometry.quads import split_semantic
from spine_det.morphometry.sources import load_hinted_instances
from spine_det.tasks import get_task
from spine_det.utils.cli import as_user_error, fraction_closed_right, non_negative_int, reports_user_errors
from spine_det.utils.errors import UserError
from spine_det.utils.fileio import atomic_write_json, atomic_write_text
from spine_det.utils.logs import setup_logging
from spine_det.utils.paths import prepare_output, refuse_inside
from spine_det.utils.provenance import provenance

logger = logging.getLogger("spine_det.eval_instances")


def components(mask: np.ndarray) -> np.ndarray:
    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[1]


def levelled_label_map(inst: Path, sem: Path, shape, split_mask: bool):
    """(label map of the kept vertebrae, k = k-th kept top to bottom; their level names; what was read)
    after order-aware post-processing (spine_det.morphometry.levels) of the instances, or of the
    semantic mask's pieces (split at the discs with ``split_mask``, else its components)."""
    hints = None
    if inst.is_file():
        masks, scores, hints = load_hinted_instances(inst)
        kind = "instances, levels" + (" (the model's level numbers as hints)" if hints else "")
    else:
        mask = read_mask(sem, shape=shape)
        lab = components(mask)
        masks = split_semantic(mask) if split_mask else [lab == v for v in range(1, int(lab.max()) + 1)]
        scores = None
        kind = "mask split at the discs, levels" if split_mask else "mask components, levels"
    a = assign_levels(masks, scores, level_hints=hints)
    return label_map(kept_masks(masks, a), shape), list(a.names), kind


def label_map(masks, shape) -> np.ndarray:
    """int32 label image: mask k (1-based) where no earlier mask lies."""
    out = np.zeros(shape, np.int32)
    for k, m in enumerate(masks, start=1):
        out[m & (out == 0)] = k
    return out


def true_level_names(view_folder: Path) -> Optional[List[str]]:
    """The level name of each ground-truth label (label k = k-th name) from the view folder's
    ``landmarks.json`` (tools/import_aasce.py writes one), or None."""
    f = view_folder / "landmarks.json"
    if not f.is_file():
        return None
    try:
        names = json.loads(f.read_text(encoding="utf-8")).get("vertebrae")
    except (OSError, ValueError, AttributeError):
        return None
    return [str(n) for n in names] if isinstance(names, list) else None


@reports_user_errors
def main(argv: Optional[List[str]] = None) -> int:
    setup_logging()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", required=True, type=Path, help="the dataset (ground truth)")
    ap.add_argument("--pred-dir", required=True, type=Path, help="the --output of spine-det predict --data-root")
    ap.add_argument("--task", default="ap_vertebra", help="task (default ap_vertebra)")
    ap.add_argument("--split", default="test", choices=("train", "val", "test"), help="split (default test)")
    ap.add_argument("--seed", type=int, default=0, help="split seed (as for every other tool)")
    ap.add_argument("--expected", type=non_negative_int, default=0,
                    help="objects every image should have (e.g. 17 vertebrae T1-L5): adds the share of images "
                         "with that many detected (the share with every *annotated* one is always given)")
    ap.add_argument("--iou", type=fraction_closed_right, default=0.5, help="IoU for a detection, in (0, 1] (default 0.5)")
    ap.add_argument("--cover", type=fraction_closed_right, default=0.3,
                    help="share of an object's area for merge/split, in (0, 1] (default 0.3)")
    ap.add_argument("--split-mask", action="store_true",
                    help="semantic masks: split into vertebrae at the discs (as spine-det measure-cobb --source mask) "
                         "instead of taking connected components")
    ap.add_argument("--levels", action=argparse.BooleanOptionalAction, default=True,
                    help="vertebra tasks: score the predictions after order-aware post-processing (default on; as "
                         "measure-cobb): candidates off the spine's curve and same-level duplicates dropped, the "
                         "rest fitted to the levels T1-L5; adds the share of detected vertebrae whose level is "
                         "named correctly where the truth names them (landmarks.json)")
    ap.add_argument("--out", required=True, type=Path, help="output folder (outside the data root)")
    a = ap.parse_args(argv)
    with as_user_error(KeyError):
        task = get_task(a.task)
    root = a.data_root.expanduser().resolve()
    refuse_inside(a.out, root)  # never inside the data root (prepared, and locked, once the inputs are checked)
    manifest = prepare_dataset(root, seed=a.seed, convert=False).manifest
    samples = manifest.select(split=a.split, task=task.name)
    if not samples:
        raise UserError(f"no {a.split} images with a {task.name} mask in {root}")
    predictions = {s.key: (a.pred_dir / s.key / f"{task.name}_instances.png", a.pred_dir / s.key / f"{task.name}_mask.png")
                   for s in samples}
    missing = [str(a.pred_dir / k) for k, files in predictions.items() if not any(f.is_file() for f in files)]
    if missing:
        raise UserError(f"{len(missing)} of {len(samples)} {a.split} images have no prediction in "
                        f"{a.pred_dir} (first: {missing[0]}); run spine-det predict --data-root ... --split {a.split}")
    out = prepare_output(a.out, root)  # the one output guard: never inside the data root; writable; locked
    rows, matches, pred_kind = [], [], set()
    for s in samples:
        inst, sem = predictions[s.key]
        shape = (s.height, s.width)
        mask = read_mask(s.masks[task.name], shape=shape)
        gt = read_label_map(s.instance_maps[task.name], shape=shape) * mask if task.name in s.instance_maps else components(mask)
        names = None
        if a.levels and task.name.endswith("_vertebra"):
            pred, names, kind = levelled_label_map(inst, sem, shape, a.split_mask)
        elif inst.is_file():
            pred, kind = read_label_map(inst, shape=shape), "instances"
        elif a.split_mask:
            pred = label_map(split_semantic(read_mask(sem, shape=shape)), shape)
            kind = "mask split at the discs"
        else:
            pred, kind = components(read_mask(sem, shape=shape)), "mask components"
        pred_kind.add(kind)
        m = match_instances(gt, pred, a.iou, a.cover)
        truth = true_level_names(Path(s.masks[task.name]).parent) if names is not None else None
        if truth is not None:
            checked = [(g, p) for g, p in m.pairs if 0 < g <= len(truth) and 0 < p <= len(names)]
            m.levels_checked = len(checked)
            m.levels_correct = sum(truth[g - 1] == names[p - 1] for g, p in checked)
        matches.append(m)
        rows.append({"image": s.key, "prediction": kind, **m.as_dict()})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "per_image.csv", buf.getvalue())
    summary = {"task": task.name, "split": a.split, "data_root": str(root), "pred_dir": str(a.pred_dir.resolve()),
               "predictions": sorted(pred_kind), "iou": a.iou, "cover": a.cover, **summarise(matches, a.expected)}
    atomic_write_json(out / "summary.json", {**summary, **provenance()}, indent=1)
    md = [f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in summary.items()]
    atomic_write_text(out / "summary.md", "| measure | value |\n|---|---|\n" + "\n".join(md) + "\n")
    logger.info("%s %s: %.2f of %.2f objects detected per image, %.3f merges per image%s -> %s", task.name, a.split,
                summary["detected_per_image"], summary["gt_per_image"], summary["merges_per_image"],
                f", every annotated one in {100 * summary['images_with_all_detected']:.0f}% of images",
                out)
    return 0


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

"""Cobb angles (PT, MT, TL) per AP image, scored like the AASCE 2019 challenge.

Angles follow the definition of the AASCE 2019 / SpineWeb-16 dataset's
``angles.csv`` (see spine_det/morphometry/cobb.py): one direction per vertebra
(left-side midpoint to right-side midpoint), PT = the largest angle between any
two vertebrae, MT / TL by the dataset's S-curve rules.

Inputs
  --data-root ROOT   an imported dataset: per image ``<ROOT>/.../<patient>/AP/`` with
                     ``AP.jpg``, ``landmarks.json`` ({"vertebrae", "corners" (N x 4 x
                     [x, y] px, TL TR BL BR), "cobb_angles" {"PT","MT","TL"}, "source_name"}),
                     ``Ap_Vertebra_instances.png`` (16-bit, k = k-th vertebra) and
                     ``Ap_Vertebra.png`` (binary). The truth comes from landmarks.json.
  --pred-dir DIR     predictions of spine-det predict (``DIR/<patient>/ap/ap_vertebra_instances.png``
                     or ``ap_vertebra_mask.png``). Without --data-root, every
                     ``ap_vertebra_instances.json`` under DIR is measured (its image and
                     height are read from it) and nothing is scored.

--source
  gt          the landmarks' corners (reproduces angles.csv: SMAPE ~0.01 %)
  instances   one mask per vertebra: the predicted label map, or (no --pred-dir) the
              data root's Ap_Vertebra_instances.png; each vertebra's corners are fitted
  mask        one binary mask, split into vertebrae at the discs: the predicted mask
              (LinkNet), or (no --pred-dir) the data root's Ap_Vertebra.png
  quads       the corners a landmark model predicted (--model landmark; each instance's "quad" in
              ap_vertebra_instances.json), measured as they are: no corner fit

Outputs (in --out, never inside the data root or prediction folder)
  cobb_angles.csv    per image: angles, end vertebrae of each curve, S-curve, vertebrae found,
                     the truth and the image's SMAPE when known
  overlays/*.png     the X-ray, every vertebra's endplates, the end vertebrae of each curve
                     extended as lines, and the angle labels
  summary.json/.md   SMAPE, MAE per angle (deg), mean vertebrae found, share with all 17

Examples
  spine-det measure-cobb --data-root data/aasce --split test --source gt --out out/cobb_gt
  spine-det measure-cobb --data-root data/aasce --split test --source instances \\
      --pred-dir out/pred_maskrcnn --out out/cobb_maskrcnn
  spine-det measure-cobb --data-root data/aasce --split test --source mask \\
      --pred-dir out/pred_linknet --out out/cobb_linknet
  spine-det measure-cobb --data-root data/aasce --split test --source quads \\
      --pred-dir out/pred_landmark --out out/cobb_landmark
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from spine_det.data.io import IMAGE_SUFFIXES, DataError, image_size, read_image, read_mask
from spine_det.data.prepare import prepare_dataset
from spine_det.morphometry.cobb_report import (
    corners_from_prediction,
    draw_overlay,
    levelled_corners,
    levelled_quads,
    measure_one,
    read_predicted_quads,
    read_landmarks_json,
    records_csv,
    summarise,
    summary_markdown,
)
from spine_det.morphometry.quads import instances_from_label_map
from spine_det.morphometry.sources import find_prediction, load_prediction, load_scored_instances
from spine_det.utils.cli import positive_int, reports_user_errors
from spine_det.utils.errors import UserError
from spine_det.utils.fileio import atomic_path, atomic_write_json, atomic_write_text
from spine_det.utils.logs import setup_logging
from spine_det.utils.paths import prepare_output, refuse_inside
from spine_det.utils.progress import progress as progress_bar
from spine_det.utils.provenance import provenance

logger = logging.getLogger("spine_det.measure_cobb")

TASK = "ap_vertebra"
SPLIT_FOLDERS = {"train": ("training",), "val": ("training",), "test": ("test",), "all": None}


def _ci_file(folder: Path, name: str) -> Optional[Path]:
    """A file of the folder by case-insensitive name (stem only when ``name`` has no suffix)."""
    if not folder.is_dir():
        return None
    low = name.lower()
    for p in sorted(folder.iterdir()):
        if not p.is_file():
            continue
        if p.name.lower() == low or ("." not in name and p.stem.lower() == low and p.suffix.lower() in IMAGE_SUFFIXES):
            return p
    return None


def dataset_items(root: Path, split: str) -> List[Dict[str, object]]:
    """Every ``AP/landmarks.json`` under the root (in the split's top folder) -> item dicts."""
    if not root.is_dir():
        raise UserError(f"data root not found: {root}")
    tops = SPLIT_FOLDERS[split]
    items = []
    for lm in sorted(root.rglob("*")):
        if lm.name.lower() != "landmarks.json" or lm.parent.name.lower() != "ap":
            continue
        rel = lm.parent.parent.relative_to(root)
        if tops is not None and rel.parts[0].lower() not in tops:
            continue
        ap = lm.parent
        items.append({"key": f"{rel.as_posix()}/ap", "patient": rel.as_posix(), "landmarks": lm,
                      "image": _ci_file(ap, "AP"), "instances": _ci_file(ap, "Ap_Vertebra_instances.png"),
                      "mask": _ci_file(ap, "Ap_Vertebra.png")})
    if not items:
        raise UserError(f"no <patient>/AP/landmarks.json under {root}"
                        + (f" in {'/'.join(tops)}" if tops else "") + " (is it an imported dataset?)")
    return items


def validation_items(root: Path, items: List[Dict[str, object]], seed: int) -> List[Dict[str, object]]:
    """The items of the package's validation split (spine_det.data.prepare, split seed ``seed``)."""
    samples = prepare_dataset(root, seed=seed, convert=False).manifest.select(split="val", view="ap")
    folders = {Path(s.image).resolve().parent.parent for s in samples}
    out = [it for it in items if Path(it["landmarks"]).resolve().parent.parent in folders]
    if not out:
        raise UserError(f"no validation films with landmarks.json under {root} (split seed {seed})")
    return out


def pred_items(pred_dir: Path) -> List[Dict[str, object]]:
    """Prediction folder alone: every ``ap_vertebra_instances.json`` (written by tools/predict.py)."""
    items = []
    for js in sorted(pred_dir.rglob(f"{TASK}_instances.json")):
        try:
            d = json.loads(js.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            logger.error("skipped %s: %s", js, e)
            continue
        key = js.parent.relative_to(pred_dir).as_posix()
        items.append({"key": key, "patient": key, "landmarks": None, "image": Path(d["image"]) if d.get("image") else None,
                      "height": d.get("height"), "width": d.get("width"), "pred_folder": js.parent})
    if not items:
        raise UserError(f"no {TASK}_instances.json under {pred_dir} (written by spine-det predict)")
    return items


def find_pred_file(pred_dir: Path, item: Dict[str, object], instances: bool) -> Optional[Path]:
    keys = [str(item["key"])]
    if str(item["key"]).endswith("/ap"):
        keys.append(str(item["key"])[:-3] + "/AP")
    for k in keys:
        p = find_prediction(pred_dir, k, TASK, instances=instances)
        if p is not None:
            return p
    folder = item.get("pred_folder")
    if folder is not None:
        for n in ([f"{TASK}_instances.png"] if instances else []) + [f"{TASK}_mask.png", f"{TASK}.png"]:
            if (Path(folder) / n).is_file():
                return Path(folder) / n
    return None


def find_quads_file(pred_dir: Optional[Path], item: Dict[str, object]) -> Optional[Path]:
    """The ``ap_vertebra_instances.json`` of an item (for --source quads), or None."""
    name = f"{TASK}_instances.json"
    folders = [Path(item["pred_folder"])] if item.get("pred_folder") is not None else []
    if pred_dir is not None:
        key = str(item["key"])
        folders += [pred_dir / key] + ([pred_dir / (key[:-3] + "/AP")] if key.endswith("/ap") else [])
    return next((f / name for f in folders if (f / name).is_file()), None)


def missing_predictions(items: List[Dict[str, object]], source: str, pred_dir: Optional[Path]) -> List[str]:
    """Keys of the items with no prediction file under ``pred_dir`` (none without one, or for --source gt)."""
    if pred_dir is None or source == "gt":
        return []
    if source == "quads":
        return [str(it["key"]) for it in items if find_quads_file(pred_dir, it) is None]
    return [str(it["key"]) for it in items if find_pred_file(pred_dir, it, instances=(source == "instances")) is None]


def load_source(item: Dict[str, object], source: str, pred_dir: Optional[Path], shape: Tuple[int, int]):
    """The masks to measure (list of instance masks or one binary mask), or None if absent; predicted
    instances come as (masks, scores or None)."""
    if pred_dir is not None:
        p = find_pred_file(pred_dir, item, instances=(source == "instances"))
        if p is not None and p.name.endswith(("_instances.png", "_instances.npz")):
            return load_scored_instances(p)
        return None if p is None else load_prediction(p, shape)
    p = item["instances"] if source == "instances" else item["mask"]
    if p is None:
        return None
    if source == "instances":
        lab = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if lab is None:
            raise DataError(p, "unreadable instance label image")
        return instances_from_label_map(lab if lab.ndim == 2 else lab[..., 0])
    return read_mask(p, shape)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=None, help="imported dataset (see Inputs above)")
    p.add_argument("--pred-dir", type=Path, default=None, help="spine-det predict's --output folder (see Inputs above)")
    p.add_argument("--source", choices=("gt", "instances", "mask", "quads"), default="gt", help="what to measure (see above)")
    p.add_argument("--split", choices=("train", "val", "test", "all"), default="test",
                   help="with --data-root: Training/ (train), Test/ (test) or both (default: test); val: the "
                        "package's validation films (drawn from Training/ with --seed, as by every other tool), "
                        "where post-processing settings are chosen, never on the test films")
    p.add_argument("--seed", type=int, default=0, help="with --split val: the split seed (default 0)")
    p.add_argument("--fit", choices=("endplates", "rect"), default="endplates",
                   help="corner fit per vertebra mask: endplate lines (default) or minimum-area rectangle")
    p.add_argument("--levels", action=argparse.BooleanOptionalAction, default=True,
                   help="order-aware post-processing of predicted vertebrae (default on): candidates off the spine's "
                        "curve and duplicates of a level are dropped, the rest fitted to the levels T1-L5 "
                        "(spine_det/morphometry/levels.py), so each curve's end vertebrae are named; "
                        "--no-levels measures every predicted instance as it comes")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--no-overlay", action="store_true", help="write only the CSV and the summary")
    p.add_argument("--overlay-max-side", type=positive_int, default=1600, help="overlay long side in px (default 1600)")
    p.add_argument("--limit", type=positive_int, default=None, help="only the first N images")
    return p


@reports_user_errors
def main(argv: Optional[List[str]] = None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    if args.data_root is None and args.pred_dir is None:
        raise UserError("give --data-root, --pred-dir, or both")
    if args.source == "gt" and args.data_root is None:
        raise UserError("--source gt needs --data-root (the landmarks)")
    if args.data_root is None and args.source not in ("instances", "mask", "quads"):
        raise UserError("without --data-root, --source must be instances, mask or quads")
    if args.source == "quads" and args.pred_dir is None:
        raise UserError("--source quads needs --pred-dir (a landmark model's predictions)")
    for folder in (args.data_root, args.pred_dir):
        if folder is not None and not folder.is_dir():
            raise UserError(f"folder not found: {folder}")
    # never inside the data root or the prediction folder (prepared, and locked, once the inputs are read)
    refuse_inside(args.out, args.data_root, args.pred_dir, label="input folder")

    items = dataset_items(args.data_root, args.split) if args.data_root is not None else pred_items(args.pred_dir)
    if args.data_root is not None and args.split == "val":
        items = validation_items(args.data_root, items, args.seed)
    if args.limit:
        items = items[: args.limit]
    missing = missing_predictions(items, args.source, args.pred_dir) if args.data_root is not None else []
    if missing and len(missing) == len(items):  # a mistyped folder: every film "0 vertebrae", SMAPE 100
        raise UserError(f"--pred-dir {args.pred_dir} has no {args.source} prediction for any of the {len(items)} "
                        f"films of split {args.split} (first: {missing[0]}); predict them with spine-det predict "
                        f"--data-root {args.data_root} --split {args.split} --output {args.pred_dir}")
    prepare_output(args.out, args.data_root, args.pred_dir, label="input folder")  # writable; one writer at a time
    out = args.out.expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not args.no_overlay:
        (out / "overlays").mkdir(exist_ok=True)
    records: List[Dict[str, object]] = []
    failed = 0
    for it in progress_bar(items, desc=f"cobb/{args.source}", disable=len(items) < 2):
        rec: Dict[str, object] = {"image": it["key"]}
        try:
            lm = read_landmarks_json(it["landmarks"]) if it.get("landmarks") else None
            if it.get("height"):
                h, w = int(it["height"]), int(it["width"])
            elif it.get("image") is not None:
                h, w = image_size(it["image"])
            else:
                raise DataError(it["key"], "no AP image and no recorded height")
            names = None
            if args.source == "gt":
                corners, names = lm["corners"], lm["names"]
            elif args.source == "quads":
                qf = find_quads_file(args.pred_dir, it)
                quads, scores, hints = read_predicted_quads(qf) if qf is not None else (None, None, None)
                if quads is None:
                    logger.warning("%s: no quads prediction; scored as 0 vertebrae", it["key"])
                    corners = np.zeros((0, 4, 2))
                elif args.levels:
                    corners, names, assignment = levelled_quads(quads, scores, (h, w), level_hints=hints)
                    rec["missing_levels"] = " ".join(assignment.missing) if assignment else ""
                else:
                    corners = quads[np.argsort(quads[:, :, 1].mean(axis=1), kind="stable")] if len(quads) else quads
            else:
                pred = load_source(it, args.source, args.pred_dir, (h, w))
                scores = None
                if isinstance(pred, tuple):
                    pred, scores = pred
                if pred is None:
                    logger.warning("%s: no %s prediction; scored as 0 vertebrae", it["key"], args.source)
                if args.levels:
                    corners, names, assignment = levelled_corners(pred, args.fit, scores)
                    rec["missing_levels"] = " ".join(assignment.missing) if assignment else ""
                else:
                    corners = corners_from_prediction(pred, args.fit)
            rec.update(measure_one(corners, h, lm["true"] if lm else None, names))
            if lm and lm.get("source_name"):
                rec["source_name"] = lm["source_name"]
            if not args.no_overlay and it.get("image") is not None and Path(it["image"]).is_file():
                ov = draw_overlay(read_image(it["image"]), corners, rec.get("result"), args.overlay_max_side,
                                  names=names if names is not None and len(names) == len(corners) else None)
                with atomic_path(out / "overlays" / (str(it["key"]).replace("/", "__") + ".png")) as tmp:
                    cv2.imwrite(str(tmp), ov)
        except (DataError, ValueError) as e:
            logger.error("skipped %s: %s", it["key"], e)
            rec["error"] = str(e)
            failed += 1
        rec.pop("result", None)
        records.append(rec)
    ok = [r for r in records if "error" not in r]
    summary = summarise(ok, args.source)
    summary.update({"failed": failed, "missing_predictions": len(missing), "fit": args.fit,
                    "levels": bool(args.levels and args.source != "gt"),
                    "inputs": {"data_root": str(args.data_root) if args.data_root else None,
                               "pred_dir": str(args.pred_dir) if args.pred_dir else None, "split": args.split,
                               "seed": args.seed}})
    atomic_write_text(out / "cobb_angles.csv", records_csv(records))
    atomic_write_json(out / "summary.json", {**summary, **provenance()})
    atomic_write_text(out / "summary.md", summary_markdown(summary))
    sm = summary.get("smape")
    logger.info("%d image(s) -> %s%s%s", len(ok), out, f"; SMAPE {sm:.2f} %" if sm is not None else "",
                f" ({failed} failed)" if failed else "")
    return 1 if failed else 0


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

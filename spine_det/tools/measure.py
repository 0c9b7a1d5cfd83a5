"""Per-vertebra morphometry and Genant grading for every patient of a dataset.

Writes, per patient, ``<out>/<patient>.json`` (ordered vertebrae with corners,
anterior / middle / posterior heights (px, and mm where the film's DICOM header
states its pixel spacing: ``<name>_mm``), wedge / biconcavity / crush ratios,
expected height, loss, Genant grade, flags; discs per gap; listhesis steps; AP
widths and interpedicular distances; the Normal / Damaged call) and
``<out>/<patient>.png`` (overlay), plus ``<out>/measure_summary.json``.

Examples::

    spine-det measure --data-root datasets/phantom --out out/morph_gt
    spine-det measure --data-root datasets/phantom --source linknet --pred-dir out/pred_linknet --out out/morph_ln
    spine-det measure --data-root DIR --out OUT --config out/eval_morph/morphometry_config.json

Predicted masks are read from ``<pred-dir>/<patient key>/<task>.png`` (or
``<task>_instances.npz`` / ``_instances.png`` for Mask R-CNN instances); see
spine_det/morphometry/sources.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from spine_det.data.prepare import prepare_dataset
from spine_det.morphometry.dataset import measure_split
from spine_det.morphometry.grading import NOT_MEASURED
from spine_det.morphometry.pipeline import load_measure_config
from spine_det.morphometry.sources import SOURCES
from spine_det.morphometry.units import has_millimetres
from spine_det.tasks import SPLITS
from spine_det.utils.cli import as_user_error, finite_float, positive_int, reports_user_errors
from spine_det.utils.errors import UserError
from spine_det.utils.fileio import atomic_write_json
from spine_det.utils.logs import setup_logging
from spine_det.utils.paths import prepare_output, refuse_inside
from spine_det.utils.provenance import provenance


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True, type=Path, help="dataset root (Training/ [Test/] layout)")
    p.add_argument("--source", choices=SOURCES, default="gt", help="masks to measure: ground truth or predictions")
    p.add_argument("--pred-dir", type=Path, default=None, help="folder of predicted masks (linknet / maskrcnn)")
    p.add_argument("--out", required=True, type=Path, help="output folder for the JSON + PNG per patient")
    p.add_argument("--split", choices=SPLITS + ("all",), default="all", help="which patients (default: all)")
    p.add_argument("--seed", type=int, default=0, help="split seed (as for every other tool)")
    p.add_argument("--config", type=Path, default=None,
                   help="morphometry config JSON (e.g. morphometry_config.json written by eval_morphometry.py)")
    p.add_argument("--pad", type=finite_float, default=None, help="override the pixel pad added to measured lengths")
    p.add_argument("--no-overlay", action="store_true", help="write only the JSON files")
    p.add_argument("--limit", type=positive_int, default=None, help="measure only the first N patients")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


@reports_user_errors
def main(argv: Optional[List[str]] = None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    if args.source != "gt" and args.pred_dir is None:
        raise UserError(f"--source {args.source} needs --pred-dir")
    with as_user_error(ValueError):  # a config value out of range
        refuse_inside(args.out, args.data_root)  # never inside the data root (prepared once the inputs are read)
        cfg = load_measure_config(args.config, args.pad)
        manifest = prepare_dataset(args.data_root, seed=args.seed, convert=False).manifest
        prepare_output(args.out, args.data_root)  # writable; one writer at a time
        split = None if args.split == "all" else args.split
        results = measure_split(manifest, split, cfg, args.source, args.pred_dir, args.out,
                                overlays=not args.no_overlay, limit=args.limit, progress=not args.quiet)
    calls = {r.patient_id: r.record["call"] for r in results}
    summary = {
        "meta": {"data_root": str(args.data_root.resolve()), "split": args.split, "seed": args.seed,
                 "source": args.source, "pred_dir": str(args.pred_dir) if args.pred_dir else None, **provenance()},
        "config": cfg.to_dict(),
        "patients": len(results),
        "damaged_calls": sum(c["label"] == "Damaged" for c in calls.values()),
        "not_measured": sum(c["label"] == NOT_MEASURED for c in calls.values()),  # no call: nothing graded
        "calls": calls,
        # lengths in mm beside px where every film of the patient states its pixel spacing (DICOM)
        "millimetres": {"patients": sum(has_millimetres(r.record) for r in results),
                        "without_spacing": [r.patient_id for r in results if not has_millimetres(r.record)]},
    }
    atomic_write_json(args.out / "measure_summary.json", summary)
    print(f"measured {len(results)} patients ({args.source}, split {args.split}) -> {args.out}; "
          f"{summary['damaged_calls']} called Damaged"
          + (f", {summary['not_measured']} not measured (no vertebra graded in the lateral view; called neither "
             "Normal nor Damaged)" if summary["not_measured"] else ""))
    mm = summary["millimetres"]["patients"]
    print(f"lengths in mm beside px for {mm} of {len(results)} patients"
          + (" (the others' films state no pixel spacing: px only; see meta.pixel_spacing in their JSON)"
             if mm < len(results) else ""))
    return 0


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

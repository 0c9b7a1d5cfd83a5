"""Score morphometry against the phantom's ground_truth.json (heights, Genant grades, patient call).

Steps: (1) on the training split, calibrate the pixel pad (the mask-edge bias of
the source: median of true - measured height; likewise for the interpedicular
distance), per-height factors (the source's shape bias, e.g. a mask head that
fills biconcave endplates: median true / measured for anterior, middle and
posterior heights), the expected-height scale (true un-fractured height / neighbour
estimate, on normal levels) and fit the patient rule
(Damaged if any grade >= g or listhesis >= L%, maximising balanced accuracy);
(2) measure the evaluation split with that config; (3) compare per level and per
patient. Writes ``morphometry_metrics.json`` (with meta: data root, split, seed,
source), ``morphometry_levels.csv`` and ``morphometry_config.json`` (usable as
``spine-det measure --config``), and prints a table naming what produced it.

Example::

    spine-det make-phantom --out datasets/phantom --patients 100 --size 512
    spine-det eval-morphometry --data-root datasets/phantom --split test --out out/eval_morph
"""
from __future__ import annotations

import argparse
import csv
import io
import logging
import sys
from pathlib import Path
from typing import List, Optional

from spine_det.data.io import DataError
from spine_det.data.prepare import prepare_dataset
from spine_det.morphometry.dataset import load_ground_truth, measure_split
from spine_det.morphometry.evaluate import (
    calibrate_expected_scale,
    calibrate_height_scale,
    calibrate_ipd_pad,
    calibrate_pad,
    compare_patient,
    summarize,
)
from spine_det.morphometry.grading import NOT_MEASURED, fit_patient_rule
from spine_det.morphometry.pipeline import load_measure_config
from spine_det.morphometry.sources import SOURCES
from spine_det.tasks import SPLITS
from spine_det.utils.cli import as_user_error, positive_int, reports_user_errors
from spine_det.utils.errors import UserError
from spine_det.utils.fileio import atomic_write_json, atomic_write_text
from spine_det.utils.logs import setup_logging
from spine_det.utils.paths import prepare_output, refuse_inside
from spine_det.utils.provenance import provenance

logger = logging.getLogger("spine_det.eval_morphometry")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True, type=Path, help="phantom dataset root (with ground_truth.json files)")
    p.add_argument("--split", choices=SPLITS, default="test", help="split to evaluate (default: test)")
    p.add_argument("--out", required=True, type=Path, help="output folder for metrics / config")
    p.add_argument("--source", choices=SOURCES, default="gt", help="masks to measure")
    p.add_argument("--pred-dir", type=Path, default=None, help="predicted masks (linknet / maskrcnn)")
    p.add_argument("--seed", type=int, default=0, help="split seed")
    p.add_argument("--config", type=Path, default=None, help="start from this morphometry config JSON")
    p.add_argument("--no-fit", action="store_true", help="use the config as is: no pad calibration, no rule fitting")
    p.add_argument("--save-reports", action="store_true", help="also write per-patient JSON + overlay under <out>/reports")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="only the first N patients of each split (smoke tests)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def _sklearn_kappa(t, p):
    try:  # scikit-learn is optional: a cross-check of the package's own kappa when it is installed
        from sklearn.metrics import cohen_kappa_score
    except ImportError:
        return None
    return float(cohen_kappa_score(t, p, labels=[0, 1, 2, 3], weights="linear")) if len(t) else None


def _compare(results, progress_label: str):
    out = []
    for r in results:
        c = compare_patient(r.record, load_ground_truth(r))
        c["patient_id"] = r.patient_id
        out.append(c)
    return out


def fit_on_train(manifest, cfg, args):
    """Calibrate the pad and fit the patient rule on the training split; returns (cfg, info)."""
    kw = dict(source=args.source, pred_dir=args.pred_dir, out_dir=None, overlays=False, limit=args.limit,
              progress=not args.quiet)
    cfg.pad = 0.0
    train = measure_split(manifest, "train", cfg, **kw)
    if not train:
        raise DataError(args.data_root, "no training patients to calibrate on; pass --no-fit --config FILE")
    comps = _compare(train, "train")
    cfg.pad = round(calibrate_pad(comps, 0.0), 3)
    cfg.ipd_pad = round(calibrate_ipd_pad(comps, cfg.ipd_pad), 3)
    train = measure_split(manifest, "train", cfg, **kw)
    comps = _compare(train, "train")
    cfg.height_scale = calibrate_height_scale(comps, cfg.height_scale)
    train = measure_split(manifest, "train", cfg, **kw)
    comps = _compare(train, "train")
    cfg.grading.expected_scale = round(calibrate_expected_scale(comps, cfg.grading.expected_scale), 4)
    train = measure_split(manifest, "train", cfg, **kw)
    comps = _compare(train, "train")
    called = [c for c in comps if c["call"] != NOT_MEASURED]  # nothing measured: no evidence for either rule
    fitted, bal_acc = fit_patient_rule([c["max_grade"] for c in called], [c["max_listhesis_pct"] for c in called],
                                       [c["label"] for c in called], cfg.grading)
    cfg.grading = fitted
    info = {"fitted_on": "train", "train_patients": len(comps), "pad_px": cfg.pad, "ipd_pad_px": cfg.ipd_pad,
            "height_scale": cfg.height_scale,
            "expected_scale": cfg.grading.expected_scale,
            "patient_min_grade": fitted.patient_min_grade, "listhesis_pct": fitted.listhesis_pct,
            "train_balanced_accuracy": round(bal_acc, 4)}
    return cfg, info


def levels_csv(comps) -> str:
    buf = io.StringIO()
    cols = ["patient_id", "level", "fracture_type", "true_grade", "grade", "true_loss", "loss",
            "true_ha", "ha", "true_hm", "hm", "true_hp", "hp", "flags"]
    w = csv.writer(buf)
    w.writerow(cols)
    for c in comps:
        for r in c["levels"]:
            w.writerow([c["patient_id"]] + [";".join(r[k]) if k == "flags" else r.get(k) for k in cols[1:]])
    return buf.getvalue()


def table(m: dict, meta: dict) -> str:
    f = lambda x, p=1: "n/a" if x is None or x != x else f"{x:.{p}f}"  # noqa: E731
    lines = [
        f"Morphometry on {meta['data_root']} | split {meta['split']} | seed {meta['seed']} | source {meta['source']}"
        f" | {m['patients']} patients, {m['matched_levels']}/{m['true_levels']} levels matched, {m['graded_levels']} graded",
        f"  height MAE % of true   anterior {f(m['ha_mae_pct'], 2)}  middle {f(m['hm_mae_pct'], 2)}"
        f"  posterior {f(m['hp_mae_pct'], 2)}  (mean {f(m['height_mae_pct'], 2)}; target <= 5)",
        f"  Genant grade           kappa (linear) {f(m['grade_kappa_linear'], 3)}"
        f"{'' if m.get('grade_kappa_sklearn') is None else ' [sklearn ' + f(m['grade_kappa_sklearn'], 3) + ']'}"
        f"  exact {f(m['grade_exact_agreement'], 3)}  fracture sens {f(m['fracture_sensitivity'], 3)}"
        f" spec {f(m['fracture_specificity'], 3)}  (target kappa >= 0.8)",
        f"  AP                     width MAE {f(m['ap_width_mae_pct'], 2)}%  IPD MAE {f(m['ap_ipd_mae_pct'], 2)}%",
        f"  patient call           accuracy {f(m['patient_accuracy'], 3)}  sensitivity {f(m['patient_sensitivity'], 3)}"
        f"  specificity {f(m['patient_specificity'], 3)}  {m['patient_confusion']}"
        + (f"  ({m['patients_not_measured']} not measured, left out)" if m.get("patients_not_measured") else ""),
    ]
    return "\n".join(lines)


@reports_user_errors
def main(argv: Optional[List[str]] = None) -> int:
    setup_logging()
    args = build_parser().parse_args(argv)
    if args.source != "gt" and args.pred_dir is None:
        raise UserError(f"--source {args.source} needs --pred-dir")
    with as_user_error(ValueError):  # a config value out of range, a split without patients
        refuse_inside(args.out, args.data_root)  # never inside the data root (prepared once the inputs are read)
        cfg = load_measure_config(args.config)
        manifest = prepare_dataset(args.data_root, seed=args.seed, convert=False).manifest
        prepare_output(args.out, args.data_root)  # writable; one writer at a time
        fit_info = {"fitted_on": None}
        if not args.no_fit:
            cfg, fit_info = fit_on_train(manifest, cfg, args)
        results = measure_split(manifest, args.split, cfg, args.source, args.pred_dir,
                                args.out / "reports" if args.save_reports else None, overlays=True,
                                limit=args.limit, progress=not args.quiet)
        if not results:
            raise DataError(args.data_root, f"no patients in split {args.split!r}")
        comps = _compare(results, args.split)
    m = summarize(comps)
    graded = [r for c in comps for r in c["levels"] if r["grade"] is not None and r["grade"] >= 0]
    m["grade_kappa_sklearn"] = _sklearn_kappa([r["true_grade"] for r in graded], [r["grade"] for r in graded])
    meta = {"data_root": str(args.data_root.resolve()), "split": args.split, "seed": args.seed, "source": args.source,
            "pred_dir": str(args.pred_dir) if args.pred_dir else None, "calibration": fit_info,
            "config": cfg.to_dict(), **provenance()}
    per_patient = [{"patient_id": c["patient_id"], "label": c["label"], "call": c["call"], "max_grade": c["max_grade"],
                    "max_listhesis_pct": c["max_listhesis_pct"]} for c in comps]
    atomic_write_json(args.out / "morphometry_metrics.json", {"meta": meta, "metrics": m, "patients": per_patient})
    atomic_write_json(args.out / "morphometry_config.json", {"meta": {k: meta[k] for k in ("data_root", "seed", "source", "calibration")},
                                                             "config": cfg.to_dict()})
    atomic_write_text(args.out / "morphometry_levels.csv", levels_csv(comps))
    print(table(m, meta))
    if fit_info.get("fitted_on"):
        print(f"  fitted on train ({fit_info['train_patients']} patients): pad {fit_info['pad_px']} px, "
              f"IPD pad {fit_info['ipd_pad_px']} px, height factors {fit_info['height_scale']}, expected-height scale {fit_info['expected_scale']}, Damaged if grade >= "
              f"{fit_info['patient_min_grade']} or listhesis >= {fit_info['listhesis_pct']}% "
              f"(train balanced accuracy {fit_info['train_balanced_accuracy']})")
    print(f"wrote {args.out / 'morphometry_metrics.json'}")
    return 0


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

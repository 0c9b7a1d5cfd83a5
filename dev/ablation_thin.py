#!/usr/bin/env python
"""Ablation of Mask R-CNN on the thin tasks (vertebral lines, AP spinous processes).

Each variant is a set of config changes ("atoms") over a task config + profile:

    components | per_level | whole   what one instance of a line is (SPINE.INSTANCES.LINE)
    mask28 | mask56                 mask head output (ROI_MASK_HEAD.POOLER_RESOLUTION 14 | 28)
    s384 | s448 | s512 | s768       input short side (train and test); under --profile cpu the
                                    lines default to s768 (configs/profiles/cpu/<task>.yaml):
                                    add s448 to get the profile's former input

e.g. ``per_level+mask56+s512``. Every run is trained once with tools/train_net.py
(reused when ``model_final.pth`` and ``run.json`` exist and were made with the same options,
else moved aside to ``<variant>.before-<time>``: the script is resumable),
then evaluated on val and test with the evaluator's metric (per-image Dice/Jaccard/TPR,
no dilation): once at Detectron2's fixed thresholds (score 0.5, mask 0.5) and once at
the thresholds chosen on val (saved as ``<run>/thresholds.json``). The table is written
atomically after every run::

    python dev/ablation_thin.py --data-root datasets/phantom --out output/ablation_thin \
        --tasks lat_anterior_line --variants components+mask28,per_level+mask28 --iters 100
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

ROOT = Path(__file__).resolve().parents[1]
THIN_TASKS = ("lat_anterior_line", "lat_posterior_line", "ap_spinous_process")
ATOMS: Dict[str, List[str]] = {
    "components": ["SPINE.INSTANCES.LINE", "components", "SPINE.INSTANCES.SPINOUS_PROCESS", "components"],
    "per_level": ["SPINE.INSTANCES.LINE", "per_level", "SPINE.INSTANCES.SPINOUS_PROCESS", "components"],
    "whole": ["SPINE.INSTANCES.LINE", "whole", "SPINE.INSTANCES.SPINOUS_PROCESS", "whole"],
    # Anchors fitted to dev/anchor_stats.py: per-level pieces and spinous processes are ~15-40 px
    # (p2 anchors of 32 are too big), aspect h/w 2-13 (the default set stops at 4).
    "anchors": ["MODEL.ANCHOR_GENERATOR.SIZES", "[[16], [32], [64], [128], [256]]",
                "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS", "[[0.5, 1.0, 2.0, 4.0, 8.0]]"],
    "mask28": ["MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION", "14"],
    "mask56": ["MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION", "28"],
    **{
        f"s{s}": ["INPUT.MIN_SIZE_TRAIN", f"({s},)", "INPUT.MIN_SIZE_TEST", str(s), "INPUT.MAX_SIZE_TRAIN", "1400", "INPUT.MAX_SIZE_TEST", "1400"]
        for s in (384, 448, 512, 768)
    },
}
logger = logging.getLogger("spine_det.ablation_thin")


def variant_opts(variant: str) -> List[str]:
    opts: List[str] = []
    for atom in variant.split("+"):
        if atom not in ATOMS:
            raise SystemExit(f"error: unknown atom {atom!r} in variant {variant!r}; known: {', '.join(ATOMS)}")
        opts += ATOMS[atom]
    return opts


def train(task: str, variant: str, args, run_dir: Path) -> Dict[str, Any]:
    """Train one run with tools/train_net.py (skipped when finished); returns its run.json."""
    info_file = run_dir / "run.json"
    warm = max(1, args.iters // 5)
    opts = [
        "SPINE.CACHE_DIR", str(args.cache_dir), "SPINE.SPLIT_SEED", str(args.split_seed), "SEED", str(args.seed),
        "SOLVER.MAX_ITER", str(args.iters), "SOLVER.STEPS", f"({int(args.iters * 0.8)},)", "SOLVER.WARMUP_ITERS", str(warm),
        "TEST.EVAL_PERIOD", str(args.iters), "SOLVER.CHECKPOINT_PERIOD", str(args.iters),
        "SPINE.EVAL.SPLITS", "()", "SPINE.EVAL.SCORE_THRESHOLD", "0.5", "OUTPUT_DIR", str(run_dir),
        *variant_opts(variant),
    ]
    if (run_dir / "model_final.pth").is_file() and info_file.is_file():
        info = json.loads(info_file.read_text())
        if info.get("opts") == opts:
            return info
        from spine_det.benchmark.runner import set_aside

        logger.warning("%s/%s was trained with other options; moved to %s, training afresh", task, variant, set_aside(run_dir))
    from spine_det.config.paths import resolve_config_file

    cmd = [sys.executable, str(ROOT / "tools" / "train_net.py"), "--config-file", str(resolve_config_file(f"{task}.yaml")),
           "--data-root", str(args.data_root), "--profile", args.profile, *opts]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(run_dir / "train_stdout.log", "w") as log:
        rc = subprocess.call(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT))
    if rc != 0:
        raise SystemExit(f"error: training {task}/{variant} failed (rc {rc}); see {run_dir / 'train_stdout.log'}")
    info = {"task": task, "variant": variant, "iters": args.iters, "train_seconds": round(time.time() - t0, 1),
            "s_per_iter": _s_per_iter(run_dir / "metrics.json"), "opts": opts}
    from spine_det.utils.fileio import atomic_write_json

    atomic_write_json(info_file, info)
    return info


def _s_per_iter(metrics_file: Path) -> float:
    """Median of Detectron2's per-window iteration time in metrics.json."""
    import numpy as np

    vals = []
    for line in metrics_file.read_text().splitlines() if metrics_file.is_file() else []:
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if "time" in d:
            vals.append(float(d["time"]))
    return float(np.median(vals)) if vals else float("nan")


def evaluate(task: str, run_dir: Path, args) -> Dict[str, Any]:
    """Val-tuned and fixed-threshold scores on test (cached in eval.json)."""
    out_file = run_dir / "eval.json"
    if out_file.is_file():
        return json.loads(out_file.read_text())
    import torch

    torch.set_num_threads(args.threads)
    import spine_det.compat  # noqa: F401  (shims before detectron2)
    from detectron2.data import build_detection_test_loader

    from spine_det.config import get_spine_cfg
    from spine_det.data.mapper import SpineDatasetMapper
    from spine_det.engine.trainer import SpineTrainer, load_for_eval, register_datasets
    from spine_det.evaluation import threshold_tuning as th
    from spine_det.utils.fileio import atomic_write_json

    cfg = get_spine_cfg(run_dir / "config.yaml")
    cfg.SPINE.DATA_ROOT = str(args.data_root)
    register_datasets(cfg)
    model = load_for_eval(SpineTrainer, cfg, str(run_dir / "model_final.pth"))
    tasks = list(cfg.SPINE.TASKS)
    preds = {}
    t0 = time.time()
    for split in ("val", "test"):
        loader = build_detection_test_loader(cfg, f"spine_{task}_{split}", mapper=SpineDatasetMapper(cfg, False))
        preds[split] = th.collect_raw_predictions(model, loader)
    infer_s = (time.time() - t0) / max(1, sum(len(p) for p in preds.values()))
    swept = th.sweep(preds["val"], tasks)
    chosen = th.choose_thresholds(swept)
    th.save_thresholds(run_dir, chosen, {"split": "val", "checkpoint": str(run_dir / "model_final.pth")})
    fixed = {t: {"score_threshold": th.DEFAULT[0], "mask_threshold": th.DEFAULT[1]} for t in tasks}
    # What the standard evaluator applies (it tunes the score only; masks pasted at 0.5).
    score_only = th.choose_thresholds({t: {p: v for p, v in sw.items() if p[1] == th.DEFAULT[1]} for t, sw in swept.items()})
    res = {
        "chosen": chosen[task],
        "val_fixed": swept[task].get(th.DEFAULT, {}),
        "test_fixed": th.evaluate_with(preds["test"], tasks, fixed)[task],
        "test_tuned": th.evaluate_with(preds["test"], tasks, chosen)[task],
        "chosen_score_only": score_only[task],
        "test_score_only": th.evaluate_with(preds["test"], tasks, score_only)[task],
        "n_val": len(preds["val"]), "n_test": len(preds["test"]), "s_per_image": round(infer_s, 3),
    }
    atomic_write_json(out_file, res)
    return res


def fmt(v: Any) -> str:
    return "–" if v is None or (isinstance(v, float) and v != v) else f"{v:.3f}"


def write_table(path: Path, header: str, rows: Sequence[Dict[str, Any]], notes: str = "") -> None:
    from spine_det.utils.fileio import atomic_write_text

    counts = sorted({(r["eval"].get("n_val"), r["eval"].get("n_test")) for r in rows}, key=str)
    lines = [header, "", "images evaluated (val, test): " + ", ".join(f"{v}, {t}" for v, t in counts), "",
             "| task | variant | thresholds (score/mask) | Dice | Jaccard | TPR | val Dice | s/iter | train s | s/img (infer) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        for kind in ("fixed", "score_only", "tuned"):
            if f"test_{kind}" not in r["eval"]:
                continue
            t = r["eval"][f"test_{kind}"]
            if kind == "fixed":
                thr, val = "0.5/0.5 (fixed)", r["eval"]["val_fixed"].get("dice")
            else:
                c = r["eval"]["chosen" if kind == "tuned" else "chosen_score_only"]
                what = "both val-tuned" if kind == "tuned" else "score val-tuned"
                thr, val = f"{c['score_threshold']:g}/{c['mask_threshold']:g} ({what})", c.get("val_dice")
            lines.append(
                f"| {r['task']} | {r['variant']} | {thr} | {fmt(t.get('dice'))} | {fmt(t.get('jaccard'))} | {fmt(t.get('tpr'))} "
                f"| {fmt(val)} | {fmt(r['info'].get('s_per_iter'))} | {r['info'].get('train_seconds', '–')} | {fmt(r['eval'].get('s_per_image'))} |"
            )
    lines += ["", "Dice/Jaccard: mean over test images; both empty -> 1; TPR left out where the ground truth is empty. "
              "Predictions and ground truth are never dilated. Thresholds 'val-tuned' are chosen on the val split only. "
              "s/iter: Detectron2's median iteration time; train s: wall time of tools/train_net.py (start-up and the "
              "end-of-training val pass included); s/img: raw inference on val+test."]
    if notes:
        lines += ["", notes.rstrip()]
    atomic_write_text(path, "\n".join(lines) + "\n")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True, type=Path, help="spine dataset (e.g. tools/make_phantom.py output)")
    p.add_argument("--cache-dir", type=Path, default=None, help="COCO cache (default: <out>/cache)")
    p.add_argument("--out", type=Path, default=Path("output/ablation_thin"), help="runs folder (one sub-folder per run)")
    p.add_argument("--table", type=Path, default=Path("results/ablation_thin.md"), help="markdown table to write")
    p.add_argument("--tasks", default=",".join(THIN_TASKS), help="comma-separated task names")
    p.add_argument("--variants", default="components+mask28,per_level+mask28,per_level+mask56",
                   help="comma-separated variants, atoms joined by '+': " + ", ".join(ATOMS))
    p.add_argument("--iters", type=int, default=100, help="training iterations per run")
    p.add_argument("--profile", default="cpu", choices=("cpu", "full"))
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--split-seed", type=int, default=0, help="patient split seed")
    p.add_argument("--threads", type=int, default=1, help="torch/OMP threads")
    p.add_argument("--notes", type=Path, default=None, help="markdown file appended under the table (findings, decisions)")
    p.add_argument("--data-note", default="", help="free text for the table header (e.g. how the data was made)")
    return p


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args.data_root = args.data_root.resolve()
    if not args.data_root.is_dir():
        raise SystemExit(f"error: data root not found: {args.data_root}")
    from spine_det.utils.paths import OutputLocationError, prepare_output

    try:
        args.out = prepare_output(args.out, args.data_root)  # never inside the data root; writable
    except OutputLocationError as e:
        raise SystemExit(f"error: {e}") from None
    args.cache_dir = (args.cache_dir or args.out / "cache").resolve()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for v in variants:
        variant_opts(v)
    header = (
        f"# Mask R-CNN on thin structures: ablation\n\n"
        f"data: `{args.data_root.name}` {args.data_note} · split seed {args.split_seed} (patients: train / val / test by the "
        f"manifest) · training seed {args.seed} · profile `{args.profile}` · {args.iters} iterations per run · "
        f"{args.threads} thread(s)"
    )
    print(header)
    # Every finished run of this out folder goes in the table (earlier invocations included).
    for task in tasks:
        for variant in variants:
            run_dir = args.out / task / variant
            print(f"== {task} / {variant}", flush=True)
            info = train(task, variant, args, run_dir)
            ev = evaluate(task, run_dir, args)
            print(f"   test Dice fixed {fmt(ev['test_fixed'].get('dice'))}, val-tuned {fmt(ev['test_tuned'].get('dice'))} "
                  f"(thr {ev['chosen']['score_threshold']}/{ev['chosen']['mask_threshold']}); {info.get('s_per_iter')} s/iter",
                  flush=True)
            notes = args.notes.read_text() if args.notes else ""
            write_table(args.table, header, finished_rows(args.out), notes)
    print(f"wrote {args.table}")


def finished_rows(out: Path) -> List[Dict[str, Any]]:
    """Rows of every run under ``out`` with run.json and eval.json, thin tasks first, by variant."""
    rows = []
    for info_file in sorted(out.glob("*/*/run.json")):
        if ".before-" in info_file.parent.name:  # a run set aside (trained with other options)
            continue
        ev_file = info_file.parent / "eval.json"
        if not ev_file.is_file():
            continue
        info = json.loads(info_file.read_text())
        rows.append({"task": info_file.parent.parent.name, "variant": info_file.parent.name, "info": info,
                     "eval": json.loads(ev_file.read_text())})
    order = {t: i for i, t in enumerate(THIN_TASKS)}
    return sorted(rows, key=lambda r: (order.get(r["task"], 99), r["task"]))


if __name__ == "__main__":
    main()

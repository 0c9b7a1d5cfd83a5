#!/usr/bin/env python
"""Speed of the Mask R-CNN evaluation path, model excluded.

1. ``evaluator``: SpineSemanticEvaluator.process + evaluate on synthetic
   predictions (N instances per image, already pasted at full size as Detectron2
   returns them) against ground-truth mask PNGs at full X-ray size. Target:
   ≥ 50 images/s at 2000×3000 on 2 cores.
2. ``trainer``: seconds per training iteration of a bare DefaultTrainer vs the
   spine Trainer (extra hooks + evaluator) on the CPU profile at a tiny size,
   side by side on the same phantom data. Target: ≤ 5% overhead.

    python dev/bench_evaluator.py                 # both
    python dev/bench_evaluator.py --part evaluator --images 60 --height 3000 --width 2000
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import spine_det.compat  # noqa: F401  (shims before detectron2)


def synthetic_gt(height: int, width: int, n: int, rng: np.random.Generator):
    """A spine-like column of ``n`` ellipses: the ground truth and its instance masks."""
    import cv2

    cx = width // 2
    step = height / (n + 1)
    inst = []
    for i in range(n):
        m = np.zeros((height, width), np.uint8)
        cy = int(step * (i + 1))
        cv2.ellipse(m, (cx + int(rng.integers(-20, 20)), cy), (width // 10, int(step * 0.38)), 0, 0, 360, 1, -1)
        inst.append(m.astype(bool))
    gt = np.zeros((height, width), bool)
    for m in inst:  # the ground truth is the prediction shifted a little
        gt |= np.roll(m, int(rng.integers(-8, 8)), axis=0)
    return gt, np.stack(inst)


def mask_box(m: np.ndarray) -> list:
    ys, xs = np.nonzero(m)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def bench_evaluator(n_images: int, height: int, width: int, n_inst: int, threads: int) -> dict:
    import cv2
    import torch
    from detectron2.data import MetadataCatalog
    from detectron2.structures import Boxes, Instances

    from spine_det.evaluation.semantic_evaluator import SpineSemanticEvaluator

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    rng = np.random.default_rng(0)
    name = "bench_spine_semantic"
    MetadataCatalog.get(name).set(tasks=["lat_vertebra"])
    with tempfile.TemporaryDirectory() as tmp:
        variants = []
        for _ in range(2):  # two prediction sets, reused
            gt, inst = synthetic_gt(height, width, n_inst, rng)
            out = Instances((height, width))
            out.pred_masks = torch.from_numpy(inst)
            out.scores = torch.from_numpy(rng.uniform(0.3, 1.0, n_inst).astype(np.float32))
            out.pred_classes = torch.zeros(n_inst, dtype=torch.int64)
            out.pred_boxes = Boxes(torch.from_numpy(np.array([mask_box(m) for m in inst], np.float32)))
            variants.append((gt, out))
        files = []  # one ground-truth file per image, so that nothing is cached on the first pass
        for i in range(n_images):
            f = Path(tmp) / f"gt{i}.png"
            cv2.imwrite(str(f), np.roll(variants[i % 2][0], i % 7, axis=1).astype(np.uint8) * 255)
            files.append(str(f))
        ev = SpineSemanticEvaluator(name, score_threshold=0.5, output_dir=str(Path(tmp) / "out"), distributed=False)
        passes = []
        for _ in range(2):  # cold (files read), then warm (periodic validation: masks cached)
            ev.reset()
            t0 = time.perf_counter()
            for i in range(n_images):
                ev.process([{"image_id": f"img{i}", "height": height, "width": width,
                             "mask_files": {"lat_vertebra": files[i]}}], [{"instances": variants[i % 2][1]}])
            res = ev.evaluate()
            passes.append(time.perf_counter() - t0)
    dt = passes[0]
    return {"images": n_images, "size": f"{width}x{height}", "instances": n_inst, "threads": threads,
            "seconds": round(dt, 3), "images_per_s": round(n_images / dt, 1),
            "images_per_s_cached_gt": round(n_images / passes[1], 1), "dice": round(res["lat_vertebra"]["dice"], 4)}


def bench_trainer(iters: int, patients: int, size: int, threads: int) -> dict:
    import logging

    import torch
    from detectron2.engine import DefaultTrainer

    from spine_det.config import get_spine_cfg
    from spine_det.config.paths import resolve_config_file
    from spine_det.data.phantom import generate_dataset
    from spine_det.engine.trainer import SpineTrainer, register_datasets

    torch.set_num_threads(threads)
    logging.getLogger("detectron2").setLevel(logging.WARNING)

    class BareTrainer(DefaultTrainer):  # Detectron2's defaults; our mapper only to read the images
        build_train_loader = SpineTrainer.build_train_loader

    from spine_det.evaluation.semantic_evaluator import SpineSemanticEvaluator

    ev_time = [0.0]  # time inside the semantic evaluator (process + evaluate), model excluded
    for meth in ("process", "evaluate"):
        orig_m = getattr(SpineSemanticEvaluator, meth)

        def timed_m(self, *a, _orig=orig_m, **k):
            t = time.perf_counter()
            try:
                return _orig(self, *a, **k)
            finally:
                ev_time[0] += time.perf_counter() - t
        setattr(SpineSemanticEvaluator, meth, timed_m)

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "phantoms"
        generate_dataset(data, patients, seed=0, size=size)
        short = max(64, size // 2)
        opts = ["SPINE.DATA_ROOT", str(data), "SPINE.CACHE_DIR", str(Path(tmp) / "cache"),
                "INPUT.MIN_SIZE_TRAIN", f"({short},)", "INPUT.MAX_SIZE_TRAIN", str(size * 2),
                "INPUT.MIN_SIZE_TEST", str(short), "INPUT.MAX_SIZE_TEST", str(size * 2),
                "DATALOADER.NUM_WORKERS", "0", "SOLVER.MAX_ITER", str(iters), "SOLVER.WARMUP_ITERS", "5",
                "SOLVER.STEPS", "()", "SOLVER.CHECKPOINT_PERIOD", str(10 * iters)]
        for label, cls, extra in [
            ("bare DefaultTrainer (eval off)", BareTrainer, ["TEST.EVAL_PERIOD", "0"]),
            ("spine Trainer", SpineTrainer, ["TEST.EVAL_PERIOD", str(iters // 2)]),
        ]:
            cfg = get_spine_cfg(resolve_config_file("lat_vertebra.yaml"), "cpu",
                                opts + extra + ["OUTPUT_DIR", str(Path(tmp) / label.split()[0])])
            cfg.freeze()
            register_datasets(cfg)
            tr = cls(cfg)
            tr.resume_or_load(resume=False)
            if cls is BareTrainer:  # it has no evaluator: make the final EvalHook a no-op
                tr.test = lambda *a, **k: {}
            eval_time = [0.0]
            ev_time[0] = 0.0
            if cls is SpineTrainer:
                orig = tr.test

                def timed(*a, _orig=orig, _eval_time=eval_time, **k):
                    t = time.perf_counter()
                    r = _orig(*a, **k)
                    _eval_time[0] += time.perf_counter() - t
                    return r
                tr.test = timed
            t0 = time.perf_counter()
            tr.train()
            total = time.perf_counter() - t0
            step = tr.storage.history("time").median(iters) if "time" in tr.storage.histories() else float("nan")
            out[label] = {"s_per_iter_total": round(total / iters, 4), "s_per_iter_median_step": round(step, 4),
                          "validation_seconds": round(eval_time[0], 3),
                          "semantic_evaluator_seconds": round(ev_time[0], 3)}
    bare, ours = out.values()
    out["overhead_total_%"] = round(100 * (ours["s_per_iter_total"] / bare["s_per_iter_total"] - 1), 2)
    out["overhead_without_validation_inference_%"] = round(
        100 * ((ours["s_per_iter_total"] * iters - ours["validation_seconds"] + ours["semantic_evaluator_seconds"])
               / (bare["s_per_iter_total"] * iters) - 1), 2)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("evaluator", "trainer", "all"), default="all")
    p.add_argument("--images", type=int, default=60, help="images for the evaluator benchmark")
    p.add_argument("--height", type=int, default=3000)
    p.add_argument("--width", type=int, default=2000)
    p.add_argument("--instances", type=int, default=17)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=40, help="training iterations per trainer")
    p.add_argument("--patients", type=int, default=6)
    p.add_argument("--size", type=int, default=256, help="phantom image size for the trainer benchmark")
    a = p.parse_args()
    if a.part in ("evaluator", "all"):
        r = bench_evaluator(a.images, a.height, a.width, a.instances, a.threads)
        print("evaluator:", json.dumps(r))
    if a.part in ("trainer", "all"):
        r = bench_trainer(a.iters, a.patients, a.size, a.threads)
        print("trainer:", json.dumps(r, indent=1))


if __name__ == "__main__":
    main()

"""Semantic (per-task binary mask) evaluation of Mask R-CNN, comparable with LinkNet.

Per image and task, the predicted instances of the task's class with score ≥
``SPINE.EVAL.SCORE_THRESHOLD`` are pasted into one mask at the image's original
size and compared with the task's original mask file (not the COCO polygons)
with :class:`spine_det.evaluation.metrics.ScoreTable`, the one metric
implementation shared with LinkNet.
"""
from __future__ import annotations

import itertools
import logging
import math
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

import spine_det.compat  # noqa: F401  (shims before detectron2)
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from spine_det.data.io import read_mask
from spine_det.evaluation.metrics import METRICS, ScoreTable, binary_scores, paste_instances
from spine_det.utils.fileio import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)


def instances_to_task_masks(
    instances, tasks: Sequence[str], score_threshold: float, shape: Sequence[int]
) -> Dict[str, np.ndarray]:
    """One bool mask per task: the union of that class's instances with score ≥ threshold."""
    out: Dict[str, np.ndarray] = {}
    has_masks = instances is not None and len(instances) and instances.has("pred_masks")
    if not has_masks:
        return {t: np.zeros(tuple(shape), dtype=bool) for t in tasks}
    classes = instances.pred_classes
    scores = instances.scores
    masks = instances.pred_masks
    for c, task in enumerate(tasks):
        sel = (classes == c) & (scores >= score_threshold)
        if not bool(sel.any()):
            out[task] = np.zeros(tuple(shape), dtype=bool)
            continue
        out[task] = paste_instances(masks[sel], scores[sel], score_threshold, shape)
    return out


class SpineSemanticEvaluator(DatasetEvaluator):
    """Dice / Jaccard / TPR per task, mean over images, gathered across processes."""

    def __init__(
        self,
        dataset_name: str,
        tasks: Optional[Sequence[str]] = None,
        score_threshold: float = 0.5,
        output_dir: Optional[str] = None,
        checkpoint: str = "",
        distributed: bool = True,
        io_threads: int = 2,
    ) -> None:
        meta = MetadataCatalog.get(dataset_name)
        meta_tasks = list(getattr(meta, "tasks", []) or [])
        self._tasks = list(tasks) if tasks else meta_tasks
        if not self._tasks:
            raise ValueError(f"dataset {dataset_name!r} has no 'tasks' metadata and no tasks were given")
        if meta_tasks and meta_tasks != self._tasks:
            raise ValueError(
                f"dataset {dataset_name!r} has tasks {meta_tasks} (category ids in that order) but the model "
                f"predicts {self._tasks}: config and dataset do not match"
            )
        self._dataset_name = dataset_name
        self._threshold = float(score_threshold)
        self._output_dir = output_dir
        self._checkpoint = checkpoint
        self._distributed = distributed
        self._io_threads = io_threads
        self._mask_files: Optional[Dict[Any, Dict[str, Optional[str]]]] = None
        self._pool: Optional[ThreadPoolExecutor] = None
        self._rows: List[Dict[str, Any]] = []

    # -- DatasetEvaluator -------------------------------------------------------------
    def reset(self) -> None:
        self._rows = []

    def _mask_files_of(self, inp: Mapping[str, Any]) -> Dict[str, Optional[str]]:
        if "mask_files" in inp:
            return inp["mask_files"]
        if self._mask_files is None:  # a mapper that dropped the key: look it up once
            self._mask_files = {d["image_id"]: d.get("mask_files", {}) for d in DatasetCatalog.get(self._dataset_name)}
        return self._mask_files.get(inp["image_id"], {})

    def _read_gt(self, inp: Mapping[str, Any]) -> Dict[str, "Future[np.ndarray] | None"]:
        """Start reading the image's ground-truth masks (PNG decoding releases the GIL)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max(1, self._io_threads))
        shape = (int(inp["height"]), int(inp["width"]))
        files = self._mask_files_of(inp)
        return {t: (self._pool.submit(read_mask, files[t], shape) if files.get(t) else None) for t in self._tasks}

    def process(self, inputs, outputs) -> None:
        pending = [self._read_gt(inp) for inp in inputs]
        for inp, out, gts in zip(inputs, outputs, pending):
            shape = (int(inp["height"]), int(inp["width"]))
            instances = out.get("instances")
            if instances is not None:
                instances = instances.to("cpu")
                if tuple(instances.image_size) != shape:
                    raise ValueError(
                        f"{inp.get('file_name')}: predictions are {tuple(instances.image_size)}, image is {shape}; "
                        "the model must paste at the original size (keep 'height'/'width' in the inputs)"
                    )
            preds = instances_to_task_masks(instances, self._tasks, self._threshold, shape)
            for task in self._tasks:
                fut = gts[task]
                if fut is None:  # this image has no mask file for the task: not scored
                    continue
                gt = fut.result()
                pred = preds[task]
                n_p = int(np.count_nonzero(pred))
                n_g = int(np.count_nonzero(gt))
                s = binary_scores(pred, gt)
                self._rows.append(
                    {"image_id": inp["image_id"], "task": task, **s, "pred_pixels": n_p, "gt_pixels": n_g}
                )

    def evaluate(self):
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        rows = self._rows
        if self._distributed:
            comm.synchronize()
            gathered = comm.gather(rows, dst=0)
            if not comm.is_main_process():
                return {}
            rows = list(itertools.chain(*gathered))
        if not rows:
            logger.warning("[SpineSemanticEvaluator] %s: no image was scored", self._dataset_name)
            return {}
        tables = OrderedDict((t, ScoreTable()) for t in self._tasks)
        for r in rows:
            tables[r["task"]].extend([r])
        results: Dict[str, Dict[str, float]] = OrderedDict()
        summaries: Dict[str, Dict[str, Any]] = OrderedDict()
        for task, table in tables.items():
            if not table.rows:
                continue
            summaries[task] = table.summary()
            results[task] = {m: float(summaries[task][m]) for m in METRICS}
        if len(results) > 1:
            results["mean"] = {m: _nanmean([results[t][m] for t in results]) for m in METRICS}
        self._write(tables, summaries, results)
        self._log(results)
        return results

    # -- output ------------------------------------------------------------------------
    def _meta(self) -> Dict[str, Any]:
        meta: Dict[str, Any] = {
            "dataset": self._dataset_name,
            "checkpoint": self._checkpoint,
            "score_threshold": self._threshold,
        }
        try:
            from detectron2.utils.events import get_event_storage

            meta["iteration"] = int(get_event_storage().iter)
        except (AssertionError, AttributeError):
            pass
        return meta

    def _write(self, tables, summaries, results) -> None:
        if not self._output_dir:
            return
        out = Path(self._output_dir)
        meta = self._meta()
        if len(summaries) == 1:
            (task,) = summaries
            tables[task].write(out, {**meta, "task": task})
            return
        # One model for several tasks: a table per task, and the per-task means on top.
        for task, table in tables.items():
            if table.rows:
                table.write(out / task, {**meta, "task": task})
        top = {**results["mean"], "tasks": summaries, "mean_over": "tasks", **meta}
        atomic_write_json(out / "semantic_metrics.json", top)
        atomic_write_text(out / "semantic_per_image.csv", ScoreTable([r for t in tables.values() for r in t.rows]).to_csv())

    def _log(self, results) -> None:
        lines = [f"Semantic metrics on {self._dataset_name} (score ≥ {self._threshold:g}, mean over images):"]
        for name, vals in results.items():
            lines.append(f"  {name:22s} " + "  ".join(f"{m}={vals[m]:.4f}" for m in METRICS))
        logger.info("\n".join(lines))


def _nanmean(vals: List[float]) -> float:
    v = [x for x in vals if not math.isnan(x)]
    return float(np.mean(v)) if v else math.nan


def build_spine_evaluator(cfg, dataset_name: str, output_folder: Optional[str] = None, checkpoint: str = ""):
    """Semantic evaluator, plus COCO box/mask AP when ``SPINE.EVAL.COCO_AP`` is on."""
    from detectron2.evaluation import COCOEvaluator, DatasetEvaluators

    output_folder = output_folder or str(Path(cfg.OUTPUT_DIR) / "inference" / dataset_name)
    evaluators: List[DatasetEvaluator] = [
        SpineSemanticEvaluator(
            dataset_name,
            tasks=list(cfg.SPINE.TASKS),
            score_threshold=cfg.SPINE.EVAL.SCORE_THRESHOLD,
            output_dir=output_folder,
            checkpoint=checkpoint,
        )
    ]
    if cfg.SPINE.EVAL.COCO_AP:
        # use_fast_impl=True needs Detectron2's compiled ops; pycocotools gives the same numbers.
        evaluators.append(COCOEvaluator(dataset_name, tasks=("bbox", "segm"), output_dir=output_folder, use_fast_impl=False))
    return evaluators[0] if len(evaluators) == 1 else DatasetEvaluators(evaluators)

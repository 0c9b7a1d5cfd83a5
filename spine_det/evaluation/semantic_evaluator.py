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
import os
import threading
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Deque, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

import spine_det.compat  # noqa: F401  (shims before detectron2)
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.samplers import InferenceSampler
from detectron2.evaluation import COCOEvaluator, DatasetEvaluator, DatasetEvaluators
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage

from spine_det.data.io import read_mask
from spine_det.evaluation.metrics import METRICS, ScoreTable, binary_scores, paste_instances
from spine_det.evaluation.score_files import PER_IMAGE_FILE, SUMMARY_FILE, per_image_csv, write_scores
from spine_det.evaluation.thresholds import score_threshold_for  # < 0: tuned on val, thresholds.json
from spine_det.utils.fileio import atomic_write_json, atomic_write_text
from spine_det.utils.provenance import provenance

logger = logging.getLogger(__name__)


# Detectron2 pastes each instance mask inside its box (foreground at most 1 px outside):
# only this margin around the boxes is looked at, which skips most of a 2000x3000 image.
BOX_MARGIN = 2


@dataclass
class SparseMask:
    """A bool mask of ``shape`` that is zero outside ``crop`` placed at (y0, x0); crop None = empty."""

    shape: Tuple[int, int]
    y0: int = 0
    x0: int = 0
    crop: Optional[np.ndarray] = None

    @classmethod
    def from_dense(cls, mask: np.ndarray) -> "SparseMask":
        rows = np.flatnonzero(mask.any(axis=1))
        if rows.size == 0:
            return cls(tuple(mask.shape))
        cols = np.flatnonzero(mask[rows[0] : rows[-1] + 1].any(axis=0))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        return cls(tuple(mask.shape), int(y0), int(x0), np.ascontiguousarray(mask[y0:y1, x0:x1]))

    @property
    def box(self) -> Optional[Tuple[int, int, int, int]]:
        if self.crop is None:
            return None
        return self.y0, self.x0, self.y0 + self.crop.shape[0], self.x0 + self.crop.shape[1]

    @property
    def nbytes(self) -> int:
        return 0 if self.crop is None else self.crop.nbytes

    def region(self, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
        """The mask inside the window [y0:y1, x0:x1] (dense)."""
        out = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        if self.crop is not None:
            by0, bx0, by1, bx1 = self.box
            iy0, ix0, iy1, ix1 = max(y0, by0), max(x0, bx0), min(y1, by1), min(x1, bx1)
            if iy0 < iy1 and ix0 < ix1:
                out[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = self.crop[iy0 - by0 : iy1 - by0, ix0 - bx0 : ix1 - bx0]
        return out

    def dense(self) -> np.ndarray:
        return self.region(0, 0, *self.shape)


def score_sparse(pred: SparseMask, gt: SparseMask) -> Dict[str, Any]:
    """metrics.binary_scores on the window holding both masks (zero elsewhere), plus pixel counts."""
    boxes = [b for b in (pred.box, gt.box) if b is not None]
    if boxes:
        win = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
    else:
        win = (0, 0, 0, 0)
    p, g = pred.region(*win), gt.region(*win)
    return {**binary_scores(p, g), "pred_pixels": int(np.count_nonzero(p)), "gt_pixels": int(np.count_nonzero(g))}


def instances_to_task_masks(
    instances, tasks: Sequence[str], score_threshold: float, shape: Sequence[int], box_margin: Optional[int] = BOX_MARGIN
) -> Dict[str, SparseMask]:
    """Per task, the union of that class's instance masks with score ≥ threshold.

    Equal to :func:`metrics.paste_instances` for masks that are zero outside their box
    (± ``box_margin``), as Detectron2 pastes them: each instance is OR-ed in over its
    own box only, which skips most of a 2000×3000 image. ``box_margin=None`` (or no
    ``pred_boxes``) unions the full masks with ``paste_instances``. Masks may stay on
    the GPU: only the window around the boxes is copied to the CPU.
    """
    shape = (int(shape[0]), int(shape[1]))
    out: Dict[str, SparseMask] = {t: SparseMask(shape) for t in tasks}
    if instances is None or len(instances) == 0 or not instances.has("pred_masks"):
        return out
    classes = instances.pred_classes.cpu().numpy()
    scores = instances.scores.cpu().numpy()
    masks = instances.pred_masks
    use_boxes = box_margin is not None and instances.has("pred_boxes")
    boxes = instances.pred_boxes.tensor.cpu().numpy() if use_boxes else None
    arr = None
    if not (hasattr(masks, "detach") and masks.device.type != "cpu"):
        arr = masks.numpy() if hasattr(masks, "detach") else np.asarray(masks)
    for c, task in enumerate(tasks):
        idx = np.flatnonzero((classes == c) & (scores >= score_threshold))
        if idx.size == 0:
            continue
        if not use_boxes:  # the plain union over the whole image
            out[task] = SparseMask(shape, 0, 0, paste_instances(masks[idx] if arr is None else arr[idx], scores[idx], score_threshold, shape))
            continue
        # Integer boxes (± margin) of each instance and of their union.
        b = boxes[idx]
        bx0 = np.clip(np.floor(b[:, 0]).astype(int) - box_margin, 0, shape[1])
        by0 = np.clip(np.floor(b[:, 1]).astype(int) - box_margin, 0, shape[0])
        bx1 = np.clip(np.ceil(b[:, 2]).astype(int) + box_margin, 0, shape[1])
        by1 = np.clip(np.ceil(b[:, 3]).astype(int) + box_margin, 0, shape[0])
        y0, x0, y1, x1 = int(by0.min()), int(bx0.min()), int(by1.max()), int(bx1.max())
        if y1 <= y0 or x1 <= x0:
            continue
        if arr is None:  # GPU: copy only the window to the CPU
            win = masks[torch.as_tensor(idx, device=masks.device), y0:y1, x0:x1].cpu().numpy()
            idx_local = np.arange(idx.size)
        else:
            win, idx_local = arr, idx
        union = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        oy, ox = (0, 0) if arr is not None else (y0, x0)
        for k, i in enumerate(idx_local):
            sy0, sx0, sy1, sx1 = by0[k], bx0[k], by1[k], bx1[k]
            if sy1 <= sy0 or sx1 <= sx0:
                continue
            src = win[i, sy0 - oy : sy1 - oy, sx0 - ox : sx1 - ox]
            dst = union[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
            np.logical_or(dst, src if src.dtype == bool else src > 0, out=dst)
        out[task] = SparseMask(shape, y0, x0, union)
    return out


class _GtCache:
    """Ground-truth masks kept cropped in memory: validation re-reads the same files every period.

    Reads of the same file from several threads are done once (the others wait).
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: "OrderedDict[tuple, SparseMask]" = OrderedDict()
        self._inflight: Dict[tuple, threading.Event] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, path: str, shape: Tuple[int, int]) -> SparseMask:
        key = (path, os.path.getmtime(path), tuple(shape))
        while True:
            with self._lock:
                hit = self._items.get(key)
                if hit is not None:
                    self._items.move_to_end(key)
                    return hit
                event = self._inflight.get(key)
                if event is None:
                    event = self._inflight[key] = threading.Event()
                    break
            event.wait()
            with self._lock:
                if key in self._items:
                    continue
            return SparseMask.from_dense(read_mask(path, shape))  # was too big to keep: read it here
        try:
            m = SparseMask.from_dense(read_mask(path, shape))
            with self._lock:
                if m.nbytes <= self.max_bytes:
                    self._items[key] = m
                    self._bytes += m.nbytes
                    while self._bytes > self.max_bytes:
                        _, old = self._items.popitem(last=False)
                        self._bytes -= old.nbytes
            return m
        finally:
            with self._lock:
                self._inflight.pop(key, None)
            event.set()

    def prefetch(self, path: str, shape: Tuple[int, int]) -> None:
        try:
            self.get(path, shape)
        except Exception:  # noqa: BLE001  (the scoring job reports the error with the file name)
            pass


_GT_CACHE = _GtCache(max_bytes=512 * 2**20)


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
        prefetch: bool = True,
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
        self._prefetch = prefetch
        self._prefetch_pending = False
        self._mask_files: Optional[Dict[Any, Dict[str, Optional[str]]]] = None
        self._pool: Optional[ThreadPoolExecutor] = None
        self._rows: List[Dict[str, Any]] = []
        self._jobs: Deque[Future] = deque()

    # -- DatasetEvaluator -------------------------------------------------------------
    def reset(self) -> None:
        self._rows = []
        self._jobs.clear()
        # The prefetch starts with the first process(), not here: inference_on_dataset calls reset()
        # just before its data loader forks the workers, and a worker forked while a reading thread
        # held an import lock (PIL loads its plugins on first use) waits for it forever.
        self._prefetch_pending = bool(self._prefetch)

    def _start_prefetch(self) -> None:
        """Read this process's ground truth in the background while the model runs."""
        if self._dataset_name not in DatasetCatalog.list():
            return
        try:
            dicts = DatasetCatalog.get(self._dataset_name)
            local = getattr(InferenceSampler(len(dicts)), "_local_indices", range(len(dicts)))
        except Exception as e:  # noqa: BLE001  (prefetching is an optimisation only)
            logger.debug("no ground-truth prefetch for %s: %s", self._dataset_name, e)
            return
        pool = self._get_pool()
        for i in local:
            d = dicts[i]
            shape = (int(d["height"]), int(d["width"]))
            for task in self._tasks:
                f = (d.get("mask_files") or {}).get(task)
                if f:
                    pool.submit(_GT_CACHE.prefetch, f, shape)

    def _get_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max(1, self._io_threads), thread_name_prefix="spine-eval")
        return self._pool

    def _mask_files_of(self, inp: Mapping[str, Any]) -> Dict[str, Optional[str]]:
        if "mask_files" in inp:
            return inp["mask_files"]
        if self._mask_files is None:  # a mapper that dropped the key: look it up once
            self._mask_files = {d["image_id"]: d.get("mask_files", {}) for d in DatasetCatalog.get(self._dataset_name)}
        return self._mask_files.get(inp["image_id"], {})

    def _score_job(self, image_id: Any, task: str, pred: SparseMask, gt_file: str) -> Dict[str, Any]:
        gt = _GT_CACHE.get(gt_file, pred.shape)
        return {"image_id": image_id, "task": task, **score_sparse(pred, gt)}

    def process(self, inputs, outputs) -> None:
        """Paste the predictions here; read the ground truth and score in worker threads.

        PNG decoding and numpy release the GIL, so the reading overlaps the next images' inference.
        """
        if self._prefetch_pending:
            self._prefetch_pending = False
            self._start_prefetch()
        pool = self._get_pool()
        for inp, out in zip(inputs, outputs):
            shape = (int(inp["height"]), int(inp["width"]))
            instances = out.get("instances")
            if instances is not None and tuple(instances.image_size) != shape:
                raise ValueError(
                    f"{inp.get('file_name')}: predictions are {tuple(instances.image_size)}, image is {shape}; "
                    "the model must paste at the original size (keep 'height'/'width' in the inputs)"
                )
            preds = instances_to_task_masks(instances, self._tasks, self._threshold, shape)
            files = self._mask_files_of(inp)
            for task in self._tasks:
                if not files.get(task):  # this image has no mask file for the task: not scored
                    continue
                self._jobs.append(pool.submit(self._score_job, inp["image_id"], task, preds[task], files[task]))
            while len(self._jobs) > 64 * len(self._tasks):  # bound the memory held by pending windows
                self._rows.append(self._jobs.popleft().result())

    def evaluate(self):
        while self._jobs:
            self._rows.append(self._jobs.popleft().result())
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
            write_scores(tables[task], out, {**meta, "task": task})
            return
        # One model for several tasks: a table per task, and the per-task means on top.
        for task, table in tables.items():
            if table.rows:
                write_scores(table, out / task, {**meta, "task": task})
        top = {**results["mean"], "tasks": summaries, "mean_over": "tasks", **meta, **provenance()}
        atomic_write_json(out / SUMMARY_FILE, top)
        atomic_write_text(out / PER_IMAGE_FILE, per_image_csv(r for t in tables.values() for r in t.rows))

    def _log(self, results) -> None:
        lines = [f"Semantic metrics on {self._dataset_name} (score ≥ {self._threshold:g}, mean over images):"]
        for name, vals in results.items():
            lines.append(f"  {name:22s} " + "  ".join(f"{m}={vals[m]:.4f}" for m in METRICS))
        logger.info("\n".join(lines))


def _nanmean(vals: List[float]) -> float:
    v = [x for x in vals if not math.isnan(x)]
    return float(np.mean(v)) if v else math.nan


class SpineCOCOEvaluator(COCOEvaluator):
    """COCOEvaluator for our dataset dicts, whose ``image_id`` is the sample key (a string).

    The COCO file keeps the key beside its integer id; results must use the integer id.
    """

    def process(self, inputs, outputs):
        if not hasattr(self, "_key_to_id"):
            self._key_to_id = {img.get("key", i): i for i, img in self._coco_api.imgs.items()}
        mapped = [{**inp, "image_id": self._key_to_id.get(inp["image_id"], inp["image_id"])} for inp in inputs]
        return super().process(mapped, outputs)


def build_spine_evaluator(cfg, dataset_name: str, output_folder: Optional[str] = None, checkpoint: str = ""):
    """Semantic evaluator, plus COCO box/mask AP when ``SPINE.EVAL.COCO_AP`` is on."""
    output_folder = output_folder or str(Path(cfg.OUTPUT_DIR) / "inference" / dataset_name)
    evaluators: List[DatasetEvaluator] = [
        SpineSemanticEvaluator(
            dataset_name,
            tasks=list(cfg.SPINE.TASKS),
            score_threshold=score_threshold_for(cfg, cfg.SPINE.TASKS),
            output_dir=output_folder,
            checkpoint=checkpoint,
        )
    ]
    if cfg.SPINE.EVAL.COCO_AP:
        # use_fast_impl=True needs Detectron2's compiled ops; pycocotools gives the same numbers.
        evaluators.append(SpineCOCOEvaluator(dataset_name, tasks=("bbox", "segm"), output_dir=output_folder, use_fast_impl=False))
    return evaluators[0] if len(evaluators) == 1 else DatasetEvaluators(evaluators)

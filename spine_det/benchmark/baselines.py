"""A trivial baseline: Otsu's threshold of the X-ray, scored as a prediction of every task.

It shows how much of a task a global intensity threshold already gets (bone is
bright), so that a learned model's Dice can be read against it. Scored with the
one shared :class:`~spine_det.evaluation.metrics.ScoreTable`, on exactly the
test images the models are evaluated on.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Optional, Sequence

import numpy as np

from spine_det.data.io import read_image, read_mask
from spine_det.evaluation.metrics import ScoreTable
from spine_det.evaluation.score_files import write_scores
from spine_det.utils.progress import progress as progress_bar

logger = logging.getLogger(__name__)


def otsu_threshold(image: np.ndarray) -> int:
    """Otsu's threshold of a uint8 image (the grey level that best splits its histogram in two)."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"otsu_threshold expects uint8, got {img.dtype}")
    hist = np.bincount(img.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 0
    levels = np.arange(256, dtype=np.float64)
    w0 = np.cumsum(hist)  # pixels <= t
    w1 = total - w0
    m0 = np.cumsum(hist * levels)
    mu_t = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu_t * w0 / total - m0) ** 2 / (w0 * w1 / total)
    between[~np.isfinite(between)] = -1.0
    return int(np.argmax(between))


def otsu_predict(image: np.ndarray) -> np.ndarray:
    """Foreground = pixels brighter than Otsu's threshold (bone is bright on a radiograph)."""
    return np.asarray(image) > otsu_threshold(image)


def score_otsu(samples: Iterable[Any], task: str, table: Optional[ScoreTable] = None) -> ScoreTable:
    """Score Otsu on ``samples`` (ViewSamples having ``task``'s mask): one ScoreTable row each."""
    table = table if table is not None else ScoreTable()
    for s in samples:
        img = read_image(s.image)
        gt = read_mask(s.masks[task], shape=img.shape)
        table.add(s.key, otsu_predict(img), gt, task=task)
    return table


def run_otsu(manifest: Any, tasks: Sequence[str], out_root: Path | str, split: str = "test") -> Dict[str, Dict[str, Any]]:
    """Otsu on ``split`` for each task, written like the models' evaluations.

    ``<out_root>/<task>/inference/spine_<task>_<split>/semantic_metrics.json`` (+ per-image CSV);
    returns ``{task: summary}``. Cheap, so it is simply recomputed on every run.
    """
    out_root = Path(out_root)
    results: Dict[str, Dict[str, Any]] = {}
    for task in tasks:
        samples = manifest.select(split=split, task=task)
        t0 = time.perf_counter()
        table = score_otsu(progress_bar(samples, desc=f"otsu {task}", leave=False, disable=None), task)
        dt = time.perf_counter() - t0
        meta = {"model": "otsu", "task": task, "split": split, "images_per_s": len(samples) / dt if dt > 0 else None}
        results[task] = write_scores(table, out_root / task / "inference" / f"spine_{task}_{split}", meta)
        logger.info("otsu %s: dice %.4f on %d %s images", task, results[task]["dice"], len(samples), split)
    return results

"""Training curves and training figures from the training tools' own logs, by log format (not by model):
Detectron2's ``metrics.json`` (iterations) and the epoch trainers' ``metrics.jsonl`` (epochs).

A model family names the reader of its tool's format in its benchmark adapter
(``BenchmarkAdapter(read_curves="spine_det.benchmark.curves:epoch_curves")``).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

__all__ = ["read_jsonl", "detectron2_curves", "detectron2_lr_steps", "detectron2_max_mem", "epoch_curves",
           "epoch_metrics_curves", "iters_per_epoch", "late_gain", "LATE_GAIN_TOLERANCE"]

# A run whose validation Dice still rose by more than this over the last quarter of its final learning-rate
# phase is flagged "not converged".
LATE_GAIN_TOLERANCE = 0.02


def read_jsonl(path: Path) -> List[Dict[str, Any]]:
    """The records of a JSON-lines file; a line being written (not yet valid JSON) is skipped."""
    out = []
    if not Path(path).is_file():
        return out
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def detectron2_curves(out_dir: Path, task: str, n_train: int = 0) -> Dict[str, Any]:
    """Loss and validation Dice per iteration, and median s/iter, from Detectron2's ``metrics.json``."""
    recs = read_jsonl(Path(out_dir) / "metrics.json")
    loss = [(r["iteration"], r["total_loss"]) for r in recs if "total_loss" in r and "iteration" in r]
    keys = (f"{task}/dice", "mean/dice")
    dice = []
    for r in recs:
        k = next((k for k in keys if r.get(k) is not None), None)
        if k is not None:
            dice.append((r.get("iteration", 0), r[k]))
    times = [r["time"] for r in recs if isinstance(r.get("time"), (int, float))]
    iters = max((r.get("iteration", -1) for r in recs if "total_loss" in r), default=-1) + 1
    return {
        "x_label": "iteration", "loss": loss, "val_dice": dice,
        "s_per_iter": float(np.median(times)) if times else None, "iterations": iters or None,
        "lr_steps": detectron2_lr_steps(out_dir),
    }


def _run_solver(out_dir: Path) -> Optional[Dict[str, Any]]:
    """The ``SOLVER`` section of the run's ``config.yaml`` (safe YAML), None when the run has no config."""
    p = Path(out_dir) / "config.yaml"
    if not p.is_file():
        return None

    return (yaml.safe_load(p.read_text(encoding="utf-8")) or {}).get("SOLVER", {}) or {}


def detectron2_lr_steps(out_dir: Path) -> List[int]:
    """The iterations where a multi-step schedule lowers the learning rate, from the run's ``config.yaml``.

    Empty for other schedulers (cosine has no step) or when the run has no config."""
    solver = _run_solver(out_dir) or {}
    if solver.get("LR_SCHEDULER_NAME", "WarmupMultiStepLR") != "WarmupMultiStepLR" or float(solver.get("GAMMA", 0.1)) >= 1:
        return []
    max_iter = int(solver.get("MAX_ITER", 0) or 0)
    return sorted(int(s) for s in solver.get("STEPS", []) or [] if not max_iter or int(s) < max_iter)


def detectron2_max_mem(log_path: Path) -> Optional[float]:
    """Largest ``max_mem: NNNM`` Detectron2 printed in a log (CUDA training only), in MB."""
    if not Path(log_path).is_file():
        return None
    vals = [float(m) for m in re.findall(r"max_mem: (\d+)M", Path(log_path).read_text(errors="replace"))]
    return max(vals) if vals else None


def iters_per_epoch(out_dir: Path, n_train: int) -> Optional[int]:
    """Iterations per epoch from the run's ``config.yaml`` (batch, epoch cap) and the train split size:
    for runs whose ``metrics.jsonl`` predates the trainer's own per-epoch ``iters``."""
    solver = _run_solver(out_dir)
    if solver is None or n_train <= 0:
        return None
    b = max(1, int(solver.get("IMS_PER_BATCH", 1)))
    n = n_train // b if n_train > b else math.ceil(n_train / b)
    cap = int(solver.get("MAX_ITERS_PER_EPOCH", 0) or 0)
    return min(n, cap) if cap > 0 else n


def epoch_metrics_curves(out_dir: Path, iters: Optional[int] = None) -> Dict[str, Any]:
    """Loss and validation Dice per epoch from an epoch trainer's ``metrics.jsonl``; s/iter from epoch times."""
    recs = read_jsonl(Path(out_dir) / "metrics.jsonl")
    loss = [(r["epoch"], r["loss"]) for r in recs if r.get("loss") is not None]
    dice = [(r["epoch"], r["val_dice"]) for r in recs if r.get("val_dice") is not None]
    n_iter = sum(int(r["iters"]) for r in recs if r.get("iters")) or ((iters or 0) * len(recs))
    t = sum(float(r.get("train_time_s", r.get("time_s", 0.0)) or 0.0) for r in recs)
    return {
        "x_label": "epoch", "loss": loss, "val_dice": dice,
        "s_per_iter": t / n_iter if n_iter and t else None, "iterations": n_iter or None, "epochs": len(recs),
        "s_per_iter_note": "" if any("train_time_s" in r for r in recs) else "epoch time incl. validation",
    }


def epoch_curves(out_dir: Path, task: str, n_train: int) -> Dict[str, Any]:
    """:func:`epoch_metrics_curves` with iterations per epoch from the run's config (a family's ``read_curves``);
    a LinkNet/smp run of Detectron2's loop (``metrics.json``, no ``metrics.jsonl``) by :func:`detectron2_curves`."""
    if not (Path(out_dir) / "metrics.jsonl").is_file() and (Path(out_dir) / "metrics.json").is_file():
        return detectron2_curves(out_dir, task, n_train)
    return epoch_metrics_curves(out_dir, iters_per_epoch(out_dir, n_train))


def late_gain(val_dice: Sequence[Tuple[float, float]], tail: float = 0.25,
              lr_steps: Sequence[float] = ()) -> Optional[float]:
    """How much the best validation Dice of the last ``tail`` of training beats the best before it.

    ``val_dice``: (step, Dice) points. Above :data:`LATE_GAIN_TOLERANCE` the run was still learning when
    it stopped (its schedule is too short to call its figure converged); at or below it the curve had
    flattened, or fallen. None when there are no points on both sides of the cut.

    ``lr_steps``: where the learning rate drops. The rule is applied to the final phase (from the last
    drop on) when that phase has at least two points, so that the jump a drop causes is not read as
    "still learning"; with fewer points after the drop the whole run is judged, and the jump counts."""
    pts = sorted((float(x), float(y)) for x, y in val_dice if y is not None)
    if len(pts) < 2:
        return None
    last = pts[-1][0]
    drops = [float(s) for s in lr_steps if float(s) <= last]
    if drops:
        final_phase = [(x, y) for x, y in pts if x >= max(drops)]
        if len(final_phase) >= 2:
            pts = final_phase
    first = pts[0][0]
    cut = last - tail * (last - first)
    before = [y for x, y in pts if x < cut]
    after = [y for x, y in pts if x >= cut]
    if not before or not after:
        return None
    return max(after) - max(before)

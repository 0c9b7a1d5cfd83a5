"""Paste thresholds (instance score, mask probability) per task: the saved choice and its use.

Detectron2's defaults (score ≥ 0.5 to keep an instance, mask probability ≥ 0.5 to paste
a pixel) are tuned for COCO objects; for thin lines and briefly trained models both decide
between Dice 0 and a usable mask. With ``SPINE.EVAL.SCORE_THRESHOLD < 0`` ("tuned") they are
chosen on the validation split by :mod:`spine_det.evaluation.threshold_tuning`, saved with the
model as ``<OUTPUT_DIR>/thresholds.json``, and read back here wherever the model is evaluated or
used for prediction (from ``SPINE.EVAL.THRESHOLDS_DIR`` when set: the checkpoint's folder, for an
evaluation that writes elsewhere). This module knows nothing of the evaluator, so the evaluator can use it.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional

import spine_det.compat  # noqa: F401  (shims before detectron2)
import torch
from detectron2.modeling.postprocessing import detector_postprocess

from spine_det.utils.fileio import atomic_write_json

logger = logging.getLogger(__name__)

THRESHOLDS_FILE = "thresholds.json"
DEFAULT = (0.5, 0.5)  # (score, mask) threshold of Detectron2


def save_thresholds(output_dir: str | Path, chosen: Mapping[str, Mapping[str, float]], meta: Optional[Mapping[str, Any]] = None) -> Path:
    """Write ``<output_dir>/thresholds.json`` atomically; returns its path."""
    path = Path(output_dir) / THRESHOLDS_FILE
    atomic_write_json(path, {"tasks": {t: dict(v) for t, v in chosen.items()}, **dict(meta or {})})
    return path


def load_thresholds(output_dir: str | Path) -> Dict[str, Dict[str, float]]:
    """``{task: {"score_threshold", "mask_threshold", ...}}`` from ``thresholds.json`` ({} when absent)."""
    path = Path(output_dir) / THRESHOLDS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return {t: dict(v) for t, v in data["tasks"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"{path}: not a thresholds file ({type(e).__name__}: {e})") from None


def thresholds_dir(cfg) -> Path:
    """Where ``thresholds.json`` is read: ``SPINE.EVAL.THRESHOLDS_DIR``, else ``OUTPUT_DIR``."""
    return Path(cfg.SPINE.EVAL.get("THRESHOLDS_DIR", "") or cfg.OUTPUT_DIR)


def thresholds_beside_checkpoint(cfg, checkpoint: str | Path) -> Optional[Path]:
    """The folder whose ``thresholds.json`` a tuned (< 0) evaluation of ``checkpoint`` reads: the
    checkpoint's own folder when it has one (the thresholds were tuned for that model, wherever it is
    evaluated now), else ``OUTPUT_DIR`` when that has one. None when neither has one, or the
    thresholds are fixed."""
    if float(cfg.SPINE.EVAL.SCORE_THRESHOLD) >= 0:
        return None
    for d in (Path(checkpoint).resolve().parent, Path(cfg.OUTPUT_DIR)):
        if (d / THRESHOLDS_FILE).is_file():
            return d
    return None


def score_threshold_for(cfg, tasks: Iterable[str]) -> float:
    """SPINE.EVAL.SCORE_THRESHOLD, or (when it is < 0, "tuned") the value in :func:`thresholds_dir`'s thresholds.json.

    One threshold per evaluator: with several tasks, the smallest tuned one (0.5 when none saved).
    """
    thr = float(cfg.SPINE.EVAL.SCORE_THRESHOLD)
    if thr >= 0:
        return thr
    saved = load_thresholds(thresholds_dir(cfg))
    vals = [saved[t]["score_threshold"] for t in tasks if t in saved]
    return float(min(vals)) if vals else DEFAULT[0]


def mask_threshold_for(cfg, tasks: Iterable[str]) -> float:
    """Mask probability threshold: 0.5, or (SCORE_THRESHOLD < 0) the tuned one of thresholds.json (smallest over tasks)."""
    if float(cfg.SPINE.EVAL.SCORE_THRESHOLD) >= 0:
        return DEFAULT[1]
    saved = load_thresholds(thresholds_dir(cfg))
    vals = [saved[t].get("mask_threshold", DEFAULT[1]) for t in tasks if t in saved]
    return float(min(vals)) if vals else DEFAULT[1]


class MaskThresholdModel(torch.nn.Module):
    """A GeneralizedRCNN whose eval-mode outputs are pasted with ``mask_threshold`` (Detectron2 fixes 0.5)."""

    def __init__(self, model, mask_threshold: float) -> None:
        super().__init__()
        self.model = model
        self.mask_threshold = float(mask_threshold)

    def inference(self, *args, **kwargs):
        return self.model.inference(*args, **kwargs)

    def forward(self, batched_inputs):
        if self.training:
            return self.model(batched_inputs)
        raws = self.model.inference(batched_inputs, do_postprocess=False)
        out = []
        for inp, r in zip(batched_inputs, raws):
            h, w = inp.get("height", r.image_size[0]), inp.get("width", r.image_size[1])
            out.append({"instances": detector_postprocess(r, h, w, mask_threshold=self.mask_threshold)})
        return out


def with_tuned_mask_threshold(cfg, model):
    """``model`` pasting masks at :func:`mask_threshold_for` (unwrapped again when that is 0.5)."""
    base = model.model if isinstance(model, MaskThresholdModel) else model
    thr = mask_threshold_for(cfg, cfg.SPINE.TASKS)
    if thr == DEFAULT[1]:
        return base
    logger.info("Pasting masks at probability >= %g (tuned on val, %s)", thr, thresholds_dir(cfg) / THRESHOLDS_FILE)
    return MaskThresholdModel(base, thr).eval()


__all__ = [
    "DEFAULT",
    "THRESHOLDS_FILE",
    "load_thresholds",
    "mask_threshold_for",
    "save_thresholds",
    "score_threshold_for",
    "thresholds_beside_checkpoint",
    "thresholds_dir",
    "with_tuned_mask_threshold",
]

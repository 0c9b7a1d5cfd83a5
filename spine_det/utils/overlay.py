"""Masks drawn over an X-ray: the one place that colours them, for every tool and figure.

``visualize-data`` (ground truth), ``predict`` (a model's masks) and the benchmark's figures
(ground truth against a prediction) draw with these functions, so a task has one colour everywhere.
``predict``'s overlays say what made them (:class:`ModelCaption`) in a strip above the film and carry
their legend in a strip below it: no text covers a pixel of the film except the boxes' own labels.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from spine_det.tasks import TASKS
from spine_det.utils.fileio import file_sha1

# One colour per class (BGR, as OpenCV writes them): AP and LAT of the same structure look alike.
PALETTE: Dict[str, Tuple[int, int, int]] = {
    "Vertebra": (60, 180, 255),
    "Pedicle": (80, 220, 80),
    "Spinous Process": (255, 120, 60),
    "Disk Height": (220, 80, 220),
    "Anterior Vertebral Line": (40, 40, 255),
    "Posterior Vertebral Line": (255, 255, 40),
}
OTHER = (200, 200, 200)

Layers = Union[Mapping[str, np.ndarray], Sequence[Tuple[str, np.ndarray]]]


def task_colour(task: str) -> Tuple[int, int, int]:
    """BGR colour of a task (by its class), grey for a name that is not a task."""
    t = TASKS.get(task)
    return PALETTE.get(t.class_name, OTHER) if t is not None else OTHER


FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX (ASCII only: no "≥", no "·")
STRIP_BACKGROUND = (40, 40, 40)
HEADER_TEXT = (255, 255, 255)


def box_label(instance: Mapping[str, object]) -> Optional[str]:
    """Text beside one instance's box: its level and score ("L3 0.97"), the score alone where it has
    no level (dropped by the level post-processing, or not a vertebra), None where it has neither."""
    level, score = instance.get("level"), instance.get("score")
    parts = ([str(level)] if level else []) + ([f"{float(score):.2f}"] if isinstance(score, (int, float)) else [])
    return " ".join(parts) or None


@dataclass(frozen=True)
class ModelCaption:
    """What made an overlay, for the strip above it: model family, checkpoint (file name and the first
    8 hex digits of its SHA-1) and threshold; :meth:`text` adds the task."""

    family: str
    checkpoint: str
    sha1: str
    threshold: str

    def text(self, task: str) -> str:
        return " | ".join(p for p in (self.family, f"{self.checkpoint} sha1 {self.sha1}", self.threshold, f"task {task}") if p)

    @classmethod
    def describe(cls, family: str, checkpoint: Union[str, Path], predictor: object,
                 sha1: Optional[str] = None) -> "ModelCaption":
        """The caption of ``predictor`` (a SegmentationPredictor) loaded from ``checkpoint``: its
        instance score threshold (Mask R-CNN) or probability threshold (LinkNet, smp), if it has one;
        ``sha1``: the file's SHA-1 where the caller has it (else it is computed)."""
        if sha1 is None:
            sha1 = file_sha1(checkpoint)
        if isinstance(getattr(predictor, "score_threshold", None), (int, float)):
            threshold = f"score >= {float(predictor.score_threshold):.2f}"
        elif isinstance(getattr(predictor, "threshold", None), (int, float)):
            threshold = f"probability >= {float(predictor.threshold):.2f}"
        else:
            threshold = ""
        return cls(family, Path(checkpoint).name, str(sha1)[:8], threshold)


def _font(width: int) -> Tuple[float, int]:
    """(font scale, thickness) of strip text on an image ``width`` pixels wide."""
    scale = min(1.5, max(0.35, width / 1400))
    return scale, max(1, round(scale * 1.5))


def text_strip(width: int, segments: Sequence[Tuple[str, Tuple[int, int, int]]]) -> np.ndarray:
    """BGR uint8 (h, ``width``): the (text, colour) segments on a dark strip, word-wrapped to the width
    (a wider gap between segments than between words)."""
    scale, thick = _font(width)
    (space, th), base = cv2.getTextSize("x", FONT, scale, thick)
    pad, line_h = max(4, th // 2), th + base + max(4, th // 2)
    lines: List[List[Tuple[int, str, Tuple[int, int, int]]]] = [[]]
    x = pad
    for text, colour in segments:
        for j, word in enumerate(str(text).split()):
            tw = cv2.getTextSize(word, FONT, scale, thick)[0][0]
            gap = 0 if not lines[-1] else (space if j else 3 * space)
            if lines[-1] and x + gap + tw > width - pad:
                lines.append([])
                x, gap = pad, 0
            lines[-1].append((x + gap, word, colour))
            x += gap + tw
    strip = np.empty((pad + line_h * len(lines), width, 3), np.uint8)
    strip[:] = STRIP_BACKGROUND
    for i, line in enumerate(lines):
        for x0, word, colour in line:
            cv2.putText(strip, word, (x0, pad + line_h * i + th), FONT, scale, colour, thick, cv2.LINE_AA)
    return strip


def overlay_masks(
    grey: np.ndarray,
    layers: Layers,
    boxes: Iterable[Tuple[str, Sequence[float]]] = (),
    alpha: float = 0.4,
    outline: bool = True,
    legend: bool = True,
    box_labels: Sequence[Optional[str]] = (),
    header: Optional[str] = None,
) -> np.ndarray:
    """BGR uint8: the grey image with each (task, bool mask) layer tinted in its task's colour
    (``alpha`` of the colour), optionally outlined, the (task, XYWH) boxes drawn (each with its text of
    ``box_labels``, e.g. the vertebra's level and score, left of the box). Several layers of one task
    (instances) share its colour. Text about the picture sits outside the film, which keeps every one of
    its pixels: ``header`` (what made it: :meth:`ModelCaption.text`) in a strip above, the legend (the
    tasks' class names in their colours) in a strip below."""
    items = list(layers.items()) if isinstance(layers, Mapping) else list(layers)
    boxes = list(boxes)
    img = np.asarray(grey)
    out = (cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img[:, :, :3]).astype(np.float32)
    for task, m in items:
        m = np.asarray(m, bool)
        if m.any():
            out[m] = out[m] * (1 - alpha) + np.array(task_colour(task), np.float32) * alpha
    out = np.clip(out, 0, 255).astype(np.uint8)
    thick = max(1, round(max(img.shape[:2]) / 800))
    if outline:
        for task, m in items:
            contours, _ = cv2.findContours(np.asarray(m, np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, task_colour(task), thick)
    labels = list(box_labels)
    for k, (task, (x, y, w, h)) in enumerate(boxes):
        cv2.rectangle(out, (int(x), int(y)), (int(x + w), int(y + h)), task_colour(task), thick)
        if k < len(labels) and labels[k]:
            fs = max(0.4, max(img.shape[:2]) / 2500)
            (tw, th), _ = cv2.getTextSize(labels[k], cv2.FONT_HERSHEY_SIMPLEX, fs, thick)
            org = (int(max(2, x - tw - 4)), int(y + h / 2 + th / 2))
            cv2.putText(out, labels[k], org, cv2.FONT_HERSHEY_SIMPLEX, fs, (0, 0, 0), thick + 2, cv2.LINE_AA)
            cv2.putText(out, labels[k], org, cv2.FONT_HERSHEY_SIMPLEX, fs, task_colour(task), thick, cv2.LINE_AA)
    parts = [out]
    if header:
        parts.insert(0, text_strip(out.shape[1], [(header, HEADER_TEXT)]))
    tasks = dict.fromkeys([t for t, _ in items] + [t for t, _ in boxes])
    if legend and tasks:
        names = [(TASKS[t].class_name if t in TASKS else t, task_colour(t)) for t in tasks]
        parts.append(text_strip(out.shape[1], names))
    return np.ascontiguousarray(np.vstack(parts)) if len(parts) > 1 else out


def overlay_gt_pred(grey: np.ndarray, gt: np.ndarray, pred: Optional[np.ndarray] = None, alpha: float = 0.45) -> np.ndarray:
    """RGB float in [0, 1] (for matplotlib): the X-ray, ground truth green, prediction red, their
    agreement yellow; pixels in neither are the X-ray unchanged."""
    base = np.repeat((np.asarray(grey, np.float32) / 255.0)[..., None], 3, axis=2)
    colour = np.zeros_like(base)
    colour[..., 1] = np.asarray(gt, bool)
    if pred is not None:
        colour[..., 0] = np.asarray(pred, bool)
    m = (colour.sum(axis=2) > 0)[..., None]
    return np.where(m, (1 - alpha) * base + alpha * colour, base).clip(0, 1)

"""Masks drawn over an X-ray: the one place that colours them, for every tool and figure.

``visualize-data`` (ground truth), ``predict`` (a model's masks) and the benchmark's figures
(ground truth against a prediction) draw with these functions, so a task has one colour everywhere.
"""
from __future__ import annotations

from typing import Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from spine_det.tasks import TASKS

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


def overlay_masks(
    grey: np.ndarray,
    layers: Layers,
    boxes: Iterable[Tuple[str, Sequence[float]]] = (),
    alpha: float = 0.4,
    outline: bool = True,
    legend: bool = True,
    box_labels: Sequence[Optional[str]] = (),
) -> np.ndarray:
    """BGR uint8: the grey image with each (task, bool mask) layer tinted in its task's colour
    (``alpha`` of the colour), optionally outlined, the (task, XYWH) boxes drawn (each with its text of
    ``box_labels``, e.g. the vertebra's level, left of the box), and a legend of the tasks' class
    names. Several layers of one task (instances) share its colour."""
    import cv2

    items = list(layers.items()) if isinstance(layers, Mapping) else list(layers)
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
    if legend:
        scale = max(0.5, max(img.shape[:2]) / 1500)
        for i, task in enumerate(dict.fromkeys(t for t, _ in items)):
            name = TASKS[task].class_name if task in TASKS else task
            cv2.putText(out, name, (10, int(30 * scale * (i + 1))), cv2.FONT_HERSHEY_SIMPLEX, scale, task_colour(task),
                        max(1, thick), cv2.LINE_AA)
    return out


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

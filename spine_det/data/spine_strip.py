"""The spine strip: the film's columns that hold the vertebrae, seen again at a higher scale.

A full-spine AP film is ~2.8 times taller than wide and the vertebrae fill about half of its width
(AASCE training films: ground-truth x-span 0.49 of the width on average). A resize that fits the
whole film into a CPU budget leaves a vertebra ~50 x 26 px and a disc 4-6 px. The strip keeps every
row and only the columns between the outermost vertebrae (plus a margin), so the same pixel budget
buys ~1.7 times the linear scale.

Where the strip is comes from boxes: at training from the ground-truth boxes (plus a random margin),
at inference from a first, whole-film pass of the same detector (:mod:`spine_det.modeling.strip_rcnn`).
The mask-free column finder (:mod:`spine_det.data.spine_crop`) is not used: on the AASCE training
films it needs 82 % of the width to keep 99.5 % of the vertebra pixels (``results/aasce/``).

Everything here is plain geometry on (x0, x1) column ranges, so the crop and its inverse are exact:
a box ``b`` in strip-network coordinates maps to ``b / scale + (x0, 0)`` in the film.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

import spine_det.compat  # noqa: F401  (shims before detectron2)
from detectron2.data import transforms as T

__all__ = ["strip_columns", "ResizeLongSide", "long_side_scale", "strip_boxes_to_film"]


def strip_columns(
    boxes_xyxy: np.ndarray, film_shape: Tuple[int, int], margin: float, extra: Tuple[float, float] = (0.0, 0.0)
) -> Optional[Tuple[int, int]]:
    """``(x0, x1)`` columns of the film from the leftmost to the rightmost box, widened on each side by
    ``margin`` (+ ``extra[0]`` left, ``extra[1]`` right) times the film's height, clipped to the film.
    ``None`` without boxes (the caller then keeps the whole film)."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return None
    h, w = int(film_shape[0]), int(film_shape[1])
    x0 = float(boxes[:, 0].min()) - (margin + extra[0]) * h
    x1 = float(boxes[:, 2].max()) + (margin + extra[1]) * h
    x0, x1 = int(np.floor(max(0.0, x0))), int(np.ceil(min(float(w), x1)))
    if x1 - x0 < 1:
        return None
    return x0, x1


def long_side_scale(shape: Tuple[int, int], long_side: int) -> float:
    """The scale that makes the longer side of ``shape`` ``long_side`` pixels."""
    return float(long_side) / float(max(shape[0], shape[1]))


class ResizeLongSide(T.Augmentation):
    """Resize so the longer side is one of ``long_sides`` (drawn at random when training), any aspect.

    The strip's long side is the film's height: a shortest-edge resize would give a narrow strip of a
    wide scoliosis a different scale from a straight spine's; this gives every strip the same rows."""

    def __init__(self, long_sides: Sequence[int], is_train: bool = True) -> None:
        super().__init__()
        sides = tuple(int(s) for s in long_sides)
        if not sides or min(sides) < 32:
            raise ValueError(f"SPINE.INPUT.STRIP long sides must be >= 32 px; got {long_sides}")
        self.long_sides, self.is_train = sides, is_train

    def get_transform(self, image: np.ndarray) -> T.Transform:
        side = int(np.random.choice(self.long_sides)) if self.is_train and len(self.long_sides) > 1 else self.long_sides[0]
        h, w = image.shape[:2]
        s = long_side_scale((h, w), side)
        return T.ResizeTransform(h, w, max(1, int(round(h * s))), max(1, int(round(w * s))))


def strip_boxes_to_film(boxes_xyxy: np.ndarray, x0: int, scale_xy: Tuple[float, float]) -> np.ndarray:
    """Boxes of the resized strip back in the film's pixels (the exact inverse of crop + resize)."""
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4).copy()
    b[:, [0, 2]] = b[:, [0, 2]] / scale_xy[0] + x0
    b[:, [1, 3]] = b[:, [1, 3]] / scale_xy[1]
    return b

"""Vertebra landmarks as CenterNet targets, and back: quadrilaterals <-> heatmap + offsets.

A vertebra is its four corners (TL, TR, BL, BR, as in the AASCE ``landmarks.json``). On the network's
output grid (``stride`` input pixels per cell) it becomes

* a peak of a Gaussian at its centre (the mean of the corners) in the heatmap channel, with a sigma
  proportional to the vertebra's size (``sigma_fraction`` x sqrt(area), at least ``min_sigma`` cells);
* at the centre's cell, the sub-cell offset of the centre (2 channels) and the four corners relative
  to the centre (8 channels), in cells;
* optionally (``LANDMARK.LEVEL_WEIGHT`` > 0), at the centre's cell, the vertebra's anatomical level as a
  number (``LEVEL``: 0 = C7, 1 = T1, ..., 17 = L5; :data:`LEVEL_NAMES`). A film's vertebrae look alike
  locally; which one is T1 is told by the whole film (ribs, pelvis, the count from either end), and the
  network sees the whole film. The order-aware post-processing takes it as a hint per candidate, so a
  missed end vertebra no longer shifts every name by one.

Decoding takes the heatmap's local maxima (3 x 3 max-pool NMS), at most ``max_instances`` of them above
``threshold``, and reads the offsets at each: a quadrilateral in input pixels, its peak score and, with the
level channel, its level number.
Plain numpy, so the round trip is tested without a network (tests/test_landmark.py).
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple

import numpy as np

from spine_det.data.phantom.anatomy import ALL_LEVELS

__all__ = ["CHANNELS", "HEATMAP", "OFFSET", "CORNERS", "LEVEL", "REG_CORNERS", "REG_LEVEL", "REG_OFFSET", "LEVEL_NAMES", "Peak", "encode_quads", "decode_maps",
           "network_channels", "quad_centres"]

# output channels: 0 heatmap (logit), 1-2 centre offset (x, y), 3-10 corners - centre (x0, y0, ..., x3, y3),
# and with levels 11: the level number. The regression targets are the channels from 1 on (10 or 11 of them).
HEATMAP = slice(0, 1)
OFFSET = slice(1, 3)
CORNERS = slice(3, 11)
LEVEL = slice(11, 12)
CHANNELS = 11
# the regression targets (encode_quads' second array, decode_maps' ``reg``) are the output channels from OFFSET on,
# in the same order: these are their slices of that array
REG_OFFSET, REG_CORNERS, REG_LEVEL = (slice(c.start - OFFSET.start, c.stop - OFFSET.start) for c in (OFFSET, CORNERS, LEVEL))
LEVEL_NAMES = ALL_LEVELS  # level number k = LEVEL_NAMES[k]: C7, T1, ..., L5


def network_channels(levels: bool) -> int:
    """Output channels of a landmark network with or without the level channel."""
    return LEVEL.stop if levels else CHANNELS


class Peak(NamedTuple):
    """One decoded vertebra: peak probability, (4, 2) corners in input pixels, level number (NaN without)."""

    score: float
    quad: np.ndarray
    level: float = float("nan")


def quad_centres(quads: np.ndarray) -> np.ndarray:
    """(N, 2) centres (mean of the four corners) of (N, 4, 2) quadrilaterals."""
    return np.asarray(quads, dtype=np.float64).reshape(-1, 4, 2).mean(axis=1)


def _quad_area(q: np.ndarray) -> float:
    """Area of a TL, TR, BL, BR quadrilateral (shoelace over TL, TR, BR, BL)."""
    p = q[[0, 1, 3, 2]]
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def encode_quads(quads: np.ndarray, out_hw: Tuple[int, int], stride: int, sigma_fraction: float = 0.15,
                 min_sigma: float = 1.0, levels: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Targets of (N, 4, 2) quadrilaterals in input pixels on an ``out_hw`` grid of ``stride`` px cells.

    Returns (heatmap (1, h, w) in [0, 1], regression (11, h, w): centre offset, corners - centre (in cells)
    and the level number (``levels``, one per quad; NaN where unknown), and weight (h, w): 1 at each
    vertebra's centre cell, else 0). A centre outside the grid is left out; where two centres share a
    cell, the later one's targets are kept."""
    h, w = int(out_hw[0]), int(out_hw[1])
    heat = np.zeros((1, h, w), np.float32)
    reg = np.zeros((REG_LEVEL.stop, h, w), np.float32)
    weight = np.zeros((h, w), np.float32)
    quads = np.asarray(quads, dtype=np.float64).reshape(-1, 4, 2)
    lv = np.full(len(quads), np.nan) if levels is None else np.asarray(levels, dtype=np.float64).reshape(-1)
    if len(lv) != len(quads):
        raise ValueError(f"{len(lv)} levels for {len(quads)} quadrilaterals")
    ys, xs = np.mgrid[0:h, 0:w]
    for q, level in zip(quads, lv):
        if not np.isfinite(q).all():
            continue
        qc = q / float(stride)  # in cells; cell (i, j) covers [j, j + 1) x [i, i + 1) and is sampled at its corner
        c = qc.mean(axis=0)
        ix, iy = int(np.floor(c[0])), int(np.floor(c[1]))
        if not (0 <= ix < w and 0 <= iy < h):
            continue
        sigma = max(float(min_sigma), sigma_fraction * np.sqrt(max(_quad_area(qc), 1e-6)))
        g = np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2.0 * sigma ** 2)).astype(np.float32)
        np.maximum(heat[0], g, out=heat[0])
        heat[0, iy, ix] = 1.0
        reg[REG_OFFSET, iy, ix] = (c[0] - ix, c[1] - iy)
        reg[REG_CORNERS, iy, ix] = (qc - c).reshape(-1)
        reg[REG_LEVEL.start, iy, ix] = level
        weight[iy, ix] = 1.0
    return heat, reg, weight


def _local_maxima(heat: np.ndarray) -> np.ndarray:
    """Where ``heat`` (h, w) equals the maximum of its 3 x 3 neighbourhood (CenterNet's max-pool NMS)."""
    h, w = heat.shape
    pad = np.pad(heat, 1, mode="constant", constant_values=-np.inf)
    neigh = np.max(np.stack([pad[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)]), axis=0)
    return heat >= neigh


def decode_maps(heat: np.ndarray, reg: np.ndarray, stride: int, max_instances: int = 17,
                threshold: float = 0.3) -> List[Peak]:
    """A :class:`Peak` (score, (4, 2) quadrilateral in input pixels, level number) for every peak of ``heat``
    ((h, w) probabilities, after the sigmoid) scoring >= ``threshold``, best first, at most ``max_instances``;
    ``reg`` (10 or 11, h, w) as :func:`encode_quads` writes it (the level is NaN with 10 channels)."""
    heat = np.asarray(heat, dtype=np.float32)
    peaks = _local_maxima(heat) & (heat >= threshold)
    iy, ix = np.nonzero(peaks)
    order = np.argsort(-heat[iy, ix], kind="stable")[: max(0, int(max_instances))]
    out = []
    for k in order:
        y, x = int(iy[k]), int(ix[k])
        c = np.array([x + reg[0, y, x], y + reg[1, y, x]], dtype=np.float64)
        q = c[None, :] + reg[REG_CORNERS, y, x].astype(np.float64).reshape(4, 2)
        level = float(reg[REG_LEVEL.start, y, x]) if reg.shape[0] > REG_LEVEL.start else float("nan")
        out.append(Peak(float(heat[y, x]), q * float(stride), level))
    return out

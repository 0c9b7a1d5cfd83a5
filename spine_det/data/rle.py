"""One mask <-> COCO segmentations that decode back to the very same pixels.

Each 8-connected component of a mask is one instance. Its segmentation is a
polygon traced along pixel *boundaries* (pixel ``(r, c)`` covers
``[c, c+1] × [r, r+1]``) when pycocotools rasterises that polygon back to
exactly the component, and a compressed RLE otherwise (holes, 1-px lines,
diagonal touches). Every component is cropped to its box before any work, so
full-size (≈1900×2900) masks convert fast. The dataset conversion
(:mod:`spine_det.data.coco`) and the instance definitions (:mod:`spine_det.data.instances`)
both build on this module; it imports neither.
"""
from __future__ import annotations

from typing import Any, Iterable, List, Optional

import cv2
import numpy as np
from pycocotools import mask as mask_utils


def _runs_rle(crop: np.ndarray, x: int, y: int, height: int, width: int) -> dict:
    """Compressed full-image RLE of a component given by its crop, without a full-size array."""
    cols, rows = np.nonzero(crop.T)  # column-major order, as COCO RLE
    idx = (cols.astype(np.int64) + x) * height + (rows.astype(np.int64) + y)
    counts: List[int] = []
    if idx.size:
        breaks = np.flatnonzero(np.diff(idx) != 1)
        starts = np.concatenate(([idx[0]], idx[breaks + 1]))
        ends = np.concatenate((idx[breaks], [idx[-1]])) + 1  # exclusive
        gaps = starts - np.concatenate(([0], ends[:-1]))
        pairs = np.stack([gaps, ends - starts], axis=1).ravel()
        counts = pairs.tolist()
        tail = height * width - int(ends[-1])
        if tail:
            counts.append(tail)
    else:
        counts = [height * width]
    return mask_utils.frPyObjects({"counts": counts, "size": [height, width]}, height, width)


def _boundary_polygon(crop: np.ndarray) -> Optional[np.ndarray]:
    """Outline of a hole-free component along pixel edges, as (N, 2) corner coordinates in the crop.

    Trick: in the mask upscaled ×2 (nearest), OpenCV's contour pixels sit on
    the 2×2 blocks' outer rows/columns; ``(u + 1) // 2`` maps them to the
    corners of the original pixels. Returns None when the component has holes.
    """
    padded = np.pad(crop, 1).astype(np.uint8)
    up = np.repeat(np.repeat(padded, 2, axis=0), 2, axis=1)
    contours, _ = cv2.findContours(up, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if len(contours) != 1:  # holes (or, defensively, split outlines)
        return None
    pts = (contours[0].reshape(-1, 2) + 1) // 2 - 1  # corners, in crop coordinates
    # Drop repeated and collinear vertices (cyclic).
    keep = np.any(pts != np.roll(pts, 1, axis=0), axis=1)
    pts = pts[keep]
    if len(pts) >= 3:
        prev, nxt = np.roll(pts, 1, axis=0), np.roll(pts, -1, axis=0)
        cross = (pts[:, 0] - prev[:, 0]) * (nxt[:, 1] - pts[:, 1]) - (pts[:, 1] - prev[:, 1]) * (nxt[:, 0] - pts[:, 0])
        pts = pts[cross != 0]
    return pts if len(pts) >= 3 else None


def _polygon_is_exact(poly: List[float], window: np.ndarray, x0: int, y0: int) -> bool:
    """Does pycocotools rasterise ``poly`` (image coordinates) to exactly ``window`` (at x0, y0)?"""
    h, w = window.shape
    local = np.asarray(poly, dtype=np.float64).reshape(-1, 2) - (x0, y0)
    rle = mask_utils.frPyObjects([local.ravel().tolist()], h, w)
    decoded = mask_utils.decode(rle)[:, :, 0].astype(bool)
    return bool(np.array_equal(decoded, window))


def mask_to_instances(mask: np.ndarray, polygons: bool = True) -> List[dict]:
    """COCO annotations (without ids) of every 8-connected component of ``mask``.

    Each has ``segmentation`` (``[polygon]`` where exact, else compressed RLE
    with ``counts`` as str), ``bbox`` (XYWH) and ``area`` from pycocotools, and
    ``iscrowd = 0``. Decoding all of them and taking the union gives back
    ``mask > 0`` exactly. ``polygons=False`` writes RLE only.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    binary = (mask > 0).astype(np.uint8) if mask.dtype != bool else mask.view(np.uint8)
    height, width = binary.shape
    out: List[dict] = []
    # Label components only inside the box of all foreground (plus a margin): much faster on X-rays.
    bx, by, bw, bh = cv2.boundingRect(binary)
    if bw == 0 or bh == 0:
        return out
    ox, oy = max(bx - 1, 0), max(by - 1, 0)
    region = binary[oy : min(by + bh + 1, height), ox : min(bx + bw + 1, width)]
    n, labels, stats, _ = cv2.connectedComponentsWithStats(region, connectivity=8, ltype=cv2.CV_32S)
    for i in range(1, n):
        x, y, w, h = (int(v) for v in stats[i, :4])
        # One pixel of margin (inside the image) so the polygon check sees any spill.
        x0, y0 = max(x - 1, 0), max(y - 1, 0)
        x1, y1 = min(x + w + 1, labels.shape[1]), min(y + h + 1, labels.shape[0])
        window = labels[y0:y1, x0:x1] == i
        x, y, x0, y0 = x + ox, y + oy, x0 + ox, y0 + oy  # region → image coordinates
        crop = window[y - y0 : y - y0 + h, x - x0 : x - x0 + w]
        rle = _runs_rle(crop, x, y, height, width)
        segmentation: Any = None
        if polygons:
            pts = _boundary_polygon(crop)
            if pts is not None:
                poly = (pts + (x, y)).astype(np.float64).ravel().tolist()
                if _polygon_is_exact(poly, window, x0, y0):
                    segmentation = [poly]
        if segmentation is None:
            segmentation = {"size": [height, width], "counts": rle["counts"].decode("ascii")}
        out.append(
            {
                "segmentation": segmentation,
                "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                "area": float(mask_utils.area(rle)),
                "iscrowd": 0,
            }
        )
    return out


def piece_to_instance(piece: np.ndarray) -> dict:
    """One COCO annotation (without id) for a whole bool mask, however many components it has: the
    exact polygon when it is one hole-free component, else a compressed RLE of it."""
    anns = mask_to_instances(piece)
    if len(anns) == 1:
        return anns[0]
    height, width = piece.shape
    rows = np.flatnonzero(piece.any(axis=1))
    cols = np.flatnonzero(piece.any(axis=0))
    y, x = int(rows[0]), int(cols[0])
    rle = _runs_rle(piece[y : rows[-1] + 1, x : cols[-1] + 1], x, y, height, width)
    return {
        "segmentation": {"size": [height, width], "counts": rle["counts"].decode("ascii")},
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "area": float(mask_utils.area(rle)),
        "iscrowd": 0,
    }


def label_map_to_instances(labels: np.ndarray, mask: np.ndarray) -> List[dict]:
    """Instances of ``mask`` from an instance label map: one per label k > 0 (its pixels inside the
    mask), plus each component of mask pixels the map leaves unlabelled. Their union is ``mask > 0``
    exactly and none overlap, so the semantic ground truth is unchanged; touching or overlapping
    objects (vertebrae of a scoliotic spine) stay separate instances."""
    labels = np.asarray(labels)
    fg = np.asarray(mask) > 0
    if labels.shape != fg.shape:
        raise ValueError(f"instance map shape {labels.shape} differs from the mask's {fg.shape}")
    out: List[dict] = []
    ys, xs = np.nonzero(fg & (labels > 0))
    for k in np.unique(labels[ys, xs]):
        sel = labels[ys, xs] == k
        piece = np.zeros_like(fg)
        piece[ys[sel], xs[sel]] = True
        out.append(piece_to_instance(piece))
    out += mask_to_instances(fg & (labels == 0))
    return out


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """Decode a COCO segmentation (polygon list, compressed or uncompressed RLE) to a bool mask."""
    if isinstance(segmentation, list):
        rles = mask_utils.frPyObjects(segmentation, height, width)
        rle = mask_utils.merge(rles)
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        counts = segmentation["counts"]
        rle = {"size": segmentation["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_utils.decode(rle).astype(bool)


def instances_to_mask(instances: Iterable[dict], height: int, width: int) -> np.ndarray:
    """Union of decoded instances (the inverse of :func:`mask_to_instances`)."""
    out = np.zeros((height, width), dtype=bool)
    for inst in instances:
        out |= decode_segmentation(inst["segmentation"], height, width)
    return out

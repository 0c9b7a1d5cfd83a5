"""Films and their vertebra corners as the landmark network sees them: letterboxed grey image, quadrilaterals
in network pixels, and the targets an ``encode`` function makes of them (the trainer passes
:func:`spine_det.modeling.landmark_targets.encode_quads`).

Where the corners come from (TL, TR, BL, BR per vertebra, film pixels):

* an imported AASCE film: ``<view folder>/landmarks.json`` (:func:`spine_det.data.aasce.read_landmarks`);
* a phantom patient: ``ground_truth.json`` beside the view folders, ``ap_levels[*].ap_corners`` (image
  left / right, superior / inferior) or ``lat_levels[*].lat_corners`` (anterior = image left).
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from spine_det.data.aasce import read_landmarks
from spine_det.data.io import DataError, read_image
from spine_det.data.seg_dataset import Letterbox, degrade, jitter_intensity, network_image, normalize, random_affine
from spine_det.data.phantom.anatomy import ALL_LEVELS

__all__ = ["LandmarkDataset", "PHANTOM_CORNER_KEYS", "quads_to_film", "quads_to_network", "read_vertebra_corners",
           "level_numbers", "read_vertebrae", "samples_with_corners"]

PHANTOM_GT = "ground_truth.json"
# the phantom's corner names in TL, TR, BL, BR order, per view
PHANTOM_CORNER_KEYS = {
    "ap": ("ap_levels", "ap_corners", ("left_superior", "right_superior", "left_inferior", "right_inferior")),
    "lat": ("lat_levels", "lat_corners", ("anterior_superior", "posterior_superior", "anterior_inferior",
                                          "posterior_inferior")),
}


def read_vertebrae(sample: Any) -> Optional[Tuple[np.ndarray, Optional[List[str]]]]:
    """((N, 4, 2) corners of the vertebrae of one ViewSample in film pixels (TL, TR, BL, BR), the level name of
    each or None when the dataset names none), from one read of ``landmarks.json`` (``corners``,
    ``vertebrae``) or the phantom's ``ground_truth.json`` (each level's corners and ``name``); None when the
    dataset has neither."""
    view_dir = Path(sample.image).parent
    lm = read_landmarks(view_dir)
    if lm is not None:
        names = lm.get("vertebrae")
        return np.asarray(lm["corners"], dtype=np.float64), ([str(n) for n in names] if names else None)
    gt = view_dir.parent / PHANTOM_GT
    if not gt.is_file():
        return None
    levels_key, corners_key, keys = PHANTOM_CORNER_KEYS[sample.view]
    try:
        levels = json.loads(gt.read_text(encoding="utf-8"))[levels_key]
        corners = np.array([[lv[corners_key][k] for k in keys] for lv in levels], dtype=np.float64).reshape(-1, 4, 2)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(gt, f"no {levels_key}/{corners_key} corners ({type(e).__name__}: {e})") from None
    names = [lv.get("name") for lv in levels]
    return corners, ([str(n) for n in names] if all(n is not None for n in names) else None)


def read_vertebra_corners(sample: Any) -> Optional[np.ndarray]:
    """The corners of :func:`read_vertebrae`, or None when the dataset has none."""
    found = read_vertebrae(sample)
    return None if found is None else found[0]


def level_numbers(names: Optional[Sequence[str]], n: int) -> np.ndarray:
    """(n,) level numbers of vertebra names, C7 = 0, T1 = 1, ..., L5 = 17 (the landmark network's level
    channel); NaN for a name outside that list, all NaN without names."""
    out = np.full(int(n), np.nan)
    for k, name in enumerate(list(names or [])[: int(n)]):
        if name in ALL_LEVELS:
            out[k] = float(ALL_LEVELS.index(name))
    return out


def quads_to_network(quads: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Film pixels -> network-input pixels of the letterbox ``lb`` (pixel centres kept: x' + 0.5 = (x + 0.5) s)."""
    q = np.asarray(quads, dtype=np.float64).reshape(-1, 4, 2)
    sx, sy = lb.w / lb.orig_w, lb.h / lb.orig_h
    return np.stack([(q[..., 0] + 0.5) * sx - 0.5 + lb.left, (q[..., 1] + 0.5) * sy - 0.5 + lb.top], axis=-1)


def quads_to_film(quads: np.ndarray, lb: Letterbox) -> np.ndarray:
    """The inverse of :func:`quads_to_network`."""
    q = np.asarray(quads, dtype=np.float64).reshape(-1, 4, 2)
    sx, sy = lb.w / lb.orig_w, lb.h / lb.orig_h
    return np.stack([(q[..., 0] - lb.left + 0.5) / sx - 0.5, (q[..., 1] - lb.top + 0.5) / sy - 0.5], axis=-1)


def _warp_quads(quads: np.ndarray, m: np.ndarray, flipped: bool) -> np.ndarray:
    """Quadrilaterals through a 2 x 3 affine; a mirrored film swaps left and right corners (TL <-> TR, BL <-> BR)."""
    q = quads.reshape(-1, 2) @ m[:, :2].T + m[:, 2]
    q = q.reshape(-1, 4, 2)
    return q[:, [1, 0, 3, 2]] if flipped else q


class LandmarkDataset(Dataset):
    """One item per film: ``image`` (C, H, W), ``index`` and the targets ``encode(quads in network pixels,
    levels=level numbers)`` returns as ``(heatmap, regression, weight)`` arrays; ``quads(i)`` gives a film's
    corners in network pixels (validation), ``levels(i)`` their level numbers (NaN where unnamed)."""

    def __init__(self, samples: Sequence[Any], size: Tuple[int, int], encode: Callable[[np.ndarray], tuple],
                 aug: Any = None, in_channels: int = 1, clahe: float = 0.0, seed: int = 0,
                 resize: str = "letterbox") -> None:
        self.samples, self.size, self.encode = list(samples), (int(size[0]), int(size[1])), encode
        self.aug = aug if aug is not None and getattr(aug, "ENABLED", False) else None
        self.in_channels, self.clahe, self.resize = in_channels, float(clahe), resize
        self.seed, self.epoch = int(seed), 0
        self._cache: Dict[int, Tuple[np.ndarray, np.ndarray, Letterbox]] = {}
        self._levels: Dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def load(self, i: int) -> Tuple[np.ndarray, np.ndarray, Letterbox]:
        """(network image uint8, quads in network pixels, letterbox), cached."""
        if i not in self._cache:
            s = self.samples[i]
            found = read_vertebrae(s)
            if found is None:
                raise DataError(s.image, "no vertebra corners (landmarks.json or the phantom's ground_truth.json)")
            img, lb = network_image(read_image(s.image), self.size, self.resize, self.clahe)
            corners, names = found
            self._cache[i] = (img, quads_to_network(corners, lb), lb)
            self._levels[i] = level_numbers(names, len(corners))
        return self._cache[i]

    def quads(self, i: int) -> np.ndarray:
        return self.load(i)[1]

    def levels(self, i: int) -> np.ndarray:
        self.load(i)
        return self._levels[i]

    def __getitem__(self, i: int) -> Dict[str, torch.Tensor]:
        img, quads, _ = self.load(i)
        if self.aug is not None:
            rng = random.Random(self.seed * 1000003 + self.epoch * 7919 + i)
            h, w = img.shape
            m = random_affine(h, w, self.aug, rng)
            if m is not None:
                img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
                quads = _warp_quads(quads, m, flipped=np.linalg.det(m[:, :2]) < 0)
            img = jitter_intensity(degrade(img, self.aug, rng), self.aug, rng)
        heat, reg, weight = self.encode(quads, levels=self.levels(i))
        return {"image": normalize(img, self.in_channels), "heatmap": torch.from_numpy(heat),
                "regression": torch.from_numpy(reg), "weight": torch.from_numpy(weight), "index": i}


def samples_with_corners(samples: Sequence[Any]) -> List[Any]:
    """The samples whose corners can be read (the others cannot teach landmarks)."""
    return [s for s in samples if read_vertebra_corners(s) is not None]

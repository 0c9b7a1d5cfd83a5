"""Torch datasets over manifest samples for the segmentation networks (LinkNet, smp) and the classifier.

Images are read with :mod:`spine_det.data.io` (DICOM, 16-bit, RGB all become
uint8 grey), letterboxed to the network size (aspect ratio kept, zero padding,
centred) and augmented with a random affine + intensity jitter. The letterbox
geometry is kept so predictions can be mapped back to the original pixels.
"""
from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from spine_det.data.io import read_image, read_mask
from spine_det.tasks import LABELS, get_task
from spine_det.utils.progress import progress as progress_bar

logger = logging.getLogger(__name__)

GREY_MEAN = 0.449  # ImageNet RGB mean/std averaged: grey replicated to RGB
GREY_STD = 0.226


@dataclass(frozen=True)
class Letterbox:
    """Where an image of ``orig`` size sits inside the network input of ``out`` size."""

    orig_h: int
    orig_w: int
    out_h: int
    out_w: int
    top: int
    left: int
    h: int  # resized content height
    w: int

    @classmethod
    def fit(cls, orig_hw: Sequence[int], out_hw: Sequence[int], mode: str = "letterbox") -> "Letterbox":
        oh, ow = int(orig_hw[0]), int(orig_hw[1])
        H, W = int(out_hw[0]), int(out_hw[1])
        if mode == "stretch":
            return cls(oh, ow, H, W, 0, 0, H, W)
        if mode != "letterbox":
            raise ValueError(f"unknown resize mode {mode!r}; expected 'letterbox' or 'stretch'")
        s = min(H / oh, W / ow)
        h, w = max(1, min(H, round(oh * s))), max(1, min(W, round(ow * s)))
        return cls(oh, ow, H, W, (H - h) // 2, (W - w) // 2, h, w)

    def as_tuple(self) -> Tuple[int, ...]:
        return tuple(asdict(self).values())


def _resize(a: np.ndarray, h: int, w: int) -> np.ndarray:
    if a.shape[:2] == (h, w):
        return a
    shrink = h < a.shape[0] and w < a.shape[1]
    return cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def letterbox_image(img: np.ndarray, lb: Letterbox) -> np.ndarray:
    """uint8/float (H, W) -> (out_h, out_w), content resized and centred, zeros around."""
    out = np.zeros((lb.out_h, lb.out_w), dtype=img.dtype)
    out[lb.top : lb.top + lb.h, lb.left : lb.left + lb.w] = _resize(img, lb.h, lb.w)
    return out


def letterbox_mask(mask: np.ndarray, lb: Letterbox, threshold: float = 0.5) -> np.ndarray:
    """bool (H, W) -> bool at network size; area-resized then thresholded (thin lines: lower threshold)."""
    frac = letterbox_image(mask.astype(np.float32), lb)
    return frac > threshold if threshold < 1 else frac >= 1


def unletterbox(prob: np.ndarray, lb: Letterbox) -> np.ndarray:
    """(..., out_h, out_w) float map -> (..., orig_h, orig_w) map of the original image (bilinear)."""
    crop = prob[..., lb.top : lb.top + lb.h, lb.left : lb.left + lb.w]
    if crop.ndim == 2:
        return cv2.resize(crop.astype(np.float32), (lb.orig_w, lb.orig_h), interpolation=cv2.INTER_LINEAR)
    return np.stack([unletterbox(c, Letterbox(lb.orig_h, lb.orig_w, lb.h, lb.w, 0, 0, lb.h, lb.w)) for c in crop])


def equalize_contrast(img_u8: np.ndarray, clip_limit: float, tiles: int = 8) -> np.ndarray:
    """CLAHE on a uint8 grey image at its own resolution (``tiles`` x ``tiles`` regions, so the
    result does not depend on the pixel size); ``clip_limit`` <= 0 returns the image unchanged.

    Why: X-ray systems hand over images through their own display processing (window, LUT,
    multi-frequency contrast), so a model sees one spine under many grey-level mappings. Local
    equalisation maps them closer together before the network, in training and prediction alike.
    """
    if clip_limit <= 0:
        return img_u8
    return cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(int(tiles), int(tiles))).apply(img_u8)


def network_image(img_u8: np.ndarray, size: Sequence[int], resize: str = "letterbox",
                  clahe: float = 0.0) -> Tuple[np.ndarray, Letterbox]:
    """A grey image as a segmentation network sees it (before :func:`normalize`): contrast equalised
    at its own size (``clahe`` > 0), then letterboxed to ``size``. One function for the training
    dataset and the predictor, so the two cannot drift apart."""
    img = equalize_contrast(img_u8, clahe)
    lb = Letterbox.fit(img.shape, size, resize)
    return letterbox_image(img, lb), lb


def normalize(img_u8: np.ndarray, in_channels: int = 1) -> torch.Tensor:
    """uint8 (H, W) -> float tensor (C, H, W) with the grey ImageNet statistics."""
    t = (torch.from_numpy(np.ascontiguousarray(img_u8)).float() / 255.0 - GREY_MEAN) / GREY_STD
    t = t.unsqueeze(0)
    return t.repeat(3, 1, 1) if in_channels == 3 else t


def random_affine(h: int, w: int, aug: Any, rng: random.Random) -> Optional[np.ndarray]:
    """A 2x3 affine matrix (rotate, scale, shift, optional flip) about the centre, or None."""
    angle = rng.uniform(-aug.ROTATE, aug.ROTATE) if aug.ROTATE else 0.0
    scale = rng.uniform(*aug.SCALE) if aug.SCALE else 1.0
    tx = rng.uniform(-aug.SHIFT, aug.SHIFT) * w if aug.SHIFT else 0.0
    ty = rng.uniform(-aug.SHIFT, aug.SHIFT) * h if aug.SHIFT else 0.0
    flip = aug.HFLIP > 0 and rng.random() < aug.HFLIP
    if angle == 0 and scale == 1 and tx == 0 and ty == 0 and not flip:
        return None
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle, scale)
    m[:, 2] += (tx, ty)
    if flip:
        f = np.array([[-1, 0, w], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
        m = m @ f
    return m


def jitter_intensity(img: np.ndarray, aug: Any, rng: random.Random) -> np.ndarray:
    """Brightness/contrast/gamma jitter of a uint8 image (zero padding stays zero-ish)."""
    x = img.astype(np.float32) / 255.0
    if aug.GAMMA:
        x = np.power(x, rng.uniform(*aug.GAMMA))
    c = 1.0 + rng.uniform(-aug.CONTRAST, aug.CONTRAST)
    b = rng.uniform(-aug.BRIGHTNESS, aug.BRIGHTNESS)
    x = (x - 0.5) * c + 0.5 + b
    return (np.clip(x, 0, 1) * 255.0 + 0.5).astype(np.uint8)


def degrade(img: np.ndarray, aug: Any, rng: random.Random) -> np.ndarray:
    """Domain randomisation of the imaging chain: blur, local contrast (unsharp +-), noise; padding stays 0.

    Reads AUG.DR_PROB / BLUR / NOISE / UNSHARP (LinkNet's and the classifier's configs; 0 or absent = off)."""
    p = float(getattr(aug, "DR_PROB", 0.0) or 0.0)
    if p <= 0:
        return img
    content = img > 0
    x = img.astype(np.float32)
    if getattr(aug, "BLUR", 0) and rng.random() < p:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.3, float(aug.BLUR)))
    if getattr(aug, "UNSHARP", 0) and rng.random() < p:
        low = cv2.GaussianBlur(x, (0, 0), rng.uniform(2.0, 12.0))
        x = x + rng.uniform(-float(aug.UNSHARP), float(aug.UNSHARP)) * (x - low)
    if getattr(aug, "NOISE", 0) and rng.random() < p:
        nrng = np.random.default_rng(rng.getrandbits(32))
        x = x + nrng.standard_normal(x.shape, dtype=np.float32) * np.float32(rng.uniform(0, float(aug.NOISE)) * 255.0)
    return np.where(content, np.clip(x, 0, 255), 0).astype(np.uint8)


def augment(img: np.ndarray, masks: np.ndarray, aug: Any, rng: random.Random) -> Tuple[np.ndarray, np.ndarray]:
    """Same random geometry on image (H, W) uint8 and masks (T, H, W) bool; intensity on the image."""
    h, w = img.shape
    m = random_affine(h, w, aug, rng)
    if m is not None:
        img = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
        if len(masks):
            warped = [cv2.warpAffine(k.astype(np.uint8) * 255, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0) for k in masks]
            masks = np.stack(warped) >= 128
    return jitter_intensity(degrade(img, aug, rng), aug, rng), masks


class SegmentationDataset(Dataset):
    """Samples of one view with the masks of ``tasks`` stacked as channels.

    Item: ``image`` (C, H, W) float, ``masks`` (T, H, W) float {0,1}, ``valid`` (T,) bool
    (False where the sample has no mask file for a task: the loss skips it),
    ``letterbox`` (8,) int, ``index``.
    """

    def __init__(
        self,
        samples: Sequence[Any],
        tasks: Sequence[str],
        size: Tuple[int, int],
        resize: str = "letterbox",
        aug: Any = None,
        in_channels: int = 1,
        mask_threshold: float = 0.5,
        thin_mask_threshold: float = 0.25,
        cache: bool = True,
        seed: int = 0,
        clahe: float = 0.0,
    ) -> None:
        self.samples = list(samples)
        self.tasks = list(tasks)
        self.clahe = float(clahe)  # equalize_contrast's clip limit, applied at the image's own size
        self.size = (int(size[0]), int(size[1]))
        self.resize = resize
        self.aug = aug if (aug is not None and getattr(aug, "ENABLED", True)) else None
        self.in_channels = in_channels
        self.thresholds = [thin_mask_threshold if get_task(t).thin else mask_threshold for t in self.tasks]
        self.seed = seed
        self.epoch = 0
        self._cache: Dict[int, Tuple[np.ndarray, np.ndarray, np.ndarray, Letterbox]] = {}
        self.use_cache = cache
        if cache:
            self.preload()

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation stream per epoch (deterministic given seed, epoch, index)."""
        self.epoch = epoch

    def preload(self) -> None:
        todo = [i for i in range(len(self)) if i not in self._cache]
        for i in progress_bar(todo, desc="caching images", leave=False, disable=len(todo) < 50):
            self._cache[i] = self._load(i)

    def _load(self, i: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Letterbox]:
        s = self.samples[i]
        img = read_image(s.image)
        net, lb = network_image(img, self.size, self.resize, self.clahe)
        masks, valid = [], []
        for t, thr in zip(self.tasks, self.thresholds):
            path = s.masks.get(t)
            if path:
                masks.append(letterbox_mask(read_mask(path, shape=img.shape), lb, thr))
                valid.append(True)
            else:
                masks.append(np.zeros(self.size, dtype=bool))
                valid.append(False)
        return net, np.stack(masks), np.array(valid), lb

    def get_raw(self, i: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, Letterbox]:
        if i in self._cache:
            return self._cache[i]
        item = self._load(i)
        if self.use_cache:
            self._cache[i] = item
        return item

    def __getitem__(self, i: int) -> Dict[str, torch.Tensor]:
        img, masks, valid, lb = self.get_raw(i)
        if self.aug is not None:
            rng = random.Random(hash((self.seed, self.epoch, i)))
            img, masks = augment(img, masks, self.aug, rng)
        return {
            "image": normalize(img, self.in_channels),
            "masks": torch.from_numpy(np.ascontiguousarray(masks)).float(),
            "valid": torch.from_numpy(valid),
            "letterbox": torch.tensor(lb.as_tuple()),
            "index": torch.tensor(i),
        }


class ViewImageDataset(Dataset):
    """One X-ray per item with its patient label (1 = Damaged), for the classifier."""

    def __init__(
        self,
        samples: Sequence[Any],
        size: Tuple[int, int],
        resize: str = "letterbox",
        aug: Any = None,
        in_channels: int = 1,
        cache: bool = True,
        seed: int = 0,
    ) -> None:
        self.samples = list(samples)
        self.size = (int(size[0]), int(size[1]))
        self.resize = resize
        self.aug = aug if (aug is not None and getattr(aug, "ENABLED", True)) else None
        self.in_channels = in_channels
        self.seed = seed
        self.epoch = 0
        self.use_cache = cache
        self._cache: Dict[int, np.ndarray] = {}
        if cache:
            for i in range(len(self.samples)):
                self._cache[i] = self._load(i)

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _load(self, i: int) -> np.ndarray:
        img = read_image(self.samples[i].image)
        return letterbox_image(img, Letterbox.fit(img.shape, self.size, self.resize))

    def labels(self) -> np.ndarray:
        return np.array([LABELS.index(s.label) for s in self.samples], dtype=np.int64)

    def __getitem__(self, i: int) -> Dict[str, torch.Tensor]:
        img = self._cache[i] if i in self._cache else self._load(i)
        if self.aug is not None:
            rng = random.Random(hash((self.seed, self.epoch, i)))
            img, _ = augment(img, np.zeros((0,) + img.shape, dtype=bool), self.aug, rng)
        return {
            "image": normalize(img, self.in_channels),
            "label": torch.tensor(float(LABELS.index(self.samples[i].label))),
            "index": torch.tensor(i),
        }


def collate_letterbox(row: torch.Tensor) -> Letterbox:
    """Inverse of :meth:`Letterbox.as_tuple` for a collated row."""
    return Letterbox(*[int(v) for v in row.tolist()])


__all__ = [
    "Letterbox",
    "equalize_contrast",
    "letterbox_image",
    "letterbox_mask",
    "network_image",
    "unletterbox",
    "normalize",
    "augment",
    "degrade",
    "SegmentationDataset",
    "ViewImageDataset",
    "collate_letterbox",
    "GREY_MEAN",
    "GREY_STD",
]

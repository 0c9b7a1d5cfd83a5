"""Detectron2 DatasetMapper for spine X-rays.

Detectron2's reader would mangle 16-bit PNG/TIFF and cannot open DICOM, so images
are read with :func:`spine_det.data.io.read_image` (uint8 grey) and replicated to
the channels the model's stem expects. Adds small rotations, brightness / contrast jitter and the
imaging chain's domain randomisation (DatasetMapper's config only knows resize, flip and crop).
"""
from __future__ import annotations

import copy
import logging
import random
from dataclasses import dataclass
from types import SimpleNamespace
from typing import List, Optional, Tuple

import numpy as np

import spine_det.compat  # noqa: F401  (shims before detectron2)
import torch
from detectron2.config import configurable
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode
from pycocotools import mask as mask_util

from spine_det.data.io import read_image
from spine_det.data.seg_dataset import degrade
from spine_det.data.spine_strip import ResizeLongSide, strip_columns

logger = logging.getLogger(__name__)


def grey_to_model_format(grey: np.ndarray, image_format: str) -> np.ndarray:
    """(H, W) uint8 grey -> (H, W, C) in ``INPUT.FORMAT`` (BGR/RGB: 3 equal channels; L: 1)."""
    if grey.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {grey.shape}")
    if image_format in ("BGR", "RGB"):
        return np.repeat(grey[:, :, None], 3, axis=2)
    if image_format == "L":
        return grey[:, :, None]
    raise ValueError(f"INPUT.FORMAT {image_format!r} is not supported for grey X-rays (use BGR, RGB or L)")


def grey_to_model_tensor(grey: np.ndarray, image_format: str) -> torch.Tensor:
    """(H, W) uint8 grey -> the (C, H, W) tensor a Detectron2 model takes as ``"image"``."""
    return torch.as_tensor(np.ascontiguousarray(grey_to_model_format(grey, image_format).transpose(2, 0, 1)))


def crop_after_resize_size(cfg) -> tuple:
    """``SPINE.INPUT.CROP_AFTER_RESIZE`` as (height, width) ints; (0, 0) = off. Rejects half-set values."""
    size = tuple(int(v) for v in cfg.SPINE.INPUT.CROP_AFTER_RESIZE)
    if len(size) != 2 or any(v < 0 for v in size) or (0 in size and size != (0, 0)):
        raise ValueError(f"SPINE.INPUT.CROP_AFTER_RESIZE must be (height, width) > 0, or (0, 0) for off; got {size}")
    return size


def _imaging_chain(image: np.ndarray, params: SimpleNamespace, gamma: float, seed: int) -> np.ndarray:
    """Blur / unsharp / noise (:func:`degrade`) and gamma of an (H, W, C) image of equal grey channels."""
    grey = degrade(image[:, :, 0], params, random.Random(seed))  # degrade works on float copies
    if gamma != 1.0:
        grey = (np.power(grey.astype(np.float32) / 255.0, gamma) * 255.0 + 0.5).astype(np.uint8)
    return np.repeat(grey[:, :, None], image.shape[2], axis=2)


class RandomImagingChain(T.Augmentation):
    """The imaging chain's domain randomisation (``SPINE.INPUT.DR_PROB`` ..., ``GAMMA``) as a Detectron2
    augmentation: a colour transform, so boxes and masks are untouched. Draws from ``np.random`` like
    Detectron2's own augmentations (seeded per worker by its data loader)."""

    def __init__(self, dr_prob: float, blur: float, noise: float, unsharp: float, gamma: Tuple[float, float]):
        super().__init__()
        self.params = SimpleNamespace(DR_PROB=float(dr_prob), BLUR=float(blur), NOISE=float(noise), UNSHARP=float(unsharp))
        self.gamma = (float(gamma[0]), float(gamma[1]))

    def get_transform(self, image: np.ndarray) -> T.Transform:
        gamma = float(np.random.uniform(*self.gamma)) if self.gamma != (1.0, 1.0) else 1.0
        seed = int(np.random.randint(2**31))
        return T.ColorTransform(lambda img: _imaging_chain(img, self.params, gamma, seed))


def imaging_chain_augmentation(cfg) -> List[T.Augmentation]:
    """``[RandomImagingChain]`` when ``SPINE.INPUT`` switches it on, else ``[]``; rejects bad values."""
    sp = cfg.SPINE.INPUT
    gamma = tuple(float(g) for g in sp.GAMMA)
    if not 0.0 <= sp.DR_PROB <= 1.0 or min(sp.BLUR, sp.NOISE, sp.UNSHARP) < 0:
        raise ValueError(f"SPINE.INPUT.DR_PROB must be in [0, 1] and BLUR / NOISE / UNSHARP >= 0; got "
                         f"{sp.DR_PROB}, {sp.BLUR}, {sp.NOISE}, {sp.UNSHARP}")
    if len(gamma) != 2 or not 0 < gamma[0] <= gamma[1]:
        raise ValueError(f"SPINE.INPUT.GAMMA must be (low, high) with 0 < low <= high; got {gamma}")
    if sp.DR_PROB == 0 and gamma == (1.0, 1.0):
        return []
    return [RandomImagingChain(sp.DR_PROB, sp.BLUR, sp.NOISE, sp.UNSHARP, gamma)]


def build_spine_augmentation(cfg, is_train: bool) -> List[T.Augmentation]:
    """Resize (+ flip) as Detectron2 builds it, then (training only) a crop of the resized image,
    rotation, the imaging chain's randomisation and intensity jitter (LinkNet's order: degrade, then jitter)."""
    augs = utils.build_augmentation(cfg, is_train)
    if not is_train:
        return augs
    crop = crop_after_resize_size(cfg)
    if crop != (0, 0):
        # RandomCrop("absolute") takes min(crop, image) per side, so small images pass whole.
        augs.insert(1, T.RandomCrop("absolute", crop))
    sp = cfg.SPINE.INPUT
    if sp.ROTATION > 0:
        augs.append(T.RandomRotation([-sp.ROTATION, sp.ROTATION], expand=False, sample_style="range"))
    augs.extend(imaging_chain_augmentation(cfg))
    if tuple(sp.BRIGHTNESS) != (1.0, 1.0):
        augs.append(T.RandomBrightness(*sp.BRIGHTNESS))
    if tuple(sp.CONTRAST) != (1.0, 1.0):
        augs.append(T.RandomContrast(*sp.CONTRAST))
    return augs


def _polygons_to_rle(dataset_dict: dict) -> None:
    """Replace polygon segmentations by the same masks as COCO RLE, in place (crop-safe without shapely)."""
    h, w = dataset_dict["height"], dataset_dict["width"]
    for ann in dataset_dict["annotations"]:
        seg = ann.get("segmentation")
        if isinstance(seg, list) and seg:
            ann["segmentation"] = mask_util.merge(mask_util.frPyObjects(seg, h, w))


@dataclass(frozen=True)
class StripSampling:
    """How training draws spine strips (``SPINE.INPUT.STRIP``): with probability ``prob`` a film is cut to
    the columns of its ground-truth boxes, widened by ``margin`` + U(0, ``jitter``) film heights per side,
    and seen through ``augmentations`` (long-side resize, then the usual flip / rotation / intensity)."""

    prob: float
    margin: float
    jitter: float
    augmentations: T.AugmentationList


def strip_sampling(cfg, is_train: bool) -> Optional[StripSampling]:
    """The training strips of ``cfg`` (None when the strip is off or not training); rejects bad values."""
    st = cfg.SPINE.INPUT.STRIP
    if not st.ENABLED or not is_train:
        return None
    if not 0.0 <= st.TRAIN_PROB <= 1.0 or st.MARGIN < 0 or st.JITTER < 0:
        raise ValueError(f"SPINE.INPUT.STRIP: TRAIN_PROB must be in [0, 1], MARGIN and JITTER >= 0; got "
                         f"{st.TRAIN_PROB}, {st.MARGIN}, {st.JITTER}")
    rest = build_spine_augmentation(cfg, is_train)[1:]  # everything after the whole-film resize
    augs = T.AugmentationList([ResizeLongSide(st.LONG_SIDE_TRAIN, is_train=True), *rest])
    return StripSampling(float(st.TRAIN_PROB), float(st.MARGIN), float(st.JITTER), augs)


class SpineDatasetMapper(DatasetMapper):
    """DatasetMapper that reads images with spine_det's reader (grey, DICOM, 16-bit)."""

    @configurable
    def __init__(self, is_train: bool, *, polygons_to_rle: bool = False, strip: Optional[StripSampling] = None,
                 with_film: bool = False, **kwargs):
        super().__init__(is_train, **kwargs)
        # Detectron2 crops polygons with shapely (not a dependency); a crop crops RLE masks instead.
        self.polygons_to_rle = polygons_to_rle
        self.strip = strip
        self.with_film = with_film  # inference of SpineStripRCNN needs the film at full resolution

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        ret = super().from_config(cfg, is_train)
        ret["augmentations"] = build_spine_augmentation(cfg, is_train)
        if cfg.INPUT.CROP.ENABLED and is_train:
            ret["augmentations"].insert(0, T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE))
        # Rotated boxes are loose: take tight boxes from the rotated masks.
        # (and cropped ones: a piece cut by the crop gets the box of what is left of it)
        cropped = cfg.INPUT.CROP.ENABLED or crop_after_resize_size(cfg) != (0, 0)
        if is_train and cfg.MODEL.MASK_ON and (cfg.SPINE.INPUT.ROTATION > 0 or cropped):
            ret["recompute_boxes"] = True
        ret["strip"] = strip_sampling(cfg, is_train)
        if ret["strip"] is not None:
            ret["recompute_boxes"] = bool(cfg.MODEL.MASK_ON)
        ret["polygons_to_rle"] = bool(is_train and (cropped or ret["strip"] is not None))
        ret["with_film"] = bool(cfg.SPINE.INPUT.STRIP.ENABLED and not is_train)
        return ret

    def _strip_crop(self, dataset_dict: dict, image: np.ndarray) -> Optional[T.Transform]:
        """The crop to a training strip for this film, or None (whole film this time, or no boxes)."""
        anns = dataset_dict.get("annotations") or []
        if self.strip is None or not anns or np.random.rand() >= self.strip.prob:
            return None
        boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in anns]
        extra = tuple(np.random.uniform(0.0, self.strip.jitter, 2)) if self.strip.jitter > 0 else (0.0, 0.0)
        cols = strip_columns(np.asarray(boxes), image.shape[:2], self.strip.margin, extra)
        if cols is None:
            return None
        return T.CropTransform(cols[0], 0, cols[1] - cols[0], image.shape[0])

    def __call__(self, dataset_dict):
        dataset_dict = copy.deepcopy(dataset_dict)  # modified below
        grey = read_image(dataset_dict["file_name"])
        image = grey_to_model_format(grey, self.image_format)
        utils.check_image_size(dataset_dict, image)

        crop = self._strip_crop(dataset_dict, image) if self.is_train else None
        if crop is not None:
            aug_input = T.AugInput(crop.apply_image(image))
            transforms = T.TransformList([crop]) + self.strip.augmentations(aug_input)
        else:
            aug_input = T.AugInput(image)
            transforms = self.augmentations(aug_input)
        if self.with_film:
            dataset_dict["film"] = torch.as_tensor(np.ascontiguousarray(grey))
        image = aug_input.image
        image_shape = image.shape[:2]
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))

        if not self.is_train:
            dataset_dict.pop("annotations", None)
            return dataset_dict
        if "annotations" in dataset_dict:
            if self.polygons_to_rle:
                _polygons_to_rle(dataset_dict)
            self._transform_annotations(dataset_dict, transforms, image_shape)
        return dataset_dict

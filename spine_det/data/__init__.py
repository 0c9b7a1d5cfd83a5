"""Dataset layer: read the spine X-ray layout, split patients, convert masks to COCO, register with Detectron2.

Importing this package loads numpy, OpenCV and pycocotools, not Detectron2: ``register`` (Detectron2's
catalogs) is loaded only when one of its names is first used.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

from spine_det.data.coco import coco_json_name, convert_dataset
from spine_det.data.io import IMAGE_SUFFIXES, DataError, image_size, read_image, read_mask
from spine_det.data.layout import Manifest, ViewSample, scan_dataset, split_patients
from spine_det.data.prepare import PreparedData, default_cache_dir, prepare_dataset
from spine_det.data.rle import instances_to_mask, mask_to_instances

_LAZY = {
    "register_spine_datasets": "spine_det.data.register",
    "load_spine_json": "spine_det.data.register",
}

__all__ = [
    "IMAGE_SUFFIXES",
    "DataError",
    "image_size",
    "read_image",
    "read_mask",
    "Manifest",
    "ViewSample",
    "scan_dataset",
    "split_patients",
    "PreparedData",
    "default_cache_dir",
    "prepare_dataset",
    "mask_to_instances",
    "instances_to_mask",
    "convert_dataset",
    "coco_json_name",
    "register_spine_datasets",
    "load_spine_json",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spine_det.data' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value

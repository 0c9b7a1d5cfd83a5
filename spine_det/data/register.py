"""Register the converted COCO files with Detectron2's DatasetCatalog / MetadataCatalog.

We load our own JSON rather than going through ``load_coco_json``: that one
drops polygons with fewer than 3 points and knows nothing of our extra fields
(``key``, ``patient_id``, ``label``, ``mask_files``) that the evaluator needs.
"""
from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Union

import spine_det.compat  # noqa: F401  (shims before detectron2)
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from spine_det.data.io import DataError
from spine_det.tasks import SPLITS, TASK_NAMES, VIEWS

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
EVALUATOR_TYPE = "spine_semantic"
_NAME_RE = re.compile(r"^spine_(?P<name>.+)_(?P<split>" + "|".join(SPLITS) + r")\.json$")


def dataset_name(name: str, split: str) -> str:
    """Detectron2 dataset name of a task or a view: ``spine_<task|view>_<split>``."""
    return f"spine_{name}_{split}"


def _read_json(json_file: PathLike) -> dict:
    try:
        with open(json_file, "r", encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise DataError(json_file, f"cannot read COCO JSON ({type(exc).__name__}: {exc})") from None


def load_spine_json(json_file: PathLike, coco: Optional[dict] = None) -> List[dict]:
    """Detectron2 dataset dicts from one of our COCO files (exact: polygons and RLE kept as written).

    ``image_id`` is the sample key (``<patient>/<view>``); ``category_id`` is
    0-based in the order of the file's categories (= its ``tasks``).
    """
    coco = coco if coco is not None else _read_json(json_file)
    cat_index = {c["id"]: i for i, c in enumerate(coco["categories"])}
    by_image: Dict[int, List[dict]] = {img["id"]: [] for img in coco["images"]}
    for a in coco["annotations"]:
        by_image[a["image_id"]].append(
            {
                "bbox": list(a["bbox"]),
                "bbox_mode": BoxMode.XYWH_ABS,
                "segmentation": a["segmentation"],
                "category_id": cat_index[a["category_id"]],
                "iscrowd": int(a.get("iscrowd", 0)),
                "area": a.get("area"),
            }
        )
    dicts = []
    for img in coco["images"]:
        dicts.append(
            {
                "file_name": img["file_name"],
                "image_id": img.get("key", img["id"]),
                "height": img["height"],
                "width": img["width"],
                "annotations": by_image[img["id"]],
                "patient_id": img.get("patient_id"),
                "label": img.get("label"),
                "view": img.get("view"),
                "split": img.get("split"),
                "mask_files": dict(img.get("mask_files", {})),
            }
        )
    return dicts


def _has_rle(coco: dict) -> bool:
    return any(isinstance(a["segmentation"], dict) for a in coco["annotations"])


def register_spine_datasets(coco_dir: PathLike, manifest=None) -> List[str]:
    """Register every ``spine_<task|view>_<split>.json`` under ``coco_dir``; returns the names.

    Idempotent: a name already registered from the same file is left alone;
    one registered from another file is replaced.
    """
    folder = Path(coco_dir).expanduser().resolve()
    if not folder.is_dir():
        raise DataError(folder, "COCO folder not found (run spine-det convert-to-coco first)")
    names: List[str] = []
    for json_file in sorted(folder.glob("spine_*.json")):
        m = _NAME_RE.match(json_file.name)
        if not m or m.group("name") not in (*TASK_NAMES, *VIEWS):
            continue
        name = dataset_name(m.group("name"), m.group("split"))
        json_path = str(json_file)
        if name in DatasetCatalog.list():
            if MetadataCatalog.get(name).get("json_file") == json_path:
                names.append(name)
                continue
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        coco = _read_json(json_file)
        info = coco.get("info", {})
        tasks = info.get("tasks") or [c.get("task") for c in coco["categories"]]
        DatasetCatalog.register(name, lambda path=json_path: load_spine_json(path))
        meta = dict(
            thing_classes=[c["name"] for c in coco["categories"]],
            tasks=list(tasks),
            view=info.get("view"),
            split=m.group("split"),
            json_file=json_path,
            evaluator_type=EVALUATOR_TYPE,
            mask_format="bitmask" if _has_rle(coco) else "polygon",
        )
        if manifest is not None:
            meta.update(data_root=manifest.root, split_seed=manifest.seed)
        MetadataCatalog.get(name).set(**meta)
        names.append(name)
    if not names:
        raise DataError(folder, "no spine_<task|view>_<split>.json files here (run spine-det convert-to-coco first)")
    logger.info("registered %d datasets from %s", len(names), folder)
    return names

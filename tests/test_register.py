"""Detectron2 registration: every JSON registered, twice is harmless, dataset dicts load and decode exactly."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from spine_det.data.rle import instances_to_mask
from spine_det.data.io import DataError, read_mask
from spine_det.data.prepare import prepare_dataset
from spine_det.tasks import SPLITS, TASK_NAMES, VIEWS, tasks_of_view

try:
    from tests.test_layout import make_layout
except ImportError:
    from test_layout import make_layout

pytestmark = pytest.mark.skipif(importlib.util.find_spec("detectron2") is None, reason="detectron2 not installed")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reg")
    root = tmp / "spine (reg)"
    make_layout(root, 3, 3, size=(36, 28), seed=11)
    return prepare_dataset(root, cache_dir=tmp / "cache", workers=1)


def test_register_twice_and_load(prepared) -> None:
    import spine_det.compat  # noqa: F401
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.structures import BoxMode

    from spine_det.data.register import register_spine_datasets

    names = register_spine_datasets(prepared.coco_dir, prepared.manifest)
    expected = {f"spine_{n}_{s}" for n in (*TASK_NAMES, *VIEWS) for s in SPLITS}
    assert set(names) == expected and expected <= set(DatasetCatalog.list())
    assert register_spine_datasets(prepared.coco_dir, prepared.manifest) == names  # harmless

    meta = MetadataCatalog.get("spine_lat_train")
    assert meta.thing_classes == [t.class_name for t in tasks_of_view("lat")]
    assert meta.tasks == [t.name for t in tasks_of_view("lat")] and meta.view == "lat"
    assert meta.evaluator_type == "spine_semantic" and meta.mask_format in ("polygon", "bitmask")
    assert Path(meta.json_file).parent == prepared.coco_dir and meta.data_root == prepared.manifest.root

    dicts = DatasetCatalog.get("spine_lat_train")
    train = prepared.manifest.select(split="train", view="lat")
    assert sorted(d["image_id"] for d in dicts) == sorted(s.key for s in train)
    any_rle = False
    for d in dicts:
        assert {"file_name", "height", "width", "annotations", "patient_id", "label", "mask_files"} <= set(d)
        assert Path(d["file_name"]).is_file()
        for cat, task in enumerate(meta.tasks):
            anns = [a for a in d["annotations"] if a["category_id"] == cat]
            assert all(a["bbox_mode"] == BoxMode.XYWH_ABS for a in anns)
            any_rle |= any(isinstance(a["segmentation"], dict) for a in anns)
            got = instances_to_mask(anns, d["height"], d["width"])
            assert np.array_equal(got, read_mask(d["mask_files"][task]))
    assert meta.mask_format == ("bitmask" if any_rle else "polygon")

    single = MetadataCatalog.get("spine_ap_pedicle_val")
    assert single.thing_classes == ["Pedicle"] and single.tasks == ["ap_pedicle"]


def test_dicts_feed_detectron2_annotations(prepared) -> None:
    import spine_det.compat  # noqa: F401
    from detectron2.data import DatasetCatalog, detection_utils

    from spine_det.data.register import register_spine_datasets

    register_spine_datasets(prepared.coco_dir)
    d = next(x for x in DatasetCatalog.get("spine_ap_train") if x["annotations"])
    inst = detection_utils.annotations_to_instances(d["annotations"], (d["height"], d["width"]), mask_format="bitmask")
    assert len(inst) == len(d["annotations"])
    union = inst.gt_masks.tensor.numpy().any(axis=0)
    truth = np.zeros_like(union)
    for t in tasks_of_view("ap"):
        truth |= read_mask(d["mask_files"][t.name])
    assert np.array_equal(union, truth)


def test_register_missing_folder(tmp_path: Path) -> None:
    from spine_det.data.register import register_spine_datasets

    with pytest.raises(DataError, match="run spine-det convert-to-coco"):
        register_spine_datasets(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no spine_"):
        register_spine_datasets(tmp_path / "empty")

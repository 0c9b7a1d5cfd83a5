"""The Mask R-CNN training mapper: SPINE.INPUT.CROP_AFTER_RESIZE keeps the resized scale and pays for part of it."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import spine_det.compat  # noqa: F401  (shims before detectron2)
from detectron2.config import get_cfg

from spine_det.config.maskrcnn import add_spine_config
from spine_det.data.instances import mask_to_instances_as
from spine_det.data.mapper import SpineDatasetMapper, crop_after_resize_size


def _line_record(tmp_path, h=400, w=200):
    """A grey image with a bright 2-px vertical line and its per-level instances (COCO RLE)."""
    img = np.full((h, w), 40, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[20 : h - 20, 90:92] = 255
    img[mask > 0] = 220
    f = tmp_path / "lat.png"
    Image.fromarray(img).save(f)
    anns = mask_to_instances_as(mask, "per_level:8")
    for a in anns:
        a.update(category_id=0, bbox_mode=1, iscrowd=0)  # BoxMode.XYWH_ABS
    return {"file_name": str(f), "height": h, "width": w, "image_id": 0, "annotations": anns}, mask


def _cfg(crop):
    cfg = get_cfg()
    add_spine_config(cfg)
    cfg.MODEL.MASK_ON = True
    cfg.INPUT.MASK_FORMAT = "bitmask"
    cfg.INPUT.MIN_SIZE_TRAIN = (400,)  # short side 200 -> 400: 2x
    cfg.INPUT.MAX_SIZE_TRAIN = 2000
    cfg.INPUT.RANDOM_FLIP = "none"
    cfg.SPINE.INPUT.CROP_AFTER_RESIZE = crop
    return cfg


def test_crop_after_resize_keeps_the_scale_and_fits_boxes_to_what_is_left(tmp_path):
    record, _ = _line_record(tmp_path)
    whole = SpineDatasetMapper(_cfg((0, 0)), True)(dict(record))
    assert tuple(whole["image"].shape[1:]) == (800, 400)  # resized, not cropped
    assert len(whole["instances"]) == 8
    seen = set()
    for seed in range(6):
        np.random.seed(seed)
        out = SpineDatasetMapper(_cfg((300, 250)), True)(dict(record))
        assert tuple(out["image"].shape[1:]) == (300, 250)  # a crop of the 2x image, not rescaled
        inst = out["instances"]
        line_px = int((out["image"][0] > 130).sum())  # the line at 2x: 4 px wide
        masks = inst.gt_masks.tensor.numpy()
        assert masks.sum() == line_px and line_px % 4 == 0  # every line pixel in the crop, and only those
        for m, box in zip(masks, inst.gt_boxes.tensor.numpy()):
            ys, xs = np.nonzero(m)
            assert ys.size > 0  # pieces the crop cut away are dropped, not kept empty
            assert np.allclose(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])  # tight around what is left
        seen.add(len(inst))
    assert max(seen) < 8  # a 300-px window of an 800-px line never holds every piece


@pytest.mark.parametrize("bad", [(0, 300), (300,), (-1, 5)])
def test_crop_after_resize_rejects_half_set_sizes(bad):
    cfg = _cfg((0, 0))
    cfg.SPINE.INPUT.CROP_AFTER_RESIZE = bad
    with pytest.raises(ValueError, match="CROP_AFTER_RESIZE"):
        crop_after_resize_size(cfg)

"""The Mask R-CNN training mapper: SPINE.INPUT.CROP_AFTER_RESIZE keeps the resized scale and pays for part of it;
the imaging chain's domain randomisation changes the pixels and nothing else."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import spine_det.compat  # noqa: F401  (shims before detectron2)
from detectron2.config import get_cfg

from spine_det.config.maskrcnn import add_spine_config
from spine_det.data.instances import mask_to_instances_as
from spine_det.data.mapper import (
    RandomImagingChain,
    SpineDatasetMapper,
    build_spine_augmentation,
    crop_after_resize_size,
    imaging_chain_augmentation,
)


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


def _chain_cfg(dr_prob=1.0, blur=0.0, noise=0.0, unsharp=0.0, gamma=(1.0, 1.0)):
    cfg = _cfg((0, 0))
    sp = cfg.SPINE.INPUT
    sp.DR_PROB, sp.BLUR, sp.NOISE, sp.UNSHARP, sp.GAMMA = dr_prob, blur, noise, unsharp, gamma
    return cfg


def _chain(cfg, image):
    augs = imaging_chain_augmentation(cfg)
    assert len(augs) == 1
    return augs[0].get_transform(image).apply_image(image.copy())


def _grey3(grey):
    return np.repeat(grey[:, :, None], 3, axis=2)


def test_imaging_chain_is_off_by_default_and_in_the_training_mapper_when_on():
    cfg = _cfg((0, 0))
    assert imaging_chain_augmentation(cfg) == []
    assert not any(isinstance(a, RandomImagingChain) for a in build_spine_augmentation(cfg, True))
    cfg = _chain_cfg(blur=1.0)
    assert any(isinstance(a, RandomImagingChain) for a in build_spine_augmentation(cfg, True))
    assert not any(isinstance(a, RandomImagingChain) for a in build_spine_augmentation(cfg, False))  # training only


def test_imaging_chain_blurs_adds_noise_and_applies_gamma_on_every_channel_alike():
    edges = np.where((np.arange(64)[None, :] // 4) % 2 == 0, 60, 200).astype(np.uint8).repeat(64, axis=0)
    np.random.seed(0)
    blurred = _chain(_chain_cfg(blur=2.0), _grey3(edges))
    assert (blurred[..., 0] == blurred[..., 1]).all() and (blurred[..., 0] == blurred[..., 2]).all()
    def hf(g: np.ndarray) -> float:
        return np.abs(np.diff(g.astype(np.float32), axis=1)).mean()

    assert hf(blurred[..., 0]) < 0.8 * hf(edges)

    flat = np.full((64, 64), 128, np.uint8)
    np.random.seed(1)
    noisy = np.stack([_chain(_chain_cfg(noise=0.05), _grey3(flat))[..., 0] for _ in range(4)])
    assert noisy.std() > 1.0 and abs(float(noisy.mean()) - 128) < 3  # zero-mean noise

    np.random.seed(2)
    dark = _chain(_chain_cfg(dr_prob=0.0, gamma=(2.0, 2.0)), _grey3(flat))
    assert int(dark[0, 0, 0]) == int(round(255 * (128 / 255) ** 2.0))  # gamma 2 on mid grey: 64

    padded = flat.copy()
    padded[:, :10] = 0  # black border (rotation padding, collimation): stays black
    np.random.seed(3)
    out = _chain(_chain_cfg(blur=1.5, noise=0.05, unsharp=0.6), _grey3(padded))
    assert (out[:, :10] == 0).all()


def test_imaging_chain_moves_no_annotation(tmp_path):
    record, _ = _line_record(tmp_path)
    np.random.seed(0)
    plain = SpineDatasetMapper(_cfg((0, 0)), True)(dict(record))
    np.random.seed(0)
    chained = SpineDatasetMapper(_chain_cfg(blur=1.5, noise=0.05, unsharp=0.6, gamma=(0.7, 1.4)), True)(dict(record))
    assert not np.array_equal(plain["image"].numpy(), chained["image"].numpy())
    assert np.array_equal(plain["instances"].gt_masks.tensor.numpy(), chained["instances"].gt_masks.tensor.numpy())
    assert np.allclose(plain["instances"].gt_boxes.tensor.numpy(), chained["instances"].gt_boxes.tensor.numpy())


@pytest.mark.parametrize("key, value", [("DR_PROB", 1.5), ("NOISE", -0.1), ("GAMMA", (1.2, 0.8)), ("GAMMA", (0.0, 1.0))])
def test_imaging_chain_rejects_bad_values(key, value):
    cfg = _chain_cfg(blur=1.0)
    setattr(cfg.SPINE.INPUT, key, value)
    with pytest.raises(ValueError, match=key):
        imaging_chain_augmentation(cfg)

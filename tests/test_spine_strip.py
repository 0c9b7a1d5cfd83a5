"""The spine strip (SPINE.INPUT.STRIP): columns from boxes, the crop + long-side resize and its exact inverse,
SpineStripRCNN's two passes pasting back into the film pixel for pixel, and the training mapper's strips."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import spine_det.compat  # noqa: F401  (shims before detectron2)
from detectron2.config import get_cfg
from detectron2.layers.mask_ops import paste_masks_in_image
from detectron2.modeling import GeneralizedRCNN, build_model
from detectron2.structures import Boxes, Instances

from spine_det.config import get_spine_cfg
from spine_det.config.maskrcnn import add_spine_config
from spine_det.data.instances import mask_to_instances_as
from spine_det.data.mapper import SpineDatasetMapper
from spine_det.data.spine_strip import ResizeLongSide, long_side_scale, strip_boxes_to_film, strip_columns
from spine_det.modeling.strip_rcnn import SpineStripRCNN

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_strip_columns_span_the_boxes_plus_margin_and_clip_to_the_film():
    boxes = np.array([[100, 10, 150, 40], [180, 60, 230, 90]], float)
    assert strip_columns(boxes, (1000, 400), margin=0.02) == (80, 250)  # 0.02 x 1000 px each side
    assert strip_columns(boxes, (1000, 400), margin=0.02, extra=(0.01, 0.0)) == (70, 250)
    assert strip_columns(boxes, (1000, 240), margin=0.1) == (0, 240)  # clipped
    assert strip_columns(np.zeros((0, 4)), (1000, 400), margin=0.02) is None


def test_long_side_resize_and_its_inverse_map_boxes_back_exactly():
    film = np.zeros((2000, 700), np.uint8)
    x0, x1 = 150, 530
    strip = film[:, x0:x1]
    tf = ResizeLongSide([1120], is_train=False).get_transform(strip)
    out = tf.apply_image(strip)
    assert max(out.shape) == 1120 and abs(out.shape[1] / out.shape[0] - strip.shape[1] / strip.shape[0]) < 2e-3
    assert long_side_scale(strip.shape, 1120) == pytest.approx(0.56)
    box_film = np.array([[200.0, 300.0, 320.0, 380.0]])
    box_strip = tf.apply_box(box_film - [x0, 0, x0, 0])
    scale = (out.shape[1] / strip.shape[1], out.shape[0] / strip.shape[0])
    np.testing.assert_allclose(strip_boxes_to_film(box_strip, x0, scale), box_film, atol=1e-9)


def _strip_cfg():
    cfg = get_spine_cfg(CONFIGS / "ap_vertebra.yaml", profile="cpu",
                        opts=["SPINE.INPUT.STRIP.ENABLED", "True", "SPINE.INPUT.STRIP.LONG_SIDE_TEST", "600",
                              "SPINE.INPUT.STRIP.MARGIN", "0.01"])
    return cfg


def test_enabled_strip_selects_the_strip_architecture_with_the_same_weights():
    cfg = _strip_cfg()
    assert cfg.MODEL.META_ARCHITECTURE == "SpineStripRCNN"
    model = build_model(cfg)
    assert isinstance(model, SpineStripRCNN)
    plain = get_spine_cfg(CONFIGS / "ap_vertebra.yaml", profile="cpu")
    assert plain.MODEL.META_ARCHITECTURE == "GeneralizedRCNN"
    assert set(model.state_dict()) == set(build_model(plain).state_dict())  # any Mask R-CNN checkpoint loads


def test_two_passes_paste_the_strip_detection_back_into_the_film_pixel_for_pixel(monkeypatch):
    """Pass 1 (stubbed) sees a vertebra in the whole-film input; pass 2 (stubbed) answers in the strip's
    resized frame with a full M x M mask. Pasted at the film's size it must be that rectangle, exactly."""
    cfg = _strip_cfg()
    model = build_model(cfg).eval()
    film_h, film_w = 1200, 500
    rect = (170, 300, 290, 360)  # x0, y0, x1, y1 in film pixels
    film = np.full((film_h, film_w), 30, np.uint8)
    film[rect[1]:rect[3], rect[0]:rect[2]] = 200
    in_h, in_w = 600, 250  # the whole-film network input (scale 0.5)
    calls = []

    def fake_inference(self, batched_inputs, detected_instances=None, do_postprocess=True):
        image = batched_inputs[0]["image"]
        h, w = image.shape[-2:]
        calls.append((h, w))
        inst = Instances((h, w))
        if len(calls) == 1:  # pass 1: the whole film at 0.5
            inst.pred_boxes = Boxes(torch.tensor([[v * 0.5 for v in rect]], dtype=torch.float32))
        else:  # pass 2: the strip, columns x0..x1, resized to long side 600
            x0 = rect[0] - 12  # margin 0.01 x 1200
            sx, sy = w / (rect[2] + 12 - x0), h / film_h
            inst.pred_boxes = Boxes(torch.tensor([[(rect[0] - x0) * sx, rect[1] * sy, (rect[2] - x0) * sx, rect[3] * sy]]))
        inst.scores = torch.tensor([0.9])
        inst.pred_classes = torch.tensor([0])
        inst.pred_masks = torch.ones(1, 1, 28, 28)
        return [inst]

    monkeypatch.setattr(GeneralizedRCNN, "inference", fake_inference)
    x = {"image": torch.zeros(3, in_h, in_w, dtype=torch.uint8), "height": film_h, "width": film_w,
         "film": torch.as_tensor(film)}
    with torch.no_grad():
        out = model.inference([x])[0]["instances"]
    assert calls[1] == (600, round(144 * 0.5))  # strip 132 + 2 x 12 = 144 columns, long side 1200 -> 600
    assert out.image_size == (film_h, film_w)
    np.testing.assert_allclose(out.pred_boxes.tensor.numpy()[0], rect, atol=1e-4)
    pasted = out.pred_masks[0].numpy()
    # what Detectron2 pastes for that detection made on the whole film (its bilinear paste drops the
    # box's four corner pixels), and the rectangle itself everywhere else
    direct = paste_masks_in_image(torch.ones(1, 28, 28), Boxes(torch.tensor([rect], dtype=torch.float32)),
                                  (film_h, film_w))[0].numpy()
    assert (pasted == direct).all()
    expected = np.zeros((film_h, film_w), bool)
    expected[rect[1]:rect[3], rect[0]:rect[2]] = True
    assert int((pasted != expected).sum()) == 4


def _record(tmp_path, h=600, w=300):
    img = np.full((h, w), 40, np.uint8)
    mask = np.zeros((h, w), np.uint8)
    for k, y in enumerate(range(60, 540, 60)):  # 8 "vertebrae" drifting right (a scoliotic column)
        mask[y : y + 40, 100 + 6 * k : 150 + 6 * k] = 255
    img[mask > 0] = 210
    f = tmp_path / "ap.png"
    Image.fromarray(img).save(f)
    anns = mask_to_instances_as(mask, "components")
    for a in anns:
        a.update(category_id=0, bbox_mode=1, iscrowd=0)  # BoxMode.XYWH_ABS
    return {"file_name": str(f), "height": h, "width": w, "image_id": 0, "annotations": anns}, mask


def _mapper_cfg(prob):
    cfg = get_cfg()
    add_spine_config(cfg)
    cfg.MODEL.MASK_ON = True
    cfg.INPUT.MASK_FORMAT = "bitmask"
    cfg.INPUT.MIN_SIZE_TRAIN = (150,)
    cfg.INPUT.MAX_SIZE_TRAIN = 1000
    cfg.INPUT.RANDOM_FLIP = "none"
    cfg.SPINE.INPUT.STRIP.ENABLED = True
    cfg.SPINE.INPUT.STRIP.TRAIN_PROB = prob
    cfg.SPINE.INPUT.STRIP.MARGIN = 0.02
    cfg.SPINE.INPUT.STRIP.JITTER = 0.0
    cfg.SPINE.INPUT.STRIP.LONG_SIDE_TRAIN = (600,)
    return cfg


def test_training_strips_keep_every_vertebra_at_a_higher_scale(tmp_path):
    record, mask = _record(tmp_path)
    strip = SpineDatasetMapper(_mapper_cfg(1.0), True)(dict(record))
    cols = strip_columns(np.array([[100, 0, 192, 0]]), (600, 300), 0.02)  # ground truth x 100..192
    assert tuple(strip["image"].shape[1:]) == (600, cols[1] - cols[0])  # every row, scale 1 (long side 600)
    inst = strip["instances"]
    assert len(inst) == 8
    assert int(inst.gt_masks.tensor.sum()) == int((mask > 0).sum())  # nothing cut, nothing resampled away
    whole = SpineDatasetMapper(_mapper_cfg(0.0), True)(dict(record))
    assert tuple(whole["image"].shape[1:]) == (300, 150)  # the whole film at short side 150 (scale 0.5)
    assert "film" not in whole and "film" not in strip


def test_inference_inputs_carry_the_film_only_with_the_strip(tmp_path):
    record, _ = _record(tmp_path)
    cfg = _mapper_cfg(0.5)
    cfg.INPUT.MIN_SIZE_TEST = 150
    out = SpineDatasetMapper(cfg, False)(dict(record))
    assert tuple(out["film"].shape) == (600, 300) and out["film"].dtype == torch.uint8
    cfg.SPINE.INPUT.STRIP.ENABLED = False
    assert "film" not in SpineDatasetMapper(cfg, False)(dict(record))


def test_bad_strip_settings_are_refused(tmp_path):
    cfg = _mapper_cfg(1.5)
    with pytest.raises(ValueError, match="TRAIN_PROB"):
        SpineDatasetMapper(cfg, True)
    with pytest.raises(ValueError, match="long sides"):
        ResizeLongSide([0])

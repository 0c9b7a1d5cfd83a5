"""DiceMaskRCNNHead: Detectron2's mask head plus a soft Dice term; its loss cross-checked in numpy."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import spine_det.compat  # noqa: F401
from spine_det.config import get_spine_cfg

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _instances(boxes, masks, classes, image_size=(64, 64)):
    from detectron2.structures import BitMasks, Boxes, Instances

    inst = Instances(image_size)
    inst.proposal_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    inst.gt_masks = BitMasks(torch.from_numpy(np.stack(masks)))
    inst.gt_classes = torch.tensor(classes)
    return inst


def _line_masks():
    """Two instances on a 64 x 64 image: a 2-px vertical line and a filled square, boxed exactly."""
    line = np.zeros((64, 64), bool)
    line[8:40, 20:22] = True
    square = np.zeros((64, 64), bool)
    square[44:60, 30:46] = True
    return [[16, 8, 26, 40], [30, 44, 46, 60]], [line, square]


def _numpy_dice_loss(logits: np.ndarray, target: np.ndarray, smooth: float = 1.0) -> float:
    """Independent: 1 - mean over instances of (2 sum(pg) + s) / (sum p + sum g + s)."""
    p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    d = [(2 * (pi * gi).sum() + smooth) / (pi.sum() + gi.sum() + smooth) for pi, gi in zip(p, target)]
    return 1.0 - float(np.mean(d))


def test_mask_dice_loss_matches_numpy_and_its_extremes():
    from spine_det.modeling.mask_head import mask_dice_loss, mask_targets

    boxes, masks = _line_masks()
    inst = _instances(boxes, masks, [1, 0])
    logits = torch.randn(2, 2, 28, 28, generator=torch.Generator().manual_seed(0))
    sel, target = mask_targets(logits, [inst])
    # each proposal's own ground-truth class is the channel scored (class 1 for the line, 0 for the square)
    assert torch.equal(sel[0], logits[0, 1]) and torch.equal(sel[1], logits[1, 0])
    assert target[0].sum() > 0 and target[0].mean() < 0.25  # the thin line is a small part of its grid
    ref = _numpy_dice_loss(sel.numpy(), target.numpy())
    assert float(mask_dice_loss(logits, [inst])) == pytest.approx(ref, rel=1e-5)

    perfect = logits.clone()
    perfect[0, 1] = (target[0] * 2 - 1) * 30
    perfect[1, 0] = (target[1] * 2 - 1) * 30
    wrong = -perfect
    assert float(mask_dice_loss(perfect, [inst])) < 0.02
    assert float(mask_dice_loss(wrong, [inst])) > 0.9
    from detectron2.structures import BitMasks, Boxes, Instances

    empty = Instances((64, 64), proposal_boxes=Boxes(torch.zeros(0, 4)), gt_masks=BitMasks(torch.zeros(0, 64, 64, dtype=torch.bool)),
                      gt_classes=torch.zeros(0, dtype=torch.int64))
    assert float(mask_dice_loss(torch.randn(0, 2, 28, 28), [empty])) == 0.0


def EventStorage():
    from detectron2.utils.events import EventStorage as _Storage

    return _Storage(0)


def _head(name: str, dice_weight: float = 1.0):
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.roi_heads.mask_head import build_mask_head

    cfg = get_spine_cfg(CONFIGS / "lat_all.yaml", profile="cpu",
                        opts=["MODEL.ROI_MASK_HEAD.NAME", name, "MODEL.ROI_MASK_HEAD.DICE_WEIGHT", str(dice_weight)])
    torch.manual_seed(0)
    return build_mask_head(cfg, ShapeSpec(channels=cfg.MODEL.FPN.OUT_CHANNELS, height=14, width=14)), cfg


def test_head_adds_the_dice_term_to_detectron2s_loss_and_keeps_its_inference():
    from detectron2.modeling.roi_heads.mask_head import mask_rcnn_loss

    from spine_det.modeling.mask_head import DiceMaskRCNNHead, mask_dice_loss

    head, cfg = _head("DiceMaskRCNNHead", dice_weight=2.0)
    plain, _ = _head("MaskRCNNConvUpsampleHead")
    assert isinstance(head, DiceMaskRCNNHead) and head.dice_weight == 2.0
    plain.load_state_dict(head.state_dict())  # same layers, same weights
    boxes, masks = _line_masks()
    x = torch.randn(2, cfg.MODEL.FPN.OUT_CHANNELS, 14, 14, generator=torch.Generator().manual_seed(1))
    classes = [min(1, cfg.MODEL.ROI_HEADS.NUM_CLASSES - 1), 0]

    head.train()
    with EventStorage():  # mask_rcnn_loss logs its accuracy there
        losses = head(x, [_instances(boxes, masks, classes)])
        logits = head.layers(x)
        inst = _instances(boxes, masks, classes)
        assert float(losses["loss_mask"]) == pytest.approx(float(mask_rcnn_loss(logits, [inst])), rel=1e-5)
    assert float(losses["loss_mask_dice"]) == pytest.approx(2.0 * float(mask_dice_loss(logits, [inst])), rel=1e-5)
    (losses["loss_mask"] + losses["loss_mask_dice"]).backward()
    assert head.predictor.weight.grad is not None and head.predictor.weight.grad.abs().sum() > 0

    head.eval()
    plain.eval()
    from detectron2.structures import Boxes, Instances

    def pred():
        i = Instances((64, 64))
        i.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
        i.pred_classes = torch.tensor(classes)
        return [i]

    with torch.no_grad():
        a, b = head(x, pred())[0], plain(x, pred())[0]
    assert torch.equal(a.pred_masks, b.pred_masks)  # inference is Detectron2's


def test_dice_weight_zero_is_detectron2s_head():
    head, cfg = _head("DiceMaskRCNNHead", dice_weight=0.0)
    boxes, masks = _line_masks()
    head.train()
    with EventStorage():
        losses = head(torch.randn(2, cfg.MODEL.FPN.OUT_CHANNELS, 14, 14), [_instances(boxes, masks, [0, 0])])
    assert set(losses) == {"loss_mask"}


@pytest.mark.parametrize("task", ["lat_anterior_line", "lat_posterior_line", "lat_vertebra"])
def test_the_lines_build_the_dice_head_by_default_and_other_tasks_the_stock_one(task):
    """The task configs choose the head (every profile); a thick structure keeps Detectron2's own."""
    from detectron2.modeling import build_model

    cfg = get_spine_cfg(CONFIGS / f"{task}.yaml", profile="cpu", opts=["MODEL.DEVICE", "cpu"])
    head = build_model(cfg).roi_heads.mask_head
    is_line = task.endswith("_line")
    assert type(head).__name__ == ("DiceMaskRCNNHead" if is_line else "MaskRCNNConvUpsampleHead")
    full = get_spine_cfg(CONFIGS / f"{task}.yaml", profile="full")
    assert (full.MODEL.ROI_MASK_HEAD.NAME == "DiceMaskRCNNHead") is is_line

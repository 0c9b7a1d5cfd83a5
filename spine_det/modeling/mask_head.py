"""Mask R-CNN mask heads of spine_det, registered in Detectron2's ``ROI_MASK_HEAD_REGISTRY`` on import.

``DiceMaskRCNNHead`` is Detectron2's ``MaskRCNNConvUpsampleHead`` (same layers, same inference) with a
soft Dice term added to its per-pixel BCE. Why: on a 1.5-px line the boxes are right (the ground truth
inside the predicted boxes scores Dice 0.995) but the mask inside them is blurred. A line covers ~10 %
of its box's mask grid, and BCE averaged over the grid is content with probabilities that peak
below 0.8 along it, so the 0.5 threshold draws the line a pixel too wide in places and leaves gaps
in others. Dice is indifferent to the background's size, which is why LinkNet (trained on negative
Dice, as in the report) draws such lines sharper.

Select it with ``MODEL.ROI_MASK_HEAD.NAME: "DiceMaskRCNNHead"``; ``MODEL.ROI_MASK_HEAD.DICE_WEIGHT``
scales the Dice term (the BCE keeps ``loss_mask``, the Dice term is logged as ``loss_mask_dice``).
"""
from __future__ import annotations

from typing import Dict, List

import torch

import spine_det.compat  # noqa: F401  (shims before detectron2)
from detectron2.config import configurable
from detectron2.layers import cat
from detectron2.modeling.roi_heads.mask_head import ROI_MASK_HEAD_REGISTRY, MaskRCNNConvUpsampleHead, mask_rcnn_loss
from detectron2.structures import Instances

from spine_det.modeling.losses import soft_dice

__all__ = ["DiceMaskRCNNHead", "mask_targets", "mask_dice_loss"]


def mask_targets(pred_mask_logits: torch.Tensor, instances: List[Instances]):
    """(logits of each foreground proposal's ground-truth class (N, M, M), float targets (N, M, M)), or
    None without proposals: the targets Detectron2's ``mask_rcnn_loss`` builds (the ground-truth mask
    cropped to the proposal box and resized to the M x M grid)."""
    side = pred_mask_logits.size(2)
    classes, masks = [], []
    for inst in instances:
        if len(inst) == 0:
            continue
        classes.append(inst.gt_classes.to(dtype=torch.int64))
        masks.append(inst.gt_masks.crop_and_resize(inst.proposal_boxes.tensor, side).to(device=pred_mask_logits.device))
    if not masks:
        return None
    target = cat(masks, dim=0)
    target = (target > 0.5 if target.dtype != torch.bool else target).to(torch.float32)
    if pred_mask_logits.size(1) == 1:  # class-agnostic
        logits = pred_mask_logits[:, 0]
    else:
        logits = pred_mask_logits[torch.arange(pred_mask_logits.size(0)), cat(classes, dim=0)]
    return logits, target


def mask_dice_loss(pred_mask_logits: torch.Tensor, instances: List[Instances], smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice of each proposal's mask against its target, averaged over proposals (0 without any)."""
    pair = mask_targets(pred_mask_logits, instances)
    if pair is None:
        return pred_mask_logits.sum() * 0
    logits, target = pair
    dice = soft_dice(torch.sigmoid(logits.float())[:, None], target[:, None], smooth)  # (N, 1)
    return 1.0 - dice.mean()


@ROI_MASK_HEAD_REGISTRY.register()
class DiceMaskRCNNHead(MaskRCNNConvUpsampleHead):
    """``MaskRCNNConvUpsampleHead`` trained on BCE + ``DICE_WEIGHT`` x (1 - soft Dice); inference unchanged."""

    @configurable
    def __init__(self, input_shape, *, dice_weight: float = 1.0, **kwargs):
        super().__init__(input_shape, **kwargs)
        self.dice_weight = float(dice_weight)

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret["dice_weight"] = cfg.MODEL.ROI_MASK_HEAD.DICE_WEIGHT
        return ret

    def forward(self, x, instances: List[Instances]):
        if not self.training:
            return super().forward(x, instances)
        logits = self.layers(x)
        losses: Dict[str, torch.Tensor] = {"loss_mask": mask_rcnn_loss(logits, instances, self.vis_period) * self.loss_weight}
        if self.dice_weight > 0:
            losses["loss_mask_dice"] = mask_dice_loss(logits, instances) * (self.dice_weight * self.loss_weight)
        return losses

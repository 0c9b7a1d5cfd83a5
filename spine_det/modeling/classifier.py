"""Normal/Damaged classifier: the network (ResNet50 as in the report, or a slim ResNet for CPU).

The report trained one ResNet50 on AP images and one on LAT images, then kept whichever of
"AP only", "LAT only" and "average of the two probabilities" was most accurate on a balanced
validation set; that rule and every figure reported live in :mod:`spine_det.evaluation.classification`.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn
from torchvision.models.resnet import BasicBlock

from spine_det.modeling.imagenet import adapt_first_conv, imagenet_resnet

TORCHVISION_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
SLIM_BACKBONES = {"resnet10s": (16, 32, 64, 128), "resnet10m": (24, 48, 96, 192)}
BACKBONES = TORCHVISION_BACKBONES + tuple(SLIM_BACKBONES)


class SlimResNet(nn.Module):
    """A 10-layer ResNet (one torchvision BasicBlock per stage) with narrow stages, for CPU training.

    ResNet18 from random init needs more optimiser steps than two shared CPU
    cores give in minutes; this net costs ~1/30 of its FLOPs, so the same
    minutes buy ~10x more steps. Random init only (no published weights).
    Same interface as a torchvision ResNet: ``conv1`` and ``fc``.
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128), in_channels: int = 1, pool: str = "avg") -> None:
        super().__init__()
        w0 = int(widths[0])
        self.conv1 = nn.Conv2d(in_channels, w0, 5, stride=2, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(w0)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)  # /4 before the first block, like a ResNet
        layers, inp = [], w0
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or inp != w:
                down = nn.Sequential(nn.Conv2d(inp, w, 1, stride=stride, bias=False), nn.BatchNorm2d(w))
            layers.append(BasicBlock(inp, w, stride, down))
            inp = w
        self.layers = nn.Sequential(*layers)
        self.pool = global_pool(pool)
        self.fc: nn.Module = nn.Linear(inp, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(self.layers(x)), 1))


POOLS = ("avg", "max")


def global_pool(kind: str) -> nn.Module:
    """Global pooling before the logit: "avg" (torchvision's) or "max".

    A fracture is one vertebra among eight: averaging dilutes its evidence
    eight-fold, the maximum keeps it (multiple-instance view: the patient is
    Damaged if any vertebra is).
    """
    if kind == "avg":
        return nn.AdaptiveAvgPool2d(1)
    if kind == "max":
        return nn.AdaptiveMaxPool2d(1)
    raise ValueError(f"unknown MODEL.POOL {kind!r}; expected one of {POOLS}")


def build_classifier(cfg: Any) -> nn.Module:
    """ResNet with grey input and one logit (P(Damaged)).

    torchvision ResNets take ImageNet weights when available; the slim ones
    (``resnet10s``, ``resnet10m``: :class:`SlimResNet`) are always random init.
    """
    name = cfg.MODEL.BACKBONE
    if name not in BACKBONES:
        raise ValueError(f"unknown MODEL.BACKBONE {name!r}; expected one of {BACKBONES}")
    if name in SLIM_BACKBONES:
        model = SlimResNet(SLIM_BACKBONES[name], cfg.MODEL.IN_CHANNELS, cfg.MODEL.POOL)
        model.imagenet_init = False
        model.fc = nn.Sequential(nn.Dropout(cfg.MODEL.DROPOUT), nn.Linear(model.fc.in_features, 1))
        return model
    model, imagenet = imagenet_resnet(name, cfg.MODEL.PRETRAINED)
    adapt_first_conv(model, cfg.MODEL.IN_CHANNELS)
    model.avgpool = global_pool(cfg.MODEL.POOL)  # torchvision's attribute name, whatever the kind
    model.imagenet_init = imagenet  # for labelling outputs
    model.fc = nn.Sequential(nn.Dropout(cfg.MODEL.DROPOUT), nn.Linear(model.fc.in_features, 1))
    return model


@torch.no_grad()
def predict_probs(model: nn.Module, loader: Any, device: torch.device, amp: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """P(Damaged) and the dataset indices, in loader order."""
    model.eval()
    probs, idx = [], []
    for batch in loader:
        with torch.autocast(device_type=device.type, enabled=amp and device.type == "cuda"):
            logits = model(batch["image"].to(device, non_blocking=True))
        probs.append(torch.sigmoid(logits.float().reshape(-1)).cpu().numpy())
        idx.append(batch["index"].numpy())
    if not probs:
        return np.zeros(0), np.zeros(0, dtype=int)
    return np.concatenate(probs), np.concatenate(idx)


def describe_backbone(cfg: Any, pretrained_loaded: Optional[bool] = None) -> str:
    """Label for outputs, e.g. 'resnet10s (random init, 256x96, centerline crop)'."""
    init = "ImageNet init" if pretrained_loaded else "random init"
    crop = "" if cfg.INPUT.CROP == "none" else f", {cfg.INPUT.CROP} crop"
    return f"{cfg.MODEL.BACKBONE} ({init}, {cfg.INPUT.HEIGHT}x{cfg.INPUT.WIDTH}{crop})"

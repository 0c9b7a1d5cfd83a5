"""The vertebra-landmark network: LinkNet's ResNet18 encoder, a small FPN-style decoder to stride 4, and
CenterNet heads (Zhou et al. 2019; for vertebrae Yi et al., ISBI 2020): a vertebra-centre heatmap, the
centre's sub-cell offset and the four corners relative to the centre (channel layout in
:mod:`spine_det.modeling.landmark_targets`). Any input size: padded to a multiple of 32, cropped back.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from spine_det.modeling.landmark_targets import HEATMAP, LEVEL, network_channels
from spine_det.modeling.imagenet import adapt_first_conv, imagenet_resnet
from spine_det.utils.errors import UserError

__all__ = ["LandmarkNet", "build_landmark_net"]

# CenterNet's heatmap bias: sigmoid(-2.19) = 0.1, so the focal loss starts small on a mostly empty map
HEATMAP_PRIOR_BIAS = -2.19
LEVEL_PRIOR_BIAS = 9.0  # the level channel starts at the middle of C7 (0) .. L5 (17)


def _conv(cin: int, cout: int, k: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class LandmarkNet(nn.Module):
    """ResNet18 features at strides 4-32, summed top-down to stride 4; returns (N, 11 or 12, H/4, W/4) raw maps
    (heatmap logit, centre offset, corners - centre, and with ``levels`` the level number)."""

    size_divisibility = 32
    stride = 4

    def __init__(self, in_channels: int = 1, pretrained: bool = False, width: int = 64, head_width: int = 64,
                 levels: bool = False) -> None:
        super().__init__()
        self.levels = bool(levels)
        enc, loaded = imagenet_resnet("resnet18", pretrained)  # LinkNet's encoder
        if pretrained and not loaded:
            raise UserError("MODEL.PRETRAINED: torchvision's ImageNet ResNet18 weights could not be had on this machine "
                            "(no network?); train from random init (MODEL.PRETRAINED False, the default) or from a "
                            "landmark checkpoint (MODEL.INIT_WEIGHTS, e.g. one trained on the phantom)")
        adapt_first_conv(enc, in_channels)
        self.stem = nn.Sequential(enc.conv1, enc.bn1, enc.relu, enc.maxpool)  # /4, 64 ch
        self.encoder1, self.encoder2, self.encoder3, self.encoder4 = enc.layer1, enc.layer2, enc.layer3, enc.layer4
        self.lateral = nn.ModuleList([nn.Conv2d(c, width, 1) for c in (64, 128, 256, 512)])
        self.smooth = _conv(width, width)
        self.head = nn.Sequential(_conv(width, head_width), nn.Conv2d(head_width, network_channels(self.levels), 1))
        with torch.no_grad():
            self.head[-1].bias.zero_()
            self.head[-1].bias[HEATMAP] = HEATMAP_PRIOR_BIAS
            if self.levels:
                self.head[-1].bias[LEVEL] = LEVEL_PRIOR_BIAS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        d = self.size_divisibility
        ph, pw = (-h) % d, (-w) % d
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        e1 = self.encoder1(self.stem(x))
        e2 = self.encoder2(e1)
        e3 = self.encoder3(e2)
        e4 = self.encoder4(e3)
        y = self.lateral[3](e4)
        for lat, e in zip((self.lateral[2], self.lateral[1], self.lateral[0]), (e3, e2, e1)):
            y = F.interpolate(y, size=e.shape[-2:], mode="nearest") + lat(e)
        out = self.head(self.smooth(y))
        s = self.stride
        return out[..., : (h + s - 1) // s, : (w + s - 1) // s]


def build_landmark_net(cfg: Any, levels: Any = None) -> nn.Module:
    """The network of a landmark config (``cfg.MODEL``, ``cfg.LANDMARK``); the level channel when
    ``LANDMARK.LEVEL_WEIGHT`` > 0, unless ``levels`` says otherwise (a checkpoint's own head decides)."""
    if levels is None:
        levels = float(cfg.LANDMARK.LEVEL_WEIGHT) > 0
    return LandmarkNet(in_channels=cfg.MODEL.IN_CHANNELS, pretrained=bool(cfg.MODEL.PRETRAINED),
                       width=int(cfg.LANDMARK.WIDTH), head_width=int(cfg.LANDMARK.WIDTH), levels=bool(levels))

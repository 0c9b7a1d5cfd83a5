"""LinkNet (Chaurasia & Culurciello, 2017) for grey spine X-rays.

The architecture of the paper: a ResNet18 encoder (torchvision), four decoder
blocks (1x1 conv m->m/4, 3x3 full-conv x2 up, 1x1 conv m/4->n, each with BN +
ReLU) whose outputs are *added* to the encoder feature of the same size, and
the final block (3x3 full-conv x2 up 64->32, 3x3 conv 32->32, 2x2 full-conv x2
up 32->classes). One logit channel per task; a multi-label model (several
tasks of one view) has one independent sigmoid channel per class, since the
classes of a view overlap.

Grey input: the ImageNet first convolution is *summed* over its three input
channels into one, which is exactly equivalent to replicating the grey image
to three channels, at a third of the first layer's cost.

Any input size works: the input is padded to a multiple of 32 and the output
cropped back.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from spine_det.modeling.families.linknet import KEY  # its MODEL.NAME is its family's key
from spine_det.modeling.imagenet import adapt_first_conv, imagenet_resnet
from spine_det.modeling.semseg import SEG_MODEL_REGISTRY

__all__ = ["LinkNet", "build_linknet", "register_networks", "resnet18_encoder"]


def _conv_bn_relu(cin: int, cout: int, k: int, transposed: bool = False, stride: int = 1) -> nn.Sequential:
    if transposed:
        conv: nn.Module = nn.ConvTranspose2d(
            cin, cout, k, stride=stride, padding=k // 2, output_padding=stride - 1 if k % 2 else 0, bias=False
        )
    else:
        conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class DecoderBlock(nn.Module):
    """LinkNet decoder block: 1x1 m->m/4, 3x3 full-conv (x``stride``), 1x1 m/4->n."""

    def __init__(self, m: int, n: int, stride: int = 2) -> None:
        super().__init__()
        mid = m // 4
        self.reduce = _conv_bn_relu(m, mid, 1)
        self.up = _conv_bn_relu(mid, mid, 3, transposed=stride > 1, stride=stride)
        self.expand = _conv_bn_relu(mid, n, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.up(self.reduce(x)))


def resnet18_encoder(pretrained: bool = True, in_channels: int = 1) -> nn.Module:
    """torchvision ResNet18 with ImageNet weights when they can be had, grey first conv summed."""
    model, _ = imagenet_resnet("resnet18", pretrained)
    adapt_first_conv(model, in_channels)
    model.fc = nn.Identity()
    return model


class LinkNet(nn.Module):
    """LinkNet with a ResNet18 encoder; returns logits (N, num_classes, H, W) for any H, W."""

    size_divisibility = 32

    def __init__(self, num_classes: int = 1, in_channels: int = 1, pretrained: bool = True) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_channels = in_channels
        enc = resnet18_encoder(pretrained=pretrained, in_channels=in_channels)
        self.stem = nn.Sequential(enc.conv1, enc.bn1, enc.relu, enc.maxpool)  # /4, 64 ch
        self.encoder1, self.encoder2, self.encoder3, self.encoder4 = enc.layer1, enc.layer2, enc.layer3, enc.layer4
        self.decoder4 = DecoderBlock(512, 256)
        self.decoder3 = DecoderBlock(256, 128)
        self.decoder2 = DecoderBlock(128, 64)
        self.decoder1 = DecoderBlock(64, 64, stride=1)  # encoder1 keeps the stem's /4
        self.final_up1 = _conv_bn_relu(64, 32, 3, transposed=True, stride=2)
        self.final_conv = _conv_bn_relu(32, 32, 3)
        self.final_up2 = nn.ConvTranspose2d(32, num_classes, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        d = self.size_divisibility
        ph, pw = (-h) % d, (-w) % d
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        x0 = self.stem(x)
        e1 = self.encoder1(x0)
        e2 = self.encoder2(e1)
        e3 = self.encoder3(e2)
        e4 = self.encoder4(e3)
        d4 = self.decoder4(e4) + e3
        d3 = self.decoder3(d4) + e2
        d2 = self.decoder2(d3) + e1
        d1 = self.decoder1(d2)
        out = self.final_up2(self.final_conv(self.final_up1(d1)))
        return out[..., :h, :w]


def build_linknet(cfg: Any) -> nn.Module:
    """LinkNet from ``cfg.MODEL`` (one output channel per task of ``cfg.SPINE.TASKS``)."""
    return LinkNet(num_classes=len(cfg.SPINE.TASKS), in_channels=cfg.MODEL.IN_CHANNELS, pretrained=cfg.MODEL.PRETRAINED)


def register_networks() -> None:
    """Put ``linknet`` into :data:`~spine_det.modeling.semseg.SEG_MODEL_REGISTRY` (idempotent; the LinkNet
    family's hook, called by :func:`spine_det.modeling.semseg.build_seg_model` for a name it does not know yet)."""
    if KEY not in SEG_MODEL_REGISTRY:
        SEG_MODEL_REGISTRY._do_register(KEY, build_linknet)

"""torchvision's ImageNet ResNets on grey films: their weights when they can be had, the first convolution
taking one channel. Shared by LinkNet's encoder (:mod:`spine_det.modeling.linknet`) and the Normal/Damaged
classifier (:mod:`spine_det.modeling.classifier`).
"""
from __future__ import annotations

import logging
import pickle
from typing import Tuple

import torch
import torchvision
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["GREY_MEAN", "GREY_STD", "WEIGHTS_UNAVAILABLE", "adapt_first_conv", "imagenet_resnet"]

# What fetching torchvision's ImageNet weights raises when they cannot be had: no network, a proxy or timeout
# (URLError and socket errors are OSErrors), a download that fails its hash check (RuntimeError), a cached
# file cut short (RuntimeError, EOFError, UnpicklingError). Training then starts from random init.
WEIGHTS_UNAVAILABLE = (OSError, RuntimeError, EOFError, pickle.UnpicklingError)

# ImageNet mean/std averaged over RGB: the grey input replicated to three channels.
GREY_MEAN = 0.449
GREY_STD = 0.226


def imagenet_resnet(name: str, pretrained: bool) -> Tuple[nn.Module, bool]:
    """torchvision's ResNet ``name`` with its ImageNet weights when ``pretrained`` and they can be had (else
    random init, with a warning), and whether the ImageNet weights were loaded."""
    ctor = getattr(torchvision.models, name)
    if pretrained:
        try:
            return ctor(weights="IMAGENET1K_V1"), True
        except WEIGHTS_UNAVAILABLE as exc:
            logger.warning("ImageNet weights for %s unavailable (%s): random initialisation", name, type(exc).__name__)
    return ctor(weights=None), False


def adapt_first_conv(model: nn.Module, in_channels: int) -> None:
    """Make ``model.conv1`` take ``in_channels`` by summing (1) or keeping (3) the RGB kernels. Summing is
    exactly equivalent to replicating the grey image to three channels, at a third of the first layer's cost."""
    if in_channels == 3:
        return
    if in_channels != 1:
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
    old = model.conv1
    new = nn.Conv2d(1, old.out_channels, old.kernel_size, old.stride, old.padding, bias=old.bias is not None)
    with torch.no_grad():
        new.weight.copy_(old.weight.sum(dim=1, keepdim=True))
    model.conv1 = new

"""Mask R-CNN's ResNet18 backbone initialised from a LinkNet checkpoint's encoder.

Machines that train this package often cannot download ImageNet or COCO weights, and Mask R-CNN
from random init learns slowly on a CPU. A LinkNet trained on the same task — or on the phantom —
has a ResNet18 encoder that already knows spine radiographs: its weights map one to one onto
Detectron2's R18 (``build_resnet_backbone`` with ``DEPTH: 18``), as Detectron2's own
``convert-torchvision-to-d2.py`` maps torchvision's:

========================================  =============================================
LinkNet (torchvision names)                Detectron2
========================================  =============================================
``stem.0`` (conv1), ``stem.1`` (bn1)       ``backbone.bottom_up.stem.conv1`` (+ ``.norm``)
``encoder{k}.{i}.conv{j}`` / ``bn{j}``     ``backbone.bottom_up.res{k+1}.{i}.conv{j}`` (+ ``.norm``)
``encoder{k}.{i}.downsample.{0,1}``        ``backbone.bottom_up.res{k+1}.{i}.shortcut`` (+ ``.norm``)
========================================  =============================================

The encoder's BatchNorm statistics become FrozenBN (``MODEL.RESNETS.NORM: FrozenBN``), its grey
first convolution is spread over the three (identical) input channels, and the pixel statistics
become LinkNet's (:func:`fit_cfg_to_linknet_init` sets all three). The FPN and the heads start
from random init. Use: ``MODEL.WEIGHTS path/to/linknet/model_best.pth``.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from spine_det.modeling.families.linknet import recognizes
from spine_det.modeling.imagenet import GREY_MEAN, GREY_STD
from spine_det.utils.checkpoint_io import CheckpointError, load_plain

logger = logging.getLogger(__name__)

PREFIX = "backbone.bottom_up."
_BN = {"weight": "weight", "bias": "bias", "running_mean": "running_mean", "running_var": "running_var"}


def linknet_pixel_stats():
    """(PIXEL_MEAN, PIXEL_STD) of Detectron2's 0-255 input that reproduce LinkNet's input normalisation."""
    return [255.0 * GREY_MEAN] * 3, [255.0 * GREY_STD] * 3


def linknet_to_detectron2(state: Dict[str, torch.Tensor], prefix: str = PREFIX) -> Dict[str, torch.Tensor]:
    """LinkNet ``state_dict`` -> Detectron2 R18 backbone weights (decoder and BN counters dropped)."""
    out: Dict[str, torch.Tensor] = {}

    def norm(src: str, dst: str) -> None:
        for a, b in _BN.items():
            if f"{src}.{a}" not in state:
                raise KeyError(f"LinkNet checkpoint lacks {src}.{a}: not a ResNet18 encoder")
            out[f"{prefix}{dst}.norm.{b}"] = state[f"{src}.{a}"]

    w = state.get("stem.0.weight")
    if w is None or w.shape[-2:] != (7, 7):
        raise KeyError("LinkNet checkpoint lacks stem.0.weight (a 7x7 first convolution): not a LinkNet encoder")
    out[f"{prefix}stem.conv1.weight"] = (w.repeat(1, 3, 1, 1) / 3.0) if w.shape[1] == 1 else w
    norm("stem.1", "stem.conv1")
    pat = re.compile(r"^encoder(\d)\.(\d+)\.(conv1|conv2|downsample\.0)\.weight$")
    for key, value in state.items():
        m = pat.match(key)
        if not m:
            continue
        stage, block, layer = int(m.group(1)), m.group(2), m.group(3)
        dst = f"res{stage + 1}.{block}." + ("shortcut" if layer == "downsample.0" else layer)
        out[f"{prefix}{dst}.weight"] = value
        bn = f"encoder{stage}.{block}." + ("downsample.1" if layer == "downsample.0" else layer.replace("conv", "bn"))
        norm(bn, dst)
    return out


def is_linknet_checkpoint(path: str) -> bool:
    """True for a ``.pth`` written by the LinkNet trainer (read as plain data, never unpickled)."""
    p = Path(str(path))
    if not str(path) or "://" in str(path) or p.suffix.lower() != ".pth" or not p.is_file():
        return False

    try:
        return recognizes(load_plain(p))
    except (CheckpointError, OSError, RuntimeError, ValueError):
        return False


def fit_cfg_to_linknet_init(cfg: Any) -> bool:
    """When ``MODEL.WEIGHTS`` is a LinkNet checkpoint, make the backbone match it (R18, FrozenBN,
    LinkNet's pixel statistics); returns True if it did. A deeper ResNet is an error."""
    if not is_linknet_checkpoint(cfg.MODEL.WEIGHTS):
        return False
    if cfg.MODEL.RESNETS.DEPTH != 18 or cfg.MODEL.RESNETS.RES2_OUT_CHANNELS != 64:
        raise ValueError(f"MODEL.WEIGHTS {cfg.MODEL.WEIGHTS} is a LinkNet (ResNet18) checkpoint; it initialises "
                         f"MODEL.RESNETS.DEPTH 18 with RES2_OUT_CHANNELS 64 only (got {cfg.MODEL.RESNETS.DEPTH})")
    mean, std = linknet_pixel_stats()
    logger.info("MODEL.WEIGHTS is a LinkNet checkpoint: backbone R18 from its encoder (FrozenBN, pixel mean %.1f / "
                "std %.1f); FPN and heads from random init", mean[0], std[0])
    cfg.MODEL.RESNETS.NORM = "FrozenBN"
    cfg.MODEL.PIXEL_MEAN = mean
    cfg.MODEL.PIXEL_STD = std
    return True


def convert_loaded(loaded: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """Detectron2 checkpoint dict for a loaded LinkNet checkpoint, or None if it is not one."""
    if not recognizes(loaded):
        return None
    return {"model": linknet_to_detectron2(loaded["model"])}


__all__ = ["convert_loaded", "fit_cfg_to_linknet_init", "is_linknet_checkpoint", "linknet_pixel_stats",
           "linknet_to_detectron2"]

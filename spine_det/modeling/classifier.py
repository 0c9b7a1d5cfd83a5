"""Normal/Damaged classifier (ResNet50 as in the report) and its view-combination rule.

The report trained one ResNet50 on AP images and one on LAT images, then kept
whichever of "AP only", "LAT only" and "average of the two probabilities" was
most accurate on a balanced validation set. :func:`select_view_strategy` is
that rule; :func:`binary_classification_metrics` gives every figure we report.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from spine_det.modeling.linknet import adapt_first_conv

logger = logging.getLogger(__name__)

STRATEGIES: Tuple[str, ...] = ("average", "ap", "lat")  # order = tie-break preference
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
        from torchvision.models.resnet import BasicBlock

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
    import torchvision

    name = cfg.MODEL.BACKBONE
    if name not in BACKBONES:
        raise ValueError(f"unknown MODEL.BACKBONE {name!r}; expected one of {BACKBONES}")
    if name in SLIM_BACKBONES:
        model = SlimResNet(SLIM_BACKBONES[name], cfg.MODEL.IN_CHANNELS, cfg.MODEL.POOL)
        model.imagenet_init = False
        model.fc = nn.Sequential(nn.Dropout(cfg.MODEL.DROPOUT), nn.Linear(model.fc.in_features, 1))
        return model
    ctor = getattr(torchvision.models, name)
    model = None
    if cfg.MODEL.PRETRAINED:
        try:
            model = ctor(weights="IMAGENET1K_V1")
        except Exception as exc:  # no network / no cache
            logger.warning("ImageNet weights for %s unavailable (%s): random initialisation", name, type(exc).__name__)
    imagenet = model is not None
    if model is None:
        model = ctor(weights=None)
    adapt_first_conv(model, cfg.MODEL.IN_CHANNELS)
    model.avgpool = global_pool(cfg.MODEL.POOL)  # torchvision's attribute name, whatever the kind
    model.imagenet_init = imagenet  # for labelling outputs
    model.fc = nn.Sequential(nn.Dropout(cfg.MODEL.DROPOUT), nn.Linear(model.fc.in_features, 1))
    return model


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); NaN if one class is absent."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    from scipy.stats import rankdata

    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def binary_classification_metrics(labels: Sequence[int], probs: Sequence[float], threshold: float = 0.5) -> Dict[str, Any]:
    """Accuracy, sensitivity (Damaged recall), specificity (Normal recall), ROC-AUC, confusion matrix.

    ``confusion_matrix`` is [[TN, FP], [FN, TP]] with rows = truth (Normal, Damaged).
    """
    y = np.asarray(labels).astype(int)
    p = np.asarray(probs, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and probabilities {p.shape} differ in shape")
    pred = (p >= threshold).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    n = len(y)
    return {
        "n": n,
        "accuracy": (tp + tn) / n if n else math.nan,
        "sensitivity": tp / (tp + fn) if tp + fn else math.nan,
        "specificity": tn / (tn + fp) if tn + fp else math.nan,
        "roc_auc": roc_auc(y, p),
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "threshold": threshold,
    }


def combine_views(probs_ap: Sequence[float], probs_lat: Sequence[float]) -> Dict[str, np.ndarray]:
    """Per-patient probabilities of each strategy; a missing view (NaN) falls back to the other."""
    ap = np.asarray(probs_ap, dtype=np.float64)
    lat = np.asarray(probs_lat, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        avg = np.where(np.isnan(ap), lat, np.where(np.isnan(lat), ap, (ap + lat) / 2.0))
    return {
        "average": avg,
        "ap": np.where(np.isnan(ap), lat, ap),
        "lat": np.where(np.isnan(lat), ap, lat),
    }


def select_view_strategy(
    val_probs_ap: Sequence[float], val_probs_lat: Sequence[float], labels: Sequence[int], threshold: float = 0.5
) -> Tuple[str, Dict[str, float]]:
    """The report's rule: the most accurate of AP only, LAT only and their average, on validation.

    Returns ``(name, {name: accuracy})``. Ties go to the higher ROC-AUC, then to
    the order of :data:`STRATEGIES` (average first: it uses both X-rays).
    """
    y = np.asarray(labels).astype(int)
    combos = combine_views(val_probs_ap, val_probs_lat)
    acc = {k: binary_classification_metrics(y, v, threshold)["accuracy"] for k, v in combos.items()}
    auc = {k: roc_auc(y, v) for k, v in combos.items()}

    def key(name: str) -> Tuple[float, float, int]:
        a = acc[name] if not math.isnan(acc[name]) else -1.0
        u = auc[name] if not math.isnan(auc[name]) else -1.0
        return (a, u, -STRATEGIES.index(name))

    best = max(STRATEGIES, key=key)
    return best, {k: acc[k] for k in STRATEGIES}


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

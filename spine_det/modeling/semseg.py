"""The semantic-segmentation networks: a registry of builders by ``MODEL.NAME``, as Detectron2's model registries.

Every network here takes a grey (or replicated-grey) film of any size and returns one logit channel per task
(``len(cfg.SPINE.TASKS)``), and is trained and predicted the same way (:mod:`spine_det.engine.semseg_trainer`,
:class:`spine_det.engine.semseg_predictor.SemSegPredictor`, config :mod:`spine_det.config.semseg`). A model
family brings its networks through its ``extra["register_networks"]`` hook, which puts them here: LinkNet
(``linknet``, :mod:`spine_det.modeling.linknet`) and the smp networks (``smp_unet``, ...,
:mod:`spine_det.modeling.families.smp`) alike. :func:`build_seg_model` calls the hooks the first time it
meets a name it does not know, so that listing the families imports no network code.
"""
from __future__ import annotations

from typing import Any, List, Optional

import torch
from fvcore.common.registry import Registry
from torch import nn

from spine_det.modeling.registry import families, resolve

__all__ = ["SEG_MODEL_REGISTRY", "build_seg_model", "count_parameters", "register_family_networks", "registered_networks"]

SEG_MODEL_REGISTRY = Registry("SEG_MODEL")
SEG_MODEL_REGISTRY.__doc__ = """Semantic-segmentation networks by ``MODEL.NAME`` (LinkNet, the smp networks, ...).

Each entry is a function ``cfg -> nn.Module`` whose module returns logits (N, len(cfg.SPINE.TASKS), H, W) for an
input (N, cfg.MODEL.IN_CHANNELS, H, W) of any H, W."""


def register_family_networks() -> None:
    """Call every registered family's ``register_networks`` hook (each is idempotent)."""
    for spec in families():
        if "register_networks" in spec.extra:
            resolve(spec.extra["register_networks"])()


def registered_networks() -> List[str]:
    """Every ``MODEL.NAME`` the segmentation trainer can build (every family's networks registered first)."""
    register_family_networks()
    return sorted(name for name, _ in SEG_MODEL_REGISTRY)


def build_seg_model(cfg: Any, device: Optional[torch.device | str] = None) -> nn.Module:
    """Build the network named by ``cfg.MODEL.NAME`` from :data:`SEG_MODEL_REGISTRY`."""
    if cfg.MODEL.NAME not in SEG_MODEL_REGISTRY:  # networks a family module brings (linknet, smp_*)
        register_family_networks()
    model = SEG_MODEL_REGISTRY.get(cfg.MODEL.NAME)(cfg)
    if device is not None:
        model = model.to(device)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())

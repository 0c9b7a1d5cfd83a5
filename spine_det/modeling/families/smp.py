"""segmentation_models_pytorch (smp) architectures as model families: U-Net, UNet++, FPN, DeepLabV3+.

Each is trained as LinkNet is, by the segmentation trainer (``spine-det train-linknet``,
:mod:`spine_det.engine.semseg_trainer`: letterboxed grey input, soft-Dice loss, one sigmoid per task,
best-validation checkpoint, the same cpu profile and per-task profile files as LinkNet, so the comparison
changes the network only) and predicted by
:class:`~spine_det.engine.semseg_predictor.SemSegPredictor`. The network is
``smp.create_model(arch, encoder_name=MODEL.SMP.ENCODER, in_channels=MODEL.IN_CHANNELS, classes=#tasks)``
under ``MODEL.NAME`` ``smp_<arch>`` in :data:`spine_det.modeling.semseg.SEG_MODEL_REGISTRY`, so any smp
architecture and any of its encoders run by name::

    spine-det train-linknet --config-file smp/lat_vertebra.yaml --data-root DATA --profile cpu \\
        MODEL.NAME smp_fpn MODEL.SMP.ENCODER efficientnet-b0

The benchmarked families (one :class:`SmpFamily` subclass each) share the task configs
``configs/smp/<task>.yaml`` (each LinkNet's ``configs/linknet/<task>.yaml`` with another ``MODEL.NAME``)
and differ by ``MODEL.NAME`` (:data:`FAMILIES`, passed by the benchmark through ``plan_opts``). Encoders start from random weights:
``MODEL.SMP.ENCODER_WEIGHTS imagenet`` (with ``MODEL.PRETRAINED True``) downloads them from the
Hugging Face Hub, and says what to do when the network refuses. Needs ``pip install 'spine_det[smp]'``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Dict, List, Optional

from spine_det.modeling.families._common import EPOCH_CURVES, shipped_config
from spine_det.modeling.registry import MODEL_FAMILIES, BenchmarkAdapter, ModelFamily

MODULE = "spine_det.modeling.families.smp"
INSTALL_HINT = "segmentation_models_pytorch is not installed: pip install 'spine_det[smp]'"

# MODEL.NAME of each smp architecture (smp's own names, lower case) that the segmentation trainer can build.
ARCHITECTURES: Dict[str, str] = {
    "smp_unet": "unet", "smp_unetplusplus": "unetplusplus", "smp_fpn": "fpn", "smp_deeplabv3plus": "deeplabv3plus",
    "smp_deeplabv3": "deeplabv3", "smp_linknet": "linknet", "smp_manet": "manet", "smp_pan": "pan",
    "smp_pspnet": "pspnet", "smp_upernet": "upernet", "smp_segformer": "segformer",
}


def available() -> Optional[str]:
    return None if importlib.util.find_spec("segmentation_models_pytorch") is not None else INSTALL_HINT


# --------------------------------------------------------------------------- the networks


def _pad_crop_module() -> type:
    import torch.nn.functional as F
    from torch import nn

    class PaddedSegModel(nn.Module):
        """An smp model that takes any input size: padded (zeros, bottom/right) to the encoder's output
        stride, logits cropped back, as :class:`spine_det.modeling.linknet.LinkNet` does."""

        def __init__(self, net: nn.Module, divisor: int) -> None:
            super().__init__()
            self.net = net
            self.size_divisibility = int(divisor)

        def forward(self, x):
            h, w = x.shape[-2:]
            d = self.size_divisibility
            ph, pw = (-h) % d, (-w) % d
            if ph or pw:
                x = F.pad(x, (0, pw, 0, ph))
            return self.net(x)[..., :h, :w]

    return PaddedSegModel


def create_smp_model(arch: str, encoder: str, in_channels: int, classes: int, encoder_weights: Optional[str] = None) -> Any:
    """``smp.create_model`` wrapped to take any input size; a failed weight download becomes one clear line."""
    if available() is not None:
        raise ModuleNotFoundError(INSTALL_HINT)
    import segmentation_models_pytorch as smp

    try:
        net = smp.create_model(arch, encoder_name=encoder, encoder_weights=encoder_weights or None,
                               in_channels=int(in_channels), classes=int(classes))
    except KeyError as e:  # smp's own message lists the valid names
        raise ValueError(f"segmentation_models_pytorch: {e.args[0] if e.args else e}") from None
    except Exception as e:  # noqa: BLE001  (hub/network errors come in many types)
        if not encoder_weights:
            raise
        raise RuntimeError(
            f"could not get the {encoder_weights!r} weights of smp encoder {encoder!r} ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}). smp downloads them from the Hugging Face Hub, which "
            f"this machine may not reach: train from random init with MODEL.SMP.ENCODER_WEIGHTS '' (the default), "
            f"or download them once where the Hub is reachable (the same command) and copy the cache "
            f"(HF_HOME, default ~/.cache/huggingface) here, then set HF_HUB_OFFLINE=1") from None
    divisor = getattr(getattr(net, "encoder", None), "output_stride", 32) or 32
    return _pad_crop_module()(net, divisor)


def _builder(name: str):
    def build(cfg: Any) -> Any:
        weights = cfg.MODEL.SMP.ENCODER_WEIGHTS if cfg.MODEL.PRETRAINED else ""
        return create_smp_model(ARCHITECTURES[name], cfg.MODEL.SMP.ENCODER, cfg.MODEL.IN_CHANNELS,
                                len(cfg.SPINE.TASKS), weights)

    build.__name__ = name
    build.__doc__ = f"smp {ARCHITECTURES[name]} from ``cfg.MODEL.SMP`` (classes = number of tasks)."
    return build


def register_networks() -> None:
    """Put the ``smp_*`` networks into the segmentation registry, SEG_MODEL_REGISTRY (idempotent; called by
    :func:`spine_det.modeling.semseg.build_seg_model` for a MODEL.NAME it does not know yet)."""
    from spine_det.modeling.semseg import SEG_MODEL_REGISTRY

    for name in ARCHITECTURES:
        if name not in SEG_MODEL_REGISTRY:
            SEG_MODEL_REGISTRY._do_register(name, _builder(name))


# --------------------------------------------------------------------------- families


def config_file(task: str) -> Path:
    return shipped_config(f"smp/{task}.yaml")


class SmpFamily(ModelFamily):
    """An smp architecture trained and predicted as LinkNet is (the base of the registered ones below)."""

    trainer = "spine_det.tools.train_linknet:main"
    predictor = "spine_det.engine.semseg_predictor:SemSegPredictor"
    load_config = "spine_det.config.semseg:load_semseg_config"  # MODEL.NAME as the YAML says: see plan_opts
    requires = {"segmentation_models_pytorch": INSTALL_HINT}
    config_file = staticmethod(config_file)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Each architecture's own facts: its network registration and the MODEL.NAME the benchmark passes."""
        super().__init_subclass__(**kwargs)
        cls.extra = {"register_networks": f"{MODULE}:register_networks", "architecture": ARCHITECTURES[cls.key]}
        cls.benchmark = BenchmarkAdapter(
            default=False,  # a baseline beside the report's two models: run with --models
            plan_opts=_plan_opts_for(cls.key), profile_files="spine_det.config.semseg:semseg_profile_files",
            read_curves=EPOCH_CURVES)

    def recognizes(self, data: Any) -> bool:
        """A segmentation-trainer checkpoint whose network is this architecture."""
        return isinstance(data, dict) and "cfg" in data and data.get("model_name") == self.key


def _plan_opts_for(name: str):
    def plan_opts(runs_dir: Path, task: str, seed: int, options: Any) -> List[str]:
        return ["MODEL.NAME", name]

    return plan_opts


@MODEL_FAMILIES.register()
class SmpUNet(SmpFamily):
    """segmentation_models_pytorch unet (encoder MODEL.SMP.ENCODER, default resnet34, random init), trained
    and predicted as LinkNet is"""

    key, label, order = "smp_unet", "U-Net (smp)", 30


@MODEL_FAMILIES.register()
class SmpUNetPlusPlus(SmpFamily):
    """segmentation_models_pytorch unetplusplus (encoder MODEL.SMP.ENCODER, default resnet34, random init),
    trained and predicted as LinkNet is"""

    key, label, order = "smp_unetplusplus", "UNet++ (smp)", 31


@MODEL_FAMILIES.register()
class SmpFPN(SmpFamily):
    """segmentation_models_pytorch fpn (encoder MODEL.SMP.ENCODER, default resnet34, random init), trained
    and predicted as LinkNet is"""

    key, label, order = "smp_fpn", "FPN (smp)", 32


@MODEL_FAMILIES.register()
class SmpDeepLabV3Plus(SmpFamily):
    """segmentation_models_pytorch deeplabv3plus (encoder MODEL.SMP.ENCODER, default resnet34, random init),
    trained and predicted as LinkNet is"""

    key, label, order = "smp_deeplabv3plus", "DeepLabV3+ (smp)", 33


# The benchmarked families: key (= MODEL.NAME) -> (table label, listing order).
FAMILIES: Dict[str, tuple] = {c.key: (c.label, c.order) for c in (SmpUNet, SmpUNetPlusPlus, SmpFPN, SmpDeepLabV3Plus)}

"""Mask R-CNN's R18 backbone from a LinkNet encoder: the mapping is complete and computes the same features."""
from __future__ import annotations

import pytest
import torch

import spine_det.compat  # noqa: F401  (before detectron2)


def _linknet():
    from spine_det.modeling.linknet import LinkNet

    torch.manual_seed(0)
    m = LinkNet(num_classes=1, in_channels=1, pretrained=False).eval()
    with torch.no_grad():  # non-trivial BN statistics, as after training
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.2)
    return m


def _d2_cfg():
    from spine_det.config import get_spine_cfg

    from spine_det import CONFIG_DIR

    return get_spine_cfg(CONFIG_DIR / "ap_vertebra.yaml", profile="cpu", opts=["MODEL.DEVICE", "cpu"])


def test_linknet_encoder_becomes_the_r18_backbone_with_the_same_features(tmp_path):
    from detectron2.modeling import build_model

    from spine_det.engine.checkpointer import SafeDetectionCheckpointer
    from spine_det.modeling.backbone_init import fit_cfg_to_linknet_init
    from spine_det.utils.checkpoint_io import save_plain

    ln = _linknet()
    ckpt = tmp_path / "model_best.pth"
    save_plain(ckpt, {"model": ln.state_dict(), "epoch": 1, "score": 0.5, "metric": "dice", "tasks": ["ap_vertebra"],
                      "cfg": "MODEL:\n  NAME: linknet\n", "model_name": "linknet"})
    cfg = _d2_cfg()
    cfg.MODEL.WEIGHTS = str(ckpt)
    assert fit_cfg_to_linknet_init(cfg)
    assert cfg.MODEL.RESNETS.NORM == "FrozenBN" and cfg.MODEL.PIXEL_MEAN[0] == pytest.approx(255 * 0.449)
    model = build_model(cfg).eval()
    SafeDetectionCheckpointer(model).load(str(ckpt))
    bottom_up = model.backbone.bottom_up
    # every backbone parameter and BN statistic came from the LinkNet encoder
    backbone_keys = {k for k in model.state_dict() if k.startswith("backbone.bottom_up.")}
    from spine_det.modeling.backbone_init import linknet_to_detectron2

    converted = linknet_to_detectron2(ln.state_dict())
    assert backbone_keys == set(converted)
    # same grey image through both: Detectron2 (3 identical channels, its pixel stats) == LinkNet's encoder
    grey = torch.randint(0, 256, (1, 1, 64, 96)).float()
    x_d2 = (grey.repeat(1, 3, 1, 1) - model.pixel_mean) / model.pixel_std
    x_ln = (grey / 255.0 - 0.449) / 0.226
    with torch.no_grad():
        feats = bottom_up(x_d2)
        e = ln.stem(x_ln)
        for k, enc in enumerate((ln.encoder1, ln.encoder2, ln.encoder3, ln.encoder4), start=2):
            e = enc(e)
            assert torch.allclose(feats[f"res{k}"], e, atol=1e-4, rtol=1e-4), f"res{k}"


def test_not_a_linknet_checkpoint_changes_nothing(tmp_path):
    from spine_det.modeling.backbone_init import fit_cfg_to_linknet_init, is_linknet_checkpoint

    cfg = _d2_cfg()
    before = (cfg.MODEL.RESNETS.NORM, list(cfg.MODEL.PIXEL_MEAN))
    for w in ("", "detectron2://x/model_final.pkl", str(tmp_path / "missing.pth")):
        cfg.MODEL.WEIGHTS = w
        assert not is_linknet_checkpoint(w) and not fit_cfg_to_linknet_init(cfg)
    assert (cfg.MODEL.RESNETS.NORM, list(cfg.MODEL.PIXEL_MEAN)) == before


def test_random_init_trains_every_stage():
    cfg = _d2_cfg()
    assert cfg.MODEL.WEIGHTS == "" and cfg.MODEL.BACKBONE.FREEZE_AT == 0

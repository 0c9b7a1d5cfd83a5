"""The load chain of every family whose config is a plain fvcore ``CfgNode`` (segmentation, the classifier,
nnU-Net, a new family): one function, so the families cannot drift apart in what a config file, a
profile or an override means. Mask R-CNN's chain starts from Detectron2's ``get_cfg`` instead
(:func:`spine_det.config.maskrcnn.get_spine_cfg`) and follows the same order.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from fvcore.common.config import CfgNode as CN

from spine_det.config.common import finalize_spine_config
from spine_det.config.profiles import profile_files
from spine_det.config.safe import merge_from_file, merge_from_list

__all__ = ["load_cfg"]


def load_cfg(
    base: CN,
    config_file: Optional[str] = None,
    profile: Optional[str] = None,
    opts: Optional[Sequence[str]] = None,
    profile_dir: Optional[Path] = None,
) -> CN:
    """defaults (``base``, cloned) <- config file <- profile YAML <- task's profile YAML <- KEY VALUE opts <-
    derived keys; frozen. ``profile`` and ``profile_dir`` as in :func:`spine_det.config.profiles.profile_files`.
    Old key names are read with a warning (:data:`spine_det.config.common.RENAMED_KEYS`)."""
    cfg = base.clone()
    if config_file:
        merge_from_file(cfg, config_file)  # safe YAML only; one-line ConfigError
    for p in profile_files(config_file, profile, profile_dir):
        merge_from_file(cfg, p)
    if opts:
        merge_from_list(cfg, opts)
    if "SPINE" in cfg and "TASKS" in cfg.SPINE:
        finalize_spine_config(cfg)
    cfg.freeze()
    return cfg

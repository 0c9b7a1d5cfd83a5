"""Detectron2 config for spine_det: ``add_spine_config`` and friends."""
from .maskrcnn import (  # noqa: F401
    PROFILES,
    add_spine_config,
    apply_profile,
    best_metric_key,
    fix_device,
    fix_scratch_norm,
    fit_cfg_to_linknet_init,
    get_spine_cfg,
    profile_path,
    spine_tasks,
    split_dataset_names,
)

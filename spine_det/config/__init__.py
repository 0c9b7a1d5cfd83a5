"""spine_det's one config system: CfgNodes built with ``add_*_config`` functions.

* :mod:`.common`     the ``SPINE`` data keys every family shares, old key names, the finalize step
* :mod:`.profiles`   the one ``--profile`` rule
* :mod:`.maskrcnn`   Detectron2's config + ``add_spine_config`` and the one Mask R-CNN load chain
* :mod:`.semseg`     the segmentation networks' config (LinkNet, the smp networks)
* :mod:`.classifier` the Normal/Damaged classifier's config
* :mod:`.nnunet`     nnU-Net v2's config
* :mod:`.loading`    the one load chain of those three (defaults, file, profile, overrides, derived keys)
* :mod:`.safe`       merging without running YAML, one-line errors
* :mod:`.paths`      where the shipped configs are
"""
from .common import add_spine_data_config, finalize_spine_config  # noqa: F401
from .maskrcnn import (  # noqa: F401
    PROFILES,
    add_spine_config,
    apply_profile,
    best_metric_key,
    finalize_maskrcnn_config,
    fix_device,
    fix_scratch_norm,
    fit_cfg_to_linknet_init,
    get_spine_cfg,
    load_maskrcnn_config,
    profile_path,
    spine_tasks,
    split_dataset_names,
)

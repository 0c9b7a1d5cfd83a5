"""Spine-specific config keys for Detectron2 (``cfg.SPINE``), the one Mask R-CNN load chain, and the
helpers that use them.

Follows PointRend's ``add_pointrend_config`` pattern: call :func:`add_spine_config`
on a fresh ``get_cfg()`` *before* ``merge_from_file`` so our YAMLs may set the keys.
:func:`get_spine_cfg` is the load chain every caller uses (``spine_det.tools.train_net``, the
predictor, the benchmark, doctor): get_cfg -> add_spine_config -> YAML -> profile -> data root -> opts
-> (training: LinkNet init) -> scratch norm -> device -> derived keys (:func:`finalize_maskrcnn_config`).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import List, Optional, Sequence

import spine_det.compat  # noqa: F401  (shims before detectron2; cheap)
from spine_det.config.common import add_spine_data_config, finalize_spine_config, shipped_config, tasks_name, validate_tasks
from spine_det.config.profiles import FULL, profile_yaml, task_profile_file
from spine_det.config.profiles import profile_files as _profile_files
from spine_det.config.safe import merge_from_file, merge_from_list
from spine_det.tasks import VIEWS

logger = logging.getLogger(__name__)

# Detectron2 and torch (1.2 s each) are imported by the functions that build a Mask R-CNN config: every tool
# imports spine_det.config, and LinkNet's, the classifier's and nnU-Net's tools never need them.

PROFILES = ("full", "cpu")
_SPLIT_SUFFIX = re.compile(r"_(train|val|test)$")


def add_spine_config(cfg) -> None:
    """Add the ``cfg.SPINE`` node (data location, tasks, augmentation, evaluation)."""
    from detectron2.config import CfgNode as CN

    # The shared data keys: DATA_ROOT (scanned and converted to COCO once, into CACHE_DIR; empty =
    # spine_det.data.prepare.default_cache_dir, never inside DATA_ROOT), SPLIT_SEED, TASKS (index =
    # category id) and VIEW (derived from TASKS).
    add_spine_data_config(cfg)
    # Derived from SPINE.TASKS by finalize_maskrcnn_config (0 = not set by a config).
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 0
    # Weight of the soft Dice term of spine_det's DiceMaskRCNNHead (MODEL.ROI_MASK_HEAD.NAME), registered by
    # this import; Detectron2's own heads ignore it.
    import spine_det.modeling.mask_head  # noqa: F401

    cfg.MODEL.ROI_MASK_HEAD.DICE_WEIGHT = 1.0
    # Random init with FrozenBN cannot learn the norm layers: replace by this norm (or "" to fail).
    cfg.SPINE.SCRATCH_NORM = "GN"
    # sha1[:12] of the checkpoint MODEL.WEIGHTS starts from, when the benchmark starts Mask R-CNN from its own
    # LinkNet (--maskrcnn-init linknet): recorded in config.yaml, and a new LinkNet means a new run
    cfg.SPINE.INIT_CHECKPOINT_SHA1 = ""
    # >0: train on this many training images, drawn with SEED and nested (one seed's 25 are among its 50),
    # the same films LinkNet's DATALOADER.TRAIN_SUBSET draws (label-efficiency rows); 0 = all of them.
    cfg.DATALOADER.TRAIN_SUBSET = 0

    # Augmentations DatasetMapper's config does not cover (applied after the resize).
    cfg.SPINE.INPUT = CN()
    cfg.SPINE.INPUT.ROTATION = 0.0  # max |angle| in degrees; 0 = off
    cfg.SPINE.INPUT.BRIGHTNESS = (1.0, 1.0)  # intensity scale range; (1, 1) = off
    cfg.SPINE.INPUT.CONTRAST = (1.0, 1.0)  # contrast scale range; (1, 1) = off
    # Domain randomisation of the imaging chain, as LinkNet's AUG.* (one function for both:
    # spine_det.data.seg_dataset.degrade): per image, each with probability DR_PROB, a Gaussian blur
    # (sigma up to BLUR px), a local-contrast change (unsharp amount in +-UNSHARP) and noise (std up to
    # NOISE of full scale); then a gamma drawn from GAMMA. DR_PROB 0 and GAMMA (1, 1) = off (the default).
    cfg.SPINE.INPUT.DR_PROB = 0.0
    cfg.SPINE.INPUT.BLUR = 1.5
    cfg.SPINE.INPUT.NOISE = 0.04
    cfg.SPINE.INPUT.UNSHARP = 0.6
    cfg.SPINE.INPUT.GAMMA = (1.0, 1.0)
    # (height, width) in pixels of a random crop taken AFTER the resize, when training; (0, 0) = off.
    # Detectron2's INPUT.CROP crops before the resize, which then scales the crop back up to the
    # same short side: no pixels saved. Thin structures need the upscaled resolution, not the whole
    # field in every step; a crop after the resize keeps the first and pays for a part of the second.
    cfg.SPINE.INPUT.CROP_AFTER_RESIZE = (0, 0)
    # The spine strip (spine_det.data.spine_strip, spine_det.modeling.strip_rcnn): a second look at the
    # columns between the outermost vertebrae, every row kept, resized to a long side of LONG_SIDE_*.
    # Training feeds strips cut around the ground-truth boxes (MARGIN + a random 0..JITTER per side,
    # fractions of the film's height) with probability TRAIN_PROB, whole films otherwise; inference finds
    # the strip from a whole-film pass (boxes scoring >= SCORE_THRESHOLD) and answers from the strip.
    # ENABLED switches MODEL.META_ARCHITECTURE to SpineStripRCNN (same weights as GeneralizedRCNN).
    import spine_det.modeling.strip_rcnn  # noqa: F401  (registers SpineStripRCNN)

    cfg.SPINE.INPUT.STRIP = CN()
    cfg.SPINE.INPUT.STRIP.ENABLED = False
    cfg.SPINE.INPUT.STRIP.TRAIN_PROB = 0.5
    cfg.SPINE.INPUT.STRIP.MARGIN = 0.02
    cfg.SPINE.INPUT.STRIP.JITTER = 0.03
    cfg.SPINE.INPUT.STRIP.LONG_SIDE_TRAIN = (1024, 1088, 1152, 1216)
    cfg.SPINE.INPUT.STRIP.LONG_SIDE_TEST = 1120
    cfg.SPINE.INPUT.STRIP.SCORE_THRESHOLD = 0.3

    # What one instance is when a task's mask is converted to COCO (spine_det.data.instances):
    # "components" (8-connected, the default), "whole", or "per_level" (LEVELS horizontal bands).
    cfg.SPINE.INSTANCES = CN()
    cfg.SPINE.INSTANCES.LINE = "components"  # tasks *_line
    cfg.SPINE.INSTANCES.SPINOUS_PROCESS = "components"  # tasks *_spinous_process
    cfg.SPINE.INSTANCES.OTHER = "components"
    cfg.SPINE.INSTANCES.LEVELS = 9  # bands of "per_level" (annotated levels T10-L5)

    cfg.SPINE.EVAL = CN()
    # Instances with score >= this are pasted into the task's semantic mask. < 0: the value chosen
    # on val after training (OUTPUT_DIR/thresholds.json, spine_det.evaluation.thresholds; 0.5 until then),
    # read back wherever that model is evaluated or used.
    cfg.SPINE.EVAL.SCORE_THRESHOLD = 0.5
    # Folder of the thresholds.json read when SCORE_THRESHOLD < 0; "" = OUTPUT_DIR. --eval-only and the
    # predictor point it at the checkpoint's folder: tuned thresholds belong to the model that was tuned.
    cfg.SPINE.EVAL.THRESHOLDS_DIR = ""
    # Splits evaluated by --eval-only and after training (with model_best.pth).
    cfg.SPINE.EVAL.SPLITS = ("val", "test")
    # Also report COCO box/mask AP (pycocotools, slow on big images).
    cfg.SPINE.EVAL.COCO_AP = True
    # Validation metric that picks model_best.pth; "" = "<task>/dice" or "mean/dice".
    cfg.SPINE.EVAL.BEST_METRIC = ""


def profile_path(config_file: str | Path, profile: str) -> Optional[Path]:
    """YAML of a profile (None for ``full``): ``profiles/<profile>.yaml`` beside the config, else the shipped one."""
    return profile_yaml(config_file, profile, shipped_config("profiles"))


def task_profile_path(config_file: str | Path, profile: str) -> Optional[Path]:
    """``profiles/<profile>/<config stem>.yaml``: what one task changes in a profile, or None."""
    p = profile_path(config_file, profile)
    return None if p is None else task_profile_file(p, config_file)


def profile_files(config_file: str | Path, profile: str) -> List[Path]:
    """The YAML files ``profile`` merges over ``config_file``, in order (none for ``full``)."""
    return _profile_files(config_file, profile, shipped_config("profiles"))


def apply_profile(cfg, config_file: str | Path, profile: str) -> None:
    """Merge ``profiles/<profile>.yaml`` over the task config, then the task's own
    ``profiles/<profile>/<task>.yaml`` if there is one (``full`` changes nothing)."""
    for p in profile_files(config_file, profile):
        merge_from_file(cfg, p)
        logger.info("Merged profile %s from %s", profile, p)


def spine_tasks(cfg) -> List[str]:
    """Task names of the config, validated against spine_det.tasks and NUM_CLASSES."""
    tasks = validate_tasks(cfg)
    if cfg.MODEL.ROI_HEADS.NUM_CLASSES != len(tasks):
        raise ValueError(
            f"MODEL.ROI_HEADS.NUM_CLASSES={cfg.MODEL.ROI_HEADS.NUM_CLASSES} but SPINE.TASKS has {len(tasks)} tasks "
            "(NUM_CLASSES is derived from SPINE.TASKS: leave it out of the config)"
        )
    return tasks


def finalize_maskrcnn_config(cfg) -> List[str]:
    """Derive what SPINE.TASKS implies (spine_det.tasks), so leaf YAMLs say only what differs:
    SPINE.VIEW, OUTPUT_DIR's ``{tasks}``, MODEL.ROI_HEADS.NUM_CLASSES (= number of tasks; a config that
    sets another number fails in :func:`spine_tasks`) and, when not set, DATASETS.TRAIN / TEST
    (``spine_<task or view>_train`` / ``_val``). A config without tasks is left as it is."""
    tasks = finalize_spine_config(cfg)
    if not tasks:
        return tasks
    if cfg.MODEL.ROI_HEADS.NUM_CLASSES == 0:
        cfg.MODEL.ROI_HEADS.NUM_CLASSES = len(tasks)
    if cfg.SPINE.INPUT.STRIP.ENABLED and cfg.MODEL.META_ARCHITECTURE == "GeneralizedRCNN":
        cfg.MODEL.META_ARCHITECTURE = "SpineStripRCNN"
    name = tasks_name(tasks)
    if not cfg.DATASETS.TRAIN:
        cfg.DATASETS.TRAIN = (f"spine_{name}_train",)
    if not cfg.DATASETS.TEST:
        cfg.DATASETS.TEST = (f"spine_{name}_val",)
    spine_tasks(cfg)
    return tasks


def split_dataset_names(cfg, split: str) -> List[str]:
    """The test datasets of ``cfg`` moved to another split (``spine_lat_vertebra_val`` -> ``..._test``)."""
    names = list(cfg.DATASETS.TEST) or list(cfg.DATASETS.TRAIN)
    return list(dict.fromkeys(_SPLIT_SUFFIX.sub(f"_{split}", n) for n in names))


def best_metric_key(cfg) -> str:
    """Flattened EvalHook key of the validation Dice that selects model_best.pth."""
    if cfg.SPINE.EVAL.BEST_METRIC:
        return cfg.SPINE.EVAL.BEST_METRIC
    tasks = list(cfg.SPINE.TASKS)
    return f"{tasks[0]}/dice" if len(tasks) == 1 else "mean/dice"


def fix_scratch_norm(cfg) -> None:
    """Random init: train every stage, and swap FrozenBN (which cannot learn) for SPINE.SCRATCH_NORM,
    with a warning (or fail).

    Detectron2 freezes the stem and res2 by default (``MODEL.BACKBONE.FREEZE_AT: 2``), which suits
    pretrained weights; from random init it would keep a quarter of the backbone at random values
    for the whole run, so FREEZE_AT drops to 0."""
    if not cfg.MODEL.WEIGHTS and cfg.MODEL.BACKBONE.FREEZE_AT > 0:
        logger.info("MODEL.WEIGHTS is empty (random init): training every backbone stage "
                    "(MODEL.BACKBONE.FREEZE_AT %d -> 0)", cfg.MODEL.BACKBONE.FREEZE_AT)
        cfg.MODEL.BACKBONE.FREEZE_AT = 0
    if cfg.MODEL.WEIGHTS or cfg.MODEL.RESNETS.NORM != "FrozenBN":
        return
    if not cfg.SPINE.SCRATCH_NORM:
        raise ValueError(
            "MODEL.WEIGHTS is empty (random init) but MODEL.RESNETS.NORM is FrozenBN, which cannot learn; "
            "set MODEL.RESNETS.NORM GN (or SPINE.SCRATCH_NORM GN to do it automatically)"
        )
    logger.warning(
        "MODEL.WEIGHTS is empty (random init): replacing FrozenBN by %s in the backbone and FPN",
        cfg.SPINE.SCRATCH_NORM,
    )
    cfg.MODEL.RESNETS.NORM = cfg.SPINE.SCRATCH_NORM
    if not cfg.MODEL.FPN.NORM:
        cfg.MODEL.FPN.NORM = cfg.SPINE.SCRATCH_NORM


def fit_cfg_to_linknet_init(cfg) -> bool:
    """MODEL.WEIGHTS a LinkNet checkpoint: R18 backbone from its encoder (spine_det.modeling.backbone_init)."""
    from spine_det.modeling.backbone_init import fit_cfg_to_linknet_init as fit

    return fit(cfg)


def fix_device(cfg) -> None:
    """MODEL.DEVICE ``auto`` (as the other families take it): CUDA when torch sees a GPU, else the CPU;
    ``cuda`` on a machine without CUDA: fall back to CPU with a warning."""
    import torch

    if cfg.MODEL.DEVICE == "auto":
        cfg.MODEL.DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("MODEL.DEVICE=%s but CUDA is not available: using the CPU", cfg.MODEL.DEVICE)
        cfg.MODEL.DEVICE = "cpu"


def get_spine_cfg(
    config_file: str | Path | None = None, profile: str = FULL, opts: Sequence[str] = (),
    data_root: str | Path | None = None, training: bool = False,
):
    """The one Mask R-CNN load chain (not frozen): get_cfg → add_spine_config → merge_from_file →
    profile → ``data_root`` (SPINE.DATA_ROOT) → merge_from_list(opts) → (``training``: a LinkNet
    MODEL.WEIGHTS fits the backbone to it) → scratch norm → device → derived keys."""
    from detectron2.config import get_cfg

    cfg = get_cfg()
    add_spine_config(cfg)
    if config_file is not None:
        merge_from_file(cfg, config_file)  # never Detectron2's allow_unsafe=True default
        apply_profile(cfg, config_file, profile)
    if data_root:
        cfg.SPINE.DATA_ROOT = str(Path(data_root).resolve())
    merge_from_list(cfg, opts)
    if training:
        fit_cfg_to_linknet_init(cfg)  # MODEL.WEIGHTS a LinkNet checkpoint: R18 backbone from its encoder
    fix_scratch_norm(cfg)
    fix_device(cfg)
    finalize_maskrcnn_config(cfg)
    return cfg


def load_maskrcnn_config(config_file: str | Path | None = None, profile: str = FULL, opts: Sequence[str] = ()):
    """The final Mask R-CNN config (not frozen), as the registry's ``load_config`` calls it."""
    return get_spine_cfg(config_file, profile=profile or FULL, opts=opts)


__all__ = [
    "PROFILES",
    "load_maskrcnn_config",
    "VIEWS",
    "add_spine_config",
    "apply_profile",
    "best_metric_key",
    "fix_device",
    "fix_scratch_norm",
    "finalize_maskrcnn_config",
    "fit_cfg_to_linknet_init",
    "get_spine_cfg",
    "profile_files",
    "profile_path",
    "task_profile_path",
    "spine_tasks",
    "split_dataset_names",
]

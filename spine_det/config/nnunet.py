"""nnU-Net v2's config (``get_nnunet_cfg``): the shared ``SPINE`` data keys, one task, and the ``NNUNET``
keys that steer nnunetv2's own planning, training and sliding-window prediction
(:mod:`spine_det.engine.nnunet`). Loaded by the one chain of the CfgNode families
(:func:`spine_det.config.loading.load_cfg`) with the shipped ``configs/nnunet/profiles``.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

from fvcore.common.config import CfgNode as CN

from spine_det.config.common import add_spine_data_config, shipped_config
from spine_det.config.loading import load_cfg
from spine_det.config.profiles import FULL, profile_files
from spine_det.config.safe import ConfigError

__all__ = ["PROFILE_DIR", "get_nnunet_cfg", "load_nnunet_config", "nnunet_profile_files", "task_of"]

PROFILE_DIR = "nnunet/profiles"


def get_nnunet_cfg() -> CN:
    """Defaults: nnU-Net's own schedule (1000 epochs x 250 iterations, GPU); the cpu profile shortens it."""
    _C = CN()
    _C.VERSION = 1
    add_spine_data_config(_C)  # SPINE.DATA_ROOT, CACHE_DIR, SPLIT_SEED, TASKS, VIEW
    _C.SPINE.TASKS = ["lat_vertebra"]  # exactly one task (label 1 of the nnU-Net dataset)
    _C.MODEL = CN()
    _C.MODEL.NAME = "nnunet"
    _C.MODEL.DEVICE = "auto"  # "auto" | "cpu" | "cuda"
    _C.MODEL.WEIGHTS = ""  # checkpoint for --eval-only; "" = OUTPUT_DIR/model_final.pth
    _C.NNUNET = CN()
    _C.NNUNET.DATASET_ID = 900  # nnU-Net dataset id inside the run's own work folder
    _C.NNUNET.CONFIGURATION = "2d"
    _C.NNUNET.PLANNER = "ExperimentPlanner"  # or nnUNetPlannerResEncM (residual encoder presets)
    _C.NNUNET.PLANS = "nnUNetPlans"  # plans identifier the planner writes (ResEnc presets: nnUNetResEncUNetMPlans)
    _C.NNUNET.EPOCHS = 1000
    _C.NNUNET.ITERS_PER_EPOCH = 250
    _C.NNUNET.VAL_ITERS_PER_EPOCH = 50
    _C.NNUNET.BATCH_SIZE = 0  # 0: as planned
    _C.NNUNET.MAX_SIDE = 0  # >0: export images with their longer side scaled down to this (CPU); 0: as they are
    _C.NNUNET.NUM_PROCESSES = 2  # preprocessing and data-augmentation workers (0: augmentation in-process)
    _C.NNUNET.MIRRORING = True  # test-time mirroring (nnU-Net's default)
    _C.NNUNET.TILE_STEP = 0.5  # sliding-window step, fraction of the patch
    _C.NNUNET.COMPILE = False  # torch.compile on CUDA (nnU-Net's default is on; it costs minutes up front)
    _C.TEST = CN()
    _C.TEST.SPLIT = "test"
    _C.OUTPUT_DIR = "./output/nnunet/{tasks}"  # {tasks}: filled in by finalize_spine_config
    _C.SEED = 0
    return _C


def nnunet_profile_files(config_file: Optional[str | Path], profile: Optional[str]) -> List[Path]:
    """``configs/nnunet/profiles/<profile>.yaml`` (``full``: none)."""
    if not profile or profile == FULL:
        return []
    return profile_files(config_file, profile, shipped_config(PROFILE_DIR))


def load_nnunet_config(config_file: Optional[str | Path] = None, profile: Optional[str] = None,
                       opts: Sequence[str] = ()) -> CN:
    """defaults <- config file <- profile <- KEY VALUE opts (frozen); checks there is one task."""
    prof = None if not profile or profile == FULL else profile
    try:
        cfg = load_cfg(get_nnunet_cfg(), str(config_file) if config_file else None, prof, list(opts),
                       profile_dir=shipped_config(PROFILE_DIR))
    except ConfigError:
        raise
    except (KeyError, ValueError) as e:  # an unknown task, tasks of two views
        raise ConfigError(f"{config_file}: {e.args[0] if e.args else e}") from None
    if len(cfg.SPINE.TASKS) != 1:
        raise ConfigError(f"{config_file}: nnU-Net runs one task at a time; SPINE.TASKS is {list(cfg.SPINE.TASKS)}")
    return cfg


def task_of(cfg: CN) -> str:
    """The one task of an nnU-Net config."""
    return str(cfg.SPINE.TASKS[0])

"""The vertebra-landmark family's config (``add_landmark_config``): the segmentation networks' keys
(:func:`spine_det.config.semseg.add_semseg_config`: input, augmentation, solver, early stopping, data
loader, test) plus ``LANDMARK``, the heatmap targets and their decoding. Shipped configs:
``configs/landmark/<task>.yaml`` (``ap_vertebra``, ``lat_vertebra``) with the profiles of
``configs/landmark/profiles``; loaded by the one chain of :func:`spine_det.config.loading.load_cfg`.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

from fvcore.common.config import CfgNode as CN

from spine_det.config.common import add_spine_data_config, shipped_config, validate_tasks
from spine_det.config.loading import load_cfg
from spine_det.config.profiles import profile_files
from spine_det.config.semseg import add_semseg_config

__all__ = ["LANDMARK_TASKS", "PROFILE_DIR", "add_landmark_config", "get_landmark_cfg", "landmark_profile_files",
           "landmark_task", "load_landmark_config"]

PROFILE_DIR = "landmark/profiles"
# the tasks whose ground truth has four corners per vertebra (AASCE landmarks.json, the phantom's ground_truth.json)
LANDMARK_TASKS = ("ap_vertebra", "lat_vertebra")


def get_landmark_cfg() -> CN:
    """A fresh copy of the landmark defaults (GPU-sized; ``--profile cpu`` shrinks them)."""
    cfg = CN()
    cfg.VERSION = 1
    add_spine_data_config(cfg)
    cfg.SPINE.TASKS = ["ap_vertebra"]
    add_semseg_config(cfg)
    add_landmark_config(cfg)
    return cfg


def add_landmark_config(_C: CN) -> None:
    """The landmark family's own keys over the segmentation ones."""
    _C.MODEL.NAME = "landmark"
    _C.MODEL.PRETRAINED = False  # True: torchvision's ImageNet ResNet18 (a download; refused in one line offline)
    _C.INPUT.HEIGHT = 1024  # portrait; the AASCE films are ~890 x 2375
    _C.INPUT.WIDTH = 384
    _C.AUG.ROTATE = 5.0
    _C.AUG.HFLIP = 0.5  # left/right corners are swapped with the film
    _C.SOLVER.OPTIMIZER = "adam"
    _C.SOLVER.BASE_LR = 1e-3
    _C.SOLVER.SCHEDULER = "cosine"
    _C.SOLVER.MAX_EPOCHS = 100
    # the film and its mirror, each vertebra's peaks paired and averaged (2x inference). Chosen on the 48 AASCE
    # validation films (two models): Cobb SMAPE 13.8 -> 12.8 and 13.5 -> 12.9, false positives 1.65 -> 1.52 and 1.67 -> 1.21
    _C.TEST.HFLIP = True
    _C.OUTPUT_DIR = "./output/landmark/{tasks}"

    _C.LANDMARK = CN()
    _C.LANDMARK.WIDTH = 64  # decoder and head channels
    # Gaussian of a centre: sigma = SIGMA_FRACTION x sqrt(vertebra area), at least MIN_SIGMA output cells
    _C.LANDMARK.SIGMA_FRACTION = 0.15
    _C.LANDMARK.MIN_SIGMA = 1.0
    _C.LANDMARK.OFFSET_WEIGHT = 1.0  # L1 of the centre's sub-cell offset
    _C.LANDMARK.CORNER_WEIGHT = 0.1  # L1 of the corners - centre, in cells (CenterNet's size-loss weight)
    # L1 of the level number (C7 = 0 .. L5 = 17) at each centre; 0: no level channel. The post-processing takes
    # the predicted number as a hint per vertebra (spine_det/morphometry/levels.py). Off: on the 48 AASCE
    # validation films (0.1, seed 0) the hints named fewer vertebrae right than the gaps and sizes alone (80 %
    # against 84 %; the number is within half a level for 60 % of vertebrae after 15 cpu-profile epochs)
    _C.LANDMARK.LEVEL_WEIGHT = 0.0
    _C.LANDMARK.MAX_INSTANCES = 17  # T1-L5
    _C.LANDMARK.SCORE_THRESHOLD = 0.3  # a peak's probability to count as a vertebra


def landmark_task(cfg: CN) -> str:
    """The one task of a landmark config (a vertebra task: its ground truth has corners)."""
    tasks = validate_tasks(cfg)
    if len(tasks) != 1 or tasks[0] not in LANDMARK_TASKS:
        raise ValueError(f"the landmark family learns one of {', '.join(LANDMARK_TASKS)}, got SPINE.TASKS {tasks}")
    return tasks[0]


def landmark_profile_files(config_file: Optional[str | Path], profile: Optional[str]) -> List[Path]:
    """Profile YAMLs of a landmark config: beside it, else the shipped ``configs/landmark/profiles``."""
    return profile_files(config_file, profile, shipped_config(PROFILE_DIR))


def load_landmark_config(config_file: Optional[str | Path] = None, profile: Optional[str] = "full",
                         opts: Sequence[str] = (), data_root: Optional[str | Path] = None) -> CN:
    """defaults <- config file <- profile <- ``data_root`` <- opts <- derived keys; frozen."""
    pre = ["SPINE.DATA_ROOT", str(data_root)] if data_root else []
    return load_cfg(get_landmark_cfg(), str(config_file) if config_file else None, profile, [*pre, *opts],
                    profile_dir=shipped_config(PROFILE_DIR))

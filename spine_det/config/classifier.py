"""The Normal/Damaged classifier's config (``add_classifier_config``): ResNet50 as in the report, one model
per view, trained by :mod:`spine_det.engine.classifier_trainer`. Loaded by the one chain of the CfgNode
families (:func:`spine_det.config.loading.load_cfg`) with the shipped ``configs/classifier/profiles``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from fvcore.common.config import CfgNode as CN

from spine_det.config.common import add_spine_data_config, shipped_config
from spine_det.config.loading import load_cfg

__all__ = ["DEFAULT_CONFIG", "PROFILE_DIR", "add_classifier_config", "get_classifier_cfg", "load_classifier_config"]

DEFAULT_CONFIG = "classifier/Base-Classifier.yaml"  # spine-det train-classifier's --config-file default
PROFILE_DIR = "classifier/profiles"


def get_classifier_cfg() -> CN:
    """A fresh copy of the classifier defaults (ResNet50, one model per view)."""
    cfg = CN()
    cfg.VERSION = 1
    add_spine_data_config(cfg, tasks=False)  # SPINE.DATA_ROOT, CACHE_DIR, SPLIT_SEED (both views, no tasks)
    add_classifier_config(cfg)
    return cfg


def add_classifier_config(_C: CN) -> None:
    """Add the classifier's own keys (VIEWS, MODEL, INPUT, AUG, SOLVER, EARLY_STOP, VAL, DATALOADER, TEST,
    OUTPUT_DIR, SEED); the data keys are the shared ``SPINE`` ones (``DATA.ROOT`` / ``DATA.CACHE_DIR`` /
    ``DATA.SEED`` of older configs and checkpoints are read as those, with a warning)."""
    _C.VIEWS = ["ap", "lat"]

    _C.MODEL = CN()
    _C.MODEL.BACKBONE = "resnet50"  # torchvision name: resnet50 (the report) | resnet18 | resnet34
    _C.MODEL.IN_CHANNELS = 1
    _C.MODEL.PRETRAINED = True
    _C.MODEL.DROPOUT = 0.2
    _C.MODEL.DEVICE = "auto"
    _C.MODEL.POOL = "avg"  # global pooling before the logit: "avg" (torchvision) | "max" (one bad vertebra suffices)

    _C.INPUT = CN()
    _C.INPUT.HEIGHT = 512
    _C.INPUT.WIDTH = 512
    _C.INPUT.RESIZE = "letterbox"
    # Mask-free spine crop before resizing (spine_det.data.spine_crop): "none" | "column" (straight
    # band) | "centerline" (band following the spine, straightened). Width as a fraction of the image
    # height; rows = vertical extent kept (fractions of the height; the pelvis lies below ~0.75).
    _C.INPUT.CROP = "centerline"
    _C.INPUT.CROP_WIDTH = 0.3
    _C.INPUT.CROP_ROWS = (0.0, 0.8)

    _C.AUG = CN()
    _C.AUG.ENABLED = True
    _C.AUG.HFLIP = 0.0
    _C.AUG.ROTATE = 5.0
    _C.AUG.SCALE = (0.92, 1.08)
    _C.AUG.SHIFT = 0.04
    _C.AUG.BRIGHTNESS = 0.1
    _C.AUG.CONTRAST = 0.1
    _C.AUG.GAMMA = (0.85, 1.15)
    # Domain randomisation of the imaging chain, the keys and function LinkNet uses (seg_dataset.degrade).
    # Off (DR_PROB 0): not measured for the classifier.
    _C.AUG.DR_PROB = 0.0
    _C.AUG.BLUR = 1.5
    _C.AUG.NOISE = 0.04
    _C.AUG.UNSHARP = 0.6

    _C.SOLVER = CN()
    _C.SOLVER.OPTIMIZER = "adamw"
    _C.SOLVER.BASE_LR = 3e-4
    _C.SOLVER.WEIGHT_DECAY = 1e-4
    _C.SOLVER.MOMENTUM = 0.9
    _C.SOLVER.IMS_PER_BATCH = 16
    _C.SOLVER.MAX_EPOCHS = 30
    _C.SOLVER.SCHEDULER = "cosine"  # "cosine" | "plateau" | "none" (cosine on --resume: as LinkNet's)
    _C.SOLVER.PLATEAU_FACTOR = 0.5
    _C.SOLVER.PLATEAU_PATIENCE = 3
    _C.SOLVER.MIN_LR = 1e-6
    _C.SOLVER.AMP = True
    _C.SOLVER.LABEL_SMOOTHING = 0.0  # BCE targets y * (1 - eps) + eps / 2

    _C.EARLY_STOP = CN()
    _C.EARLY_STOP.ENABLED = True
    _C.EARLY_STOP.PATIENCE = 8
    _C.EARLY_STOP.MIN_DELTA = 1e-4
    # Which validation figure picks the best epoch and drives early stopping: "accuracy" (the
    # report; ties -> AUC) or "auc" (ties -> accuracy; finer-grained on small validation sets).
    _C.EARLY_STOP.METRIC = "accuracy"

    _C.VAL = CN()
    # "balanced": like the report (50 Damaged / 50 Normal), drawn from the Training patients (train+val
    #   of the manifest) with seed SPINE.SPLIT_SEED, PER_CLASS patients of each label, capped so that at least
    #   (1 - MAX_FRACTION) of each label stays for training. "manifest": the manifest's own val split.
    _C.VAL.MODE = "balanced"
    _C.VAL.PER_CLASS = 50
    _C.VAL.MAX_FRACTION = 0.2

    _C.DATALOADER = CN()
    _C.DATALOADER.NUM_WORKERS = 2
    _C.DATALOADER.CACHE = True
    _C.DATALOADER.SAMPLER = "random"  # "random" | "balanced" (each batch drawn with equal label odds)

    _C.TEST = CN()
    _C.TEST.SPLIT = "test"
    _C.TEST.THRESHOLD = 0.5  # P(Damaged) >= threshold -> Damaged

    _C.OUTPUT_DIR = "./output/classifier"
    _C.SEED = 0


def load_classifier_config(config_file: Optional[str | Path] = None, profile: Optional[str] = "full",
                           opts: Sequence[str] = ()) -> CN:
    """The classifier's load chain (``spine-det train-classifier``, the benchmark): defaults <- config file <-
    profile (beside the config, else the shipped ``configs/classifier/profiles``) <- opts; frozen."""
    return load_cfg(get_classifier_cfg(), str(config_file) if config_file else None, profile, list(opts),
                    profile_dir=shipped_config(PROFILE_DIR))

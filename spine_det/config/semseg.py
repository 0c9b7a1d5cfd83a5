"""Configs of the LinkNet baseline and the Normal/Damaged classifier (``add_*_config`` functions).

Same system as the Mask R-CNN configs: a CfgNode gets the shared ``SPINE`` data keys
(:func:`spine_det.config.common.add_spine_data_config`) and the family's own keys, a YAML names
``_BASE_`` (resolved next to the YAML) and overrides keys, ``--profile`` merges by the one profile rule
(:mod:`spine_det.config.profiles`), command-line ``KEY VALUE`` pairs come last, and
:func:`spine_det.config.common.finalize_spine_config` derives what the tasks imply.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

from fvcore.common.config import CfgNode as CN

from spine_det.config.common import add_spine_data_config, finalize_spine_config, shipped_config, validate_tasks
from spine_det.config.profiles import profile_files as _profile_files
from spine_det.config.safe import merge_from_file, merge_from_list

__all__ = ["add_linknet_config", "get_linknet_cfg", "get_classifier_cfg", "load_cfg", "load_linknet_config",
           "linknet_profile_files", "profile_files", "CN"]


def get_linknet_cfg() -> CN:
    """A fresh copy of the LinkNet defaults (the report's recipe, GPU-sized)."""
    cfg = CN()
    cfg.VERSION = 1
    add_spine_data_config(cfg)
    # one task, or several tasks of ONE view (multi-label, one sigmoid each)
    cfg.SPINE.TASKS = ["lat_vertebra"]
    add_linknet_config(cfg)
    return cfg


def add_linknet_config(_C: CN) -> None:
    """Add LinkNet's own keys (MODEL, INPUT, AUG, LOSS, SOLVER, EARLY_STOP, DATALOADER, TEST, OUTPUT_DIR, SEED)."""
    _C.MODEL = CN()
    _C.MODEL.NAME = "linknet"  # key of SEG_MODEL_REGISTRY
    _C.MODEL.IN_CHANNELS = 1  # 1: grey, ImageNet first conv summed over RGB; 3: grey replicated
    _C.MODEL.PRETRAINED = True  # ImageNet encoder when downloadable, else random init (logged)
    _C.MODEL.DEVICE = "auto"  # "auto" | "cpu" | "cuda" | "cuda:1"
    _C.MODEL.WEIGHTS = ""  # checkpoint for --eval-only / prediction; "" = OUTPUT_DIR/model_best.pth
    # LinkNet checkpoint to start training from (e.g. one trained on the phantom: pre-training without
    # downloads); "" = random init or MODEL.PRETRAINED's ImageNet encoder. Ignored when --resume resumes.
    _C.MODEL.INIT_WEIGHTS = ""
    # segmentation_models_pytorch networks (MODEL.NAME smp_unet, smp_fpn, ...: spine_det.modeling.families.smp)
    _C.MODEL.SMP = CN()
    _C.MODEL.SMP.ENCODER = "resnet34"  # any smp encoder name (resnet34, efficientnet-b0, tu-convnext_tiny, ...)
    _C.MODEL.SMP.ENCODER_WEIGHTS = ""  # "" = random init; "imagenet" downloads (needs MODEL.PRETRAINED True)

    _C.INPUT = CN()
    _C.INPUT.HEIGHT = 512  # network input; images are letterboxed (aspect kept, zero padded)
    _C.INPUT.WIDTH = 512
    _C.INPUT.RESIZE = "letterbox"  # "letterbox" | "stretch"
    _C.INPUT.MASK_THRESHOLD = 0.5  # area-resized mask -> binary training target
    _C.INPUT.THIN_MASK_THRESHOLD = 0.25  # same for thin tasks (lines, spinous process) so they survive downsampling
    # CLAHE clip limit applied to every image at its own size before letterboxing, in training and
    # prediction (spine_det.data.seg_dataset.equalize_contrast); 0 = off. Evens out the display
    # processing of different X-ray systems (and of phantom vs real films: results/phantom/README.md).
    _C.INPUT.CLAHE = 0.0

    _C.AUG = CN()
    _C.AUG.ENABLED = True
    _C.AUG.HFLIP = 0.0  # probability; off by default (lateral views face one way)
    _C.AUG.ROTATE = 7.0  # degrees, uniform +-
    _C.AUG.SCALE = (0.9, 1.1)
    _C.AUG.SHIFT = 0.05  # fraction of the size
    _C.AUG.BRIGHTNESS = 0.15
    _C.AUG.CONTRAST = 0.15
    _C.AUG.GAMMA = (0.8, 1.25)
    # Domain randomisation of the imaging chain (a model trained on the phantom meets other X-ray systems):
    # per image, each with probability DR_PROB, a Gaussian blur (sigma up to BLUR px), noise (std up to
    # NOISE of full scale) and a local-contrast change (unsharp amount in +-UNSHARP). 0 switches one off.
    _C.AUG.DR_PROB = 0.5
    _C.AUG.BLUR = 1.5
    _C.AUG.NOISE = 0.04
    _C.AUG.UNSHARP = 0.6

    _C.LOSS = CN()
    _C.LOSS.NAME = "dice"  # "dice" (negative soft Dice, the report) | "bce_dice"
    _C.LOSS.SMOOTH = 1.0
    _C.LOSS.BCE_WEIGHT = 1.0

    _C.SOLVER = CN()
    _C.SOLVER.OPTIMIZER = "adam"  # "adam" | "adamw" | "sgd"
    _C.SOLVER.BASE_LR = 1e-3
    _C.SOLVER.WEIGHT_DECAY = 1e-4
    _C.SOLVER.MOMENTUM = 0.9
    _C.SOLVER.IMS_PER_BATCH = 8  # total over all processes
    _C.SOLVER.MAX_EPOCHS = 200
    _C.SOLVER.MAX_ITERS_PER_EPOCH = 0  # >0 caps an epoch (smoke tests)
    # >0: an epoch is this many images drawn from the training set (repeated when it is smaller), so
    # runs on 25 or 481 images get the same schedule. 0 = one pass over the training set.
    _C.SOLVER.EPOCH_IMAGES = 0
    # "plateau" (ReduceLROnPlateau on val Dice) | "cosine" | "none". --resume with another MAX_EPOCHS: the
    # cosine is planned again from the LR reached down to MIN_LR at the new MAX_EPOCHS, never back up
    # (spine_det.engine.linknet_trainer.continue_schedule).
    _C.SOLVER.SCHEDULER = "plateau"
    _C.SOLVER.PLATEAU_FACTOR = 0.5
    _C.SOLVER.PLATEAU_PATIENCE = 5
    _C.SOLVER.MIN_LR = 1e-6
    _C.SOLVER.AMP = True  # used on CUDA only
    _C.SOLVER.GRAD_CLIP = 0.0  # >0: clip grad norm

    _C.EARLY_STOP = CN()
    _C.EARLY_STOP.ENABLED = True
    _C.EARLY_STOP.PATIENCE = 20  # epochs without val Dice improving by MIN_DELTA
    _C.EARLY_STOP.MIN_DELTA = 1e-4

    _C.DATALOADER = CN()
    _C.DATALOADER.NUM_WORKERS = 2
    _C.DATALOADER.CACHE = True  # keep resized images/masks in memory (augmentation still random)
    # >0: train on a subset of this many training images, drawn with SEED and nested (one seed's 25
    # are among its 50; label-efficiency runs); the validation split is unchanged. 0 = all of them.
    _C.DATALOADER.TRAIN_SUBSET = 0

    _C.TEST = CN()
    _C.TEST.EVAL_PERIOD = 1  # epochs between validations
    _C.TEST.THRESHOLD = 0.5  # sigmoid probability -> mask
    # Prediction averages the probabilities of the image and of its mirror image (test-time flip): for
    # AP views, whose mirror is as plausible a film. Twice the inference time; validation during
    # training (checkpoint choice) does not flip.
    _C.TEST.HFLIP = False
    _C.TEST.SPLIT = "test"
    _C.TEST.IMS_PER_BATCH = 4

    _C.OUTPUT_DIR = "./output/linknet/{tasks}"  # {tasks}: the task, or <view>_all (finalize_spine_config)
    _C.SEED = 0


def get_classifier_cfg() -> CN:
    """A fresh copy of the classifier defaults (ResNet50, one model per view)."""
    _C = CN()
    _C.VERSION = 1
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
    #   of the manifest) with seed DATA.SEED, PER_CLASS patients of each label, capped so that at least
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

    _C.DATA = CN()
    _C.DATA.ROOT = ""
    _C.DATA.CACHE_DIR = ""
    _C.DATA.SEED = 0

    _C.OUTPUT_DIR = "./output/classifier"
    _C.SEED = 0
    return _C


def profile_files(config_file: Optional[str | Path], profile: Optional[str],
                  profile_dir: Optional[Path] = None) -> List[Path]:
    """The profile YAMLs (:mod:`spine_det.config.profiles`: beside the config, else in ``profile_dir``)."""
    return _profile_files(config_file, profile, profile_dir)


def load_cfg(
    base: CN,
    config_file: Optional[str] = None,
    profile: Optional[str] = None,
    opts: Optional[Sequence[str]] = None,
    profile_dir: Optional[Path] = None,
) -> CN:
    """defaults <- config file <- profile YAML <- task's profile YAML <- KEY VALUE opts <- derived keys;
    frozen (``profile`` as in :func:`profile_files`)."""
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


def tasks_of(cfg: CN) -> List[str]:
    """Validated task list of a LinkNet config (all of one view)."""
    return validate_tasks(cfg)


def linknet_profile_files(config_file: Optional[str | Path], profile: Optional[str]) -> List[Path]:
    """Profile YAMLs of a LinkNet config: beside it, else the shipped ``configs/linknet/profiles``."""
    return _profile_files(config_file, profile, shipped_config("linknet/profiles"))


def load_linknet_config(config_file: Optional[str | Path] = None, profile: Optional[str] = "full",
                        opts: Sequence[str] = (), data_root: Optional[str | Path] = None) -> CN:
    """The one LinkNet load chain (``spine_det.tools.train_linknet``, the predictor, the benchmark):
    defaults <- config file <- profile <- ``data_root`` <- opts <- derived keys; frozen."""
    pre = ["SPINE.DATA_ROOT", str(data_root)] if data_root else []
    return load_cfg(get_linknet_cfg(), str(config_file) if config_file else None, profile, [*pre, *opts],
                    profile_dir=shipped_config("linknet/profiles"))

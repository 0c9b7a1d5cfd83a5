"""The semantic-segmentation config: LinkNet and the smp networks (``add_semseg_config``).

One config for every network of :data:`spine_det.modeling.semseg.SEG_MODEL_REGISTRY` (``MODEL.NAME``:
``linknet``, ``smp_unet``, ...), trained by :mod:`spine_det.engine.semseg_trainer` and predicted by
:class:`spine_det.engine.semseg_predictor.SemSegPredictor`. Same system as the Mask R-CNN configs: a CfgNode
gets the shared ``SPINE`` data keys (:func:`spine_det.config.common.add_spine_data_config`) and the
family's own keys, a YAML names ``_BASE_`` (resolved next to the YAML) and overrides keys, ``--profile``
merges by the one profile rule (:mod:`spine_det.config.profiles`), command-line ``KEY VALUE`` pairs come
last, and :func:`spine_det.config.common.finalize_spine_config` derives what the tasks imply
(:func:`spine_det.config.loading.load_cfg`). The shipped task configs are ``configs/linknet/<task>.yaml``
(LinkNet) and ``configs/smp/<task>.yaml``; both use the profiles of ``configs/linknet/profiles``.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

from fvcore.common.config import CfgNode as CN

from spine_det.config.common import add_spine_data_config, shipped_config, validate_tasks
from spine_det.config.loading import load_cfg
from spine_det.config.profiles import profile_files

__all__ = ["PROFILE_DIR", "add_semseg_config", "get_semseg_cfg", "load_semseg_config", "semseg_profile_files", "tasks_of"]

PROFILE_DIR = "linknet/profiles"  # the shipped profiles of every segmentation network (a config path users know)


def get_semseg_cfg() -> CN:
    """A fresh copy of the segmentation defaults (LinkNet, the report's recipe, GPU-sized)."""
    cfg = CN()
    cfg.VERSION = 1
    add_spine_data_config(cfg)
    # one task, or several tasks of ONE view (multi-label, one sigmoid each)
    cfg.SPINE.TASKS = ["lat_vertebra"]
    add_semseg_config(cfg)
    return cfg


def add_semseg_config(_C: CN) -> None:
    """Add the segmentation networks' own keys (MODEL, INPUT, AUG, LOSS, SOLVER, EARLY_STOP, DATALOADER, TEST, OUTPUT_DIR, SEED)."""
    _C.MODEL = CN()
    _C.MODEL.NAME = "linknet"  # key of spine_det.modeling.semseg.SEG_MODEL_REGISTRY
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
    _C.AUG.HFLIP = 0.0  # probability; the LAT task configs set 0.5 (real lateral films face either way)
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
    # (spine_det.engine.solver.continue_schedule).
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




def tasks_of(cfg: CN) -> List[str]:
    """Validated task list of a segmentation config (all of one view)."""
    return validate_tasks(cfg)


def semseg_profile_files(config_file: Optional[str | Path], profile: Optional[str]) -> List[Path]:
    """Profile YAMLs of a segmentation config: beside it, else the shipped ``configs/linknet/profiles``."""
    return profile_files(config_file, profile, shipped_config(PROFILE_DIR))


def load_semseg_config(config_file: Optional[str | Path] = None, profile: Optional[str] = "full",
                       opts: Sequence[str] = (), data_root: Optional[str | Path] = None) -> CN:
    """The one segmentation load chain (``spine-det train-linknet``, the predictor, the benchmark):
    defaults <- config file <- profile <- ``data_root`` <- opts <- derived keys; frozen."""
    pre = ["SPINE.DATA_ROOT", str(data_root)] if data_root else []
    return load_cfg(get_semseg_cfg(), str(config_file) if config_file else None, profile, [*pre, *opts],
                    profile_dir=shipped_config(PROFILE_DIR))

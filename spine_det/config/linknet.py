"""Default configs of the LinkNet baseline and the Normal/Damaged classifier.

Same style as the Mask R-CNN configs: a YAML names ``_BASE_`` (resolved next
to the YAML) and overrides keys; command-line ``KEY VALUE`` pairs come last.
``--profile cpu`` merges ``configs/<family>/profiles/cpu.yaml`` in between.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

from fvcore.common.config import CfgNode as CN

from spine_det.config.profiles import task_profile_file

__all__ = ["get_linknet_cfg", "get_classifier_cfg", "load_cfg", "profile_files", "CN"]


def get_linknet_cfg() -> CN:
    """A fresh copy of the LinkNet defaults (the report's recipe, GPU-sized)."""
    _C = CN()
    _C.VERSION = 1
    _C.TASKS = ["lat_vertebra"]  # one task, or several tasks of ONE view (multi-label, one sigmoid each)

    _C.MODEL = CN()
    _C.MODEL.NAME = "linknet"  # key of SEG_MODEL_REGISTRY
    _C.MODEL.IN_CHANNELS = 1  # 1: grey, ImageNet first conv summed over RGB; 3: grey replicated
    _C.MODEL.PRETRAINED = True  # ImageNet encoder when downloadable, else random init (logged)
    _C.MODEL.DEVICE = "auto"  # "auto" | "cpu" | "cuda" | "cuda:1"
    _C.MODEL.WEIGHTS = ""  # checkpoint for --eval-only / prediction; "" = OUTPUT_DIR/model_best.pth
    # LinkNet checkpoint to start training from (e.g. one trained on the phantom: pre-training without
    # downloads); "" = random init or MODEL.PRETRAINED's ImageNet encoder. Ignored when --resume resumes.
    _C.MODEL.INIT_WEIGHTS = ""

    _C.INPUT = CN()
    _C.INPUT.HEIGHT = 512  # network input; images are letterboxed (aspect kept, zero padded)
    _C.INPUT.WIDTH = 512
    _C.INPUT.RESIZE = "letterbox"  # "letterbox" | "stretch"
    _C.INPUT.MASK_THRESHOLD = 0.5  # area-resized mask -> binary training target
    _C.INPUT.THIN_MASK_THRESHOLD = 0.25  # same for thin tasks (lines, spinous process) so they survive downsampling

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
    _C.SOLVER.SCHEDULER = "plateau"  # "plateau" (ReduceLROnPlateau on val Dice) | "cosine" | "none"
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

    _C.TEST = CN()
    _C.TEST.EVAL_PERIOD = 1  # epochs between validations
    _C.TEST.THRESHOLD = 0.5  # sigmoid probability -> mask
    _C.TEST.SPLIT = "test"
    _C.TEST.IMS_PER_BATCH = 4

    _C.DATA = CN()
    _C.DATA.ROOT = ""  # set by --data-root
    _C.DATA.CACHE_DIR = ""  # "" = spine_det.data.prepare.default_cache_dir
    _C.DATA.SEED = 0  # split seed (manifest)

    _C.OUTPUT_DIR = "./output/linknet"
    _C.SEED = 0
    return _C


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

    _C.SOLVER = CN()
    _C.SOLVER.OPTIMIZER = "adamw"
    _C.SOLVER.BASE_LR = 3e-4
    _C.SOLVER.WEIGHT_DECAY = 1e-4
    _C.SOLVER.MOMENTUM = 0.9
    _C.SOLVER.IMS_PER_BATCH = 16
    _C.SOLVER.MAX_EPOCHS = 30
    _C.SOLVER.SCHEDULER = "cosine"  # "cosine" | "plateau" | "none"
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
    """The YAML files ``profile`` merges, in order: the profile, then the task's own
    ``<profile>/<config stem>.yaml`` if there is one. ``profile`` is a name (``cpu``) looked up in
    ``profile_dir`` (default: the ``profiles/`` folder beside ``config_file``) or a path to a YAML file."""
    if not profile:
        return []
    p = Path(profile)
    if not p.suffix:
        folder = profile_dir or (Path(config_file).parent / "profiles" if config_file else None)
        if folder is None:
            raise ValueError(f"profile {profile!r} needs a config file or a profile folder")
        p = Path(folder) / f"{profile}.yaml"
    if not p.is_file():
        raise FileNotFoundError(f"profile not found: {p}")
    task_p = task_profile_file(p, config_file) if config_file else None
    return [p] if task_p is None else [p, task_p]


def load_cfg(
    base: CN,
    config_file: Optional[str] = None,
    profile: Optional[str] = None,
    opts: Optional[Sequence[str]] = None,
    profile_dir: Optional[Path] = None,
) -> CN:
    """defaults <- config file <- profile YAML <- task's profile YAML <- KEY VALUE opts; frozen
    (``profile`` as in :func:`profile_files`)."""
    from spine_det.config.safe import merge_from_file, merge_from_list

    cfg = base.clone()
    if config_file:
        merge_from_file(cfg, config_file)  # safe YAML only; one-line ConfigError
    for p in profile_files(config_file, profile, profile_dir):
        merge_from_file(cfg, p)
    if opts:
        merge_from_list(cfg, opts)
    cfg.freeze()
    return cfg


def dump_cfg(cfg: CN) -> str:
    return cfg.dump()


def tasks_of(cfg: CN) -> List[str]:
    """Validated task list of a LinkNet config (all of one view)."""
    from spine_det.tasks import get_task

    tasks = [get_task(t).name for t in cfg.TASKS]
    if not tasks:
        raise ValueError("TASKS is empty")
    views = {get_task(t).view for t in tasks}
    if len(views) != 1:
        raise ValueError(f"TASKS must all be of one view, got {sorted(views)}")
    return tasks


def linknet_profile_files(config_file: Optional[str | Path], profile: Optional[str]) -> List[Path]:
    """Profile YAMLs of a LinkNet config (``full``/empty: none), shipped ``configs/linknet/profiles`` as fallback."""
    if not profile or profile == "full":
        return []
    beside = Path(config_file).parent / "profiles" if config_file else None
    if beside is None or not (beside / f"{profile}.yaml").is_file():
        from spine_det import CONFIG_DIR

        beside = CONFIG_DIR / "linknet" / "profiles"
    return profile_files(config_file, profile, beside)


def load_linknet_config(config_file: Optional[str | Path] = None, profile: Optional[str] = "full",
                        opts: Sequence[str] = ()) -> CN:
    """defaults <- config file <- profile <- opts, as ``spine_det.tools.train_linknet`` builds it (frozen)."""
    from spine_det.config.safe import merge_from_file, merge_from_list

    cfg = get_linknet_cfg()
    if config_file:
        merge_from_file(cfg, config_file)
    for p in linknet_profile_files(config_file, profile):
        merge_from_file(cfg, p)
    if opts:
        merge_from_list(cfg, list(opts))
    cfg.freeze()
    return cfg

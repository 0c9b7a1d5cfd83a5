"""Detectron2 Mask R-CNN as a model family.

Trained by ``spine_det.tools.train_net`` (Detectron2's ``DefaultTrainer``, ``metrics.json``); predicts
with :class:`spine_det.engine.predictor.MaskRCNNPredictor` (instances with score >= threshold, pasted).
With ``--maskrcnn-init linknet`` the benchmark starts its R18 backbone from the LinkNet of the same
task and seed (:func:`linknet_init_opts`); with ``--maskrcnn-init PATH`` the whole network from another
Mask R-CNN checkpoint of the same architecture, e.g. one trained on the phantom (:func:`checkpoint_init_opts`):
the package's own substitute for COCO weights on machines that cannot download them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, List, Tuple

from spine_det.modeling.families._common import DETECTRON2_CURVES, shipped_config
from spine_det.modeling.registry import MODEL_FAMILIES, BenchmarkAdapter, ModelFamily, unit_dir
from spine_det.utils.fileio import file_sha1

KEY = "maskrcnn"
INIT_FAMILY = "linknet"  # the family whose checkpoint --maskrcnn-init linknet starts from


def recognizes(data: Any) -> bool:
    """Detectron2's GeneralizedRCNN state dict (``backbone.``, ``roi_heads.``, ``proposal_generator.``)."""
    if not isinstance(data, dict) or ("view" in data and "backbone" in data):
        return False
    state = data.get("model", data)
    return isinstance(state, dict) and any(
        str(k).startswith(("backbone.", "roi_heads.", "proposal_generator.")) for k in state)


def eval_opts(out_dir: Path) -> List[str]:
    """--eval-only scores whichever checkpoint the unit is judged by (best, else final), on test."""
    best, final = Path(out_dir) / "model_best.pth", Path(out_dir) / "model_final.pth"
    weights = best if best.is_file() or not final.is_file() else final
    return ["MODEL.WEIGHTS", str(weights), "SPINE.EVAL.SPLITS", "('test',)"]


def linknet_init_opts(runs_dir: Path, task: str, seed: int) -> List[str]:
    """Opts that start the R18 backbone from this benchmark's LinkNet of the same task and seed
    (spine_det.modeling.backbone_init): MODEL.WEIGHTS, FrozenBN, LinkNet's pixel statistics. The
    checkpoint's hash goes in too, so a retrained LinkNet retrains the Mask R-CNN that started from it."""
    from spine_det.modeling.backbone_init import linknet_pixel_stats

    ck = unit_dir(runs_dir, INIT_FAMILY, task, seed) / "model_best.pth"
    if not ck.is_file():
        raise FileNotFoundError(f"Mask R-CNN from LinkNet: {ck} is missing (the LinkNet unit of {task} failed or was "
                                f"skipped)")
    mean, std = linknet_pixel_stats()
    return ["MODEL.WEIGHTS", str(ck), "MODEL.RESNETS.NORM", "FrozenBN",
            "MODEL.PIXEL_MEAN", str([round(v, 4) for v in mean]), "MODEL.PIXEL_STD", str([round(v, 4) for v in std]),
            "SPINE.INIT_CHECKPOINT_SHA1", file_sha1(ck)[:12]]


def checkpoint_init_opts(checkpoint: Path) -> List[str]:
    """Opts that start every layer from another Mask R-CNN checkpoint of the same architecture (e.g. the
    benchmark's phantom-trained unit): MODEL.WEIGHTS, every backbone stage trained (FREEZE_AT 0, as from
    random init), and the checkpoint's hash, so that a retrained starting point retrains this unit.
    A file that is not a Mask R-CNN state dict is refused here, before anything trains."""
    import torch

    ck = Path(checkpoint).expanduser().resolve()
    if not ck.is_file():
        raise FileNotFoundError(f"--maskrcnn-init: checkpoint not found: {ck}")
    if not recognizes(torch.load(ck, map_location="cpu", weights_only=True)):
        raise ValueError(f"--maskrcnn-init: {ck} is not a Detectron2 Mask R-CNN checkpoint (no backbone./roi_heads. "
                         f"weights); give 'linknet' to start from a LinkNet")
    return ["MODEL.WEIGHTS", str(ck), "MODEL.BACKBONE.FREEZE_AT", "0", "SPINE.INIT_CHECKPOINT_SHA1", file_sha1(ck)[:12]]


def init_choice(value: str) -> str:
    """``--maskrcnn-init``'s value: 'config', 'linknet' or an existing checkpoint file (resolved), else a
    one-line argparse error."""
    import argparse

    if value in ("config", INIT_FAMILY):
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"expected 'config', '{INIT_FAMILY}' or a Mask R-CNN checkpoint file; "
                                         f"not found: {value}")
    return str(path.resolve())


def benchmark_args(group: Any) -> None:
    group.add_argument("--maskrcnn-init", default="config", type=init_choice, metavar="{config,linknet,PATH}",
                       help="Mask R-CNN's starting weights: as its config says (default; the cpu profile: random "
                            "init); 'linknet': its ResNet18 backbone from this benchmark's LinkNet of the same "
                            "task (trained first); or PATH: every layer from a Mask R-CNN checkpoint of the same "
                            "architecture, e.g. runs/maskrcnn/ap_vertebra/model_best.pth of a benchmark on the "
                            "phantom (pre-training without downloads; results/aasce/)")


def _init(options: Any) -> str:
    return (getattr(options, "family_args", None) or {}).get("maskrcnn_init", "config")


def plan_opts(runs_dir: Path, task: str, seed: int, options: Any) -> List[str]:
    init = _init(options)
    if init == INIT_FAMILY:
        return linknet_init_opts(runs_dir, task, seed)
    return [] if init == "config" else checkpoint_init_opts(Path(init))


def header_note(options: Any) -> Tuple[str, str]:
    """The results header's line on where Mask R-CNN's weights came from."""
    init = _init(options)
    if init == INIT_FAMILY:
        return ("Mask R-CNN weights", "backbone from this benchmark's LinkNet of the same task (--maskrcnn-init linknet)")
    if init != "config":
        return ("Mask R-CNN weights", f"every layer from the Mask R-CNN checkpoint {Path(init).name} "
                                      f"(sha1 {file_sha1(Path(init))[:12]}; --maskrcnn-init PATH)")
    return ("Mask R-CNN weights", "as configured (cpu profile: random init)")


DETECTRON2_MISSING = "detectron2 is not installed: spine-det install-detectron2 (or see the README's install section)"


@MODEL_FAMILIES.register()
class MaskRCNNFamily(ModelFamily):
    """Detectron2 Mask R-CNN (R50-FPN from COCO; the cpu profile: R18-FPN-GN from random init)"""

    key = KEY
    label = "Mask R-CNN"
    order = 20
    trainer = "spine_det.tools.train_net:main"
    predictor = "spine_det.engine.predictor:MaskRCNNPredictor"
    load_config = "spine_det.config.maskrcnn:load_maskrcnn_config"
    checkpoints = ("model_best.pth", "model_final.pth")
    other_checkpoint_suffixes = (".pkl",)  # Detectron2 model-zoo weights
    instance_masks = True
    recognizes = staticmethod(recognizes)
    requires = {"detectron2": DETECTRON2_MISSING}
    benchmark = BenchmarkAdapter(
        plan_opts=plan_opts, eval_opts=eval_opts, done_markers=("model_final.pth",),
        profile_files="spine_det.config.maskrcnn:profile_files", benchmark_args=benchmark_args,
        header_note=header_note, read_curves=DETECTRON2_CURVES,
        train_memory="spine_det.benchmark.curves:detectron2_max_mem")

    def config_file(self, task: str) -> Path:
        return shipped_config(f"{task}.yaml")

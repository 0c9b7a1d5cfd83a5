"""LinkNet (ResNet18 encoder, the report's baseline) as a model family.

Trained by ``spine_det.tools.train_linknet`` (epochs, early stopping, ``metrics.jsonl``); predicts with
:class:`spine_det.engine.linknet_predictor.LinkNetPredictor` (letterboxed input, sigmoid per task).
Declarative: the parts are named as ``"module:attr"`` and imported only when used.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from spine_det.modeling.families._common import shipped_config
from spine_det.modeling.registry import MODEL_FAMILIES, ModelSpec, resolve

KEY = "linknet"


def recognizes(data: Any) -> bool:
    """The LinkNet trainer stores its network's name and its config text beside the weights; a network
    another family registers under its own key (smp's ``smp_unet`` ...) is that family's."""
    if not (isinstance(data, dict) and "model_name" in data and "cfg" in data):
        return False
    from spine_det.modeling.registry import family_keys

    return data["model_name"] == KEY or data["model_name"] not in family_keys()


def config_file(task: str) -> Path:
    return shipped_config(f"linknet/{task}.yaml")


SPEC = MODEL_FAMILIES.register(ModelSpec(
    key=KEY,
    label="LinkNet",
    description="LinkNet with a ResNet18 encoder, soft-Dice loss, one sigmoid per task (the report's baseline)",
    train_module="spine_det.tools.train_linknet",
    config_file=config_file,
    predictor="spine_det.engine.linknet_predictor:LinkNetPredictor",
    load_config="spine_det.config.linknet:load_linknet_config",
    profile_files="spine_det.config.linknet:linknet_profile_files",
    recognizes=recognizes,
    checkpoints=("model_best.pth",),
    read_curves="spine_det.benchmark.curves:epoch_curves",
    order=10,
), replace=True)


# The readers as functions, for families that reuse LinkNet's trainer and predictor (first interface);
# a new spec names them instead: read_curves="spine_det.benchmark.curves:epoch_curves", flops=None.
def read_curves(out_dir: Any, task: str, n_train: int) -> Any:
    return resolve(SPEC.read_curves)(out_dir, task, n_train)


def flops(predictor: Any, image: Any) -> Any:
    module, inputs = predictor.flop_count_inputs(image)
    return resolve("spine_det.benchmark.cost:gflops")(module, inputs)


def network_input(predictor: Any, image: Any) -> Any:
    return [int(predictor.cfg.INPUT.HEIGHT), int(predictor.cfg.INPUT.WIDTH)]

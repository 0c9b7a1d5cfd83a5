"""LinkNet (ResNet18 encoder, the report's baseline) as a model family.

One network of the segmentation registry (:mod:`spine_det.modeling.semseg`), as each smp network is: the
network is :mod:`spine_det.modeling.linknet` (put into the registry by its ``register_networks`` hook),
trained by ``spine-det train-linknet`` (:mod:`spine_det.engine.semseg_trainer`: epochs, early stopping)
and predicted by :class:`spine_det.engine.semseg_predictor.SemSegPredictor` (letterboxed input, sigmoid
per task).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from spine_det.modeling.families._common import EPOCH_CURVES, shipped_config
from spine_det.modeling.registry import MODEL_FAMILIES, BenchmarkAdapter, ModelFamily, family_keys

KEY = "linknet"


def recognizes(data: Any) -> bool:
    """The LinkNet trainer stores its network's name and its config text beside the weights; a network
    another family registers under its own key (smp's ``smp_unet`` ...) is that family's."""
    if not (isinstance(data, dict) and "model_name" in data and "cfg" in data):
        return False
    return data["model_name"] == KEY or data["model_name"] not in family_keys()


@MODEL_FAMILIES.register()
class LinkNetFamily(ModelFamily):
    """LinkNet with a ResNet18 encoder, soft-Dice loss, one sigmoid per task (the report's baseline)"""

    key = KEY
    label = "LinkNet"
    order = 10
    trainer = "spine_det.tools.train_linknet:main"
    predictor = "spine_det.engine.semseg_predictor:SemSegPredictor"
    load_config = "spine_det.config.semseg:load_semseg_config"
    recognizes = staticmethod(recognizes)
    # its network, one entry of the segmentation registry as each smp network is
    extra = {"register_networks": "spine_det.modeling.linknet:register_networks"}
    benchmark = BenchmarkAdapter(profile_files="spine_det.config.semseg:semseg_profile_files",
                                 read_curves=EPOCH_CURVES)

    def config_file(self, task: str) -> Path:
        return shipped_config(f"linknet/{task}.yaml")

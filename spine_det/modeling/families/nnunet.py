"""nnU-Net v2 (Isensee et al., Nature Methods 2021) as a model family: the self-configuring baseline.

Trained by ``spine_det.tools.train_nnunet``: the task exported to nnU-Net's raw 2-D PNG format (the
manifest's train/val split as fold 0), planned and preprocessed through nnunetv2's API, the stock
``nnUNetTrainer`` run for ``NNUNET.EPOCHS`` x ``NNUNET.ITERS_PER_EPOCH`` (nnU-Net's 1000 x 250 by
default; the cpu profile is a smoke schedule), test images predicted and scored with the package's
metrics (:mod:`spine_det.engine.nnunet`). ``model_final.pth`` in the run folder links to nnU-Net's
final checkpoint. Needs ``pip install 'spine_det[nnunet]'``; without it the family is listed, its
config builds, and predicting or training says what to install.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Optional

from spine_det.modeling.families._common import EPOCH_CURVES, shipped_config
from spine_det.modeling.registry import MODEL_FAMILIES, BenchmarkAdapter, ModelFamily

KEY = "nnunet"
INSTALL_HINT = "nnU-Net v2 is not installed: pip install 'spine_det[nnunet]' (or: pip install nnunetv2)"


def available() -> Optional[str]:
    return None if importlib.util.find_spec("nnunetv2") is not None else INSTALL_HINT


def recognizes(data: Any) -> bool:
    """nnU-Net v2 checkpoints hold its trainer's name, init arguments and network weights."""
    return isinstance(data, dict) and {"network_weights", "init_args", "trainer_name"} <= set(data)


def config_file(task: str) -> Path:
    return shipped_config(f"nnunet/{task}.yaml")


@MODEL_FAMILIES.register()
class NNUNetFamily(ModelFamily):
    """nnU-Net v2, self-configuring U-Net (2d configuration, nnUNetTrainer; cpu profile: a short schedule)"""

    key = KEY
    label = "nnU-Net v2"
    order = 40
    trainer = "spine_det.tools.train_nnunet:main"
    predictor = "spine_det.engine.nnunet:NNUNetPredictor"
    load_config = "spine_det.config.nnunet:load_nnunet_config"
    checkpoints = ("model_final.pth",)
    recognizes = staticmethod(recognizes)
    config_file = staticmethod(config_file)
    requires = {"nnunetv2": INSTALL_HINT}
    benchmark = BenchmarkAdapter(
        default=False,  # a long self-configuring baseline: run with --models
        done_markers=("model_final.pth",), profile_files="spine_det.config.nnunet:nnunet_profile_files",
        read_curves=EPOCH_CURVES)

"""Vertebra landmarks (CenterNet-style centre heatmap + corner offsets) as a model family.

The network is :mod:`spine_det.modeling.landmark_net` (LinkNet's ResNet18 encoder, stride-4 heads), the
targets and their decoding :mod:`spine_det.modeling.landmark_targets`; trained by ``spine-det
train-landmark`` (:mod:`spine_det.engine.landmark_trainer`, on the one epoch engine: validation Dice of the
drawn quadrilaterals, best checkpoint, early stopping) and predicted by
:class:`spine_det.engine.landmark_predictor.LandmarkPredictor`: up to 17 quadrilaterals, each drawn as an
instance mask, so the evaluator scores it as it scores Mask R-CNN, and each with its corners, which the
Cobb route takes as they are. It learns the vertebra tasks only (``ap_vertebra``, ``lat_vertebra``):
their ground truth has four corners per vertebra (AASCE ``landmarks.json``, the phantom's
``ground_truth.json``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from spine_det.modeling.families._common import EPOCH_CURVES, shipped_config
from spine_det.modeling.registry import MODEL_FAMILIES, BenchmarkAdapter, ModelFamily

KEY = "landmark"
TASKS = ("ap_vertebra", "lat_vertebra")  # tasks with corners in their ground truth


def recognizes(data: Any) -> bool:
    """The landmark trainer stores ``model_name`` "landmark" and its config text beside the weights."""
    return isinstance(data, dict) and "cfg" in data and data.get("model_name") == KEY


def config_file(task: str) -> Path:
    if task not in TASKS:
        raise FileNotFoundError(f"the landmark family learns {' and '.join(TASKS)} (vertebra corners), not {task}")
    return shipped_config(f"landmark/{task}.yaml")


@MODEL_FAMILIES.register()
class LandmarkFamily(ModelFamily):
    """Vertebra landmarks: ResNet18 centre heatmap + corner offsets (CenterNet-style), up to 17 quadrilaterals
    drawn as instance masks; vertebra tasks only"""

    key = KEY
    label = "Landmarks"
    order = 25
    tasks = TASKS
    trainer = "spine_det.tools.train_landmark:main"
    predictor = "spine_det.engine.landmark_predictor:LandmarkPredictor"
    load_config = "spine_det.config.landmark:load_landmark_config"
    instance_masks = True
    recognizes = staticmethod(recognizes)
    config_file = staticmethod(config_file)
    benchmark = BenchmarkAdapter(
        default=False,  # vertebra tasks only: run with --models landmark --tasks ap_vertebra
        profile_files="spine_det.config.landmark:landmark_profile_files", read_curves=EPOCH_CURVES)

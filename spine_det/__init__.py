"""spine_det: spine X-ray segmentation with Detectron2 Mask R-CNN, a LinkNet baseline and a
ResNet50 Normal/Damaged classifier, compared on the same images with the same metrics.

The public Python API is :class:`spine_det.Predictor` (``spine_det.api``); the tools are
``spine-det <command>`` (``spine_det.tools``). Modules that import Detectron2 import
:mod:`spine_det.compat` first.
"""
import importlib
from pathlib import Path

from spine_det.version import __version__  # the one place of the version

__all__ = ["Predictor", "Prediction", "Instances", "__version__"]

# The source checkout (tools/ lives there); not part of an installed package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Names imported on first use, so that `import spine_det` loads neither torch nor Detectron2.
_LAZY = {"Predictor": "spine_det.api", "Prediction": "spine_det.api", "Instances": "spine_det.api"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "CONFIG_DIR":  # the shipped configs (checkout and installs alike); spine_det.config loads Pillow
        from spine_det.config.paths import config_dir

        return config_dir()
    raise AttributeError(f"module 'spine_det' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY, "CONFIG_DIR"])

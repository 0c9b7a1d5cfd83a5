"""spine_det: spine X-ray segmentation with Detectron2 Mask R-CNN, a LinkNet baseline and a
ResNet50 Normal/Damaged classifier, compared on the same images with the same metrics.

Modules that import Detectron2 import :mod:`spine_det.compat` first.
"""
from pathlib import Path

__version__ = "0.1.0"

# configs/ sits beside the package in a source checkout (the supported install is editable).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "configs"

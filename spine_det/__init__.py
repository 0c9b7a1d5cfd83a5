"""spine_det: spine X-ray segmentation with Detectron2 Mask R-CNN, a LinkNet baseline and a
ResNet50 Normal/Damaged classifier, compared on the same images with the same metrics.

Modules that import Detectron2 import :mod:`spine_det.compat` first.
"""
from pathlib import Path

__version__ = "0.1.0"

# The source checkout (tools/ lives there); not part of an installed package.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def __getattr__(name: str):
    # CONFIG_DIR: the shipped configs, found by spine_det.config.paths (checkout and installs alike);
    # computed on first use so that `import spine_det` stays light.
    if name == "CONFIG_DIR":
        from spine_det.config.paths import config_dir

        return config_dir()
    raise AttributeError(f"module 'spine_det' has no attribute {name!r}")

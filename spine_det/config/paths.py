"""Where the shipped configs are, in a source checkout and in an installed package alike.

``configs/`` stays at the top of the repository (``tools/train_net.py --config-file
configs/lat_vertebra.yaml`` keeps working from a checkout) and setup.py installs the same folder as
``spine_det/configs``. Every place that needs a shipped config asks :func:`resolve_config_file`, so
no code builds ``<repo>/configs/...`` itself and a non-editable ``pip install .`` finds them too.
"""
from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import List, Union

# A file every configs folder has: tells the shipped configs from any other folder named "configs".
_MARKER = "Base-SpineMaskRCNN.yaml"


@lru_cache(maxsize=None)
def config_dir() -> Path:
    """The folder of the shipped configs.

    Looked up in order: ``spine_det/configs`` (a non-editable install), ``configs/`` beside the
    package (a source checkout or an editable install), then wherever the import system maps
    ``spine_det.configs`` (setuptools' editable finder)."""
    package = Path(__file__).resolve().parents[1]
    candidates: List[Path] = [package / "configs", package.parent / "configs"]
    try:
        spec = importlib.util.find_spec("spine_det.configs")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) for p in spec.submodule_search_locations]
    for folder in candidates:
        if (folder / _MARKER).is_file():
            return folder.resolve()
    raise FileNotFoundError(f"spine_det's configs not found (looked in {', '.join(map(str, candidates))}); "
                            "reinstall the package")


def resolve_config_file(name_or_path: Union[str, os.PathLike]) -> Path:
    """The config file ``name_or_path`` names, as an absolute path.

    A path to an existing file wins (``my/exp.yaml``, ``configs/lat_vertebra.yaml`` from a
    checkout). Otherwise it is read as a name relative to the shipped configs: ``"lat_vertebra.yaml"``,
    ``"linknet/ap_vertebra.yaml"``, ``"configs/linknet/ap_vertebra.yaml"`` (the checkout spelling, so
    the same command line works outside the repository) or without ``.yaml``. Raises
    :class:`FileNotFoundError` in one line when neither exists."""
    raw = Path(name_or_path).expanduser()
    if raw.is_file():
        return raw.resolve()
    if raw.is_absolute():
        raise FileNotFoundError(f"config file not found: {raw}")
    parts = raw.parts
    rel = Path(*parts[1:]) if len(parts) > 1 and parts[0] == "configs" else raw
    root = config_dir()
    for cand in (root / rel, root / rel.with_name(rel.name + ".yaml")):
        if cand.is_file():
            return cand.resolve()
    raise FileNotFoundError(f"config file not found: {name_or_path} (neither a file nor a config shipped in {root})")

"""Helpers shared by family modules (not a family: modules starting with ``_`` are not loaded as one)."""
from __future__ import annotations

from pathlib import Path


def shipped_config(name: str) -> Path:
    """A config shipped with the package (``"linknet/lat_vertebra.yaml"``) as a path."""
    try:
        from spine_det.config.paths import resolve_config_file
    except ImportError:  # before the shipped-configs resolver existed
        from spine_det import CONFIG_DIR

        return CONFIG_DIR / name
    return Path(resolve_config_file(name))

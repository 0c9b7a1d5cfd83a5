"""Helpers for family modules (not a family: modules starting with ``_`` are not loaded as one)."""
from __future__ import annotations

from pathlib import Path

from spine_det.modeling.registry import resolve

# The readers of the training tools' logs, by format (spine_det.benchmark.curves): epochs or iterations.
EPOCH_CURVES = "spine_det.benchmark.curves:epoch_curves"
DETECTRON2_CURVES = "spine_det.benchmark.curves:detectron2_curves"


def shipped_config(name: str) -> Path:
    """A config shipped with the package (``"smp/lat_vertebra.yaml"``) as a path. A family's
    ``config_file`` may return the name itself instead: the benchmark resolves it."""
    return resolve("spine_det.config.paths:resolve_config_file")(name)

"""Helpers shared by family modules (not a family: modules starting with ``_`` are not loaded as one)."""
from spine_det.config.common import shipped_config  # noqa: F401  (configs/<name> as a path)

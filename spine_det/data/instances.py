"""What one Mask R-CNN *instance* is, per task: a registry of instance definitions.

A binary task mask becomes COCO instances when it is converted (``spine_det.data.coco``, encoded by
``spine_det.data.rle``).
For vertebrae a connected component is the natural instance; for a 2000-px-long,
2-px-wide vertebral line it is not: one component gives a box as tall as the spine
that the 28×28/56×56 mask head must fill with a 1-px curve. A definition maps a
mask to a list of instance masks whose union is the mask *exactly* (no pixel
added or lost), so the semantic ground truth never changes.

Definitions (``spec`` strings, ``name`` or ``name:N``):

* ``components`` – each 8-connected component (the default, as before);
* ``whole`` – the whole mask as one instance (broken lines stay one object);
* ``per_level[:N]`` – the mask cut at ``N - 1`` y positions into ``N`` horizontal
  bands of equal height over its row range (default 9 ≈ the annotated levels
  T10–L5): one short, nearly vertical piece per vertebral level.

Config: ``SPINE.INSTANCES.LINE`` (tasks ``*_line``), ``SPINE.INSTANCES.SPINOUS_PROCESS``
(tasks ``*_spinous_process``), ``SPINE.INSTANCES.OTHER`` and ``SPINE.INSTANCES.LEVELS``.
"""
from __future__ import annotations

import hashlib
import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence

import cv2
import numpy as np
from fvcore.common.registry import Registry

from spine_det.data.rle import mask_to_instances, piece_to_instance

logger = logging.getLogger(__name__)

INSTANCE_DEFINITION_REGISTRY = Registry("INSTANCE_DEFINITION")
INSTANCE_DEFINITION_REGISTRY.__doc__ = """
Registry of instance definitions: ``fn(mask: bool ndarray, param: Optional[int]) -> list of bool masks``
whose union equals ``mask`` exactly and which do not overlap.
"""

DEFAULT_DEFINITION = "components"
DEFAULT_LEVELS = 9  # annotated levels T10..L5


def parse_spec(spec: str) -> tuple:
    """``"per_level:9"`` -> ``("per_level", 9)``; ``"whole"`` -> ``("whole", None)``; checks the name."""
    name, _, arg = str(spec).strip().partition(":")
    if name not in INSTANCE_DEFINITION_REGISTRY:
        known = ", ".join(sorted(k for k, _ in INSTANCE_DEFINITION_REGISTRY))
        raise ValueError(f"unknown instance definition {spec!r}; expected one of {known} (optionally ':N')")
    if arg:
        try:
            param: Optional[int] = int(arg)
        except ValueError:
            raise ValueError(f"instance definition {spec!r}: ':{arg}' is not an integer") from None
        if param < 1:
            raise ValueError(f"instance definition {spec!r}: N must be >= 1")
    else:
        param = None
    return name, param


@INSTANCE_DEFINITION_REGISTRY.register()
def components(mask: np.ndarray, param: Optional[int] = None) -> List[np.ndarray]:
    """Each 8-connected component is one instance."""
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return [labels == i for i in range(1, n)]


@INSTANCE_DEFINITION_REGISTRY.register()
def whole(mask: np.ndarray, param: Optional[int] = None) -> List[np.ndarray]:
    """The whole mask is one instance (however many pieces it is broken into)."""
    return [mask.copy()] if mask.any() else []


@INSTANCE_DEFINITION_REGISTRY.register()
def per_level(mask: np.ndarray, param: Optional[int] = None) -> List[np.ndarray]:
    """Cut at y positions into ``param`` (default 9) equal bands over the mask's row range."""
    n = int(param or DEFAULT_LEVELS)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return []
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    cuts = np.unique(np.round(np.linspace(y0, y1, n + 1)).astype(int))
    out = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        piece = np.zeros_like(mask)
        piece[a:b] = mask[a:b]
        if piece.any():
            out.append(piece)
    return out


def split_mask(mask: np.ndarray, spec: str = DEFAULT_DEFINITION) -> List[np.ndarray]:
    """Instance masks of ``mask`` (> 0 is foreground) under the definition ``spec``."""
    name, param = parse_spec(spec)
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    return INSTANCE_DEFINITION_REGISTRY.get(name)(m > 0, param)


def mask_to_instances_as(mask: np.ndarray, spec: str = DEFAULT_DEFINITION) -> List[dict]:
    """COCO annotations (without ids) of ``mask`` under definition ``spec``; their union is ``mask > 0``.

    ``components`` is exactly :func:`spine_det.data.rle.mask_to_instances` (polygons where
    exact). Other definitions encode each piece as one instance: the exact polygon when the
    piece is one hole-free component, else a compressed RLE of the piece.
    """
    name, _ = parse_spec(spec)
    if name == DEFAULT_DEFINITION:
        return mask_to_instances(mask)
    return [piece_to_instance(piece) for piece in split_mask(mask, spec)]


def task_kind(task: str) -> str:
    """Which SPINE.INSTANCES key governs ``task``: LINE, SPINOUS_PROCESS or OTHER."""
    if task.endswith("_line"):
        return "LINE"
    if task.endswith("_spinous_process"):
        return "SPINOUS_PROCESS"
    return "OTHER"


def definitions_from_cfg(cfg: Any, tasks: Sequence[str]) -> Dict[str, str]:
    """``{task: spec}`` for the tasks whose definition is not the default (empty = as before)."""
    node = getattr(getattr(cfg, "SPINE", None), "INSTANCES", None)
    if node is None:
        return {}
    out: Dict[str, str] = {}
    for t in tasks:
        spec = str(node.get(task_kind(t), DEFAULT_DEFINITION) or DEFAULT_DEFINITION)
        name, param = parse_spec(spec)
        if name == "per_level" and param is None:
            spec = f"per_level:{int(node.get('LEVELS', DEFAULT_LEVELS))}"
        if name != DEFAULT_DEFINITION:
            out[t] = spec
    return out


def definitions_tag(definitions: Optional[Mapping[str, str]]) -> str:
    """Cache-folder suffix of a set of definitions ("" for all-default, so old caches stay valid)."""
    items = sorted((t, s) for t, s in (definitions or {}).items() if parse_spec(s)[0] != DEFAULT_DEFINITION)
    if not items:
        return ""
    text = ",".join(f"{t}={s}" for t, s in items)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


__all__ = [
    "DEFAULT_DEFINITION",
    "DEFAULT_LEVELS",
    "INSTANCE_DEFINITION_REGISTRY",
    "definitions_from_cfg",
    "definitions_tag",
    "mask_to_instances_as",
    "parse_spec",
    "split_mask",
    "task_kind",
]

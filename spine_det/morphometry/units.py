"""Millimetres beside pixels in a morphometry record, from the pixel spacing the film's header states.

Every length of the record (px) gets a ``<name>_mm`` twin: the value times the spacing where the
film states one (DICOM PixelSpacing or ImagerPixelSpacing, see :class:`spine_det.data.io.ImageMeta`),
None where it does not. A spacing is never assumed, and the record's
``meta.pixel_spacing[<view>]`` says where each view's came from or why there is none. Ratios,
grades and percentages have no unit and are unchanged.
"""
from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from spine_det.data.io import DataError, ImageMeta, read_image_meta

# {view: {list in the view's record: {length in px: its mm name}}}
LENGTHS: Dict[str, Dict[str, Dict[str, str]]] = {
    "lat": {
        "vertebrae": {k: f"{k}_mm" for k in ("ha", "hm", "hp", "depth", "expected_height")},
        "discs": {"height": "height_mm"},
        "listhesis": {"centre_px": "centre_mm"},
    },
    "ap": {"vertebrae": {k: f"{k}_mm" for k in ("width", "ipd", "pedicle_centre_distance")}},
}

# Row and column spacings further apart than this are anisotropic: a length's mm would depend on its
# direction, which the record does not keep, so no mm is given.
ISOTROPY_TOLERANCE = 0.01


def mm_per_pixel(meta: Optional[ImageMeta]) -> Optional[float]:
    """One spacing for every direction, or None (no spacing, or rows and columns differ)."""
    if meta is None or meta.spacing_mm is None:
        return None
    rows, cols = meta.spacing_mm
    if abs(rows - cols) > ISOTROPY_TOLERANCE * max(rows, cols):
        return None
    return 0.5 * (rows + cols)


def spacing_record(meta: Optional[ImageMeta], error: str = "") -> Dict[str, Any]:
    """The ``meta.pixel_spacing[<view>]`` entry: spacing (rows, columns; mm), its source, the mm per
    pixel the lengths were multiplied by (None: no mm) and a note."""
    if meta is None:
        return {"spacing_mm": None, "source": None, "mm_per_px": None, "note": error or "film not read"}
    scale, note = mm_per_pixel(meta), meta.note
    if meta.spacing_mm is not None and scale is None:
        note = (f"anisotropic pixels ({meta.spacing_mm[0]:g} x {meta.spacing_mm[1]:g} mm): no mm given, "
                f"a length's mm would depend on its direction")
    return {"spacing_mm": list(meta.spacing_mm) if meta.spacing_mm else None, "source": meta.spacing_source,
            "mm_per_px": scale, "note": note}


def read_metas(images: Mapping[str, Union[str, os.PathLike]]
               ) -> Tuple[Dict[str, Optional[ImageMeta]], Dict[str, str]]:
    """``({view: ImageMeta or None}, {view: why None})`` from each film's header (no pixels decoded)."""
    metas: Dict[str, Optional[ImageMeta]] = {}
    errors: Dict[str, str] = {}
    for view, path in images.items():
        try:
            metas[view] = read_image_meta(path)
        except DataError as e:
            metas[view], errors[view] = None, f"header not read: {e}"
    return metas, errors


def add_millimetres(record: Dict[str, Any], metas: Mapping[str, Optional[ImageMeta]],
                    errors: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """Add ``<length>_mm`` beside every length of each measured view and ``meta.pixel_spacing``; in place."""
    errors = errors or {}
    spacing = record.setdefault("meta", {}).setdefault("pixel_spacing", {})
    for view, lists in LENGTHS.items():
        if view not in record:
            continue
        meta = metas.get(view)
        spacing[view] = spacing_record(meta, errors.get(view, ""))
        scale = spacing[view]["mm_per_px"]
        for list_name, names in lists.items():
            for item in record[view].get(list_name, []):
                for px, mm in names.items():
                    value = item.get(px)
                    item[mm] = None if scale is None or value is None else round(float(value) * scale, 2)
    return record


def has_millimetres(record: Mapping[str, Any]) -> bool:
    """Whether every measured view of the record has its lengths in mm."""
    views = record.get("meta", {}).get("pixel_spacing", {})
    return bool(views) and all(v.get("mm_per_px") is not None for v in views.values())

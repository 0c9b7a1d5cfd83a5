"""One synthetic patient in memory: both radiographs, the eight masks and the ground truth."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

from spine_det.data.phantom.anatomy import (
    AP_FIELDS, LAT_FIELDS, POSTURES, Frame, Spine, Vertebra, ap_body_outline, ap_pedicles, build_spine, lat_body_outline,
    make_frames, pose_for_lat,
)
from spine_det.data.phantom.masks import draw_masks
from spine_det.data.phantom.ap_render import render_ap
from spine_det.data.phantom.lat_render import render_lat3d
from spine_det.data.phantom.render import render_lat
from spine_det.tasks import LABELS

SCHEMA_VERSION = 3  # 3: LAT fields and postures (lat_field, lat_posture, lat_bend_deg, lat_levels)


# How the LAT film is drawn ("lat_renderer"): the same solids, masks and ground truth either way; only the
# LAT film differs. "painted": 2-D shapes drawn per structure (render.render_lat). "3d": attenuation integrated
# along rays through the solids and the X-ray chain, as AP (lat_render.render_lat3d). The default is the one
# whose phantom-trained model scores higher on real lateral films (results/phantom/README.md).
LAT_RENDERERS = {"painted": render_lat, "3d": render_lat3d}
DEFAULT_LAT_RENDERER = "painted"


def render_view(spine: Spine, fr: Frame, rng: np.random.Generator, patient_id: str = "",
                lat_renderer: str = DEFAULT_LAT_RENDERER) -> np.ndarray:
    """Render one view; returns an (H, W) uint8 grey radiograph. AP integrates attenuation along rays through
    the 3-D solids and forms the image through :mod:`xray` (:func:`ap_render.render_ap`); LAT is drawn by
    ``LAT_RENDERERS[lat_renderer]``."""
    if fr.view == "ap":
        return render_ap(spine, fr, rng, patient_id)
    return LAT_RENDERERS[lat_renderer](spine, fr, rng, patient_id)


def patient_id(index: int) -> str:
    """Folder name of patient ``index`` (0-based): ``ID (index+1)``, as in the real dataset."""
    return f"ID ({index + 1})"


def patient_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """Independent RNG stream per (seed, patient, purpose): results never depend on worker count."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index), int(stream)]))


@dataclass
class PatientSample:
    """Images are (H, W, 3) uint8 RGB with R = G = B; masks (H, W) uint8 keyed by task name."""

    patient_id: str
    label: str
    images: Dict[str, np.ndarray]
    masks: Dict[str, np.ndarray]
    gt: Dict[str, Any]

    def grey(self, view: str) -> np.ndarray:
        return self.images[view][..., 0]


def _r(x: float, nd: int = 2) -> float:
    return round(float(x), nd)


def _pt(p: np.ndarray) -> list:
    return [_r(p[0]), _r(p[1])]


def _lat_corners(v: Vertebra, lat: Frame) -> Dict[str, list]:
    """The four LAT body corners of ``v`` in pixels."""
    lo = lat_body_outline(v)
    sup, inf = lat.local(v, lo["sup"]), lat.local(v, lo["inf"])
    return {"anterior_superior": _pt(sup[0]), "anterior_inferior": _pt(inf[0]),
            "posterior_superior": _pt(sup[-1]), "posterior_inferior": _pt(inf[-1])}


def _ap_corners(v: Vertebra, ap: Frame) -> Dict[str, list]:
    """The four AP body corners of ``v`` in pixels (image left / right)."""
    ao = ap_body_outline(v)
    asup, ainf = ap.local(v, ao["sup"]), ap.local(v, ao["inf"])
    return {"left_superior": _pt(asup[0]), "right_superior": _pt(asup[-1]),
            "left_inferior": _pt(ainf[0]), "right_inferior": _pt(ainf[-1])}


def _level_gt(v: Vertebra, v_lat: Vertebra, ap: Frame, lat: Frame) -> Dict[str, Any]:
    """One morphometry level: ``v`` as the AP film shows it, ``v_lat`` as the LAT one does (bent or not)."""
    s = lat.scale
    ped = [ap.local(v, np.array(uv)) for uv, _ in ap_pedicles(v)]
    ped_half = [ax[0] * ap.scale for _, ax in ap_pedicles(v)]
    ipd_px = float(np.linalg.norm(ped[1] - ped[0]) - ped_half[0] - ped_half[1])
    return {
        "name": v.name,
        "expected_height_px": _r(v.h_exp * s),
        "anterior_height_px": _r(v.ha * s),
        "middle_height_px": _r(v.hm * s),
        "posterior_height_px": _r(v.hp * s),
        "height_loss_ratio": round(float(v.loss), 4),
        "fracture_type": v.fracture,
        "genant_grade": int(v.grade),
        "lat_corners": _lat_corners(v_lat, lat),
        "ap_corners": _ap_corners(v, ap),
        "ap_body_width_px": _r(v.width * ap.scale),
        "interpedicular_distance_px": _r(ipd_px),
        "listhesis_offset_px": _r(v.listhesis * s),
        "retropulsion_px": _r(v.retro * s),
    }


def _ap_level(v: Vertebra, ap: Frame) -> Dict[str, Any]:
    return {"name": v.name, "coronal_tilt_deg": _r(math.degrees(v.beta)), "axial_rotation_deg": _r(math.degrees(v.gamma)),
            "ap_corners": _ap_corners(v, ap)}


def _lat_level(v: Vertebra, lat: Frame) -> Dict[str, Any]:
    return {"name": v.name, "sagittal_tilt_deg": _r(math.degrees(v.theta)), "lat_corners": _lat_corners(v, lat)}


def ground_truth(spine: Spine, frames: Dict[str, Frame], index: int, seed: int, size: int,
                 split: Optional[str], lat_spine: Optional[Spine] = None) -> Dict[str, Any]:
    """The ``ground_truth.json`` document (schema in spine_det.data.phantom); ``lat_spine`` as in make_frames."""
    ap, lat = frames["ap"], frames["lat"]
    lat_spine = spine if lat_spine is None else lat_spine
    levels = [_level_gt(v, lat_spine.level(v.name), ap, lat) for v in spine.annotated]
    return {
        "schema_version": SCHEMA_VERSION,
        "patient_id": patient_id(index),
        "index": int(index),
        "label": spine.label,
        "split": split,
        "seed": int(seed),
        "size": int(size),
        "views": {
            f.view: {"width": f.width, "height": f.height, "px_per_mm": round(f.scale, 5)} for f in (ap, lat)
        },
        "sacral_slope_deg": _r(math.degrees(spine.sacral_slope)),
        "levels": levels,
        "fractured_levels": [lv["name"] for lv in levels if lv["genant_grade"] > 0],
        "max_genant_grade": max(lv["genant_grade"] for lv in levels),
        "listhesis_levels": [lv["name"] for lv in levels if lv["listhesis_offset_px"] > 0],
        "ap_field": ap.field,
        "ap_levels": [_ap_level(spine.level(name), ap) for name in ap.levels],
        "lat_field": lat.field,
        "lat_posture": lat_spine.posture,
        "lat_bend_deg": lat_spine.bend_deg,
        "lat_levels": [_lat_level(lat_spine.level(name), lat) for name in lat.levels],
        "scoliosis": [dict(c) for c in spine.cobb],
    }


FILM_KINDS: Dict[str, Tuple[str, ...]] = {
    "ap": AP_FIELDS,
    "lat": LAT_FIELDS + tuple(p for p in POSTURES if p != "neutral"),
}


def film_kind(gt: Dict[str, Any], view: str) -> str:
    """The kind of one view's film in a ``ground_truth.json`` document: its field of view, or for a bent
    LAT film its posture (flexion / extension films are lumbar fields; their posture is what sets them apart)."""
    if view not in FILM_KINDS:
        raise ValueError(f"unknown view {view!r}; expected one of {tuple(FILM_KINDS)}")
    posture = gt.get("lat_posture", "neutral") if view == "lat" else "neutral"
    return posture if posture != "neutral" else gt[f"{view}_field"]


def generate_patient(index: int, seed: int, size: int = 1024, label: str = "Normal",
                     split: Optional[str] = None, lat_renderer: str = DEFAULT_LAT_RENDERER) -> PatientSample:
    """Build one patient in memory; deterministic in (index, seed, size, label, lat_renderer)."""
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}; expected one of {LABELS}")
    if lat_renderer not in LAT_RENDERERS:
        raise ValueError(f"unknown LAT renderer {lat_renderer!r}; expected one of {sorted(LAT_RENDERERS)}")
    if size < 64:
        raise ValueError(f"size must be >= 64 px, got {size}")
    spine = build_spine(patient_rng(seed, index, 0), label)
    posed = {"ap": spine, "lat": pose_for_lat(spine, patient_rng(seed, index, 2))}  # a stream of its own: AP stays
    frames = make_frames(spine, patient_rng(seed, index, 1), size, posed["lat"])
    pid = patient_id(index)
    images = {}
    for k, view in enumerate(("ap", "lat")):
        grey = render_view(posed[view], frames[view], patient_rng(seed, index, 10 + k), pid, lat_renderer)
        images[view] = np.repeat(grey[..., None], 3, axis=2)
    masks = draw_masks(spine, frames, patient_rng(seed, index, 20), posed["lat"])
    gt = ground_truth(spine, frames, index, seed, size, split, posed["lat"])
    return PatientSample(pid, label, images, masks, gt)

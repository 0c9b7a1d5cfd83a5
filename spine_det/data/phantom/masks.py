"""Annotator-style masks of the eight tasks, drawn from the same geometry as the radiograph.

What an annotator does, imitated here:

* vertebra: AP one four-cornered body per level of the field (T1..L5 where
  wholly visible), LAT one polygon per level of its field (likewise) traced corner to corner
  along the endplates and walls with a few clicks (small click jitter);
  adjacent levels stay separated by their disc.
* pedicle (AP): two filled ovals per level. Spinous process: AP a teardrop per
  level mostly inside the body; LAT the posterior blob behind the lamina.
* disk height (LAT): the band between the inferior endplate of one level and
  the superior endplate of the next, from the field's first level to L5/S1.
* anterior / posterior vertebral lines (LAT): ONE continuous thin polyline per
  image through the anterior (posterior) body corners and walls, bridging the
  discs with straight segments - the way the anterior/posterior longitudinal
  line (George's line) is traced. A listhesis therefore shows as a step and a
  retropulsed wall as a posterior bump.

Every mask is uint8 (H, W): 255 inside, anti-aliased 1..254 on edges (cv2
LINE_AA with sub-pixel shift); read with the one mask policy (spine_det.data.io.binarize:
above half the maximum, i.e. more than half covered, is foreground).
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import cv2
import numpy as np

from spine_det.data.phantom.anatomy import (
    Frame, Spine, ap_body_outline, ap_pedicles, ap_spinous, lat_body_outline, lat_spinous,
)
from spine_det.data.phantom.render import SHIFT, fix

LINE_CUTOFF = 110  # faint anti-aliasing tails of the 1-px lines are dropped, as a 1-2 px brush would


def _jit(rng: np.random.Generator, pts: np.ndarray, sd_px: float) -> np.ndarray:
    return pts + rng.normal(0.0, sd_px, size=pts.shape)


def _fill(mask: np.ndarray, pts: np.ndarray) -> None:
    cv2.fillPoly(mask, [fix(pts)], 255, cv2.LINE_AA, SHIFT)


def _inset(o: Dict[str, np.ndarray], fr: Frame, h: float) -> Dict[str, np.ndarray]:
    """Pull the endplates in by ~1 px: annotators trace inside the cortex, so neighbours never touch."""
    k = max(1.0 - 2 * (1.0 / fr.scale) / max(h, 1e-6), 0.5)
    return {name: p * np.array([1.0, k]) for name, p in o.items()}


def _lat_corners(fr: Frame, v, inset: bool = False) -> Dict[str, np.ndarray]:
    o = lat_body_outline(v)
    if inset:
        o = _inset(o, fr, min(v.ha, v.hm, v.hp))
    return {k: fr.local(v, p) for k, p in o.items()}


def _ap_corners(fr: Frame, v, inset: bool = False) -> Dict[str, np.ndarray]:
    o = ap_body_outline(v)
    if inset:
        o = _inset(o, fr, min(v.ha, v.hm, v.hp) * math.cos(v.theta))
    return {k: fr.local(v, p) for k, p in o.items()}


def draw_masks(spine: Spine, frames: Dict[str, Frame], rng: np.random.Generator,
               lat_spine: Optional[Spine] = None) -> Dict[str, np.ndarray]:
    """All eight task masks keyed by task name (see spine_det.tasks); LAT ones from ``lat_spine`` (the spine as
    the LAT film shows it, bent or not; default ``spine``)."""
    ap, lat = frames["ap"], frames["lat"]
    sd = 0.25 * ap.scale  # annotator click jitter (~0.25 mm)
    m = {k: np.zeros((ap.height, ap.width), np.uint8) for k in ("ap_vertebra", "ap_pedicle", "ap_spinous_process")}
    m.update({k: np.zeros((lat.height, lat.width), np.uint8) for k in (
        "lat_vertebra", "lat_disk_height", "lat_spinous_process", "lat_anterior_line", "lat_posterior_line")})
    lat_spine = spine if lat_spine is None else lat_spine
    verts = [lat_spine.level(name) for name in lat.levels]
    # ---------------- AP: every level of the field's annotated set (T1..L5 where wholly visible)
    for v in (spine.level(name) for name in ap.levels):
        o = _ap_corners(ap, v, inset=True)
        poly = np.concatenate([o["sup"][[0, -1]], o["inf"][[-1, 0]]])  # four corners, as the annotators click
        _fill(m["ap_vertebra"], _jit(rng, poly, sd))
        for uv, ax in ap_pedicles(v):
            c = ap.local(v, np.array(uv))
            a = (max(ax[0] * ap.scale * rng.uniform(0.9, 1.05), 1.0), max(ax[1] * ap.scale * rng.uniform(0.9, 1.05), 1.0))
            cv2.ellipse(m["ap_pedicle"], (int(round(c[0] * 16)), int(round(c[1] * 16))),
                        (int(round(a[0] * 16)), int(round(a[1] * 16))), -math.degrees(v.beta), 0, 360, 255, -1,
                        cv2.LINE_AA, SHIFT)
        sp = ap.local(v, ap_spinous(v))
        _fill(m["ap_spinous_process"], _jit(rng, sp[::2], sd * 0.5))
    # ---------------- LAT
    sdl = 0.25 * lat.scale
    corners = [_lat_corners(lat, v) for v in verts]
    for v in verts:
        o = _lat_corners(lat, v, inset=True)
        poly = np.concatenate([o["sup"][::2], o["post"][2:3], o["inf"][::-2], o["ant"][2:3]])
        _fill(m["lat_vertebra"], _jit(rng, poly, sdl))
        _fill(m["lat_spinous_process"], _jit(rng, lat.local(v, lat_spinous(v))[[0, 1, 3, 5, 7, 8]], sdl))
    # discs: inferior endplate of level i to superior endplate of i+1, last one to S1
    s1 = _s1_endplate(spine, lat)
    for i, o in enumerate(corners):
        nxt = corners[i + 1]["sup"] if i + 1 < len(corners) else s1
        band = np.concatenate([o["inf"][::2], nxt[::-2]])
        _fill(m["lat_disk_height"], _jit(rng, band, sdl * 0.5))
    ant = np.concatenate([o["ant"][[0, 2, 4]] for o in corners])
    post = np.concatenate([o["post"][[0, 1, 2, 3, 4]] for o in corners])
    for key, line in (("lat_anterior_line", ant), ("lat_posterior_line", post)):
        tmp = np.zeros_like(m[key])
        cv2.polylines(tmp, [fix(_jit(rng, line, sdl * 0.3))], False, 255, 1, cv2.LINE_AA, SHIFT)
        tmp[tmp < LINE_CUTOFF] = 0
        m[key] = np.minimum(tmp.astype(np.uint16) * 8 // 5, 255).astype(np.uint8)  # solid 1-px core, soft rim
    return m


def _s1_endplate(spine: Spine, lat: Frame) -> np.ndarray:
    """S1 superior endplate, anterior -> posterior, LAT pixels."""
    a = spine.sacral_slope
    u = np.linspace(-spine.s1_depth / 2, spine.s1_depth / 2, 7)
    y, z = u * math.cos(a), -u * math.sin(a)
    return lat.px(np.stack([np.zeros_like(u), y, z], -1))

"""The AP radiograph: attenuation integrated along rays through 3-D shapes, then :mod:`xray` forms the image.

Every structure adds its line integral (e-folds) to one map ``A``:

* trunk: an elliptic cylinder of water whose half-width and depth follow the
  body from the neck, shoulders and thorax to the waist and pelvis;
* lungs: air-filled volumes (apex above the first rib, domes of the diaphragm,
  posterior recesses below them) lower the integral; the heart, the trachea and
  stomach / bowel gas likewise shape it;
* vertebral bodies C7..L5: elliptic cylinders with a cortical shell (bright
  walls where rays run tangentially), trabecular cores with a vertical-streaked
  texture and endplates that widen into ellipses with the sagittal tilt; a fractured body is drawn from its
  solid, each slab of its depth at its own height (a wedge's endplate doubles into a band, a biconcave one's
  dishes, a crush lowers it all), with the compacted trabeculae of the lost height as a sclerotic band;
* pedicles: cortical tubes seen end-on (ring-like ovals), moved by the axial
  rotation of scoliosis; laminae, spinous and transverse processes;
* ribs (posterior arcs and fainter anterior ones) and clavicles: cortical tubes
  along curves, the path through each computed from the distance to its axis;
* sacrum and pelvis as in the lumbar drawing.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Tuple

import cv2
import numpy as np

from spine_det.data.phantom.anatomy import RIB_REACH, Frame, Spine, Vertebra, ap_pedicles, ap_spinous, rot_u
from spine_det.data.phantom.render import Canvas, _ap_pelvis, _weights, bezier
from spine_det.data.phantom.xray import burn_in, expose, to_uint8

MU_WATER = 0.02  # 1/mm at the beam's effective energy


def cubic(p0, p1, p2, p3, n: int = 40) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2, p3 = (np.asarray(p, dtype=np.float64) for p in (p0, p1, p2, p3))
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t * t * p2 + t ** 3 * p3


def _box(fr: Frame, pts: np.ndarray, pad: float):
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    x0 = max(int(math.floor(pts[:, 0].min() - pad)), 0)
    y0 = max(int(math.floor(pts[:, 1].min() - pad)), 0)
    x1 = min(int(math.ceil(pts[:, 0].max() + pad)) + 1, fr.width)
    y1 = min(int(math.ceil(pts[:, 1].max() + pad)) + 1, fr.height)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _grid(box):
    x0, y0, x1, y1 = box
    return np.meshgrid(np.arange(x0, x1, dtype=np.float32), np.arange(y0, y1, dtype=np.float32))


def _cov(d_mm: np.ndarray, px_mm: float) -> np.ndarray:
    """Anti-aliased inside-ness of a signed distance (mm, > 0 inside)."""
    return np.clip(d_mm / px_mm + 0.5, 0.0, 1.0)


# ------------------------------------------------------------------ soft tissue and air
def _x_spine(spine: Spine, z: np.ndarray) -> np.ndarray:
    zs = np.array([v.centre[2] for v in spine.vertebrae] + [0.0, 200.0])
    xs = np.array([v.centre[0] for v in spine.vertebrae] + [0.0, 0.0])
    return np.interp(z, zs, xs)


def _trunk_and_air(spine: Spine, fr: Frame, rng: np.random.Generator, x_t: float) -> np.ndarray:
    """Soft-tissue line integral minus the air in lungs, trachea and stomach, on a coarse grid, upscaled."""
    h, w = fr.height, fr.width
    gh = 192
    gw = max(int(round(gh * w / h)), 16)
    z = ((np.arange(gh) + 0.5) * h / gh - fr.r0) / fr.scale
    x = ((np.arange(gw) + 0.5) * w / gw - fr.c0) / fr.scale
    Z, X = np.meshgrid(z, x, indexing="ij")
    lv = {n: spine.level(n) for n in ("C7", "T1", "T3", "T4", "T10", "L3")}
    zk = [lv["C7"].centre[2] - 70, lv["C7"].centre[2] - 20, lv["T1"].centre[2], lv["T4"].centre[2],
          lv["T10"].centre[2], lv["L3"].centre[2], spine.crest_z + 30, 400.0]
    th = spine.thorax_half
    ak = [rng.uniform(55, 75), rng.uniform(140, 190), rng.uniform(170, 220), th + 35, th + 25,
          spine.body_half_width * 0.95, spine.body_half_width * 1.12, spine.body_half_width * 1.15]
    bk = [rng.uniform(50, 65), rng.uniform(60, 80), rng.uniform(85, 105), rng.uniform(95, 120), rng.uniform(100, 125),
          spine.body_half_depth, spine.body_half_depth * 1.05, spine.body_half_depth * 1.05]
    a = np.interp(Z, zk, ak)
    b = np.interp(Z, zk, bk)
    xsp = _x_spine(spine, Z)
    xc = 0.5 * cv2.GaussianBlur(xsp, (1, 0), sigmaX=0.1, sigmaY=gh / 12) + 0.5 * x_t * (Z < 0)  # trunk shift
    r = (X - xc) / a
    A = MU_WATER * spine.fat * 2 * b * np.sqrt(np.clip(1 - r * r, 0, None))
    # lungs
    t1 = lv["T1"].centre[2]
    rib_z = np.array([spine.level(f"T{k}").centre[2] + 20 for k in range(1, 13)])
    reach = np.interp(Z, rib_z, RIB_REACH * th, left=RIB_REACH[0] * th * 0.8)
    lung_t = rng.uniform(90, 160)
    curv = rng.uniform(0.003, 0.007)
    air = np.zeros_like(A)
    for s in (-1, 1):
        dome = spine.diaphragm_z + (spine.dome_dz if s > 0 else 0.0)
        xin = xsp + s * rng.uniform(22, 35)
        xout = x_t + s * (reach - 6)
        z_apex = t1 - rng.uniform(5, 25)
        xm = 0.5 * (xin + xout)
        hs = 0.5 * np.abs(xout - xin) * np.sqrt(np.clip((Z - z_apex) / 90.0, 0, 1)) * (s * (xout - xin) > 0)
        sh = np.clip(1 - ((X - xm) / np.maximum(hs, 1e-3)) ** 2, 0, 1) * (hs > 0)
        xp = x_t + s * 0.45 * th
        zd = dome + curv * (X - xp) ** 2
        fb = np.where(Z < zd, 0.35 + 0.65 * np.clip((zd - Z) / 50.0, 0, 1), 0.35 * np.clip(1 - (Z - zd) / 35.0, 0, 1))
        fv = np.clip((Z - z_apex) / 100.0, 0, 1)  # the apex is thin front to back (shoulder girdle over it)
        air += lung_t * np.sqrt(sh) * fb * fv
    # vessels and interstitium: a mottled density inside the lungs
    vessels = np.clip(cv2.resize(rng.standard_normal((gh // 3, max(gw // 3, 2))).astype(np.float32), (gw, gh),
                                 interpolation=cv2.INTER_CUBIC), -2, 2)
    air *= 1.0 - rng.uniform(0.05, 0.2) * (0.5 + 0.5 * np.tanh(vessels))
    # the heart displaces lung (left of the patient = image right)
    hz = spine.diaphragm_z + spine.dome_dz - rng.uniform(35, 60)
    hx, ha, hb = x_t + rng.uniform(15, 35), rng.uniform(55, 75), rng.uniform(50, 68)
    rh = ((X - hx) / ha) ** 2 + ((Z - hz) / hb) ** 2
    air = np.clip(air - 2 * rng.uniform(28, 45) * np.sqrt(np.clip(1 - rh, 0, None)), 0, None)
    A -= MU_WATER * 0.8 * air
    # trachea down to the carina
    tr_r = rng.uniform(7, 10)
    dx = X - (xsp + rng.normal(0, 3))
    trachea = 2 * np.sqrt(np.clip(tr_r ** 2 - dx * dx, 0, None)) * (Z < lv["T4"].centre[2])
    A -= MU_WATER * 0.9 * trachea
    if rng.random() < 0.5:  # stomach gas under the left dome, flat fluid level below
        gz = spine.diaphragm_z + spine.dome_dz + rng.uniform(15, 40)
        gx, gxa, gza = x_t + rng.uniform(45, 95), rng.uniform(20, 50), rng.uniform(12, 30)
        rg = ((X - gx) / gxa) ** 2 + ((Z - gz) / gza) ** 2
        A -= MU_WATER * 0.9 * 2 * rng.uniform(10, 30) * np.sqrt(np.clip(1 - rg, 0, None)) * (Z < gz + 0.3 * gza)
    A = np.clip(A, 0.0, None)
    return cv2.resize(A.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def _bowel(spine: Spine, fr: Frame, rng: np.random.Generator) -> np.ndarray:
    """Bowel gas pockets and colonic tubes, kidneys and psoas (drawn soft)."""
    s = fr.scale
    g = Canvas(fr.height, fr.width)
    l1, l5, t12 = spine.level("L1"), spine.level("L5"), spine.level("T12")
    for side in (-1, 1):
        zc = spine.level("L1").centre[2] + rng.uniform(-15, 25) + (12 if side < 0 else 0)
        c = fr.px(np.array([l1.centre[0] + side * rng.uniform(60, 80), 0, zc]))
        g.ellipse(c, (26 * s, 55 * s), side * rng.uniform(8, 20), rng.uniform(0.05, 0.12))
        pts = [[t12.centre[0] + side * t12.width * 0.5, 0, t12.centre[2]],
               [l5.centre[0] + side * (l5.width * 0.5 + rng.uniform(30, 45)), 0, l5.centre[2] + 40],
               [l5.centre[0] + side * l5.width * 0.4, 0, l5.centre[2] + 40]]
        g.fill(fr.px(np.array(pts)), rng.uniform(0.06, 0.15))
    gas_x, gas_z = (-120, 120), (l1.centre[2] - 20, 110)
    for _ in range(int(rng.integers(3, 13))):
        hc, zc = rng.uniform(*gas_x), rng.uniform(*gas_z)
        wc = -rng.uniform(0.15, 0.6)
        for _ in range(int(rng.integers(3, 10))):
            hh, zz = hc + rng.normal(0, 14), zc + rng.normal(0, 14)
            r = rng.uniform(3, 11) * s
            g.ellipse(fr.px(np.array([hh, 0, zz])), (r, r * rng.uniform(0.5, 1.2)), rng.uniform(0, 180),
                      wc * rng.uniform(0.6, 1.0))
    for _ in range(int(rng.integers(1, 4))):
        pts3 = [[rng.uniform(*gas_x), 0, rng.uniform(*gas_z)] for _ in range(3)]
        g.line(bezier(*fr.px(np.array(pts3))), -rng.uniform(0.04, 0.2), rng.uniform(10, 22) * s)
    out = cv2.GaussianBlur(g.a, (0, 0), 1.5 * s + 0.3)
    # colon content: mottled gas in faeces over much of the abdomen (and over the lumbar spine)
    h, w = fr.height, fr.width
    rows = (np.arange(h, dtype=np.float32) - fr.r0) / fr.scale
    cols = (np.arange(w, dtype=np.float32) - fr.c0) / fr.scale
    z_top = spine.diaphragm_z + rng.uniform(30, 90)
    band = np.clip((rows - z_top) / 40.0, 0, 1) * np.clip((140.0 - rows) / 40.0, 0, 1)
    region = smooth_field(rng, h, w, rng.uniform(40, 80) * s)
    region = np.clip(region - rng.uniform(-0.6, 0.6), 0, None) * band[:, None] * (np.abs(cols)[None, :] < 170)
    bubbles = np.clip(smooth_field(rng, h, w, rng.uniform(5.0, 12.0) * s) + rng.uniform(-0.2, 0.5), 0, None)
    out -= np.float32(rng.uniform(0.05, 0.35)) * region * cv2.GaussianBlur(bubbles, (0, 0), 1.0 * s + 0.3)
    return out


def smooth_field(rng: np.random.Generator, h: int, w: int, cell_px: float) -> np.ndarray:
    """Smooth zero-mean noise of about unit variance with features ``cell_px`` wide."""
    sh, sw = max(int(h / max(cell_px, 1.0)), 2), max(int(w / max(cell_px, 1.0)), 2)
    n = rng.standard_normal((sh, sw)).astype(np.float32)
    return cv2.resize(n, (w, h), interpolation=cv2.INTER_CUBIC)


def _breasts(spine: Spine, fr: Frame, rng: np.random.Generator, x_t: float) -> np.ndarray:
    """Breast shadows over the lower chest (most scoliosis patients are adolescent girls)."""
    h, w = fr.height, fr.width
    A = np.zeros((h, w), np.float32)
    if rng.random() > 0.5:
        return A
    cols, rows = np.meshgrid((np.arange(w, dtype=np.float32) - fr.c0) / fr.scale,
                             (np.arange(h, dtype=np.float32) - fr.r0) / fr.scale)
    depth, zc = rng.uniform(6, 22), spine.diaphragm_z + rng.uniform(-50, 10)
    for sgn in (-1, 1):
        xc = x_t + sgn * rng.uniform(70, 120)
        ax, az = rng.uniform(50, 85), rng.uniform(40, 65)
        r = ((cols - xc) / ax) ** 2 + ((rows - zc - rng.uniform(-8, 8)) / az) ** 2
        A += MU_WATER * 2 * depth * np.clip(1 - r, 0, None) ** 0.35  # full above, a sharper fold below
    return A


# ------------------------------------------------------------------ bones
class _BodySection(NamedTuple):
    """The pixels around a vertebral body and its cross-section along AP rays, which the intact and the
    fractured drawings share: local coordinates (u across, w along the body's axis), the half-width with the
    concave waist, the ray's path through the whole body (t_o) and its trabecular core (t_i), the coverage of
    the lateral walls and the endplate band's half-height."""

    pxm: float
    ct: float
    side: float
    box: Tuple[int, int, int, int]
    u: np.ndarray
    w: np.ndarray
    a: np.ndarray
    t_o: np.ndarray
    t_i: np.ndarray
    cu: np.ndarray
    hb: np.ndarray


def _body_section(fr: Frame, v: Vertebra, h_box: float, waist: float) -> Optional[_BodySection]:
    """The section of ``v`` over the pixels of a body ``h_box`` mm tall; None when it is off the film."""
    pxm = 1.0 / fr.scale
    a = v.width / 2
    ct, st = math.cos(v.theta), abs(math.sin(v.theta))
    side = 0.5 * (v.ha + v.hp)
    hb_max = 0.5 * v.depth * st + 1.0
    corners = fr.local(v, np.array([[-a, -h_box * ct / 2 - hb_max], [a, -h_box * ct / 2 - hb_max],
                                    [-a, h_box * ct / 2 + hb_max], [a, h_box * ct / 2 + hb_max]]))
    box = _box(fr, corners, 2)
    if box is None:
        return None
    cols, rows = _grid(box)
    u, w = fr.to_local(v, cols, rows)
    hh0 = max(side * ct / 2, 1e-3)
    a = a * (1.0 - waist * np.clip(1 - (w / hh0) ** 2, 0, 1))  # concave lateral walls
    q = np.clip(1 - (u / a) ** 2, 0, None)
    shell = 1.2
    ai = a - shell
    t_o = v.depth * np.sqrt(q)
    t_i = (v.depth - 2 * shell) * np.sqrt(np.clip(1 - (u / ai) ** 2, 0, None))
    cu = _cov(a - np.abs(u), pxm)
    hb = np.maximum(0.5 * v.depth * st * np.sqrt(q), 0.6 * pxm) + 0.4
    return _BodySection(pxm, ct, side, box, u, w, a, t_o, t_i, cu, hb)


def _body(A: np.ndarray, fr: Frame, v: Vertebra, mu_t: float, mu_c: float, tex: np.ndarray, waist: float = 0.07) -> None:
    """Elliptic-cylinder body with a cortical shell and endplates, integrated along AP rays."""
    sec = _body_section(fr, v, 0.5 * (v.ha + v.hp), waist)
    if sec is None:
        return
    pxm, u, w, a, t_o, t_i, cu, hb = sec.pxm, sec.u, sec.w, sec.a, sec.t_o, sec.t_i, sec.cu, sec.hb
    uu = np.clip(np.abs(u) / a, 0, 1)
    hh = (v.hm + (sec.side - v.hm) * uu * uu) * sec.ct / 2
    x0, y0, x1, y1 = sec.box
    core = mu_t * t_i * (1.0 + 0.2 * tex[y0:y1, x0:x1]) + mu_c * (t_o - t_i)
    val = cu * _cov(hh - np.abs(w), pxm) * core
    for sgn in (-1.0, 1.0):
        band = _cov(hb - np.abs(w - sgn * hh), pxm)
        val += cu * band * mu_c * t_o * 1.0 / (2 * hb)
    A[y0:y1, x0:x1] += val.astype(np.float32)


DEPTH_SAMPLES = 32  # slabs of a fractured body's depth, each at its own height
COMPACTION_SHARE = 0.5  # share of the trabecular bone of the lost height that stays, compacted, under the endplate
COMPACTION_BAND_MM = 4.0  # thickness of that sclerotic band


def body_height(v: Vertebra, s: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Body height (mm, along its axis) at (s, t) of its elliptic cross-section: s across the width (-1..1), t along
    the depth (anterior -1 .. posterior +1), s^2 + t^2 <= 1. On the mid-sagittal plane (s = 0) it is the LAT profile
    through ``ha``, ``hm``, ``hp`` (:meth:`Vertebra.profile`); the depression ``(ha + hp) / 2 - hm`` of the endplates
    is a dish, so the lateral rims (s = +-1) stand at ``(ha + hp) / 2`` as :func:`ap_body_outline`'s corners do."""
    side = 0.5 * (v.ha + v.hp)
    r2 = np.clip(s * s + t * t, 0.0, 1.0)
    return v.hm + 0.5 * (v.hp - v.ha) * t + (side - v.hm) * r2


def _fractured_body(A: np.ndarray, fr: Frame, v: Vertebra, mu_t: float, mu_c: float, tex: np.ndarray,
                    waist: float = 0.07) -> None:
    """A fractured body, drawn as :func:`_body` draws every body but from its real solid: each slab of the depth
    (anterior -> posterior) stands at its own height (:func:`body_height`), so the rays add up the slabs they
    cross. A wedge's anterior height loss leaves only the posterior slabs near the endplates (a shorter dense body
    whose endplate contour doubles into a band from the anterior to the posterior rim), a biconcave one's dished
    endplates leave the rays near the centre of the endplates short of bone (concave inner contours), a crush
    lowers it all. The trabecular bone of the lost height (``h_exp`` - height) is partly kept, compacted in a
    sclerotic band under the superior endplate (the impaction zone of a recent fracture). With flat endplates at
    ``h_exp`` it draws what :func:`_body` draws."""
    sec = _body_section(fr, v, max(v.ha, v.hm, v.hp, 0.5 * (v.ha + v.hp)), waist)
    if sec is None:
        return
    pxm, ct, u, w, a, t_o, t_i, cu, hb = sec.pxm, sec.ct, sec.u, sec.w, sec.a, sec.t_o, sec.t_i, sec.cu, sec.hb
    x0, y0, x1, y1 = sec.box
    trab = mu_t * t_i * (1.0 + 0.2 * tex[y0:y1, x0:x1])
    core = trab + mu_c * (t_o - t_i)
    s = np.clip(u / a, -1, 1)
    band_px = COMPACTION_BAND_MM * ct / 2
    inside, compacted, plates, slabs = (np.zeros_like(u) for _ in range(4))
    for tk in (np.arange(DEPTH_SAMPLES) + 0.5) / DEPTH_SAMPLES * 2 - 1:
        # the ray at u runs through this slab (the two middle slabs reach the lateral rim)
        crosses = (s * s + tk * tk <= 1.0).astype(np.float32) if abs(tk) > 1.0 / DEPTH_SAMPLES else np.ones_like(s)
        h = body_height(v, s, tk)
        hh = h * ct / 2
        slabs += crosses
        inside += crosses * _cov(hh - np.abs(w), pxm)
        lost = np.clip(v.h_exp - h, 0, None)
        compacted += crosses * _cov(band_px - np.abs(w + hh - band_px), pxm) * lost
        plates += crosses * (_cov(hb - np.abs(w - hh), pxm) + _cov(hb - np.abs(w + hh), pxm))
    slabs = np.maximum(slabs, 1.0)
    val = cu * (inside * core + compacted * trab * (COMPACTION_SHARE / COMPACTION_BAND_MM)) / slabs
    val += cu * plates / slabs * mu_c * t_o / (2 * hb)
    A[y0:y1, x0:x1] += val.astype(np.float32)


def _pedicles(A: np.ndarray, fr: Frame, v: Vertebra, mu_t: float, mu_c: float) -> None:
    """Two cortical tubes seen end-on: bright ovals with a fainter centre."""
    pxm = 1.0 / fr.scale
    L = 0.35 * v.depth + 4.0
    for uv, (pa, pb) in ap_pedicles(v):
        c = fr.local(v, np.array(uv))
        box = _box(fr, c[None], max(pa, pb) * fr.scale + 2)
        if box is None:
            continue
        cols, rows = _grid(box)
        u, w = fr.to_local(v, cols, rows)
        du, dv = u - uv[0], w - uv[1]
        r = np.sqrt((du / pa) ** 2 + (dv / pb) ** 2)
        m = min(pa, pb)
        inside = _cov((1 - r) * m, pxm)
        rim = _cov((r - 1) * m + 1.1, pxm)
        x0, y0, x1, y1 = box
        A[y0:y1, x0:x1] += (inside * L * (mu_t + (0.6 * mu_c - mu_t) * rim)).astype(np.float32)


def _tube(A: np.ndarray, fr: Frame, pts_px: np.ndarray, r_mm: float, mu_t: float, mu_c: float, shell: float = 1.0,
          depth: float = 1.0) -> None:
    """A cortical tube of radius r_mm along a pixel polyline, seen side-on; ``depth`` stretches its
    cross-section along the ray (a flat rib seen obliquely)."""
    r = r_mm * fr.scale
    box = _box(fr, pts_px, r + 2)
    if box is None:
        return
    x0, y0, x1, y1 = box
    line = np.full((y1 - y0, x1 - x0), 255, np.uint8)
    p = np.round((pts_px - [x0, y0]) * 16).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(line, [p], False, 0, 1, cv2.LINE_8, 4)
    d = np.minimum(cv2.distanceTransform(line, cv2.DIST_L2, 5), 1e4) / np.float32(fr.scale)  # mm from the axis
    t_o = 2 * np.sqrt(np.clip(r_mm ** 2 - d * d, 0, None))
    ri = max(r_mm - shell, 0.1)
    t_i = 2 * np.sqrt(np.clip(ri ** 2 - d * d, 0, None))
    A[y0:y1, x0:x1] += (depth * (mu_c * (t_o - t_i) + mu_t * t_i)).astype(np.float32)


def _posterior(c: Canvas, fr: Frame, v: Vertebra, rng: np.random.Generator, post: float) -> None:
    """Laminae, spinous and transverse processes, inferior articular processes (painted line integrals)."""
    s = fr.scale
    rim = max(1.1 * s, 1.0)
    hh = v.h_axis * math.cos(v.theta)
    yp = v.depth / 2 + 5
    ang = -math.degrees(v.beta)
    for side in (-1, 1):
        u0 = side * (v.ipd / 2 + v.ped_w)
        tilt = rng.normal(0, 0.12) + (0.25 if v.name.startswith("T") else 0.0)
        u1 = u0 + side * v.tp_len
        pts = np.array([[rot_u(v, u0, yp + 4), -0.08 * hh], [rot_u(v, u1, yp + 8), -0.08 * hh - abs(u1 - u0) * tilt]])
        c.tube(fr.local(v, pts), post * 0.8, max(0.22 * v.h_axis * s, 1.0), rim)
    sp = ap_spinous(v)
    top = sp[int(np.argmin(sp[:, 1]))]
    for side in (-1, 1):
        pu = rot_u(v, side * (v.ipd / 2 + v.ped_w / 2), yp + 8)
        pts = np.array([[pu, 0.05 * hh], [top[0] + side * 2.5, top[1] + 0.45 * hh]])
        c.line(fr.local(v, pts), post * 0.4, max(5 * s, 1.0))
        cen = fr.local(v, np.array([rot_u(v, side * (v.ipd / 2 + 1), yp + 10), 0.55 * hh]))
        c.ellipse(cen, (3.2 * s, 7.5 * s), ang, post * 0.4)
        c.ellipse(cen, (3.2 * s, 7.5 * s), ang, post * 0.35, max(s, 1))
    spx = fr.local(v, sp)
    c.fill(spx, post * 0.5)
    c.line(spx, post * 0.5, rim, closed=True)


def _ribs_and_clavicles(A: np.ndarray, spine: Spine, fr: Frame, rng: np.random.Generator, x_t: float,
                        mu_t: float, mu_c: float) -> None:
    th = spine.thorax_half
    rib_depth = rng.uniform(2.0, 3.2)  # the posterior arc runs partly along the ray
    for k in range(12):
        v = spine.level(f"T{k + 1}")
        a = th * RIB_REACH[k] * rng.uniform(0.95, 1.05)
        r_post = rng.uniform(3.0, 4.2) if k else rng.uniform(4.0, 5.5)
        for s in (-1, 1):
            x0 = v.centre[0] + s * (v.width / 2 + 0.5 * v.tp_len)
            z0 = v.centre[2] - 0.3 * v.h_axis
            xl = x_t + s * a
            reach = abs(xl - x0)
            if reach < 15:
                continue
            drop = rng.uniform(0.12, 0.35) * a  # the posterior arc rises from the spine, then bends down laterally
            post = cubic([x0, z0], [x0 + s * 0.4 * reach, z0 - rng.uniform(0.08, 0.18) * a],
                         [xl - s * 0.08 * reach, z0 + 0.2 * drop], [xl, z0 + drop])
            pts = np.stack([post[:, 0], np.zeros(len(post)), post[:, 1]], -1)
            _tube(A, fr, fr.px(pts), r_post, 0.5 * mu_t, mu_c, shell=0.8, depth=rib_depth)
            if k < 10:  # anterior arc back toward the sternum (costal cartilage is invisible)
                da = rng.uniform(25, 50)
                ant = cubic([xl, z0 + drop], [xl + s * 0.03 * a, z0 + drop + 0.35 * a],
                            [x_t + s * 0.55 * a, z0 + drop + 0.3 * a + da], [x_t + s * 0.3 * a, z0 + drop + 0.25 * a + 1.3 * da])
                pts = np.stack([ant[:, 0], np.zeros(len(ant)), ant[:, 1]], -1)
                _tube(A, fr, fr.px(pts), r_post * rng.uniform(1.1, 1.4), mu_t * 0.4, mu_c * 0.35, depth=rib_depth)
    t1, t3 = spine.level("T1"), spine.level("T3")
    for s in (-1, 1):
        med = [x_t + s * rng.uniform(12, 25), t3.centre[2] + rng.uniform(-12, 8)]
        mid = [x_t + s * 0.6 * th, t1.centre[2] - rng.uniform(-5, 15)]
        lat = [x_t + s * 1.3 * th, t1.centre[2] - rng.uniform(5, 35)]
        cl = bezier(med, mid, lat, 30)
        pts = np.stack([cl[:, 0], np.zeros(len(cl)), cl[:, 1]], -1)
        _tube(A, fr, fr.px(pts), rng.uniform(5.5, 7.5), mu_t, mu_c, shell=1.6)


def render_ap(spine: Spine, fr: Frame, rng: np.random.Generator, patient_id: str = "") -> np.ndarray:
    """Render the AP view; returns an (H, W) uint8 grey radiograph."""
    h, w = fr.height, fr.width
    x_t = 0.5 * float(np.mean([spine.level(f"T{k}").centre[0] for k in range(1, 13)]))
    mu_t = rng.uniform(0.004, 0.011)  # trabecular bone in excess of the water it displaces (bone density varies)
    mu_c = rng.uniform(0.028, 0.045)  # cortical
    A = _trunk_and_air(spine, fr, rng, x_t)
    soft = A.copy()
    A += _bowel(spine, fr, rng)
    A += _breasts(spine, fr, rng, x_t)
    # trabecular texture: fine, vertically streaked
    cell_u, cell_v = max(0.9 * fr.scale, 1.0), max(2.2 * fr.scale, 1.0)
    n = rng.standard_normal((max(int(h / cell_v), 2), max(int(w / cell_u), 2))).astype(np.float32)
    tex = cv2.resize(n, (w, h), interpolation=cv2.INTER_LINEAR)
    wb = _weights(rng)
    pel = Canvas(h, w)
    _ap_pelvis(spine, fr, rng, pel, wb)
    A += pel.a
    post = Canvas(h, w)
    waist = rng.uniform(0.03, 0.12)
    k_lum = rng.uniform(0.8, 2.2)
    for v in spine.vertebrae:
        f = (24.0 / v.depth) ** k_lum  # big lumbar bodies are more porous: less excess density per mm of path
        draw_body = _body if v.fracture == "none" else _fractured_body  # unfractured bodies stay as they were
        draw_body(A, fr, v, mu_t * f, mu_c * f, tex, waist)
        _pedicles(A, fr, v, mu_t * f, mu_c * f)
        _posterior(post, fr, v, rng, wb["post"])
    A += post.a
    _ribs_and_clavicles(A, spine, fr, rng, x_t, mu_t, mu_c)
    img = to_uint8(expose(A, fr.scale, rng, thick=soft), rng)
    marker = str(rng.choice(["L", "R"]))
    lines = [patient_id.replace("(", "").replace(")", ""), "AP",
             f"20{int(rng.integers(12, 24))}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}",
             str(rng.choice(["STANDING", "ERECT", "PA"]))]
    burn_in(img, rng, marker, lines)
    return img


__all__ = ["render_ap", "MU_WATER"]

"""The LAT radiograph: attenuation integrated along left-right rays through the same 3-D solids as the AP film.

The ray runs along x (patient's left-right), so each structure adds its path
length across the trunk; :mod:`xray` then forms the image as it does for AP.

* trunk: an elliptic cylinder of water, its lateral width (the path, ~30-40 cm
  over the abdomen and pelvis, more over the shoulders) and its depth following
  the body from the neck to the buttocks; an automatic exposure control brings
  the mean transmission back into the detector's range, so the thick lumbar and
  cervicothoracic fields are the noisy, low-contrast ones;
* lungs (air) from their apices to the hemidiaphragms (anterior dome high, the
  posterior recesses deep), the heart and the mediastinum in front of the
  spine, trachea, stomach bubble, bowel gas and mottled colon content that
  project over the lumbar bodies;
* vertebral bodies C7..L5: the LAT outline of :mod:`anatomy` extruded across
  the body's width (round anterior, flat posterior cross-section), with a
  cortical shell that is bright where the rays run tangentially (walls,
  endplates) around a trabecular core of adult-to-elderly density, little
  denser than soft tissue (on real films a body reads as its rim), with
  streaked texture, dish-shaped endplates
  (the central profile the masks follow, the rim a little higher or lower) and
  the coronal tilt of scoliosis that turns an endplate into a band;
* pedicles, articular pillars (facets and laminae) and transverse processes of
  both sides, offset by the axial rotation, and the spinous process, as rounded
  plates of compact bone on the masks' polygons; discs are soft tissue;
* ribs of both sides (the far side magnified more), sternum, scapulae, humeral
  heads and arms over the upper thoracic levels; sacrum, iliac wings (their
  crests arching over L4-L5 and the pelvic brim as bright curved lines) and
  femoral heads over the lumbosacral ones;
* display: darker than AP and stretched about the median, calibrated on real
  lateral lumbar films (dev/lat_real_stats.py): median grey near 70, a quarter
  of the film near-black, little saturation.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import cv2
import numpy as np

from spine_det.data.phantom.anatomy import (
    ALL_LEVELS, Frame, Spine, Vertebra, lat_posterior_elements, lat_spinous,
)
from spine_det.data.phantom.ap_render import MU_WATER, _box, _cov, _grid, _tube, smooth_field
from spine_det.data.phantom.render import Canvas, bezier, fix
from spine_det.data.phantom.xray import burn_in, expose, to_uint8

_S = (np.arange(8) + 0.5) / 8 * 2 - 1  # sample positions across a body's width (midpoints of 8 slices)


# ------------------------------------------------------------------ soft tissue and air (coarse grid)
def _back_y(spine: Spine, z: np.ndarray) -> np.ndarray:
    """y of the skin of the back at height z: behind the spinous tips, following kyphosis and lordosis."""
    zs = np.array([v.centre[2] for v in spine.vertebrae])
    tips = np.array([v.centre[1] + v.depth / 2 + 20 + v.sp_len * math.cos(v.sp_slope) for v in spine.vertebrae])
    return np.interp(z, zs, tips)


def _trunk_and_air(spine: Spine, fr: Frame, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """(soft, air) line integrals (e-folds) at full size, computed on a coarse grid: ``soft`` is the water
    of the trunk along each left-right ray, ``air`` what lungs, trachea and stomach take away from it."""
    h, w = fr.height, fr.width
    gh = 160
    gw = max(int(round(gh * w / h)), 16)
    z = ((np.arange(gh) + 0.5) * h / gh - fr.r0) / fr.scale
    y = ((np.arange(gw) + 0.5) * w / gw - fr.c0) / fr.scale
    Z, Y = np.meshgrid(z, y, indexing="ij")
    lv = {n: spine.level(n) for n in ("C7", "T1", "T4", "T10", "L3")}
    zk = [lv["C7"].centre[2] - 70, lv["C7"].centre[2] - 20, lv["T1"].centre[2], lv["T4"].centre[2],
          lv["T10"].centre[2], lv["L3"].centre[2], spine.crest_z + 30, 400.0]
    th = spine.thorax_half
    hw = spine.body_half_width
    ak = [rng.uniform(55, 75), rng.uniform(150, 200), rng.uniform(175, 225), th + rng.uniform(30, 50),
          th + rng.uniform(20, 35), hw * 0.95, hw * 1.12, hw * 1.18]  # half of the lateral path
    hd = spine.body_half_depth
    bk = [rng.uniform(45, 60), rng.uniform(60, 80), rng.uniform(85, 105), rng.uniform(95, 120),
          rng.uniform(100, 125), hd, hd * 1.05, hd * 1.05]
    a = np.interp(Z, zk, ak)
    b = np.interp(Z, zk, bk)
    back = cv2.GaussianBlur(_back_y(spine, Z), (1, 0), sigmaX=0.1, sigmaY=gh / 20) + rng.uniform(20, 45)
    yc = back - b
    p = rng.uniform(2.5, 4.0)  # a trunk is flatter at the sides than an ellipse
    r = np.clip(np.abs(Y - yc) / b, 0, 1)
    chord = (1 - r ** p) ** (1 / p)
    # the buttocks: the path behind the sacrum grows below the crests
    butt = np.clip((Z - spine.crest_z) / 60.0, 0, 1) * np.clip((Y - yc) / b + 0.2, 0, 1) * rng.uniform(0.0, 0.25)
    soft = MU_WATER * spine.fat * 2 * a * (chord + butt)
    # lungs: two of them side by side, each a lateral chord of about (thorax half - mediastinum)
    t1 = lv["T1"].centre[2]
    z_apex = t1 - rng.uniform(5, 25)
    y_front, y_back = yc - b + rng.uniform(15, 25), back - rng.uniform(30, 45)
    ylc, ylb = 0.5 * (y_front + y_back), 0.5 * (y_back - y_front)
    lung_w = 2 * np.clip(th - rng.uniform(25, 40), 40, None)  # both lungs' chord
    grow = np.sqrt(np.clip((Z - z_apex) / 100.0, 0, 1))
    ry = np.clip(np.abs(Y - ylc) / np.maximum(ylb * (0.45 + 0.55 * grow), 1e-3), 0, 1)
    prof = np.sqrt(1 - ry ** 2.5)
    y_dome = ylc - rng.uniform(0.0, 0.35) * ylb  # the domes peak in front of the middle
    air = np.zeros_like(soft)
    for dz in (0.0, spine.dome_dz):  # right and left lung, each down to its own dome
        dome = spine.diaphragm_z + dz
        dy = Y - y_dome
        zd = dome + np.where(dy > 0, rng.uniform(0.004, 0.008), rng.uniform(0.0015, 0.003)) * dy * dy
        fb = np.where(Z < zd, 0.4 + 0.6 * np.clip((zd - Z) / 40.0, 0, 1), 0.4 * np.clip(1 - (Z - zd) / 25.0, 0, 1))
        air += 0.5 * lung_w * prof * grow * fb
    vessels = np.clip(cv2.resize(rng.standard_normal((gh // 3, max(gw // 3, 2))).astype(np.float32), (gw, gh),
                                 interpolation=cv2.INTER_CUBIC), -2, 2)
    air *= 1.0 - rng.uniform(0.05, 0.2) * (0.5 + 0.5 * np.tanh(vessels))
    # the heart and the mediastinum in front of the spine displace lung
    spine_front = np.interp(Z, [v.centre[2] for v in spine.vertebrae],
                            [v.centre[1] - v.depth / 2 for v in spine.vertebrae])
    hz = spine.diaphragm_z + spine.dome_dz - rng.uniform(40, 65)
    hy = 0.5 * (y_front + spine_front) + rng.uniform(-10, 5)
    hb_y = 0.5 * np.maximum(spine_front - y_front, 20) * rng.uniform(0.8, 0.95)
    rh = ((Y - hy) / hb_y) ** 2 + ((Z - hz) / rng.uniform(50, 65)) ** 2
    air -= 2 * rng.uniform(50, 65) * np.sqrt(np.clip(1 - rh, 0, None))
    med = np.exp(-(((Y - (spine_front - rng.uniform(10, 20))) / rng.uniform(12, 20)) ** 2))
    air -= rng.uniform(25, 45) * med  # aorta, oesophagus
    air = np.clip(air, 0, None)
    # trachea down to the carina, in front of the upper thoracic bodies
    t4 = lv["T4"]
    tr_y = np.interp(Z, [lv["C7"].centre[2] - 100, t4.centre[2]],
                     [lv["C7"].centre[1] - lv["C7"].depth / 2 - 15, t4.centre[1] - t4.depth / 2 - 25])
    tr_r = rng.uniform(8, 11)
    tr_w = rng.uniform(14, 20)  # its lateral width
    air += tr_w * np.sqrt(np.clip(1 - ((Y - tr_y) / tr_r) ** 2, 0, None)) * (Z < t4.centre[2])
    if rng.random() < 0.6:  # stomach gas under the left dome, in front, a fluid level below
        gz = spine.diaphragm_z + spine.dome_dz + rng.uniform(10, 35)
        gy, gya, gza = y_front + rng.uniform(30, 80), rng.uniform(20, 45), rng.uniform(12, 28)
        rg = ((Y - gy) / gya) ** 2 + ((Z - gz) / gza) ** 2
        air += 2 * rng.uniform(15, 40) * np.sqrt(np.clip(1 - rg, 0, None)) * (Z < gz + 0.3 * gza)
    air = MU_WATER * 0.9 * air
    up = (w, h)
    return (cv2.resize(soft.astype(np.float32), up, interpolation=cv2.INTER_LINEAR),
            cv2.resize(air.astype(np.float32), up, interpolation=cv2.INTER_LINEAR))


def _bowel(spine: Spine, fr: Frame, rng: np.random.Generator) -> np.ndarray:
    """Bowel gas pockets, colonic tubes and mottled colon content in front of and over the lumbar bodies
    (the ascending and descending colon lie beside the spine, so their gas projects onto it)."""
    s = fr.scale
    g = Canvas(fr.height, fr.width)
    l1 = spine.level("L1")
    front = min(v.centre[1] - v.depth / 2 for v in spine.vertebrae[ALL_LEVELS.index("L1"):])
    back = max(v.centre[1] + v.depth / 2 for v in spine.vertebrae[ALL_LEVELS.index("L1"):])
    gas_y, gas_z = (front - 140, back), (l1.centre[2] - 20, 110)
    for _ in range(int(rng.integers(3, 12))):
        yc, zc = rng.uniform(*gas_y), rng.uniform(*gas_z)
        wc = -rng.uniform(0.1, 0.5)
        for _ in range(int(rng.integers(3, 10))):
            yy, zz = yc + rng.normal(0, 14), zc + rng.normal(0, 14)
            r = rng.uniform(3, 11) * s
            g.ellipse(fr.px(np.array([0, yy, zz])), (r, r * rng.uniform(0.5, 1.2)), rng.uniform(0, 180),
                      wc * rng.uniform(0.6, 1.0))
    for _ in range(int(rng.integers(1, 4))):
        pts3 = [[0, rng.uniform(*gas_y), rng.uniform(*gas_z)] for _ in range(3)]
        g.line(bezier(*fr.px(np.array(pts3))), -rng.uniform(0.04, 0.2), rng.uniform(10, 22) * s)
    out = cv2.GaussianBlur(g.a, (0, 0), 1.5 * s + 0.3)
    h, w = fr.height, fr.width
    rows = (np.arange(h, dtype=np.float32) - fr.r0) / fr.scale
    cols = (np.arange(w, dtype=np.float32) - fr.c0) / fr.scale
    z_top = spine.diaphragm_z + rng.uniform(30, 90)
    band = np.clip((rows - z_top) / 40.0, 0, 1) * np.clip((140.0 - rows) / 40.0, 0, 1)
    stop = front + rng.uniform(-10, 35)
    across = np.clip((cols - gas_y[0] + 40) / 40.0, 0, 1) * np.clip((stop - cols) / 40.0, 0, 1)
    region = smooth_field(rng, h, w, rng.uniform(40, 80) * s)
    region = np.clip(region - rng.uniform(-0.6, 0.6), 0, None) * band[:, None] * across[None, :]
    bubbles = np.clip(smooth_field(rng, h, w, rng.uniform(5.0, 12.0) * s) + rng.uniform(-0.2, 0.5), 0, None)
    out -= np.float32(rng.uniform(0.03, 0.2)) * region * cv2.GaussianBlur(bubbles, (0, 0), 1.0 * s + 0.3)
    return out


# ------------------------------------------------------------------ bones
def _body(A: np.ndarray, fr: Frame, v: Vertebra, mu_t: float, mu_c: float, tex: np.ndarray, tex_amp: float,
          shell: float, plate: float) -> None:
    """The vertebral body seen from the side, integrated across its width by 8 slices.

    Its outline at the mid-width slice is exactly :func:`anatomy.lat_body_outline` (walls with their
    waist and any retropulsion, endplates with the height profile through ha, hm, hp): the masks'
    polygon. Away from the middle the endplates rise toward the rim (a dish: the profile's middle
    height blends into the straight anterior-to-posterior rim line) and shift with the coronal tilt."""
    pxm = 1.0 / fr.scale
    half, bw = v.depth / 2, v.width / 2
    tb = abs(math.tan(v.beta))
    hmax = max(v.ha, v.hm, v.hp, v.h_exp) / 2 + bw * tb + 1.5
    corners = fr.local(v, np.array([[-half - 2, -hmax], [half + 2, -hmax], [-half - 2, hmax], [half + 2, hmax]]))
    box = _box(fr, corners, 2)
    if box is None:
        return
    cols, rows = _grid(box)
    u, w = fr.to_local(v, cols, rows)
    t_a = np.clip(w / v.ha + 0.5, 0, 1)
    t_p = np.clip(w / v.hp + 0.5, 0, 1)
    u_ant = -half + 0.8 * np.sin(np.pi * t_a)
    u_post = half - 0.6 * np.sin(np.pi * t_p) + v.retro * np.sin(np.pi * np.clip(t_p * 1.1, 0, 1)) ** 1.2
    uc, hd = 0.5 * (u_ant + u_post), 0.5 * (u_post - u_ant)
    uu = np.clip(u, -half, half)
    hc = v.profile(uu, half)  # the masks' endplate profile (mid-width)
    rim = v.ha + (v.hp - v.ha) * (uu / half + 1) / 2
    x0, y0, x1, y1 = box
    paths = []
    for inset, hin in ((0.0, 0.0), (shell, plate)):
        rho = (u - uc) / (hd - inset)
        pw = np.where(rho < 0, 2.0, 3.2)  # round in front, flat behind
        chord = (bw - inset) * np.clip(1 - np.abs(rho) ** pw, 0, None) ** (1 / pw)
        wall = _cov((1 - np.abs(rho)) * (hd - inset), pxm)
        tot = np.zeros_like(u)
        for s in _S:
            x = s * chord
            hk = 0.5 * (hc + (rim - hc) * s * s) - hin
            tot += _cov(hk - np.abs(w - x * math.tan(v.beta)), pxm)
        paths.append(tot * (2 * chord / len(_S)) * wall)
    t_o, t_i = paths
    dens = 1.0 + 0.6 * max(v.h_exp / max(v.h_axis, 1e-3) - 1.0, 0.0)  # compressed trabeculae are denser
    core = mu_t * dens * t_i * (1.0 + tex_amp * tex[y0:y1, x0:x1])
    A[y0:y1, x0:x1] += (core + mu_c * np.clip(t_o - t_i, 0, None)).astype(np.float32)


def _plate(A: np.ndarray, fr: Frame, poly_px: np.ndarray, thick: float, mu_t: float, mu_c: float,
           shell: float = 1.0, edge: float = 0.0, tex: Optional[np.ndarray] = None) -> None:
    """A bone plate of the polygon's outline and ``thick`` mm along the ray, its edges rounded over ``edge``
    mm (default half the thickness): a cortical shell bright at the rim where the rays graze it."""
    edge = edge or thick / 2
    box = _box(fr, poly_px, 2)
    if box is None:
        return
    x0, y0, x1, y1 = box
    m = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(m, [fix(np.asarray(poly_px) - [x0, y0])], 255, cv2.LINE_AA, 4)
    inside = m > 127
    if not inside.any():
        return
    d = (cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 3) - 0.5) / np.float32(fr.scale)
    d = np.maximum(d, 0.5 / fr.scale) * inside + (m / 255.0 * 0.5 / fr.scale) * ~inside
    e = np.clip(d / edge, 0, 1)
    t_o = thick * np.sqrt(1 - (1 - e) ** 2)
    ei = np.clip((d - shell) / max(edge - shell, 0.3), 0, 1)
    t_i = max(thick - 2 * shell, 0.0) * np.sqrt(1 - (1 - ei) ** 2) * (d > shell)
    core = mu_t * t_i if tex is None else mu_t * t_i * (1.0 + tex[y0:y1, x0:x1])
    A[y0:y1, x0:x1] += (mu_c * (t_o - t_i) + core).astype(np.float32)


def _ball(A: np.ndarray, fr: Frame, c_px: np.ndarray, r: float, mu_t: float, mu_c: float, shell: float,
          squash: float = 1.0) -> None:
    """A sphere (a femoral or humeral head) of radius r mm; ``squash`` < 1 flattens it along the ray."""
    box = _box(fr, np.asarray(c_px)[None], r * fr.scale + 2)
    if box is None:
        return
    cols, rows = _grid(box)
    d = np.hypot(cols - c_px[0], rows - c_px[1]) / fr.scale
    t_o = 2 * np.sqrt(np.clip(r * r - d * d, 0, None))
    ri = r - shell
    t_i = 2 * np.sqrt(np.clip(ri * ri - d * d, 0, None))
    x0, y0, x1, y1 = box
    A[y0:y1, x0:x1] += (squash * (mu_c * (t_o - t_i) + mu_t * t_i)).astype(np.float32)


def _posterior(A: np.ndarray, fr: Frame, v: Vertebra, rng: np.random.Generator, mu_t: float, mu_c: float) -> None:
    """Pedicles, articular pillars (facets and laminae) and transverse processes of both sides, the two
    sides offset by the axial rotation; the spinous process in the middle (the masks' polygon)."""
    pe = lat_posterior_elements(v)
    dd = (v.ipd / 2 + v.ped_w / 2) * math.sin(v.gamma) + rng.uniform(0.3, 1.5)
    h, half = v.h_axis, v.depth / 2
    for sh in (-dd, dd):
        off = np.array([sh, sh * 0.2])
        _plate(A, fr, fr.local(v, pe["pedicle"] + off), v.ped_w, mu_t, mu_c, 1.5)  # a cortical tube
        _plate(A, fr, fr.local(v, pe["pillar"] + off), rng.uniform(10, 15), mu_t, mu_c, 1.2)
        # the transverse process points along the ray: a dense oval where it leaves the pillar
        tp = np.array([half + 9.0 + 0.2 * half + 3, -0.05 * h]) + off
        cx = fr.local(v, tp)
        ax = (max(3.5 * fr.scale, 0.8), max(0.16 * h * fr.scale, 0.8))
        pts = cv2.ellipse2Poly((0, 0), (100, 100), 0, 0, 360, 20).astype(np.float64) / 100.0
        oval = cx + pts * np.array(ax)
        _plate(A, fr, oval, 0.45 * v.tp_len, mu_t, mu_c, 0.7, edge=2.0)
    _plate(A, fr, fr.local(v, lat_spinous(v)), rng.uniform(7, 11), mu_t, mu_c, 1.2)


def _ribs(A: np.ndarray, spine: Spine, fr: Frame, rng: np.random.Generator, y_front: float, y_back: float,
          mu_t: float, mu_c: float) -> None:
    """Both ribs of T1..T12: from the costovertebral joint back to the posterior angle, then down and forward
    across the lung to the anterior chest wall (11-12 float); the far side magnified more and shifted."""
    centre = np.array([fr.width / 2, fr.height / 2])
    mag = rng.uniform(1.04, 1.12)
    shift = rng.uniform(2, 10) * fr.scale * np.array([rng.choice([-1, 1]), rng.uniform(-0.5, 0.5)])
    r_rib = rng.uniform(4.0, 5.5)
    for k in range(1, 13):
        v = spine.level(f"T{k}")
        z0 = v.centre[2] - 0.2 * v.h_axis
        y0 = v.centre[1] + v.depth / 2 + 4
        reach = 1.0 if k <= 10 else (0.55 if k == 11 else 0.3)
        drop = (40 + 9 * min(k, 8)) * rng.uniform(0.85, 1.15)
        for side in (0, 1):
            jit = rng.normal(0, 2, 2)
            p_ang = np.array([max(y0 + 0.35 * (y_back - y0), y0 + 8), z0 + 6])
            p_end = np.array([y_back + reach * (y_front + 25 - y_back), z0 + drop * (0.45 + 0.55 * reach)])
            ctrl = np.array([0.5 * (p_ang[0] + p_end[0]) + 0.15 * (y_back - y_front), z0 + 1.15 * drop * reach])
            head = bezier([y0, z0], [0.5 * (y0 + p_ang[0]), z0 - 4], p_ang, 6) + jit
            arc = bezier(p_ang, ctrl, p_end, 22) + jit
            px_h = fr.px(np.stack([np.zeros(len(head)), head[:, 0], head[:, 1]], -1))
            px_a = fr.px(np.stack([np.zeros(len(arc)), arc[:, 0], arc[:, 1]], -1))
            if side:
                px_h, px_a = centre + (px_h - centre) * mag + shift, centre + (px_a - centre) * mag + shift
            # neck and head run along the ray (dense); the shaft is seen flat, crossing the lung
            _tube(A, fr, px_h, r_rib * 0.8, mu_t * 0.5, mu_c, shell=0.8, depth=1.3)
            _tube(A, fr, px_a, r_rib, mu_t * 0.4, mu_c * 0.8, shell=0.7, depth=0.8)


def _thorax(A: np.ndarray, spine: Spine, fr: Frame, rng: np.random.Generator, y_front: float, y_back: float,
            mu_t: float, mu_c: float) -> None:
    """Sternum, scapulae, humeral heads and the arms held forward, over the upper thoracic levels."""
    lv = {k: spine.level(f"T{k}") for k in (1, 2, 5, 8, 9)}
    st = np.array([[0, y_front + rng.uniform(12, 25), lv[2].centre[2] + 10], [0, y_front + 8, lv[5].centre[2]],
                   [0, y_front + rng.uniform(10, 22), lv[9].centre[2] + 10]])
    _tube(A, fr, bezier(*fr.px(st)), rng.uniform(6, 8), mu_t, mu_c, shell=1.2, depth=rng.uniform(2.5, 4.0))
    for _ in (0, 1):
        d = rng.uniform(-12, 12)
        plate = np.array([[0, y_back - rng.uniform(5, 20), lv[1].centre[2] - 15 + d],
                          [0, lv[2].centre[1] + lv[2].depth / 2 + 25, lv[2].centre[2] + d],
                          [0, y_back - rng.uniform(20, 45), lv[8].centre[2] + d]])
        pts = fr.px(plate)
        _plate(A, fr, pts, rng.uniform(5, 9), 0.6 * mu_t, 0.6 * mu_c, 1.0)
        _tube(A, fr, pts[[1, 2]], 3.5, mu_t, mu_c, shell=1.0, depth=2.5)  # the lateral border, edge-on
    sh_c = np.array([0, spine.body_y + rng.uniform(-20, 20), lv[1].centre[2] - rng.uniform(0, 25)])
    for _ in (0, 1):
        head = sh_c + np.array([0, rng.uniform(-30, 10), rng.uniform(0, 20)])
        r = rng.uniform(20, 25)
        _ball(A, fr, fr.px(head), r, mu_t, mu_c, 2.0)
        a = math.radians(rng.uniform(20, 70))  # the arm raised forward
        shaft = np.array([head, head + np.array([0, -math.sin(a), math.cos(a)]) * rng.uniform(150, 250)])
        _tube(A, fr, fr.px(shaft), rng.uniform(10, 12), 0.5 * mu_t, mu_c, shell=3.0)


def _pelvis(A: np.ndarray, spine: Spine, fr: Frame, rng: np.random.Generator, mu_t: float, mu_c: float,
            tex: np.ndarray) -> None:
    """Sacrum (the S1 body and the alae beside it along the ray), both iliac wings with their crests seen
    tangentially, and the femoral heads."""
    a = spine.sacral_slope
    eu = np.array([math.cos(a), -math.sin(a)])
    ev = np.array([math.sin(a), math.cos(a)])
    D, L = spine.s1_depth, spine.sacrum_len

    def yz_px(p: np.ndarray) -> np.ndarray:
        yz = p[:, :1] * eu + p[:, 1:2] * ev
        return fr.px(np.stack([np.zeros(len(yz)), yz[:, 0], yz[:, 1]], -1))

    t = np.linspace(0, 1, 9)
    uc = -0.22 * L * t ** 2
    ant = np.stack([uc - D / 2 * (1 - 0.65 * t), t * L], -1)
    post = np.stack([uc + (D / 2 + 14) * (1 - 0.75 * t), t * L], -1)
    _plate(A, fr, yz_px(np.concatenate([ant, post[::-1]])), 0.4 * spine.s1_width, mu_t, mu_c, 1.2, edge=6.0, tex=tex)
    up = t <= 0.5
    _plate(A, fr, yz_px(np.concatenate([ant[up], post[up][::-1]])), 0.5 * spine.s1_width, 0.5 * mu_t, 0.4 * mu_c,
           1.0, edge=15.0, tex=tex)  # the alae
    y_ant, y_post = -D / 2 * math.cos(a), D / 2 * math.cos(a) + 15
    cz = spine.crest_z
    for _ in range(2):
        dy, dz = rng.uniform(-8, 8), rng.uniform(-8, 8)
        # the crest arches over L4-L5 (its top at or above the L4/L5 disc), from the ASIS to the PSIS
        asis = np.array([y_ant - rng.uniform(40, 70), cz + rng.uniform(25, 45)])
        psis = np.array([y_post + rng.uniform(20, 40), cz + rng.uniform(15, 35)])
        top = np.array([y_ant + rng.uniform(0, 30), cz - rng.uniform(20, 45)])
        crest = bezier(asis, top, psis, 14)
        back = bezier(psis, [y_post + 30, 55], [y_post + 5, 75], 8)
        low = bezier([y_post + 5, 75], [y_ant + 20, 95], [y_ant + 5, 125], 8)
        front = bezier([y_ant + 5, 125], [y_ant - 45, 95], asis, 10)
        wing = np.concatenate([crest, back, low, front]) + [dy, dz]
        wpx = fr.px(np.stack([np.zeros(len(wing)), wing[:, 0], wing[:, 1]], -1))
        _plate(A, fr, wpx, rng.uniform(7, 11), mu_t, 0.6 * mu_c, 1.0, edge=15.0, tex=tex)
        # the crest's thick rim and the pelvic brim (arcuate line) run along the ray: bright curved lines
        _tube(A, fr, wpx[:14], rng.uniform(3.0, 4.5), mu_t, mu_c, shell=1.2, depth=rng.uniform(1.5, 3.0))
        _tube(A, fr, wpx[22:30], rng.uniform(2.0, 3.0), mu_t, mu_c, shell=1.0, depth=rng.uniform(1.0, 2.0))
        fh = fr.px(np.array([0, y_ant - 10 + dy, rng.uniform(125, 140) + dz]))
        _ball(A, fr, fh, rng.uniform(22, 26), mu_t, mu_c, 2.5)


def render_lat3d(spine: Spine, fr: Frame, rng: np.random.Generator, patient_id: str = "") -> np.ndarray:
    """Render the LAT view of ``spine`` (neutral or bent) in field ``fr``; returns an (H, W) uint8 radiograph."""
    h, w = fr.height, fr.width
    mu_t = rng.uniform(0.008, 0.015)  # trabecular bone in excess of water (denser than AP's: the core must show)
    mu_c = rng.uniform(0.028, 0.045)
    soft, air = _trunk_and_air(spine, fr, rng)
    A = soft - air
    A += _bowel(spine, fr, rng)
    cell_u, cell_v = max(0.9 * fr.scale, 1.0), max(2.2 * fr.scale, 1.0)
    n = rng.standard_normal((max(int(h / cell_v), 2), max(int(w / cell_u), 2))).astype(np.float32)
    tex = cv2.resize(n, (w, h), interpolation=cv2.INTER_LINEAR)
    tex_amp = rng.uniform(0.15, 0.35)
    k_lum = rng.uniform(0.2, 1.0)
    shell, plate = rng.uniform(1.0, 1.6), rng.uniform(1.0, 1.8)
    # adult and elderly bodies: the trabecular core loses density first (osteopenia), the cortical shell and
    # the endplates keep theirs, so a body reads as a bright rim around an interior little denser than soft tissue
    core_f, shell_f = rng.uniform(0.3, 0.75), rng.uniform(1.2, 1.7)
    post_f = rng.uniform(1.3, 2.0)  # the posterior arch is compact bone: pedicles, facets and laminae stand out
    for v in spine.vertebrae:
        f = (24.0 / v.depth) ** k_lum  # big lumbar bodies are more porous
        _body(A, fr, v, mu_t * f * core_f, mu_c * f * shell_f, tex, tex_amp, shell, plate)
        _posterior(A, fr, v, rng, mu_t * f * post_f, mu_c * f * post_f)
    back = _back_y(spine, np.array([spine.level("T6").centre[2]]))[0] + 30
    front = back - 2 * rng.uniform(95, 120)
    _ribs(A, spine, fr, rng, front, back - 25, mu_t, mu_c)
    _thorax(A, spine, fr, rng, front, back, mu_t, mu_c)
    f = (24.0 / spine.s1_depth) ** k_lum  # the sacrum and pelvis are as porous as the lowest bodies
    _pelvis(A, spine, fr, rng, mu_t * f, mu_c * f, tex_amp * tex)
    # automatic exposure control: the thick lateral trunk gets more mAs, but not all it would need
    aec = float(np.median(soft[::8, ::8])) - rng.uniform(3.0, 4.2)
    body = np.clip(soft / np.float32(1.0), 0, 1)  # where the trunk is (and scatters)
    x = expose(A - np.float32(max(aec, 0.0)), fr.scale, rng, thick=soft, scatter_mask=body)
    # lateral films are displayed darker than AP ones and with a wider grey range: the processing stretches the
    # film about its median (air black, bone bright), a gamma puts the soft tissue in the low greys, and the
    # window leaves headroom above the densest bone (real lateral films rarely saturate). Calibrated on real
    # lateral lumbar films: grey p25/p50/p75/p95 near 30/70/120/180, a quarter of the film below 20
    m = np.float32(np.median(x[::4, ::4]))
    x = np.clip(m + (x - m) * np.float32(rng.uniform(1.3, 1.7)), 0.0, 1.0)
    x = np.power(x, np.float32(rng.uniform(1.8, 2.8))) * np.float32(rng.uniform(0.8, 0.92))
    img = to_uint8(x, rng)
    marker = str(rng.choice(["L", "R"]))
    lines = [patient_id.replace("(", "").replace(")", ""), "LAT",
             f"20{int(rng.integers(12, 24))}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}",
             str(rng.choice(["STANDING", "ERECT", "LATERAL"]))]
    burn_in(img, rng, marker, lines)
    return img


__all__ = ["render_lat3d"]

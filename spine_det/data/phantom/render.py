"""Paint a :class:`Spine` as a LAT radiograph (uint8 grey, bone bright); the AP pelvis painter is shared.

The image is built in a log-attenuation domain: soft tissue, gas and bone are
drawn as cv2 shapes into float layers (only inside each shape's bounding box),
then blurred (focal spot), processed (unsharp mask like CR/DR systems), given a
heel-effect gradient, quantum + electronic noise, a window and a gamma, and
finally side markers and text are burned in.
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence

import cv2
import numpy as np

from spine_det.data.phantom.anatomy import (
    ALL_LEVELS, Frame, Spine, Vertebra, lat_body_outline, lat_body_polygon, lat_posterior_elements, lat_spinous,
)

SHIFT = 4  # cv2 sub-pixel bits
_ONE = 1 << SHIFT


def fix(pts: np.ndarray) -> np.ndarray:
    """Float pixel coordinates -> cv2 fixed-point int32 points (for ``shift=SHIFT``)."""
    return np.round(np.asarray(pts, dtype=np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)


class Canvas:
    """A float layer that shapes are added to with a weight, drawn anti-aliased inside their bounding box."""

    def __init__(self, height: int, width: int):
        self.a = np.zeros((height, width), np.float32)
        self.h, self.w = height, width

    def _roi(self, pts: np.ndarray, pad: float):
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        x0 = max(int(math.floor(pts[:, 0].min() - pad)) - 1, 0)
        y0 = max(int(math.floor(pts[:, 1].min() - pad)) - 1, 0)
        x1 = min(int(math.ceil(pts[:, 0].max() + pad)) + 2, self.w)
        y1 = min(int(math.ceil(pts[:, 1].max() + pad)) + 2, self.h)
        if x1 <= x0 or y1 <= y0:
            return None
        return x0, y0, x1, y1

    def _add(self, roi, tmp: np.ndarray, w: float) -> None:
        x0, y0, x1, y1 = roi
        self.a[y0:y1, x0:x1] += tmp.astype(np.float32) * np.float32(w / 255.0)

    def fill(self, pts: np.ndarray, w: float) -> None:
        roi = self._roi(pts, 1)
        if roi is None:
            return
        tmp = np.zeros((roi[3] - roi[1], roi[2] - roi[0]), np.uint8)
        cv2.fillPoly(tmp, [fix(np.asarray(pts) - roi[:2])], 255, cv2.LINE_AA, SHIFT)
        self._add(roi, tmp, w)

    def line(self, pts: np.ndarray, w: float, thick: float, closed: bool = False) -> None:
        t = max(int(round(thick)), 1)
        roi = self._roi(pts, t)
        if roi is None:
            return
        tmp = np.zeros((roi[3] - roi[1], roi[2] - roi[0]), np.uint8)
        cv2.polylines(tmp, [fix(np.asarray(pts) - roi[:2])], closed, 255, t, cv2.LINE_AA, SHIFT)
        self._add(roi, tmp, w)

    def tube(self, pts: np.ndarray, w: float, thick: float, rim: float) -> None:
        """A bone band with bright cortical edges (e.g. a rib)."""
        self.line(pts, w, thick)
        if thick - 2 * rim >= 1:
            self.line(pts, -0.55 * w, thick - 2 * rim)

    def ellipse(self, centre, axes, angle_deg: float, w: float, thick: float = -1) -> None:
        t = -1 if thick < 0 else max(int(round(thick)), 1)
        pad = max(axes) + max(t, 0)
        roi = self._roi(np.array([centre]), pad)
        if roi is None:
            return
        tmp = np.zeros((roi[3] - roi[1], roi[2] - roi[0]), np.uint8)
        c = (int(round((centre[0] - roi[0]) * _ONE)), int(round((centre[1] - roi[1]) * _ONE)))
        ax = (max(int(round(axes[0] * _ONE)), 1), max(int(round(axes[1] * _ONE)), 1))
        cv2.ellipse(tmp, c, ax, angle_deg, 0, 360, 255, t, cv2.LINE_AA, SHIFT)
        self._add(roi, tmp, w)


def bezier(p0, p1, p2, n: int = 24) -> np.ndarray:
    t = np.linspace(0, 1, n)[:, None]
    p0, p1, p2 = (np.asarray(p, dtype=np.float64) for p in (p0, p1, p2))
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t * t * p2


def smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Zero-mean, unit-ish smooth noise with features about ``cell`` px wide (built small, upscaled)."""
    sh, sw = max(int(h / cell), 2), max(int(w / cell), 2)
    n = rng.standard_normal((sh, sw), dtype=np.float32)
    return cv2.resize(n, (w, h), interpolation=cv2.INTER_CUBIC)


def _lumbar(spine: Spine) -> List[Vertebra]:
    """T9..L5: the levels of the lumbar field (bowel gas lies in front of them)."""
    return spine.vertebrae[ALL_LEVELS.index("T9"):]


# ------------------------------------------------------------------ soft tissue
def _soft_tissue(spine: Spine, fr: Frame, rng: np.random.Generator) -> np.ndarray:
    """LAT trunk path length (0..~1) on a coarse grid, upscaled: brighter where the body is thicker."""
    h, w = fr.height, fr.width
    gh, gw = 64, max(int(64 * w / h), 8)
    cols = (np.arange(gw) + 0.5) * w / gw
    rows = (np.arange(gh) + 0.5) * h / gh
    z = (rows - fr.r0) / fr.scale
    hcoord = (cols - fr.c0) / fr.scale
    pelvis = 1.0 / (1.0 + np.exp(-(z - spine.crest_z + 20) / 15.0))  # 0 above the crests, 1 in the pelvis
    half = spine.body_half_depth * (1.0 + 0.05 * pelvis)
    r = (hcoord[None, :] - spine.body_y) / half[:, None]
    depth = 1.0 + 0.35 * pelvis[:, None]  # buttocks: a thicker path below the crests
    prof = np.sqrt(np.clip(1.0 - r * r, 0.0, None)) * depth
    soft = cv2.resize(prof.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return soft * np.float32(0.75 * spine.fat)


def _lungs_and_gas(spine: Spine, fr: Frame, rng: np.random.Generator, canvas: Canvas) -> None:
    """LAT air: both lungs down to their hemidiaphragms (the left one lower) and bowel gas."""
    s = fr.scale
    verts = _lumbar(spine)
    yb = spine.body_y
    ys = np.linspace(yb - spine.body_half_depth - 50, yb + spine.body_half_depth + 50, 12)
    w_lung = rng.uniform(0.12, 0.25)
    for dz in (0.0, spine.dome_dz):  # each lung darkens down to its own dome; the costophrenic recess is posterior
        zs = spine.diaphragm_z + dz - 20 + 0.35 * (ys - yb) - 0.002 * (ys - yb) ** 2
        pts = [[0, y, zz] for y, zz in zip(ys, zs)] + [[0, ys[-1], -500], [0, ys[0], -500]]
        canvas.fill(fr.px(np.array(pts)), -0.5 * w_lung)
    front = min(v.centre[1] - v.depth / 2 for v in verts)
    gas_x, gas_z = (front - 150, front - 5), (verts[2].centre[2], 80)
    # bowel gas: clustered dark blobs and a few colonic tubes (drawn soft, like the muscles)
    gas = Canvas(fr.height, fr.width)
    for _ in range(int(rng.integers(4, 11))):  # clusters of small irregular gas pockets
        hc, zc = rng.uniform(*gas_x), rng.uniform(*gas_z)
        wc = -rng.uniform(0.05, 0.16)
        for _ in range(int(rng.integers(3, 10))):
            hh, zz = hc + rng.normal(0, 12), zc + rng.normal(0, 12)
            p = np.array([0, hh, zz])
            r = rng.uniform(3, 10) * s
            gas.ellipse(fr.px(p), (r, r * rng.uniform(0.5, 1.2)), rng.uniform(0, 180), wc * rng.uniform(0.6, 1.0))
    for _ in range(int(rng.integers(1, 4))):
        a = rng.uniform(*gas_x), rng.uniform(*gas_z)
        b = rng.uniform(*gas_x), rng.uniform(*gas_z)
        m = rng.uniform(*gas_x), rng.uniform(*gas_z)
        pts3 = [[0, x, zz] for x, zz in (a, m, b)]
        pp = bezier(*fr.px(np.array(pts3)))
        gas.line(pp, -rng.uniform(0.04, 0.09), rng.uniform(8, 18) * s)
    canvas.a += cv2.GaussianBlur(gas.a, (0, 0), 1.5 * s)


# ------------------------------------------------------------------ bones
def _draw_body(c: Canvas, fr: Frame, v: Vertebra, poly: np.ndarray, endplates: Sequence[np.ndarray], wb: Dict[str, float],
               rng: np.random.Generator) -> None:
    s = fr.scale
    rim = max(1.1 * s, 1.0)
    px = fr.local(v, poly)
    for k, f in enumerate((1.0, 0.8, 0.55)):  # rounded (cylinder-like) density profile
        c.fill(fr.local(v, poly * f), wb["body"] * (0.5, 0.3, 0.2)[k])
    c.line(px, wb["cortex"], rim, closed=True)
    for ep in endplates:
        c.line(fr.local(v, ep), wb["endplate"], rim * 1.1)
    if v.fracture != "none":  # impacted trabeculae: a sclerotic band under the superior endplate
        band = np.array([[-0.45, -0.3], [0.45, -0.3], [0.45, 0.0], [-0.45, 0.0]])
        scale = np.array([v.depth, v.h_axis])
        c.fill(fr.local(v, band * scale), 0.12 + 0.05 * v.grade)


def _weights(rng: np.random.Generator) -> Dict[str, float]:
    return {
        "body": rng.uniform(0.30, 0.42), "cortex": rng.uniform(0.16, 0.26), "endplate": rng.uniform(0.12, 0.22),
        "post": rng.uniform(0.22, 0.34), "rib": rng.uniform(0.30, 0.45), "pelvis": rng.uniform(0.15, 0.25),
        "crest": rng.uniform(0.30, 0.45),
    }


def _ap_pelvis(spine: Spine, fr: Frame, rng: np.random.Generator, c: Canvas, wb: Dict[str, float]) -> None:
    s = fr.scale
    rim = max(1.1 * s, 1.0)
    cs = math.cos(spine.sacral_slope)
    L = spine.sacrum_len * cs
    hw = spine.s1_width / 2
    x_off = rng.normal(0, 2)
    sac = np.array([[-hw - 8, 2], [-hw, 0], [hw, 0], [hw + 8, 2], [58, 8], [52, 0.35 * L], [34, 0.65 * L], [10, L],
                    [-10, L], [-34, 0.65 * L], [-52, 0.35 * L], [-58, 8]], dtype=np.float64)
    sac3 = np.stack([sac[:, 0] + x_off, np.zeros(len(sac)), sac[:, 1]], -1)
    spx = fr.px(sac3)
    cen = spx.mean(0)
    for f, k in ((1.0, 0.45), (0.8, 0.2), (0.55, 0.15)):
        c.fill(cen + (spx - cen) * f, wb["body"] * k)
    c.line(spx, wb["cortex"] * 0.6, rim, closed=True)
    ring_b = 0.5 * spine.s1_depth * math.sin(spine.sacral_slope)
    c.ellipse(fr.px(np.array([x_off, 0, 0])), (hw * s, ring_b * s), 0, wb["endplate"], rim)
    for k, fz in enumerate((0.18, 0.36, 0.53, 0.7)):
        for side in (-1, 1):
            cen = fr.px(np.array([x_off + side * (20 - 3 * k), 0, fz * L]))
            c.ellipse(cen, (4.5 * s, 3.5 * s), 0, -0.12)
    for side in (-1, 1):
        cz = spine.crest_z
        ph = spine.pelvis_half
        wing = np.array([[side * 48, 0, 10], [side * 55, 0, cz + 18], [side * 85, 0, cz - 4], [side * ph, 0, cz + 5],
                         [side * (ph + 30), 0, cz + 45], [side * (ph + 20), 0, 120], [side * 100, 0, 115],
                         [side * 70, 0, 80], [side * 52, 0, 50]])
        wpx = fr.px(wing)
        c.fill(wpx, wb["pelvis"] * 0.8)
        thick = np.array([[side * 48, 0, 10], [side * 60, 0, cz + 25], [side * 75, 0, 40], [side * 95, 0, 115],
                          [side * 70, 0, 80], [side * 52, 0, 50]])
        c.fill(fr.px(thick), wb["pelvis"] * 0.5)  # thick ilium beside the SI joint, toward the acetabulum
        crest = bezier(*fr.px(np.array([[side * 55, 0, cz + 18], [side * 90, 0, cz - 18], [side * (ph + 30), 0, cz + 45]])))
        c.tube(crest, wb["crest"], 7 * s, rim)
        sij = fr.px(np.array([[side * 50, 0, 8], [side * 56, 0, 30], [side * 47, 0, 60]]))
        c.line(sij, wb["crest"] * 0.45, 1.5 * rim)
        brim = bezier(*fr.px(np.array([[side * 50, 0, 58], [side * 85, 0, 80], [side * 75, 0, 125]])))
        c.line(brim, wb["crest"] * 0.6, 1.5 * rim)
        fh = fr.px(np.array([side * rng.uniform(85, 100), 0, rng.uniform(130, 150)]))
        c.ellipse(fh, (24 * s, 24 * s), 0, wb["pelvis"] * 1.5)
        c.ellipse(fh, (24 * s, 24 * s), 0, wb["crest"] * 0.6, rim)


def _lat_bones(spine: Spine, fr: Frame, rng: np.random.Generator, c: Canvas, wb: Dict[str, float]) -> None:
    """The whole column C7..L5 (shapes outside the field cost nothing), pelvis first, ribs last."""
    s = fr.scale
    rim = max(1.1 * s, 1.0)
    _lat_pelvis(spine, fr, rng, c, wb)
    for v in spine.vertebrae:
        o = lat_body_outline(v)
        _draw_body(c, fr, v, lat_body_polygon(v), [o["sup"], o["inf"]], wb, rng)
        pe = lat_posterior_elements(v)
        dd = (v.ipd / 2 + v.ped_w / 2) * math.sin(v.gamma) + rng.uniform(0.3, 1.5)
        for sh in (-dd, dd):
            off = np.array([sh, sh * 0.2])
            ped = fr.local(v, pe["pedicle"] + off)
            c.fill(ped, wb["post"] * 0.45)
            c.line(ped, wb["post"] * 0.35, rim, closed=True)
            pil = fr.local(v, pe["pillar"] + off)
            c.fill(pil, wb["post"] * 0.45)
            c.line(pil, wb["post"] * 0.3, rim, closed=True)
        sp = fr.local(v, lat_spinous(v))
        c.fill(sp, wb["post"] * 0.7)
        c.line(sp, wb["post"] * 0.5, rim, closed=True)
    _lat_ribs(spine, fr, rng, c, wb)


def _lat_ribs(spine: Spine, fr: Frame, rng: np.random.Generator, c: Canvas, wb: Dict[str, float]) -> None:
    """Both ribs of T1..T12 seen from the side: from the costovertebral joint back to the posterior angle,
    then down and forward across the lung to the anterior chest wall (ribs 11-12 float, stopping short).
    The two sides are shifted by the beam's divergence and the trunk's rotation."""
    s = fr.scale
    rim = max(1.1 * s, 1.0)
    y_back = spine.body_y + spine.body_half_depth
    y_front = spine.body_y - spine.body_half_depth
    shift = rng.uniform(4, 14) * np.array([rng.choice([-1, 1]), rng.uniform(-0.5, 0.5)])
    for k in range(1, 13):
        v = spine.level(f"T{k}")
        z0 = v.centre[2] - 0.2 * v.h_axis
        y0 = v.centre[1] + v.depth / 2 + 6
        reach = 1.0 if k <= 10 else (0.55 if k == 11 else 0.3)  # the share of the way to the front
        drop = (40 + 9 * min(k, 8)) * rng.uniform(0.85, 1.15)  # the anterior end lies several levels lower
        for side in (0, 1):
            off = shift * side + rng.normal(0, 2, 2)
            p_ang = np.array([max(y0 + 0.35 * (y_back - y0), y0 + 8), z0 + 6])  # posterior angle
            p_end = np.array([y_back + reach * (y_front + 25 - y_back), z0 + drop * (0.45 + 0.55 * reach)])
            ctrl = np.array([0.5 * (p_ang[0] + p_end[0]) + 0.15 * (y_back - y_front), z0 + 1.15 * drop * reach])
            head = bezier([y0, z0], [0.5 * (y0 + p_ang[0]), z0 - 4], p_ang, 6)
            arc = np.concatenate([head, bezier(p_ang, ctrl, p_end, 22)[1:]]) + off
            pts = fr.px(np.stack([np.zeros(len(arc)), arc[:, 0], arc[:, 1]], -1))
            c.tube(pts, wb["rib"] * 0.3, rng.uniform(7, 10) * s, rim)


def _lat_thorax(spine: Spine, fr: Frame, rng: np.random.Generator, bone: Canvas, soft: Canvas,
                wb: Dict[str, float]) -> None:
    """What a thoracic LAT field shows beside the spine: heart, trachea, sternum, scapulae, shoulders and
    raised arms (standing lateral films have the arms forward), each drawn only where the field reaches."""
    s = fr.scale
    rim = max(1.1 * s, 1.0)
    lv = {k: spine.level(f"T{k}") for k in (1, 2, 4, 5, 8, 9)}
    y_back = spine.body_y + spine.body_half_depth
    y_front = spine.body_y - spine.body_half_depth
    spine_front = min(v.centre[1] - v.depth / 2 for v in lv.values())
    heart_c = np.array([0.0, 0.5 * (y_front + spine_front) + rng.uniform(-10, 10), spine.diaphragm_z - rng.uniform(45, 65)])
    axes = (0.5 * (spine_front - y_front) * rng.uniform(0.85, 1.0) * s, rng.uniform(50, 65) * s)
    heart = Canvas(fr.height, fr.width)
    heart.ellipse(fr.px(heart_c), axes, rng.uniform(-35, -15), rng.uniform(0.08, 0.14))
    soft.a += cv2.GaussianBlur(heart.a, (0, 0), 3.0 * s)
    # trachea: an air column in front of the upper thoracic bodies, ending at the carina (~T5)
    tr = [[0, lv[1].centre[1] - lv[1].depth / 2 - 18, lv[1].centre[2] - 120],
          [0, lv[2].centre[1] - lv[2].depth / 2 - 16, lv[2].centre[2]],
          [0, lv[5].centre[1] - lv[5].depth / 2 - 14, lv[5].centre[2]]]
    soft.line(bezier(*fr.px(np.array(tr))), -rng.uniform(0.06, 0.10), rng.uniform(14, 20) * s)
    # sternum along the anterior chest wall
    st = np.array([[0, y_front + rng.uniform(12, 25), lv[2].centre[2] + 10], [0, y_front + 8, lv[5].centre[2]],
                   [0, y_front + rng.uniform(10, 22), lv[9].centre[2] + 10]])
    bone.tube(bezier(*fr.px(st)), wb["rib"] * 0.3, rng.uniform(10, 15) * s, rim)
    # scapulae: broad faint plates over the posterior upper thorax, their lateral borders brighter
    for _ in (0, 1):
        d = rng.uniform(-12, 12)
        plate = np.array([[0, y_back - rng.uniform(5, 20), lv[1].centre[2] - 15 + d],
                          [0, lv[2].centre[1] + lv[2].depth / 2 + 25, lv[2].centre[2] + d],
                          [0, y_back - rng.uniform(20, 45), lv[8].centre[2] + d]])
        pts = fr.px(plate)
        bone.fill(pts, wb["rib"] * 0.12)
        bone.line(pts[[1, 2]], wb["rib"] * 0.25, 2.5 * rim)
    # shoulders: thick soft tissue over the cervicothoracic junction; humeral heads and shafts of raised arms
    sh_c = np.array([0, spine.body_y + rng.uniform(-20, 20), lv[1].centre[2] - rng.uniform(0, 25)])
    shoulders = Canvas(fr.height, fr.width)  # drawn blurred: soft tissue has no edge
    shoulders.ellipse(fr.px(sh_c), (spine.body_half_depth * 0.8 * s, 70 * s), 0, rng.uniform(0.10, 0.2))
    soft.a += cv2.GaussianBlur(shoulders.a, (0, 0), 25.0 * s)
    for _ in (0, 1):
        head = sh_c + np.array([0, rng.uniform(-30, 10), rng.uniform(0, 20)])
        r = rng.uniform(20, 25)
        bone.ellipse(fr.px(head), (r * s, r * s), 0, wb["pelvis"] * 0.8)
        bone.ellipse(fr.px(head), (r * s, r * s), 0, wb["crest"] * 0.4, rim)
        a = math.radians(rng.uniform(20, 70))  # arm raised forward
        shaft = np.array([head, head + np.array([0, -math.sin(a), math.cos(a)]) * rng.uniform(150, 250)])
        bone.tube(fr.px(shaft), wb["pelvis"] * 0.9, rng.uniform(18, 24) * s, rim * 1.5)


def _lat_pelvis(spine: Spine, fr: Frame, rng: np.random.Generator, c: Canvas, wb: Dict[str, float]) -> None:
    s = fr.scale
    rim = max(1.1 * s, 1.0)
    a = spine.sacral_slope
    eu = np.array([math.cos(a), -math.sin(a)])  # posterior along S1 endplate (y, z)
    ev = np.array([math.sin(a), math.cos(a)])  # down the sacral axis
    D, L = spine.s1_depth, spine.sacrum_len
    t = np.linspace(0, 1, 9)
    uc = -0.22 * L * t ** 2
    ant = np.stack([uc - D / 2 * (1 - 0.65 * t), t * L], -1)
    post = np.stack([uc + (D / 2 + 14) * (1 - 0.75 * t), t * L], -1)
    poly = np.concatenate([ant, post[::-1]])
    yz = poly[:, :1] * eu + poly[:, 1:2] * ev
    px = fr.px(np.stack([np.zeros(len(yz)), yz[:, 0], yz[:, 1]], -1))
    cen = px.mean(0)
    for f, k in ((1.0, 0.4), (0.75, 0.2), (0.5, 0.15)):
        c.fill(cen + (px - cen) * f, wb["body"] * k)
    c.line(px, wb["cortex"] * 0.7, rim, closed=True)
    ep = np.array([[-D / 2, 0], [D / 2, 0]])
    yz = ep[:, :1] * eu + ep[:, 1:2] * ev
    c.line(fr.px(np.stack([np.zeros(2), yz[:, 0], yz[:, 1]], -1)), wb["endplate"], rim * 1.2)
    y_ant, y_post = -D / 2 * math.cos(a), D / 2 * math.cos(a) + 15
    cz = spine.crest_z
    for _ in range(2):
        dy, dz = rng.uniform(-8, 8), rng.uniform(-8, 8)
        asis = np.array([y_ant - rng.uniform(35, 55), cz + 40])
        psis = np.array([y_post + 25, cz + 30])
        top = np.array([y_ant + 15, cz - 15])
        crest = bezier(asis, top, psis, 14)
        back = bezier(psis, [y_post + 30, 55], [y_post + 5, 75], 8)
        low = bezier([y_post + 5, 75], [y_ant + 20, 95], [y_ant + 5, 125], 8)
        front = bezier([y_ant + 5, 125], [y_ant - 45, 95], asis, 10)
        wing = np.concatenate([crest, back, low, front]) + [dy, dz]
        w3 = np.stack([np.zeros(len(wing)), wing[:, 0], wing[:, 1]], -1)
        wpx = fr.px(w3)
        c.fill(wpx, wb["pelvis"] * 0.35)
        c.fill(wpx.mean(0) + (wpx - wpx.mean(0)) * 0.6, wb["pelvis"] * 0.25)
        c.tube(fr.px(w3[:14]), wb["crest"] * 0.7, 5 * s, rim)
        c.line(fr.px(w3[14:]), wb["cortex"] * 0.5, rim)
        fh = fr.px(np.array([0, y_ant - 10 + dy, rng.uniform(125, 140) + dz]))
        c.ellipse(fh, (24 * s, 24 * s), 0, wb["pelvis"] * 1.2)
        c.ellipse(fh, (24 * s, 24 * s), 0, wb["crest"] * 0.5, rim)


# ------------------------------------------------------------------ image formation
def _markers(img: np.ndarray, fr: Frame, rng: np.random.Generator, patient_id: str) -> None:
    h, w = img.shape
    fs = h / 1024.0
    side = "R" if fr.view == "ap" else str(rng.choice(["L", "R"]))
    x = int(rng.uniform(0.04, 0.12) * w) if side == "R" or fr.view == "lat" else int(rng.uniform(0.80, 0.9) * w)
    y = int(rng.uniform(0.06, 0.12) * h)
    th = max(int(round(3 * fs)), 1)
    cv2.putText(img, side, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 1.6 * fs, 250, th, cv2.LINE_AA)
    cv2.rectangle(img, (x - int(8 * fs), y - int(45 * fs)), (x + int(40 * fs), y + int(10 * fs)), 235, max(th - 1, 1),
                  cv2.LINE_AA)
    lines = [patient_id.replace("(", "").replace(")", ""), "AP" if fr.view == "ap" else "LAT",
             f"20{int(rng.integers(15, 24))}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}",
             str(rng.choice(["STANDING", "SUPINE", "ERECT"]))]
    tx = int(rng.uniform(0.55, 0.7) * w) if rng.random() < 0.5 else int(0.03 * w)
    ty = int(rng.uniform(0.86, 0.9) * h)
    for k, t in enumerate(lines):
        cv2.putText(img, t, (tx, ty + int(k * 24 * fs)), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * fs,
                    int(rng.integers(200, 256)), max(int(round(1.5 * fs)), 1), cv2.LINE_AA)


def render_lat(spine: Spine, fr: Frame, rng: np.random.Generator, patient_id: str = "") -> np.ndarray:
    """The LAT painter (any field: full spine, thoracolumbar or lumbar, drawn as 2-D shapes); (H, W) uint8 grey."""
    h, w = fr.height, fr.width
    wb = _weights(rng)
    bone = Canvas(h, w)
    _lat_bones(spine, fr, rng, bone, wb)
    soft = Canvas(h, w)
    soft.a += _soft_tissue(spine, fr, rng)
    _lungs_and_gas(spine, fr, rng, soft)
    if fr.field != "lumbar":
        _lat_thorax(spine, fr, rng, bone, soft, wb)
    tex = smooth_noise(rng, h, w, max(1.2 * fr.scale, 1.5))
    dim = 0.6  # the thick lateral path washes bone contrast out
    a = soft.a + bone.a * np.float32(dim) * (1.0 + 0.12 * tex)
    a = a + 0.03 * smooth_noise(rng, h, w, h / 6)  # low-frequency mottle / scatter
    # focal-spot blur
    sig = rng.uniform(0.5, 1.1) * h / 1024.0 + 0.3
    a = cv2.GaussianBlur(a, (0, 0), sig)
    # CR/DR-style unsharp masking (edge enhancement with halos)
    small = cv2.resize(a, (max(w // 8, 2), max(h // 8, 2)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 2.5)
    a = a + np.float32(rng.uniform(0.3, 0.9)) * (a - cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR))
    # heel effect (anode side brighter, i.e. less exposed) along the long axis
    rows = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    a = a + np.float32(rng.uniform(0.04, 0.12) * rng.choice([-1, 1])) * rows
    a = a + np.float32(rng.uniform(-0.03, 0.03)) * np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    # window
    sub = a[:: 4, :: 4]
    lo, hi = np.percentile(sub, [rng.uniform(0.5, 4.0), rng.uniform(99.0, 99.9)])
    x = (a - lo) / max(hi - lo, 1e-6)
    # quantum noise grows where fewer photons arrive (bright = attenuated) + electronic noise
    q = rng.uniform(0.02, 0.045)
    e = rng.uniform(0.006, 0.015)
    noise = rng.standard_normal((h, w), dtype=np.float32)
    sigma = q * np.exp(0.9 * np.clip(x, 0, 1.2) - 0.9) + e
    x = x + sigma * noise
    x = cv2.GaussianBlur(x, (3, 3), 0.45)
    gamma = rng.uniform(0.75, 1.35)
    lut = (np.power(np.linspace(0.0, 1.0, 4096), gamma) * 255.0 + 0.5).astype(np.uint8)  # gamma via a LUT: fast
    img = lut[(np.clip(x, 0.0, 1.0) * 4095.0 + 0.5).astype(np.int32)]
    if rng.random() < 0.4:  # collimator edge (unexposed strip, bright)
        k = int(rng.uniform(0.005, 0.025) * w)
        if k > 0:
            if rng.random() < 0.5:
                img[:, :k] = np.maximum(img[:, :k], 215)
            else:
                img[:, w - k:] = np.maximum(img[:, w - k:], 215)
    _markers(img, fr, rng, patient_id)
    return img

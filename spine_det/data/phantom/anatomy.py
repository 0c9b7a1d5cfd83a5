"""The 3-D spine (C7..L5, scoliotic or not) of one synthetic patient and its projection into AP and LAT.

One :class:`Spine` per patient is built in millimetres and projected into both
views through a :class:`Frame`, so that AP and LAT show the same levels with the
same heights. Axes (mm): x = patient's left, y = posterior, z = inferior; the
origin is the centre of the S1 superior endplate. Each vertebra has a local 2-D
frame per view: ``u`` across the body (LAT: anterior -> posterior; AP: image
left -> image right = patient right -> left) and ``v`` along the column (down).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

LEVELS: Tuple[str, ...] = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5")
# LEVELS carry the morphometry ground truth (fractures, listhesis) and lie in every field of both views. The whole
# column C7..L5 is built so that fields can show the full spine (AP_LEVELS annotated where wholly visible).
ALL_LEVELS: Tuple[str, ...] = ("C7",) + tuple(f"T{k}" for k in range(1, 13)) + ("L1", "L2", "L3", "L4", "L5")
AP_LEVELS: Tuple[str, ...] = ALL_LEVELS[1:]  # T1..L5, as the full-spine (scoliosis) datasets annotate
_FIRST = ALL_LEVELS.index("T9")  # index of the top level of the lumbar field

# Mean adult dimensions (mm) per ALL_LEVELS entry (C7, T1..T12, L1..L5).
_H = np.array([14.0, 15, 16, 16.5, 17, 17.5, 18, 19, 19.8, 20.5, 21.5, 22.5, 23.5, 24.5, 25.5, 26.5, 26.5, 26.0])
_D = np.array([16.0, 18, 20, 21, 22, 23, 24, 25.5, 27, 28, 29, 30, 31, 32, 33, 34, 35, 35])  # depth (LAT)
_W = np.array([24.0, 26, 27, 27, 27.5, 28, 28.5, 29.5, 31, 32, 34, 36, 39, 42, 44, 46, 48, 50])  # width (AP)
_DISC = np.array([4.5, 3.5, 3.8, 4, 4, 4.2, 4.5, 4.5, 4.8, 5, 5.5, 6, 7, 8, 9, 10, 11, 11])  # disc below
_IPD = np.array([22.0, 20, 18, 16.5, 16, 15.5, 15.5, 16, 16.5, 17, 18, 19, 21, 22, 23, 24, 26, 28])
_PED_W = np.array([5.0, 7.0, 6.5, 5.0, 4.5, 4.5, 4.5, 5.0, 5.2])  # pedicle width C7..T8 (T9.. by formula)
_TP = np.array([14.0, 15, 15, 14, 13, 12, 11, 10, 9.5, 9, 9, 8, 6, 13, 18, 23, 19, 16])  # beyond the pedicle
_THETA = np.array([18.0, 15, 12, 8, 4, 0, -4, -8, -12, -16, -15, -13, -11, -9, -5, 1, 8, 17])  # + = down-posterior
_SP_SLOPE = np.array([20.0, 30, 40, 50, 55, 60, 60, 60, 55, 45, 40, 30, 20, 10, 5, 3, 5, 10])  # spinous slope (deg)
# AP rib cage: lateral reach of rib k (T1..T12) as a share of the thorax half-width; ribs 11-12 float.
RIB_REACH = np.array([0.42, 0.60, 0.72, 0.80, 0.87, 0.92, 0.96, 0.99, 1.0, 0.98, 0.86, 0.58])

_GRADE_LOSS = {1: (0.205, 0.245), 2: (0.26, 0.39), 3: (0.41, 0.58)}
_LEVEL_RISK = np.array([0.5, 1.0, 2.0, 2.0, 1.2, 0.8, 0.6, 0.4])  # fracture risk over LEVELS


def mean_level_dimensions(names) -> Dict[str, np.ndarray]:
    """The adult mean table above for the named levels (of ALL_LEVELS), in mm: body ``height``, AP ``width``
    and the ``disc`` below each. The one anatomical prior that the phantom draws from and that
    order-aware post-processing (spine_det.morphometry.levels) fits a film's vertebrae to."""
    idx = [ALL_LEVELS.index(n) for n in names]
    return {"height": _H[idx].copy(), "width": _W[idx].copy(), "disc": _DISC[idx].copy()}


def genant_grade(loss: float) -> int:
    """Genant semi-quantitative grade of a height-loss ratio (0: <20%, 1: 20-25%, 2: 25-40%, 3: >40%)."""
    if loss < 0.20:
        return 0
    if loss < 0.25:
        return 1
    if loss < 0.40:
        return 2
    return 3


@dataclass
class Vertebra:
    """One vertebra: size, shape after any fracture, and pose (mm / rad)."""

    name: str
    annotated: bool
    h_exp: float  # un-fractured body height
    ha: float  # anterior height
    hm: float  # middle height
    hp: float  # posterior height
    depth: float
    width: float
    ipd: float
    ped_w: float
    ped_h: float
    tp_len: float
    sp_len: float
    sp_h: float
    sp_slope: float  # rad
    theta: float = 0.0  # sagittal tilt of the body axis
    beta: float = 0.0  # coronal tilt
    gamma: float = 0.0  # axial rotation
    disc_below: float = 0.0
    centre: np.ndarray = field(default_factory=lambda: np.zeros(3))
    fracture: str = "none"
    grade: int = 0
    loss: float = 0.0
    retro: float = 0.0  # retropulsion of the posterior wall (mm, posterior)
    listhesis: float = 0.0  # anterior displacement relative to the level below (mm)

    @property
    def h_axis(self) -> float:
        return 0.5 * (self.ha + self.hp)

    def profile(self, u: np.ndarray, half: float) -> np.ndarray:
        """Body height at position u across the body (quadratic through the 3 measured heights)."""
        t = np.asarray(u, dtype=np.float64) / half  # -1 .. 1
        side_a, mid, side_p = self.ha, self.hm, self.hp
        return mid + 0.5 * (side_p - side_a) * t + (0.5 * (side_a + side_p) - mid) * t * t


@dataclass
class Spine:
    """A patient's spine (C7..L5), sacrum, pelvis, thorax and body envelope (mm)."""

    label: str
    vertebrae: List[Vertebra]  # C7 .. L5, top to bottom
    sacral_slope: float  # rad
    s1_depth: float
    s1_width: float
    sacrum_len: float
    crest_z: float  # iliac crest height (z)
    pelvis_half: float  # half distance between iliac crests
    body_half_width: float  # AP half width of the trunk
    body_half_depth: float  # LAT half depth of the trunk
    body_y: float  # trunk centre (y)
    fat: float  # soft-tissue attenuation factor
    diaphragm_z: float  # right hemidiaphragm dome (the left one lies dome_dz lower)
    thorax_half: float = 135.0  # half-width of the rib cage at its widest (AP)
    dome_dz: float = 15.0
    cobb: List[Dict[str, object]] = field(default_factory=list)  # scoliotic curves: ends, angle (deg)
    posture: str = "neutral"  # "flexion" / "extension": a LAT film of the bent lumbar spine (the AP stays neutral)
    bend_deg: float = 0.0  # the bend's total sagittal rotation, T12/L1 .. L5/S1 (+ flexion)

    @property
    def annotated(self) -> List[Vertebra]:
        """The morphometry levels (LEVELS, T10..L5), annotated in every field of both views."""
        return [v for v in self.vertebrae if v.annotated]

    def level(self, name: str) -> Vertebra:
        return self.vertebrae[ALL_LEVELS.index(name)]


def _apply_fracture(v: Vertebra, rng: np.random.Generator, kind: str, grade: int) -> None:
    lo, hi = _GRADE_LOSS[grade]
    loss = float(rng.uniform(lo, hi))
    he = v.h_exp
    if kind == "wedge":
        v.ha, v.hm, v.hp = he * (1 - loss), he * (1 - loss * rng.uniform(0.45, 0.65)), he * (1 - rng.uniform(0, 0.08))
    elif kind == "biconcave":
        v.ha, v.hm, v.hp = he * (1 - rng.uniform(0, 0.12)), he * (1 - loss), he * (1 - rng.uniform(0, 0.10))
    elif kind == "crush":
        f = rng.uniform(0.8, 1.0, size=3)
        f[rng.integers(3)] = 1.0
        v.ha, v.hm, v.hp = (he * (1 - loss * fi) for fi in f)
    elif kind == "burst":
        v.ha, v.hm, v.hp = he * (1 - loss), he * (1 - loss * rng.uniform(0.8, 1.0)), he * (1 - loss * rng.uniform(0.3, 0.6))
        v.retro = float(rng.uniform(2.5, 4.0) + 1.5 * grade)
        v.ipd *= float(rng.uniform(1.18, 1.35))
        v.width *= float(rng.uniform(1.05, 1.12))
    else:
        raise ValueError(f"unknown fracture type {kind!r}")
    v.ha, v.hm, v.hp = float(v.ha), float(v.hm), float(v.hp)
    v.loss = 1.0 - min(v.ha, v.hm, v.hp) / he
    v.grade = genant_grade(v.loss)
    v.fracture = kind


def _smooth_knots(n: int, knots: List[Tuple[float, float]]) -> np.ndarray:
    """Values at 0..n-1 through (index, value) knots, eased (cosine) between them: extrema sit on the knots."""
    knots = sorted(knots)
    xs = np.array([k[0] for k in knots], float)
    ys = np.array([k[1] for k in knots], float)
    out = np.empty(n)
    for i in range(n):
        j = int(np.clip(np.searchsorted(xs, i, side="right") - 1, 0, len(xs) - 2))
        t = float(np.clip((i - xs[j]) / max(xs[j + 1] - xs[j], 1e-9), 0.0, 1.0))
        out[i] = ys[j] + (ys[j + 1] - ys[j]) * (1 - math.cos(math.pi * t)) / 2
    return out


def scoliosis_profile(rng: np.random.Generator, n: int) -> Tuple[np.ndarray, List[Dict[str, object]]]:
    """Coronal tilt (deg) of each level C7..L5 and the curves it makes (Cobb 0-90 deg, single or double).

    A curve between end vertebrae a and b tilts a by +f*C and b by -(1-f)*C, so its Cobb angle (the tilt
    difference of its end vertebrae) is C; double curves share their junction vertebra.
    """
    kind = str(rng.choice(["minimal", "single", "double"], p=[0.2, 0.4, 0.4]))
    def cobb() -> float:  # mostly 10-60, a tail to 90
        return float(8 + 82 * rng.beta(1.3, 2.6))

    sign = float(rng.choice([-1.0, 1.0]))
    curves: List[Dict[str, object]] = []
    if kind == "minimal":
        c1 = float(rng.uniform(0, 9))
        a, b = int(rng.integers(3, 9)), int(rng.integers(12, n))
        knots = [(a, sign * c1 / 2), (b, -sign * c1 / 2)]
        curves.append({"upper": ALL_LEVELS[a], "lower": ALL_LEVELS[b], "cobb_deg": round(c1, 1)})
    elif kind == "single":
        c1 = cobb()
        a = int(rng.integers(2, 10))
        b = int(min(n - 1, a + rng.integers(6, 11)))
        f = rng.uniform(0.35, 0.65)
        knots = [(a, sign * c1 * f), (b, -sign * c1 * (1 - f))]
        curves.append({"upper": ALL_LEVELS[a], "lower": ALL_LEVELS[b], "cobb_deg": round(c1, 1)})
    else:
        c1, c2 = cobb(), cobb()
        a = int(rng.integers(1, 6))
        j = int(rng.integers(max(a + 5, 9), 13))
        b = int(rng.integers(max(j + 4, 15), n))
        f = rng.uniform(0.35, 0.65)
        knots = [(a, sign * c1 * f), (j, -sign * c1 * (1 - f)), (b, -sign * c1 * (1 - f) + sign * c2)]
        curves += [{"upper": ALL_LEVELS[a], "lower": ALL_LEVELS[j], "cobb_deg": round(c1, 1)},
                   {"upper": ALL_LEVELS[j], "lower": ALL_LEVELS[b], "cobb_deg": round(c2, 1)}]
    first, last = knots[0], knots[-1]
    if first[0] > 0:  # above the top end vertebra the tilt eases back toward the head's balance
        knots.insert(0, (0, first[1] * rng.uniform(0.0, 0.4)))
    if last[0] < n - 1:
        knots.append((n - 1, last[1] * rng.uniform(0.1, 0.6)))
    return _smooth_knots(n, knots), curves


def build_spine(rng: np.random.Generator, label: str) -> Spine:
    """Sample one patient's anatomy; Damaged patients get >=1 graded fracture (and maybe a listhesis)."""
    n = len(ALL_LEVELS)
    size = rng.uniform(0.9, 1.12)  # patient size
    verts: List[Vertebra] = []
    for i, name in enumerate(ALL_LEVELS):
        def j(s: float) -> float:  # small per-level jitter
            return float(rng.normal(1.0, s))

        he = _H[i] * size * j(0.03)
        k = i - _FIRST  # 0 at T9: the lumbar-field formulas of the posterior elements
        v = Vertebra(
            name=name, annotated=name in LEVELS, h_exp=he, ha=he, hm=he, hp=he,
            depth=_D[i] * size * j(0.04), width=_W[i] * size * j(0.04), ipd=_IPD[i] * size * j(0.05),
            ped_w=(5.5 + 0.6 * k if k >= 0 else _PED_W[i]) * size * j(0.08),
            ped_h=(0.42 + 0.02 * k if k >= 0 else 0.6) * he * j(0.06),
            tp_len=_TP[i] * size * j(0.1), sp_len=(22 + 1.2 * k if k >= 0 else 24.0) * size * j(0.08),
            sp_h=(9 + 0.7 * k if k >= 0 else 8.0) * size * j(0.08), sp_slope=math.radians(_SP_SLOPE[i] + rng.normal(0, 4)),
            disc_below=_DISC[i] * size * j(0.1),
        )
        # normal shape: slight anterior wedging in the thoracic levels, slightly concave endplates
        wedge = rng.uniform(0.03, 0.09) if name.startswith("T") else rng.uniform(0.0, 0.05)
        v.ha = he * (1 - wedge)
        v.hm = he * (1 - rng.uniform(0.0, 0.06))
        v.hp = he * (1 - rng.uniform(0.0, 0.04))
        if name == "L5":  # L5 is taller anteriorly
            v.ha, v.hp = v.hp, v.ha
        v.loss = 1.0 - min(v.ha, v.hm, v.hp) / he
        verts.append(v)

    if label == "Damaged":
        annotated = [v for v in verts if v.annotated]
        k = int(rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1]))
        idx = rng.choice(len(annotated), size=k, replace=False, p=_LEVEL_RISK / _LEVEL_RISK.sum())
        for ii in sorted(idx):
            kind = str(rng.choice(["wedge", "biconcave", "crush", "burst"], p=[0.45, 0.2, 0.15, 0.2]))
            grade = int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3]))
            _apply_fracture(annotated[ii], rng, kind, grade)
        if rng.random() < 0.3:
            lvl = int(rng.choice([5, 6, 7], p=[0.1, 0.6, 0.3]))  # L3, L4, L5 over the level below
            below_depth = annotated[lvl + 1].depth if lvl + 1 < len(annotated) else annotated[lvl].depth
            annotated[lvl].listhesis = float(rng.uniform(0.12, 0.25) * below_depth)
    elif label != "Normal":
        raise ValueError(f"unknown label {label!r}; expected Normal or Damaged")

    # --- pose: lordosis / kyphosis, scoliosis, axial rotation; stacked from S1 upward
    slope = rng.uniform(30, 46)
    k_lord = rng.uniform(0.7, 1.3)
    k_kyph = rng.uniform(0.6, 1.5)
    theta_prof = slope - k_lord * (_THETA[-1] + 21 - _THETA) - (slope - 38) * 0.3
    thor = np.arange(n) < _FIRST  # above T9: kyphosis varies on its own
    theta_prof[thor] = theta_prof[_FIRST] + k_kyph * (_THETA[thor] - _THETA[_FIRST])
    theta_prof = theta_prof + rng.normal(0, 1.5, size=n)
    beta_prof, curves = scoliosis_profile(rng, n)
    beta_prof = beta_prof + rng.normal(0, 0.7, size=n)

    sacral_slope = math.radians(slope)
    d_prev = np.array([0.0, math.sin(sacral_slope), math.cos(sacral_slope)])
    th_prev = sacral_slope
    sup_prev = np.zeros(3)
    extra = 0.0  # kyphotic angulation accumulated from fractures below
    phi_prev = 0.0
    for i in range(n - 1, -1, -1):
        v = verts[i]
        phi = math.atan2(v.hp - v.ha, v.depth)  # wedge angle of the body itself
        v.theta = math.radians(theta_prof[i]) + extra + 0.5 * phi
        if v.fracture != "none":
            extra += phi  # the column above bends with the wedge (kyphotic angulation)
        v.beta = math.radians(beta_prof[i])
        # coronal curvature as a shear: the sagittal (LAT) geometry is that of the uncurved column
        d = np.array([math.tan(v.beta) * math.cos(v.theta), math.sin(v.theta), math.cos(v.theta)])
        d_mid = d + d_prev
        d_mid /= np.linalg.norm(d_mid[1:])
        # keep the disc open at both edges when the endplates are not parallel
        below_sup = th_prev + (0.5 * phi_prev if i < n - 1 else 0.0)
        wedge_gap = 0.5 * v.depth * abs(below_sup - (v.theta - 0.5 * phi))
        v.disc_below = max(v.disc_below, 0.7 * v.disc_below + wedge_gap)
        inf = sup_prev - d_mid * v.disc_below
        if v.listhesis:
            inf = inf + np.array([0.0, -math.cos(th_prev), math.sin(th_prev)]) * v.listhesis
        v.centre = inf - d * v.h_axis / 2
        sup_prev = v.centre - d * v.h_axis / 2
        d_prev, th_prev, phi_prev = d, v.theta, phi

    # axial rotation: toward the convexity, with the deviation from the line through the end levels
    xs = np.array([v.centre[0] for v in verts])
    zs = np.array([v.centre[2] for v in verts])
    line = xs[0] + (xs[-1] - xs[0]) * (zs - zs[0]) / (zs[-1] - zs[0])
    k_rot = rng.uniform(0.35, 0.8)  # deg per mm of deviation
    for v, dev in zip(verts, xs - line):
        v.gamma = math.radians(float(np.clip(k_rot * dev + rng.normal(0, 1.5), -35, 35)))

    l4 = verts[ALL_LEVELS.index("L4")]
    tip = max(v.centre[1] + v.depth / 2 + 20 + v.sp_len for v in verts[_FIRST:])
    half_depth = float(rng.uniform(100, 150) * size)
    body_y = tip + rng.uniform(25, 60) - half_depth
    t10 = verts[ALL_LEVELS.index("T10")]
    return Spine(
        label=label, vertebrae=verts, sacral_slope=sacral_slope,
        s1_depth=float(_D[-1] * size * rng.uniform(0.95, 1.1)), s1_width=float(_W[-1] * size * rng.uniform(0.95, 1.05)),
        sacrum_len=float(rng.uniform(95, 115) * size),
        crest_z=float(l4.centre[2] + l4.h_axis / 2 + rng.uniform(-10, 8)), pelvis_half=float(rng.uniform(115, 140) * size),
        body_half_width=float(rng.uniform(115, 175) * size), body_half_depth=half_depth,
        body_y=float(body_y), fat=float(rng.uniform(0.8, 1.25)),
        diaphragm_z=float(t10.centre[2] + rng.uniform(-35, 15)),
        thorax_half=float(rng.uniform(120, 150) * size), dome_dz=float(rng.uniform(5, 28)), cobb=curves,
    )


POSTURES: Tuple[str, ...] = ("neutral", "flexion", "extension")
POSTURE_P: Tuple[float, ...] = (0.7, 0.15, 0.15)
_BEND_SEGMENTS = ("L5", "L4", "L3", "L2", "L1", "T12")  # each bends over the disc below it, S1 upward


def _endplate_centre(v: Vertebra, sign: int) -> np.ndarray:
    """(y, z) of the centre of v's superior (-1) or inferior (+1) endplate."""
    return v.centre[1:] + sign * 0.5 * v.h_axis * np.array([math.sin(v.theta), math.cos(v.theta)])


def pose_for_lat(spine: Spine, rng: np.random.Generator) -> Spine:
    """The spine as the LAT film shows it: neutral (the same object) or, as in the lumbar series' functional
    views, bent forward (flexion, 4-9 deg per segment) or backward (extension, 2-5 deg) over each disc from
    L5/S1 to T12/L1, everything above a disc turning about its centre. Fractures and discs keep their shape."""
    posture = str(rng.choice(POSTURES, p=POSTURE_P))
    if posture == "neutral":
        return spine
    bent = copy.deepcopy(spine)
    bent.posture = posture
    rot = [float(rng.uniform(4, 9) if posture == "flexion" else -rng.uniform(2, 5)) for _ in _BEND_SEGMENTS]
    bent.bend_deg = round(sum(rot), 1)
    for name, deg in zip(_BEND_SEGMENTS, rot):
        k = ALL_LEVELS.index(name)
        below = bent.vertebrae[k + 1] if k + 1 < len(bent.vertebrae) else None
        lower = _endplate_centre(below, -1) if below is not None else np.zeros(2)  # S1's superior endplate
        pivot = 0.5 * (_endplate_centre(bent.vertebrae[k], 1) + lower)
        a = math.radians(deg)
        m = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])  # turns v's axis by +a (theta)
        for v in bent.vertebrae[:k + 1]:
            v.centre = np.concatenate([v.centre[:1], pivot + m @ (v.centre[1:] - pivot)])
            v.theta += a
    return bent


@dataclass
class Frame:
    """Pixel frame of one view: ``px = (c0, r0) + scale * (x or y, z)``; ``levels`` are annotated in it."""

    view: str
    height: int
    width: int
    scale: float  # px per mm
    c0: float
    r0: float
    field: str = "lumbar"  # field of view: "full", "thoracolumbar" or "lumbar"
    levels: Tuple[str, ...] = LEVELS

    def px(self, p: np.ndarray) -> np.ndarray:
        """3-D points (..., 3) in mm -> (..., 2) pixel (col, row)."""
        p = np.asarray(p, dtype=np.float64)
        h = p[..., 0] if self.view == "ap" else p[..., 1]
        return np.stack([self.c0 + h * self.scale, self.r0 + p[..., 2] * self.scale], axis=-1)

    def angle(self, v: Vertebra) -> float:
        return v.beta if self.view == "ap" else v.theta

    def local(self, v: Vertebra, uv: np.ndarray) -> np.ndarray:
        """Vertebra-local (u, v) mm (..., 2) -> pixels (..., 2)."""
        uv = np.asarray(uv, dtype=np.float64)
        a = self.angle(v)
        eu = np.array([math.cos(a), -math.sin(a)])
        ev = np.array([math.sin(a), math.cos(a)])
        c = self.px(v.centre)
        return c + self.scale * (uv[..., :1] * eu + uv[..., 1:2] * ev)

    def to_local(self, v: Vertebra, cols: np.ndarray, rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Pixel grids -> vertebra-local (u, v) mm: the inverse of :meth:`local`."""
        a = self.angle(v)
        c = self.px(v.centre)
        dx, dy = (cols - c[0]) / self.scale, (rows - c[1]) / self.scale
        return dx * math.cos(a) - dy * math.sin(a), dx * math.sin(a) + dy * math.cos(a)


AP_FIELDS: Tuple[str, ...] = ("full", "thoracolumbar", "lumbar")
AP_FIELD_P: Tuple[float, ...] = (0.6, 0.2, 0.2)
# LAT fields: whole spine (C7/T1 to the pelvis, as lateral scoliosis films), thoracolumbar (from T4-T8) or the
# lumbar series' field. Each always holds T10-L5 (the morphometry levels).
LAT_FIELDS: Tuple[str, ...] = ("full", "thoracolumbar", "lumbar")
LAT_FIELD_P: Tuple[float, ...] = (0.35, 0.25, 0.4)


def _lumbar_field(spine: Spine, rng: np.random.Generator) -> Tuple[float, float]:
    """(top, bottom) z of the lumbar field: T10 whole at the top (T9 cut), pelvis at the bottom."""
    t9, t10 = spine.level("T9"), spine.level("T10")
    top = t10.centre[2] - t10.h_axis / 2 - t10.depth * 0.5 * abs(math.sin(t10.theta)) - t9.disc_below
    top -= rng.uniform(0.0, 0.4) * t9.h_axis
    return top, rng.uniform(60, 110)


def _tall_field(spine: Spine, rng: np.random.Generator, fld: str) -> Tuple[float, float, float]:
    """(top, bottom, aspect) of a full-spine or thoracolumbar field (both views draw them alike)."""
    if fld == "full":  # T1 near the top (sometimes the lower neck too), cut between L5/S1 and the pelvis
        t1 = spine.level("T1")
        top = t1.centre[2] - t1.h_axis / 2 - rng.uniform(5, 30) - (rng.uniform(0, 50) if rng.random() < 0.4 else 0.0)
        return top, rng.uniform(5, 100), rng.uniform(0.30, 0.46)
    lv = spine.vertebrae[int(rng.integers(ALL_LEVELS.index("T3"), ALL_LEVELS.index("T8") + 1))]
    return lv.centre[2] - rng.uniform(0.0, 0.5) * lv.h_axis, rng.uniform(50, 115), rng.uniform(0.42, 0.60)


def _outline(fr: "Frame", v: Vertebra) -> np.ndarray:
    """The four body corners of ``v`` in ``fr``'s pixels."""
    o = ap_body_outline(v) if fr.view == "ap" else lat_body_outline(v)
    return fr.local(v, np.concatenate([o["sup"][[0, -1]], o["inf"][[0, -1]]]))


def _inside(fr: Frame, v: Vertebra) -> bool:
    pts = _outline(fr, v)
    return bool((pts[:, 0] >= 0).all() and (pts[:, 0] <= fr.width - 1).all()
                and (pts[:, 1] >= 0).all() and (pts[:, 1] <= fr.height - 1).all())


def _lumbar_lat_frame(spine: Spine, rng: np.random.Generator, size: int) -> Frame:
    """The lumbar series' LAT field: T10 whole at the top (T9 cut), pelvis at the bottom, the bodies near the
    middle."""
    aspect = rng.uniform(0.62, 0.70)
    top, bottom = _lumbar_field(spine, rng)
    scale = size / (bottom - top)
    width = int(round(size * aspect))
    ys = np.mean([v.centre[1] for v in spine.vertebrae[_FIRST:]])
    c0 = width * rng.uniform(0.46, 0.56) - ys * scale
    return Frame("lat", int(size), width, float(scale), float(c0), float(-top * scale), "lumbar")


def _lat_frame_around(spine: Spine, rng: np.random.Generator, size: int, top: float, bottom: float, margin: float,
                      min_width_mm: float, fld: str) -> Frame:
    """A LAT frame from ``top`` to ``bottom`` at least ``min_width_mm`` wide and wide enough for every shown body
    and spinous process (plus ``margin`` each side), placed at random across the spare width."""
    scale = size / (bottom - top)
    shown = [v for v in spine.vertebrae if top < v.centre[2] < bottom]
    front = min(v.centre[1] - v.depth / 2 for v in shown)
    back = max(v.centre[1] + v.depth / 2 + 20 + v.sp_len * math.cos(v.sp_slope) for v in shown)
    span = back - front + 2 * margin
    width_mm = max(min_width_mm, span)
    width = int(round(width_mm * scale))
    centre = 0.5 * (front + back) + rng.uniform(-0.25, 0.25) * (width_mm - span + 1e-6)
    return Frame("lat", int(size), width, float(scale), float(width / 2 - centre * scale), float(-top * scale), fld)


def _tall_lat_frame(spine: Spine, rng: np.random.Generator, size: int, fld: str) -> Frame:
    """A full-spine or thoracolumbar LAT field."""
    top, bottom, aspect = _tall_field(spine, rng, fld)
    aspect += 0.08  # a lateral trunk is deeper than an AP spine column is wide
    return _lat_frame_around(spine, rng, size, top, bottom, rng.uniform(10, 30), aspect * (bottom - top), fld)


def _bent_lat_frame(spine: Spine, rng: np.random.Generator, size: int) -> Frame:
    """The lumbar field of a flexion or extension film: as the lumbar series', widened where the bend needs."""
    top, bottom = _lumbar_field(spine, rng)
    margin = rng.uniform(10, 25)
    return _lat_frame_around(spine, rng, size, top, bottom, margin, rng.uniform(0.62, 0.70) * (bottom - top), "lumbar")


def make_frames(spine: Spine, rng: np.random.Generator, size: int,
                lat_spine: Optional[Spine] = None) -> Dict[str, Frame]:
    """Each view's field of view, drawn at random: full spine (C7/T1 to the pelvis), thoracolumbar or lumbar,
    of portrait aspect and wide enough for the scoliotic curve (AP) or the spinous processes (LAT); each
    view's annotated levels are those of T1..L5 whose four corners all lie inside (always T10-L5). ``lat_spine``
    is the spine as the LAT film shows it (:func:`pose_for_lat`; default ``spine``): a bent one gets a lumbar field."""
    lat_spine = spine if lat_spine is None else lat_spine
    # The lumbar LAT field is drawn first, as before LAT had other fields, so that every AP film stays as it was.
    lumbar_lat = _lumbar_lat_frame(spine, rng, size)
    # AP
    fld = str(rng.choice(AP_FIELDS, p=AP_FIELD_P))
    if fld == "lumbar":
        (top, bottom), aspect = _lumbar_field(spine, rng), rng.uniform(0.62, 0.70)
    else:
        top, bottom, aspect = _tall_field(spine, rng, fld)
    scale = size / (bottom - top)
    shown = [v for v in spine.vertebrae if top < v.centre[2] < bottom]
    xs = np.array([v.centre[0] for v in shown])
    half_w = max(v.width for v in shown) / 2
    span = xs.max() - xs.min() + 2 * half_w + 2 * rng.uniform(20, 45)
    width_mm = max(aspect * (bottom - top), span)
    width = int(round(width_mm * scale))
    xc = 0.5 * (xs.max() + xs.min()) + rng.uniform(-0.25, 0.25) * (width_mm - span + 1e-6)
    ap = Frame("ap", int(size), width, float(scale), float(width / 2 - xc * scale), float(-top * scale), fld)
    ap.levels = tuple(v.name for v in spine.vertebrae if v.name in AP_LEVELS and _inside(ap, v))
    fld = str(rng.choice(LAT_FIELDS, p=LAT_FIELD_P))
    if lat_spine.posture != "neutral":  # functional views are lumbar films
        lat = _bent_lat_frame(lat_spine, rng, size)
    else:
        lat = lumbar_lat if fld == "lumbar" else _tall_lat_frame(spine, rng, size, fld)
    lat.levels = tuple(v.name for v in lat_spine.vertebrae if v.name in AP_LEVELS and _inside(lat, v))
    return {"ap": ap, "lat": lat}


# ---------------------------------------------------------------- local shapes (mm)
def lat_body_outline(v: Vertebra, n: int = 7) -> Dict[str, np.ndarray]:
    """LAT body outline in local mm: superior/inferior endplates (ant -> post) and walls (sup -> inf)."""
    half = v.depth / 2
    u = np.linspace(-half, half, n)
    h = v.profile(u, half)
    t = np.linspace(0, 1, 5)
    ant = np.stack([-half + 0.8 * np.sin(np.pi * t), (t - 0.5) * v.ha], -1)
    bulge = 0.6 * np.sin(np.pi * t) - v.retro * np.sin(np.pi * np.clip(t * 1.1, 0, 1)) ** 1.2
    post = np.stack([half - bulge, (t - 0.5) * v.hp], -1)
    return {"sup": np.stack([u, -h / 2], -1), "inf": np.stack([u, h / 2], -1), "ant": ant, "post": post}


def lat_body_polygon(v: Vertebra) -> np.ndarray:
    o = lat_body_outline(v)
    return np.concatenate([o["sup"], o["post"][1:-1], o["inf"][::-1], o["ant"][::-1][1:-1]])


def ap_body_outline(v: Vertebra, n: int = 7) -> Dict[str, np.ndarray]:
    """AP body outline in local mm (u: image left -> right), heights foreshortened by the sagittal tilt."""
    half = v.width / 2
    u = np.linspace(-half, half, n)
    side = 0.5 * (v.ha + v.hp)
    tt = (u / half) ** 2
    h = (v.hm + (side - v.hm) * tt) * math.cos(v.theta)
    t = np.linspace(0, 1, 5)
    hs = side * math.cos(v.theta)
    left = np.stack([-half + 1.5 * np.sin(np.pi * t), (t - 0.5) * hs], -1)
    right = np.stack([half - 1.5 * np.sin(np.pi * t), (t - 0.5) * hs], -1)
    return {"sup": np.stack([u, -h / 2], -1), "inf": np.stack([u, h / 2], -1), "left": left, "right": right}


def ap_body_polygon(v: Vertebra) -> np.ndarray:
    o = ap_body_outline(v)
    return np.concatenate([o["sup"], o["right"][1:-1], o["inf"][::-1], o["left"][::-1][1:-1]])


def rot_u(v: Vertebra, u: float, y_rel: float) -> float:
    """AP image u of a posterior element at depth y_rel behind the body centre, after axial rotation."""
    return u * math.cos(v.gamma) - y_rel * math.sin(v.gamma)


def ap_pedicles(v: Vertebra) -> List[Tuple[Tuple[float, float], Tuple[float, float]]]:
    """Two pedicle ovals (centre (u, v), semi-axes (a, b)) in AP local mm, image left first."""
    y = v.depth / 2 + 5
    vv = -0.18 * v.h_axis * math.cos(v.theta)
    out = []
    for s in (-1, 1):
        u = s * (v.ipd / 2 + v.ped_w / 2)
        out.append(((rot_u(v, u, y), vv), (v.ped_w / 2, v.ped_h / 2 * math.cos(v.theta))))
    return out


def ap_spinous(v: Vertebra) -> np.ndarray:
    """AP teardrop of the spinous process (pointed top, round bottom), local mm."""
    h = v.h_axis * math.cos(v.theta)
    y = v.depth / 2 + 25 + v.sp_len / 2
    uc = rot_u(v, 0.0, y)
    top = -0.05 * h
    bottom = 0.62 * h + (0.35 * v.disc_below if v.name.startswith("T") else 0.0)
    r = 0.2 * v.sp_h + 1.5
    half = 0.5 * (bottom - top)
    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    # egg: narrow top, round bottom
    return np.stack([uc + r * np.cos(t) * (0.8 + 0.2 * np.sin(t)), top + half + half * np.sin(t)], -1)


def lat_spinous(v: Vertebra) -> np.ndarray:
    """LAT spinous process: a blunt quadrilateral blob behind the lamina, local mm (u posterior)."""
    pl, lam = 9.0 + 0.2 * v.depth / 2, 11.0
    ub = v.depth / 2 + pl + lam - 2
    vc = 0.08 * v.h_axis
    a = v.sp_slope
    d = np.array([math.cos(a), math.sin(a)])
    nrm = np.array([-math.sin(a), math.cos(a)])
    base_t = np.array([ub, vc - v.sp_h / 2])
    base_b = np.array([ub, vc + v.sp_h / 2])
    tip_c = np.array([ub, vc]) + d * v.sp_len
    tip_h = 0.35 * v.sp_h
    cap = [tip_c + d * tip_h * 0.6 * math.cos(t) + nrm * tip_h * math.sin(t) for t in np.linspace(-1.2, 1.2, 5)]
    return np.array([base_t, tip_c - nrm * tip_h, *cap, tip_c + nrm * tip_h, base_b])


def lat_posterior_elements(v: Vertebra) -> Dict[str, np.ndarray]:
    """LAT pedicle and articular pillar/lamina polygons, local mm."""
    h, half = v.h_axis, v.depth / 2
    pl, lam = 9.0 + 0.2 * half, 11.0
    pedicle = np.array([[half - 1, -0.44 * h], [half + pl, -0.40 * h], [half + pl, -0.06 * h], [half - 1, -0.02 * h]])
    pillar = np.array([
        [half + pl - 1, -0.50 * h - 0.7 * v.disc_below], [half + pl + 5, -0.55 * h - 0.6 * v.disc_below],
        [half + pl + lam, -0.35 * h], [half + pl + lam + 1, 0.45 * h],
        [half + pl + 6, 0.55 * h + 0.7 * v.disc_below], [half + pl - 1, 0.5 * h + 0.5 * v.disc_below],
        [half + pl + 2, 0.1 * h],
    ])
    return {"pedicle": pedicle, "pillar": pillar}

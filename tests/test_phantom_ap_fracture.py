"""Fractured bodies on the AP phantom film: drawn from their solid, masks on their corners, Normal films unchanged."""
from __future__ import annotations

import copy
import hashlib
import math

import numpy as np
import pytest

from spine_det.data.phantom import ap_render
from spine_det.data.phantom.anatomy import Frame, Vertebra, ap_body_outline
from spine_det.data.phantom.patient import generate_patient

SCALE = 2.0  # px/mm: a lumbar field at 512 px


def _vertebra(**shape) -> Vertebra:
    v = Vertebra(name="L1", annotated=True, h_exp=26.0, ha=26.0, hm=26.0, hp=26.0, depth=33.0, width=43.0, ipd=24.0,
                 ped_w=7.0, ped_h=11.0, tp_len=18.0, sp_len=25.0, sp_h=11.0, sp_slope=0.2, theta=0.0)
    for k, val in shape.items():
        setattr(v, k, val)
    return v


def _integral(v: Vertebra, draw, mu_c: float = 0.036) -> np.ndarray:
    size = 160
    fr = Frame("ap", size, size, SCALE, size / 2, size / 2)
    A = np.zeros((size, size), np.float32)
    draw(A, fr, v, 0.008, mu_c, np.zeros_like(A), 0.0)  # straight lateral walls: u / (width / 2) is the section's s
    return A


def _solid_says(v: Vertebra, s: float) -> float:
    """The apparent height (px) the solid gives the column at ``s`` across the body: the median height of the
    depth slabs that the column's rays cross (half of them hold bone above it, half below)."""
    t = (np.arange(ap_render.DEPTH_SAMPLES) + 0.5) / ap_render.DEPTH_SAMPLES * 2 - 1
    t = t[s * s + t * t <= 1.0]
    return float(np.median(ap_render.body_height(v, np.full_like(t, s), t))) * SCALE


def _half_height(col: np.ndarray) -> float:
    """Length (px, sub-pixel) of the run around the centre where ``col`` is above half its centre value."""
    c = len(col) // 2
    ref = 0.5 * col[c]
    above = np.flatnonzero(col >= ref)
    i, j = above.min(), above.max()
    top = i - (col[i] - ref) / (col[i] - col[i - 1])
    bot = j + (col[j] - ref) / (col[j] - col[j + 1])
    return bot - top


def test_flat_fractured_body_draws_as_body():
    """With flat endplates at h_exp the fractured drawing is the unfractured one: the fracture, not the drawing,
    sets a fractured body apart from its neighbours."""
    v = _vertebra(fracture="crush", theta=math.radians(12))
    np.testing.assert_allclose(_integral(v, ap_render._fractured_body), _integral(v, ap_render._body), atol=2e-5)


@pytest.mark.parametrize("kind,shape", [
    ("crush", dict(ha=15.0, hm=14.0, hp=15.0)),
    ("biconcave", dict(ha=25.0, hm=15.0, hp=25.5)),
    ("wedge", dict(ha=14.0, hm=20.0, hp=25.0)),
])
def test_fractured_body_is_shorter_by_what_the_solid_says(kind, shape, monkeypatch):
    """The trabecular body's apparent height on the centre column is the median over the depth of the solid's
    height there, and shorter than the intact body by the rest of h_exp; at the lateral rims it is (ha + hp) / 2."""
    monkeypatch.setattr(ap_render, "COMPACTION_SHARE", 0.0)
    v = _vertebra(fracture=kind, **shape)
    intact = _integral(_vertebra(), ap_render._body, mu_c=0.0)
    A = _integral(v, ap_render._fractured_body, mu_c=0.0)
    c = A.shape[1] // 2
    said = _solid_says(v, 0.0)
    assert _half_height(A[:, c]) == pytest.approx(said, abs=1.0)
    assert _half_height(intact[:, c]) - _half_height(A[:, c]) == pytest.approx(v.h_exp * SCALE - said, abs=1.0)
    for du in (-17, 9, 25, 38):  # px across the body (its half-width is 43 px)
        assert _half_height(A[:, c + du]) == pytest.approx(_solid_says(v, du / (v.width / 2 * SCALE)), abs=1.0)


def test_compaction_band_under_the_superior_endplate():
    """The lost height's trabecular bone is kept in part, denser under the superior endplate than the inferior."""
    v = _vertebra(fracture="crush", ha=15.0, hm=15.0, hp=15.0)
    col = _integral(v, ap_render._fractured_body, mu_c=0.0)[:, 80]
    flat = _integral(_vertebra(fracture="crush", ha=15.0, hm=15.0, hp=15.0, h_exp=15.0),
                     ap_render._fractured_body, mu_c=0.0)[:, 80]
    half = 15.0 / 2 * SCALE
    sup, inf = int(80 - half + 3), int(80 + half - 3)
    assert col[sup] > 1.4 * flat[sup]
    assert col[inf] == pytest.approx(flat[inf], rel=1e-5)


def test_ap_mask_corners_are_the_drawn_lateral_rims():
    """The AP vertebra mask is the four corners the annotators click: the solid's lateral rims, which the drawing
    puts at (ha + hp) / 2 (tilted by the body's sagittal angle)."""
    v = _vertebra(fracture="wedge", ha=14.0, hm=20.0, hp=25.0, theta=math.radians(10))
    o = ap_body_outline(v)
    corner_height = o["inf"][0, 1] - o["sup"][0, 1]
    assert corner_height == pytest.approx(0.5 * (v.ha + v.hp) * math.cos(v.theta))
    s, t = np.array([1.0]), np.array([0.0])
    assert float(ap_render.body_height(v, s, t)[0]) == pytest.approx(0.5 * (v.ha + v.hp))
    A = _integral(v, ap_render._fractured_body, mu_c=0.0)
    rim = 80 + int(0.9 * v.width / 2 * SCALE)  # near the lateral wall, inside its cortex
    assert _half_height(A[:, rim]) == pytest.approx(corner_height * SCALE, abs=1.5)


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def test_normal_ap_films_unchanged_damaged_deterministic():
    """Normal patients' AP films are byte-identical to those before fractured bodies had their own drawing
    (hashes taken from that renderer, seed 0, 128 px); a Damaged patient's film is the same on every run and differs
    from its earlier one (its fractured levels are drawn anew), while its masks do not change."""
    assert _sha(generate_patient(0, 0, 128, "Normal").images["ap"]) == "7e1b1e8107379de9"
    assert _sha(generate_patient(2, 0, 128, "Normal").images["ap"]) == "90179ca3068159c8"
    a, b = (generate_patient(1, 0, 128, "Damaged") for _ in range(2))
    assert np.array_equal(a.images["ap"], b.images["ap"])
    assert _sha(a.images["ap"]) != "495c4106e718b7bb"
    assert _sha(a.masks["ap_vertebra"]) == "2601cf35f3d519a2"
    assert a.gt["fractured_levels"] == ["T12"]


def test_only_fractured_bodies_take_the_fractured_drawing(monkeypatch):
    """Every unfractured body is drawn by _body; a Normal patient never reaches the fractured drawing."""
    seen = []
    real = ap_render._fractured_body
    monkeypatch.setattr(ap_render, "_fractured_body", lambda A, fr, v, *a: (seen.append(v.name), real(A, fr, v, *a)))
    generate_patient(0, 0, 96, "Normal")
    assert seen == []
    p = generate_patient(3, 0, 96, "Damaged")
    fractured = [lv["name"] for lv in p.gt["levels"] if lv["fracture_type"] != "none"]
    assert seen == fractured and copy.copy(seen)

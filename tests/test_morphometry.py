"""Morphometry core: geometry on drawn masks, ordering, flags, Genant grading, kappa."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from spine_det.morphometry.grading import GradingConfig, fit_patient_rule, genant_grade, grade_vertebrae, patient_call
from spine_det.morphometry.heights import body_heights, listhesis_step
from spine_det.morphometry.evaluate import weighted_kappa
from spine_det.morphometry.vertebrae import extract_bodies, gap_levels



def rot(pts, deg, centre):
    a = math.radians(deg)
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return (np.asarray(pts, float) - centre) @ r.T + centre


def body_polygon(cx, cy, depth, ha, hp, hm=None, deg=0.0):
    """LAT body, anterior on the image left: sup_ant, sup_post, inf_post, inf_ant (+ mid points if biconcave)."""
    d = depth / 2
    pts = [(cx - d, cy - ha / 2), (cx + d, cy - hp / 2), (cx + d, cy + hp / 2), (cx - d, cy + ha / 2)]
    if hm is not None:  # biconcave: depressed endplate centres
        pts = [pts[0], (cx, cy - hm / 2), pts[1], pts[2], (cx, cy + hm / 2), pts[3]]
    return rot(pts, deg, np.array([cx, cy]))


def fill(shape, polys):
    """Rasterise by the pixel-centre rule (the convention the default pad of 1 px assumes)."""
    from skimage.draw import polygon

    m = np.zeros(shape, bool)
    for p in polys:
        p = np.asarray(p, float)
        rr, cc = polygon(p[:, 1], p[:, 0], shape)
        m[rr, cc] = True
    return m


def column(n=7, h=44.0, depth=60.0, gap=16.0, tilt=0.0, bend=0.0, shape=(700, 400)):
    """n bodies along a tilted, bent column; returns list of (polygon, centre)."""
    out = []
    for i in range(n):
        s = (i - (n - 1) / 2) * (h + gap)
        cx = shape[1] / 2 + bend * (s / 100.0) ** 2
        cy = shape[0] / 2 + s
        c = rot([(cx, cy)], tilt, np.array([shape[1] / 2, shape[0] / 2]))[0]
        slope = math.degrees(math.atan(2 * bend * s / 100.0 ** 2))  # bodies follow the curve's tangent
        out.append((body_polygon(c[0], c[1], depth, h, h, deg=tilt - slope), c))
    return out


def test_wedge_heights_rotated_15deg():
    ha, hp, depth = 34.0, 52.0, 64.0
    # bodies turned by 15 deg on a column tilted by 15 deg, at sub-pixel positions
    polys = [rot(body_polygon(200.37, 150.21 + 90 * k, depth, ha if k == 1 else hp, hp, deg=15.0), 15, np.array([200, 240]))
             for k in range(3)]
    bodies, _ = extract_bodies([fill((480, 420), [p]) for p in polys])
    h = body_heights(bodies[1], pad=1.0)
    assert h["ha"] == pytest.approx(ha, rel=0.02)
    assert h["hp"] == pytest.approx(hp, rel=0.02)
    assert h["wedge"] == pytest.approx(ha / hp, rel=0.03)
    # corners land on the drawn corners (sup_ant first), within 1.5 px
    want = polys[1]
    assert np.max(np.linalg.norm(bodies[1].corners - want, axis=1)) < 1.5
    # the body axis is turned by 15 + 15 deg
    ang = math.degrees(math.atan2(-bodies[1].axis[0], bodies[1].axis[1]))
    assert abs(abs(ang) - 30.0) < 2.0


def test_biconcave_middle_height():
    polys = [body_polygon(200, 80 + 80 * k, 60, 50, 50, hm=(32 if k == 1 else None)) for k in range(3)]
    bodies, _ = extract_bodies([fill((320, 400), [p]) for p in polys])
    h = body_heights(bodies[1], pad=1.0)
    assert h["hm"] == pytest.approx(32, rel=0.04)
    assert h["biconcavity"] == pytest.approx(32 / 50, rel=0.05)
    assert body_heights(bodies[0])["hm"] == pytest.approx(50, rel=0.03)


def test_ordering_survives_shuffle_tilt_and_curve():
    col = column(n=8, tilt=12.0, bend=12.0, shape=(800, 500))
    masks = [fill((800, 500), [p]) for p, _ in col]
    idx = list(range(len(masks)))
    random.Random(3).shuffle(idx)
    bodies, _ = extract_bodies([masks[i] for i in idx])
    assert len(bodies) == 8
    got = [int(np.argmin([np.linalg.norm(b.centroid - c) for _, c in col])) for b in bodies]
    assert got == list(range(8))
    assert all(not b.flags for b in bodies)
    # a binary mask of the same column (components) orders the same way
    bodies2, _ = extract_bodies([m for m in masks[::-1]])
    assert [int(np.argmin([np.linalg.norm(b.centroid - c) for _, c in col])) for b in bodies2] == list(range(8))


def test_merged_pair_and_missing_level_are_flagged():
    col = column(n=8)
    shape = (700, 400)
    masks = [fill(shape, [p]) for p, _ in col]
    # fuse bodies 2 and 3 (a thick bridge where their disc was) -> one blob
    bridge = fill(shape, [np.concatenate([col[2][0][2:4], col[3][0][0:2]])[[1, 0, 3, 2]]])
    fused = masks[2] | masks[3] | bridge
    bodies, _ = extract_bodies([masks[0], masks[1], fused] + masks[4:])
    flagged = [b for b in bodies if "merged" in b.flags]
    assert len(flagged) == 1 and not flagged[0].ok
    # drop body 5: the gap is flagged on both sides, one level estimated missing
    bodies, _ = extract_bodies(masks[:5] + masks[6:])
    assert "missing_below" in bodies[4].flags and "missing_above" in bodies[5].flags
    assert gap_levels(bodies) == [0, 0, 0, 0, 1, 0]


def test_touching_bodies_are_separated():
    col = column(n=6, gap=10.0)
    shape = (700, 400)
    masks = [fill(shape, [p]) for p, _ in col]
    # a thin bridge between bodies 2 and 3 (soft mask edges touching at a corner)
    x0 = int(col[2][0][3][0]) + 3
    y0, y1 = int(col[2][0][3][1]) - 2, int(col[3][0][0][1]) + 2
    masks[2][y0:y1, x0:x0 + 2] = True
    union = np.any(np.stack(masks), 0)
    from spine_det.morphometry.vertebrae import components

    assert len(components(union)) == 5
    bodies, _ = extract_bodies(components(union))
    assert len(bodies) == 6
    assert sum("separated" in b.flags for b in bodies) == 2
    assert all(b.ok for b in bodies)


def test_split_vertebra_is_rejoined():
    col = column(n=7)
    shape = (700, 400)
    masks = [fill(shape, [p]) for p, _ in col]
    top, bottom = masks[3].copy(), masks[3].copy()
    cy = int(round(col[3][1][1]))
    top[cy:] = False
    bottom[: cy + 2] = False  # a 2-px crack through the body
    bodies, _ = extract_bodies(masks[:3] + [top, bottom] + masks[4:])
    assert len(bodies) == 7
    assert "rejoined" in bodies[3].flags


def test_listhesis_step_sign_and_size():
    depth = 60.0
    a = body_polygon(200, 100, depth, 44, 44)
    b = body_polygon(200 - 12, 160, depth, 44, 44)  # upper body lies 12 px anterior (left) of... the lower one
    c = body_polygon(200, 220, depth, 44, 44)
    bodies, _ = extract_bodies([fill((300, 400), [p]) for p in (a, b, c)])
    s_ab = listhesis_step(bodies[0], bodies[1])  # upper (a) is 12 px posterior of b
    s_bc = listhesis_step(bodies[1], bodies[2])  # upper (b) is 12 px anterior of c
    assert s_bc["centre_pct"] == pytest.approx(100 * 12 / 61, abs=2.0)
    assert s_ab["centre_pct"] == pytest.approx(-100 * 12 / 61, abs=2.0)


@pytest.mark.parametrize("loss,grade", [(0.0, 0), (0.199, 0), (0.2, 1), (0.249, 1), (0.25, 2), (0.399, 2), (0.4, 3), (0.7, 3)])
def test_genant_boundaries(loss, grade):
    assert genant_grade(loss) == grade


def test_genant_nan_is_ungraded():
    assert genant_grade(float("nan")) == -1


@pytest.mark.parametrize("loss,grade", [(0.10, 0), (0.22, 1), (0.32, 2), (0.45, 3)])
def test_grades_from_neighbours_on_growing_column(loss, grade):
    # heights grow down the column (as T10 -> L5 do); the fracture is at the top end
    base = [40.0 + 2.0 * i for i in range(8)]
    k = 0 if grade == 3 else 4
    heights = [{"ha": h, "hm": h, "hp": h} for h in base]
    he = base[k]
    heights[k] = {"ha": he, "hm": he * (1 - loss), "hp": he * (1 - loss * 0.9)}  # crush / biconcave
    pos = [60.0 * i for i in range(8)]
    g = grade_vertebrae(heights, pos, [True] * 8, GradingConfig())
    assert g[k]["grade"] == grade
    assert g[k]["expected_height"] == pytest.approx(he, rel=0.01)
    assert all(x["grade"] == 0 for i, x in enumerate(g) if i != k)


def test_fractured_neighbour_excluded_from_expected_height():
    heights = [{"ha": 40.0, "hm": 40.0, "hp": 40.0} for _ in range(7)]
    heights[3] = {"ha": 24.0, "hm": 26.0, "hp": 27.0}  # 40 % loss
    heights[4] = {"ha": 30.0, "hm": 31.0, "hp": 31.0}  # 25 % loss next to it
    g = grade_vertebrae(heights, [50.0 * i for i in range(7)], [True] * 7, GradingConfig())
    assert g[3]["expected_height"] == pytest.approx(40.0, rel=0.01)
    assert [x["grade"] for x in g] == [0, 0, 0, 3, 2, 0, 0]


def test_untrusted_body_is_not_graded():
    heights = [{"ha": 40.0, "hm": 40.0, "hp": 40.0} for _ in range(5)]
    g = grade_vertebrae(heights, [50.0 * i for i in range(5)], [True, True, False, True, True], GradingConfig())
    assert g[2]["grade"] == -1 and g[1]["grade"] == 0


def test_patient_call_and_rule_fit():
    cfg = GradingConfig(patient_min_grade=1, listhesis_pct=12.0)
    assert patient_call([0, 0, 1], [2.0], cfg)["label"] == "Damaged"
    assert patient_call([0, 0, 0], [-13.0], cfg)["label"] == "Damaged"
    assert patient_call([0, -1, 0], [5.0], cfg)["label"] == "Normal"
    grades = [0, 0, 0, 2, 3, 0, 1, 0]
    lis = [1.0, 2.0, 3.0, 1.0, 0.0, 18.0, 0.0, 4.0]
    labels = ["Normal", "Normal", "Normal", "Damaged", "Damaged", "Damaged", "Damaged", "Normal"]
    fitted, score = fit_patient_rule(grades, lis, labels)
    assert score == 1.0
    assert fitted.patient_min_grade == 1
    assert 4.0 < fitted.listhesis_pct <= 18.0


def test_a_patient_with_nothing_graded_is_not_measured_and_not_scored():
    from spine_det.morphometry.evaluate import summarize

    cfg = GradingConfig(patient_min_grade=1, listhesis_pct=12.0)
    for grades, lis in (([], []), ([-1, -1], [float("nan")]), ([], [3.0])):  # AP only; all flagged / NaN
        call = patient_call(grades, lis, cfg)
        assert call["label"] == "Not measured" and call["measured_levels"] == 0 and call["reasons"]
    assert patient_call([], [13.0], cfg)["label"] == "Damaged"  # a listhesis finding is evidence enough

    def comp(label, call):
        return {"levels": [], "ap_levels": [], "n_true_levels": 17, "label": label, "call": call,
                "max_grade": -1, "max_listhesis_pct": 0.0}

    m = summarize([comp("Damaged", "Damaged"), comp("Normal", "Normal"), comp("Damaged", "Not measured")])
    assert m["patients"] == 3 and m["patients_called"] == 2 and m["patients_not_measured"] == 1
    assert m["patient_accuracy"] == 1.0 and m["patient_sensitivity"] == 1.0  # not a missed Damaged patient


def test_weighted_kappa_hand_computed():
    a = [0, 0, 1, 1, 2]
    b = [0, 1, 1, 2, 2]
    # observed weighted disagreement 2/5; expected 0.88 (marginals .4/.4/.2 x .2/.4/.4) -> 1 - 0.4/0.88
    assert weighted_kappa(a, b) == pytest.approx(1 - 0.4 / 0.88, abs=1e-12)
    assert weighted_kappa(a, a) == pytest.approx(1.0)
    assert weighted_kappa([0, 1, 2, 3], [3, 2, 1, 0], 4) < 0
    try:
        from sklearn.metrics import cohen_kappa_score
    except ImportError:
        return
    assert weighted_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b, weights="linear"))


def test_crushed_body_is_graded_not_flagged_as_fragment():
    polys = [body_polygon(200.3, 60.2 + 62 * k, 60, 44, 44) for k in range(7)]
    polys[3] = body_polygon(200.3, 60.2 + 62 * 3, 60, 19, 20)  # ~55 % crush: less than half the area
    bodies, _ = extract_bodies([fill((520, 400), [p]) for p in polys])
    assert len(bodies) == 7 and bodies[3].ok, bodies[3].flags
    heights = [body_heights(b) for b in bodies]
    g = grade_vertebrae(heights, [b.t for b in bodies], [b.ok for b in bodies], GradingConfig())
    assert [x["grade"] for x in g] == [0, 0, 0, 3, 0, 0, 0]

"""Cobb angles (AASCE definition), corner fitting from masks, ordering, merged-mask split, the tool.

Synthetic spines are stacked rectangles with prescribed tilts: the direction of
vertebra k is then exactly its tilt, so every expected angle below is a
difference of two prescribed tilts, worked out by hand from the definition.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from spine_det.morphometry.cobb import (
    VERTEBRA_NAMES, angle_scores, cobb_angles, endplate_midpoints, is_s_curve, smape, smape_per_image, tilts_deg)
from spine_det.morphometry.quads import (
    fit_quad, instances_from_label_map, order_instances, quads_from_instances, quads_from_mask, rasterise_quads,
    split_semantic)

REPO = Path(__file__).resolve().parents[1]
S_TILTS = [0, 5, 10, 15, 20, 15, 5, -5, -15, -20, -12, -4, 4, 12, 16, 10, 4]


def spine(tilts, width=80.0, height=48.0, disc=22.0, top=(250.0, 60.0)):
    """(N, 4, 2) corners TL, TR, BL, BR of rectangles tilted by ``tilts`` (deg, + = right side lower),
    stacked along their own axes with a disc between."""
    out = []
    c = np.array(top, dtype=np.float64)
    prev_axis = None
    for k, t in enumerate(tilts):
        a = math.radians(t)
        across = np.array([math.cos(a), math.sin(a)])
        axis = np.array([-math.sin(a), math.cos(a)])
        if k:
            c = c + (height / 2 + disc / 2) * prev_axis + (height / 2 + disc / 2) * axis
        hw, hh = width / 2, height / 2
        out.append([c - hw * across - hh * axis, c + hw * across - hh * axis,
                    c - hw * across + hh * axis, c + hw * across + hh * axis])
        prev_axis = axis
    return np.array(out)


def shape_for(c, margin=30):
    return int(c[..., 1].max() + margin), int(c[..., 0].max() + margin)


# ----------------------------------------------------------------------------- the definition


def test_straight_spine_is_zero():
    r = cobb_angles(spine([0] * 17), image_height=2000)
    assert r.as_list() == pytest.approx([0, 0, 0], abs=1e-6)
    assert not r.s_curve


def test_tilt_is_the_mean_endplate_direction():
    # a wedge: upper endplate tilted +10 deg, lower one -4 deg, equal lengths -> the vertebra's direction is +3 deg
    def plate(t, y):
        a = math.radians(t)
        d = 40 * np.array([math.cos(a), math.sin(a)])
        return np.array([100, y]) - d, np.array([100, y]) + d

    tl, tr = plate(10, 100)
    bl, br = plate(-4, 150)
    assert tilts_deg(np.array([[tl, tr, bl, br]]))[0] == pytest.approx(3.0, abs=1e-9)


def test_c_curve_not_s():
    # tilts 0 .. 20 (k=4) .. -20 (k=12) .. 0: the centreline bulges to one side only -> not S
    tilts = [0, 5, 10, 15, 20, 15, 10, 5, 0, -5, -10, -15, -20, -15, -10, -5, 0]
    r = cobb_angles(spine(tilts), image_height=3000)
    assert not r.s_curve
    # PT = 20 - (-20) between T5 and L1; MT = |tilt(T1) - tilt(T5)|; TL = |tilt(L1) - tilt(L5)|
    assert r.as_list() == pytest.approx([40, 20, 20], abs=1e-6)
    assert r.ends == {"PT": (4, 12), "MT": (0, 4), "TL": (12, 16)}
    assert r.end_names()["PT"] == ("T5", "L1")


def test_s_curve_major_in_upper_half():
    c = spine(S_TILTS)
    r = cobb_angles(c, image_height=2 * c[..., 1].max())
    assert r.s_curve and r.major_in_upper_half
    # PT: +20 (k=4) to -20 (k=9); MT: largest from k=4 upwards = 20 - 0 (k=0); TL: largest from k=9 down = |-20 - 16| (k=14)
    assert r.as_list() == pytest.approx([40, 20, 36], abs=1e-6)
    assert r.ends == {"PT": (4, 9), "MT": (0, 4), "TL": (9, 14)}


def test_s_curve_major_in_lower_half():
    c = spine(S_TILTS)
    r = cobb_angles(c, image_height=c[4, 3, 1] + 1)  # both ends' lower endplates well below mid-height
    assert r.s_curve and r.major_in_upper_half is False
    # MT as above (k=0..4, 20); TL: largest angle between k=0 and a vertebra above it: none but itself -> 0
    assert r.as_list() == pytest.approx([40, 20, 0], abs=1e-6)
    assert r.ends["TL"] == (0, 0)


def test_angles_ignore_position_scale_and_rotation_sign():
    c = spine(S_TILTS)
    h = 2 * c[..., 1].max()
    base = cobb_angles(c, image_height=h).as_list()
    moved = cobb_angles(c * 1.7 + np.array([33.0, 0.0]), image_height=1.7 * h).as_list()
    assert moved == pytest.approx(base, abs=1e-6)
    mirrored = c.copy()
    mirrored[..., 0] = 1000 - mirrored[..., 0]
    mirrored = mirrored[:, [1, 0, 3, 2]]  # left and right swap in a mirror
    assert cobb_angles(mirrored, image_height=h).as_list() == pytest.approx(base, abs=1e-6)


def test_is_s_curve_by_sides_of_the_chord():
    line = np.stack([np.zeros(10), np.arange(10.0)], 1)
    assert not is_s_curve(line)  # all on the chord
    c_shape = np.stack([np.sin(np.linspace(0, np.pi, 12)), np.arange(12.0)], 1)
    assert not is_s_curve(c_shape)
    s_shape = np.stack([np.sin(np.linspace(0, 2 * np.pi, 12)), np.arange(12.0)], 1)
    assert is_s_curve(s_shape)
    # only points 0 .. M-3 count (as in the reference): a kink in the last two does not make an S
    hook = c_shape.copy()
    hook[-2, 0] = -5.0
    assert not is_s_curve(hook)
    assert len(endplate_midpoints(spine([0] * 17))) == 34


def test_bad_corners_are_refused():
    with pytest.raises(ValueError, match="corners must be"):
        cobb_angles(np.zeros((5, 3, 2)), image_height=100)
    with pytest.raises(ValueError, match="at least 2"):
        cobb_angles(spine([0]), image_height=100)


def test_smape_and_mae_against_hand_computation():
    pred = [[10, 20, 30], [0, 0, 0], [5, 5, 0]]
    true = [[12, 18, 30], [0, 0, 0], [0, 5, 5]]
    # image 1: (2 + 2 + 0) / (22 + 38 + 60) = 4 / 120; image 2: 0 / 0 -> 0; image 3: (5 + 0 + 5) / (5 + 10 + 5) = 10 / 20
    assert smape_per_image(pred, true) == pytest.approx([100 * 4 / 120, 0.0, 50.0])
    assert smape(pred, true) == pytest.approx((100 * 4 / 120 + 50.0) / 3)
    s = angle_scores(pred, true)
    assert s["mae_PT"] == pytest.approx(7 / 3) and s["mae_MT"] == pytest.approx(2 / 3) and s["mae_TL"] == pytest.approx(5 / 3)
    assert s["mae"] == pytest.approx(14 / 9) and s["n_images"] == 3


# ----------------------------------------------------------------------------- masks -> corners


@pytest.mark.parametrize("tilt", [-35.0, -12.0, 0.0, 7.5, 28.0])
def test_fit_quad_recovers_corners_and_tilt(tilt):
    q = spine([tilt], top=(120.0, 120.0))[0]
    m = rasterise_quads(q[None], (240, 240)) > 0
    fit = fit_quad(m)
    assert np.abs(fit - q).max() < 1.5  # px
    assert tilts_deg(fit[None])[0] == pytest.approx(tilt, abs=0.6)
    rect = fit_quad(m, "rect")
    assert tilts_deg(rect[None])[0] == pytest.approx(tilt, abs=1.0)


def test_fit_quad_keeps_a_wedge():
    # upper endplate +8 deg, lower -8 deg (a trapezoid): the endplate fit sees both, the rectangle cannot
    q = np.array([[60, 60 - 80 * math.tan(math.radians(8)) / 2], [140, 60 + 80 * math.tan(math.radians(8)) / 2],
                  [60, 130 + 80 * math.tan(math.radians(8)) / 2], [140, 130 - 80 * math.tan(math.radians(8)) / 2]])
    m = rasterise_quads(q[None], (200, 200)) > 0
    fit = fit_quad(m)
    up = math.degrees(math.atan2(*(fit[1] - fit[0])[::-1]))
    low = math.degrees(math.atan2(*(fit[3] - fit[2])[::-1]))
    assert up == pytest.approx(8, abs=0.7) and low == pytest.approx(-8, abs=0.7)


def test_instances_ordered_and_angles_recovered():
    c = spine(S_TILTS)
    h = int(2 * c[..., 1].max())
    lab = rasterise_quads(c, shape_for(c))
    # shuffle the labels: the order must come from the geometry, not the label values
    perm = np.random.default_rng(0).permutation(17) + 1
    shuffled = np.zeros_like(lab)
    shuffled[lab > 0] = perm[lab[lab > 0] - 1]
    q = quads_from_instances(instances_from_label_map(shuffled))
    assert len(q) == 17
    assert np.abs(q.mean(1) - c.mean(1)).max() < 1.0
    assert np.abs(tilts_deg(q) - np.array(S_TILTS)).max() < 0.8
    got = cobb_angles(q, image_height=h)
    assert got.as_list() == pytest.approx([40, 20, 36], abs=1.5)
    assert got.ends == {"PT": (4, 9), "MT": (0, 4), "TL": (9, 14)}


def test_order_drops_specks_and_unites_a_split_vertebra():
    c = spine([0] * 10)
    lab = rasterise_quads(c, shape_for(c))
    masks = instances_from_label_map(lab)
    # vertebra 3 cut in two halves (left / right), plus a speck between vertebrae 6 and 7
    v3 = masks.pop(3)
    xs = np.nonzero(v3)[1]
    left = v3.copy()
    left[:, int(np.median(xs)):] = False
    speck = np.zeros_like(v3)
    y = int((c[6, 2, 1] + c[7, 0, 1]) / 2)
    speck[y:y + 2, 250:252] = True
    ordered = order_instances(masks + [left, v3 & ~left, speck])
    assert len(ordered) == 10
    assert ordered[3].sum() == v3.sum()
    ys = [np.nonzero(m)[0].mean() for m in ordered]
    assert ys == sorted(ys)


@pytest.mark.parametrize("grow", [0, 15])
def test_split_semantic_separates_touching_vertebrae(grow):
    c = spine(S_TILTS)
    sem = rasterise_quads(c, shape_for(c)) > 0
    if grow:  # close the discs: neighbours touch across a narrower bridge (corners rounded off)
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        sem = cv2.morphologyEx(sem.astype(np.uint8), cv2.MORPH_CLOSE, k) > 0
        n_cc, _ = cv2.connectedComponents(sem.astype(np.uint8))
        assert n_cc - 1 == 1  # one component: the split has to find the discs
    pieces = split_semantic(sem)
    assert len(pieces) == 17
    q = quads_from_mask(sem)
    # a closed disc is shared out between its two neighbours: centres move by up to half a disc (11 px)
    assert np.abs(q.mean(1) - c.mean(1)).max() < (12.0 if grow else 1.0)
    got = cobb_angles(q, image_height=int(2 * c[..., 1].max())).as_list()
    assert got == pytest.approx([40, 20, 36], abs=4.0 if grow else 1.5)


# ----------------------------------------------------------------------------- the tool


def _write_patient(folder, c, shape, true_angles):
    folder.mkdir(parents=True)
    img = np.full(shape, 40, np.uint8)
    lab = rasterise_quads(c, shape)
    img[lab > 0] = 170
    cv2.imwrite(str(folder / "AP.jpg"), img)
    cv2.imwrite(str(folder / "Ap_Vertebra.png"), (lab > 0).astype(np.uint8) * 255)
    cv2.imwrite(str(folder / "Ap_Vertebra_instances.png"), lab.astype(np.uint16))
    (folder / "landmarks.json").write_text(json.dumps({
        "vertebrae": list(VERTEBRA_NAMES), "corners": c.tolist(),
        "cobb_angles": dict(zip(("PT", "MT", "TL"), true_angles)), "source_name": "synthetic.jpg"}))
    return lab


@pytest.fixture
def imported(tmp_path):
    root = tmp_path / "aasce"
    s = spine(S_TILTS)
    shape = (int(2 * s[..., 1].max()), int(s[..., 0].max() + 40))
    labs = {}
    labs["Test/p1"] = _write_patient(root / "Test" / "p1" / "AP", s, shape, [40, 20, 36])
    c = spine([0, 5, 10, 15, 20, 15, 10, 5, 0, -5, -10, -15, -20, -15, -10, -5, 0])
    labs["Test/p2"] = _write_patient(root / "Test" / "p2" / "AP", c, (shape_for(c)[0] + 1000, shape[1] + 100), [40, 20, 20])
    labs["Training/p3"] = _write_patient(root / "Training" / "p3" / "AP", spine([0] * 17), (1500, 400), [0, 0, 0])
    return root, labs


def _csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_tool_gt_instances_mask_and_predictions(imported, tmp_path, load_tool):
    tool = load_tool("measure_cobb")

    root, labs = imported
    for source, tol in (("gt", 1e-6), ("instances", 2.0), ("mask", 2.0)):
        out = tmp_path / f"out_{source}"
        assert tool.main(["--data-root", str(root), "--source", source, "--out", str(out)]) == 0
        rows = _csv(out / "cobb_angles.csv")
        assert [r["image"] for r in rows] == ["Test/p1/ap", "Test/p2/ap"]  # --split test by default
        assert [int(r["n_vertebrae"]) for r in rows] == [17, 17]
        assert float(rows[0]["TL"]) == pytest.approx(36, abs=max(tol, 1e-3))
        assert rows[0]["TL_ends"] == "T10-L3" and rows[1]["PT_ends"] == "T5-L1"
        s = json.loads((out / "summary.json").read_text())
        assert s["n_images"] == 2 and s["mean_vertebrae_found"] == 17
        assert s["smape"] < (0.01 if source == "gt" else 3.0)
        assert "| SMAPE %" in (out / "summary.md").read_text()
        ov = cv2.imread(str(out / "overlays" / "Test__p1__ap.png"))
        assert ov is not None and ov.shape[0] > 100
    # a prediction folder laid out as tools/predict.py writes it
    pred = tmp_path / "pred"
    for key, lab in labs.items():
        d = pred / key / "ap"
        d.mkdir(parents=True)
        cv2.imwrite(str(d / "ap_vertebra_instances.png"), lab.astype(np.uint16))
        cv2.imwrite(str(d / "ap_vertebra_mask.png"), (lab > 0).astype(np.uint8) * 255)
    for source in ("instances", "mask"):
        out = tmp_path / f"pred_{source}"
        assert tool.main(["--data-root", str(root), "--pred-dir", str(pred), "--source", source, "--split", "all",
                          "--out", str(out), "--no-overlay"]) == 0
        rows = _csv(out / "cobb_angles.csv")
        assert len(rows) == 3 and all(int(r["n_vertebrae"]) == 17 for r in rows)
        assert float(rows[2]["PT"]) == pytest.approx(0, abs=1.0)  # the straight spine
        assert not (out / "overlays").exists() or not any((out / "overlays").iterdir())


def test_tool_refuses_output_inside_inputs(imported, capsys, load_tool):
    tool = load_tool("measure_cobb")

    root, _ = imported
    assert tool.main(["--data-root", str(root), "--out", str(root / "cobb")]) == 2
    assert "inside" in capsys.readouterr().err
    assert not (root / "cobb").exists()


def test_tool_refuses_a_pred_dir_without_any_prediction(imported, tmp_path, capsys, load_tool):
    # a mistyped --pred-dir: every film would be "0 vertebrae" and the summary SMAPE 100, exit 0
    tool = load_tool("measure_cobb")
    root, labs = imported
    empty = tmp_path / "typo_pred"
    empty.mkdir()
    out = tmp_path / "cobb"
    for source in ("instances", "mask"):
        assert tool.main(["--data-root", str(root), "--pred-dir", str(empty), "--source", source, "--out", str(out),
                          "--no-overlay"]) == 2
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
        assert len(err) == 1 and f"no {source} prediction for any of the 2 films" in err[0] and str(empty) in err[0]
        assert not (out / "summary.json").exists() and not (out / "cobb_angles.csv").exists()
    # one film predicted: measured, the other scored as 0 vertebrae as before, and counted
    d = empty / "Test" / "p1" / "ap"
    d.mkdir(parents=True)
    cv2.imwrite(str(d / "ap_vertebra_instances.png"), labs["Test/p1"].astype(np.uint16))
    assert tool.main(["--data-root", str(root), "--pred-dir", str(empty), "--source", "instances", "--out", str(out),
                      "--no-overlay"]) == 0
    assert json.loads((out / "summary.json").read_text())["missing_predictions"] == 1

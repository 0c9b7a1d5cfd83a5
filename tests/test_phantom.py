"""Synthetic spine radiograph generator: determinism, geometry, masks, grading, layout, difficulty."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from spine_det.data.phantom import (
    FILM_KINDS, LEVELS, MARKER, assign_patients, film_kind, genant_grade, generate_dataset, generate_patient,
)
from spine_det.data.phantom.anatomy import AP_LEVELS
from spine_det.tasks import TASKS, tasks_of_view

SIZE = 512  # full-spine fields: thoracic discs are ~1.5 px at 256, so bodies would touch


@pytest.fixture(scope="module")
def patients():
    return [generate_patient(i, 11, SIZE, "Normal" if i % 2 == 0 else "Damaged") for i in range(6)]


def test_same_seed_same_arrays_different_seed_differs():
    a = generate_patient(3, 5, SIZE, "Damaged")
    b = generate_patient(3, 5, SIZE, "Damaged")
    c = generate_patient(3, 6, SIZE, "Damaged")
    for view in ("ap", "lat"):
        assert np.array_equal(a.images[view], b.images[view])
        assert not np.array_equal(a.images[view], c.images[view])
    for t in TASKS:
        assert np.array_equal(a.masks[t], b.masks[t])
    assert a.gt == b.gt and a.gt != c.gt


def test_images_and_masks_shapes(patients):
    for p in patients:
        for view in ("ap", "lat"):
            img = p.images[view]
            h, w = img.shape[:2]
            assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
            # portrait, as narrow as full-spine films where the field is the whole spine, wider only as far as a
            # scoliotic curve (AP) or the spinous processes (LAT) need; the lumbar series' LAT is 0.62-0.70
            fld = p.gt[view + "_field"]
            lo = {"full": 0.30, "thoracolumbar": 0.42, "lumbar": 0.62}[fld] + (0.08 if view == "lat" and fld != "lumbar" else 0)
            hi = 0.71 if (view, fld) == ("lat", "lumbar") else 1.0
            assert h == SIZE and lo - 0.01 <= w / h <= hi
            assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 0], img[..., 2])
            assert img.std() > 20  # not blank
            assert (p.gt["views"][view]["width"], p.gt["views"][view]["height"]) == (w, h)
            for task in tasks_of_view(view):
                assert p.masks[task.name].shape == (h, w) and p.masks[task.name].dtype == np.uint8
    widths = {p.images["ap"].shape[1] for p in patients}
    assert len(widths) > 1  # each patient a slightly different size


def test_ap_and_lat_agree_on_levels(patients):
    for p in patients:
        assert [lv["name"] for lv in p.gt["levels"]] == list(LEVELS)
        names = {}
        for view in ("ap", "lat"):
            # each view annotates a contiguous run of T1..L5 that always holds the morphometry levels (T10..L5)
            names[view] = [lv["name"] for lv in p.gt[view + "_levels"]]
            k = AP_LEVELS.index(names[view][0])
            assert names[view] == list(AP_LEVELS[k:k + len(names[view])]) and set(LEVELS) <= set(names[view])
            if p.gt[view + "_field"] == "full":
                assert names[view] == list(AP_LEVELS)
            for lv in p.gt[view + "_levels"]:  # every annotated corner lies inside the image
                c = np.array(list(lv[view + "_corners"].values()))
                h, w = p.images[view].shape[:2]
                assert (c >= 0).all() and (c[:, 0] <= w - 1).all() and (c[:, 1] <= h - 1).all()
        def count(task: str, p=p) -> int:
            return cv2.connectedComponents((p.masks[task] > 0).astype(np.uint8))[0] - 1

        assert count("ap_vertebra") == len(names["ap"]) and count("ap_pedicle") == 2 * len(names["ap"])
        # LAT: one body, one spinous process and one disc below per level (the last disc is L5/S1), one line each
        for task in ("lat_vertebra", "lat_spinous_process", "lat_disk_height"):
            assert count(task) == len(names["lat"]), task
        assert count("lat_anterior_line") == 1 and count("lat_posterior_line") == 1
        for lv in p.gt["levels"]:  # AP corners lie inside the AP vertebra mask region
            ys = [c[1] for c in lv["ap_corners"].values()]
            ly = [c[1] for c in lv["lat_corners"].values()]
            assert max(ys) > min(ys) and max(ly) > min(ly)


@pytest.fixture(scope="module")
def many_ap():
    return [generate_patient(i, 3, 128, "Normal") for i in range(30)]


def test_fields_of_view_and_scoliosis(many_ap):
    fields = [p.gt["ap_field"] for p in many_ap]
    assert set(fields) == {"full", "thoracolumbar", "lumbar"} and fields.count("full") >= 10
    assert {p.gt["lat_field"] for p in many_ap} == {"full", "thoracolumbar", "lumbar"}
    assert [film_kind(p.gt, "ap") for p in many_ap] == fields and set(fields) == set(FILM_KINDS["ap"])
    assert {film_kind(p.gt, "lat") for p in many_ap} <= set(FILM_KINDS["lat"])
    with pytest.raises(ValueError, match="unknown view"):
        film_kind(many_ap[0].gt, "pa")
    cobbs = [c["cobb_deg"] for p in many_ap for c in p.gt["scoliosis"]]
    assert max(cobbs) > 40 and min(cobbs) < 15 and all(0 <= c <= 90 for c in cobbs)
    checked = 0
    for p in many_ap:  # the recorded Cobb angle is what the AP corners of its end vertebrae show
        corners = {lv["name"]: lv["ap_corners"] for lv in p.gt["ap_levels"]}
        for c in p.gt["scoliosis"]:
            if c["upper"] not in corners or c["lower"] not in corners:
                continue
            up, lo = corners[c["upper"]], corners[c["lower"]]
            a_up = np.degrees(np.arctan2(*np.subtract(up["right_superior"], up["left_superior"])[::-1]))
            a_lo = np.degrees(np.arctan2(*np.subtract(lo["right_inferior"], lo["left_inferior"])[::-1]))
            assert abs(abs(a_up - a_lo) - c["cobb_deg"]) < 4.0, (c, a_up, a_lo)
            checked += 1
    assert checked >= 10


def test_ap_image_formation(many_ap):
    """Air-filled lungs image darker than the abdomen; vertebral bodies brighter than what surrounds them."""
    darker, brighter, n = 0, 0, 0
    for p in many_ap:
        if p.gt["ap_field"] != "full":
            continue
        n += 1
        g = p.grey("ap").astype(float)
        lv = {x["name"]: np.array(list(x["ap_corners"].values())) for x in p.gt["ap_levels"]}
        h, w = g.shape
        y_thorax = int(lv["T6"][:, 1].mean())
        y_abd = int(lv["L3"][:, 1].mean())
        x_spine_t, x_spine_a = lv["T6"][:, 0].mean(), lv["L3"][:, 0].mean()
        side_t = np.abs(np.arange(w) - x_spine_t) > 0.25 * w
        side_a = np.abs(np.arange(w) - x_spine_a) > 0.25 * w
        darker += g[y_thorax - 3:y_thorax + 4][:, side_t].mean() < g[y_abd - 3:y_abd + 4][:, side_a].mean()
        m = p.masks["ap_vertebra"] > 0
        ring = cv2.dilate(m.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool) & ~m
        brighter += g[m].mean() > g[ring].mean()
    assert n >= 10 and darker >= 0.8 * n and brighter >= 0.8 * n, (n, darker, brighter)


def test_lat_image_formation(patients):
    """LAT bodies are brighter than what surrounds them on average over fields (upper thoracic bodies may hide
    under the shoulders and rib heads, as on real films: see tests/test_phantom_lat3d.py for more)."""
    assert {p.gt["lat_field"] for p in patients} >= {"full", "lumbar"}  # the fixture holds both kinds of field
    gaps = []
    for p in patients:
        g = p.grey("lat").astype(float)
        m = p.masks["lat_vertebra"] > 0
        ring = cv2.dilate(m.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~m
        gaps.append(g[m].mean() - g[ring].mean())
    assert np.mean(gaps) > 5 and np.median(gaps) > 0, gaps


def test_functional_lat_views_bend_the_lumbar_spine():
    """Flexion and extension films: everything above each lumbar disc turns about it, so the lordosis from T12
    to S1 changes by the recorded bend; the AP film stays neutral; the bent bodies stay apart in the masks."""
    from spine_det.data.phantom.anatomy import build_spine, pose_for_lat
    from spine_det.data.phantom.patient import patient_rng

    found = {}
    for i in range(60):
        spine = build_spine(patient_rng(0, i, 0), "Damaged")
        bent = pose_for_lat(spine, patient_rng(0, i, 2))
        if bent.posture != "neutral" and bent.posture not in found:
            found[bent.posture] = i
            turn = np.degrees(bent.level("T12").theta - spine.level("T12").theta)
            assert abs(turn - bent.bend_deg) < 0.06 and (turn > 20 if bent.posture == "flexion" else turn < -8)
            assert bent.level("L5").centre[2] != spine.level("L5").centre[2]
            assert spine.posture == "neutral" and spine.level("T12").theta != bent.level("T12").theta  # a copy
            # the sacrum stays, the lowest disc keeps its height at its centre within 1 %
            low = bent.level("L5").centre[1:] + 0.5 * bent.level("L5").h_axis * np.array(
                [np.sin(bent.level("L5").theta), np.cos(bent.level("L5").theta)])
            low0 = spine.level("L5").centre[1:] + 0.5 * spine.level("L5").h_axis * np.array(
                [np.sin(spine.level("L5").theta), np.cos(spine.level("L5").theta)])
            assert abs(np.linalg.norm(low) - np.linalg.norm(low0)) < 0.01 * np.linalg.norm(low0)
    assert set(found) == {"flexion", "extension"}
    for posture, i in found.items():
        p = generate_patient(i, 0, 384, "Damaged")
        assert p.gt["lat_posture"] == posture and p.gt["lat_field"] == "lumbar" and p.gt["ap_field"]
        assert film_kind(p.gt, "lat") == posture and film_kind(p.gt, "ap") == p.gt["ap_field"]  # the AP is not bent
        n = len(p.gt["lat_levels"])
        assert n >= len(LEVELS)
        for task in ("lat_vertebra", "lat_disk_height"):
            assert cv2.connectedComponents((p.masks[task] > 0).astype(np.uint8))[0] - 1 == n, (posture, task)


def test_masks_have_antialiased_edges(patients):
    for p in patients[:2]:
        for name, m in p.masks.items():
            vals = np.unique(m)
            assert vals[0] == 0 and vals[-1] == 255, name
            assert ((m > 0) & (m < 255)).any(), f"{name}: no anti-aliased values"
            if not TASKS[name].thin:
                assert (m == 255).sum() > ((m > 0) & (m < 255)).sum(), f"{name}: mostly edge"


def test_ap_pedicles_and_spinous_lie_in_vertebra(patients):
    for p in patients:
        vert = p.masks["ap_vertebra"] > 0
        for name in ("ap_pedicle", "ap_spinous_process"):
            m = p.masks[name] > 0
            assert (m & vert).sum() / m.sum() > 0.5, name


def test_thin_lines_are_thin():
    p = generate_patient(0, 2, 1024, "Normal")
    for name in ("lat_anterior_line", "lat_posterior_line"):
        m = p.masks[name] > 0
        frac = m.mean()
        assert 0.0005 <= frac <= 0.004, (name, frac)
        assert cv2.connectedComponents(m.astype(np.uint8))[0] - 1 <= 2  # one continuous polyline
        rows = np.flatnonzero(m.any(1))
        widths = m[rows].sum(1)  # run width per row on a near-vertical line
        assert np.median(widths) <= 4 and widths.min() >= 1, name
        assert len(rows) > 0.4 * m.shape[0]


def test_damaged_have_graded_fracture_normal_none(patients):
    for p in patients:
        grades = [lv["genant_grade"] for lv in p.gt["levels"]]
        for lv in p.gt["levels"]:
            assert lv["genant_grade"] == genant_grade(lv["height_loss_ratio"])
            ha, hm, hp = lv["anterior_height_px"], lv["middle_height_px"], lv["posterior_height_px"]
            assert lv["height_loss_ratio"] == pytest.approx(1 - min(ha, hm, hp) / lv["expected_height_px"], abs=2e-3)
            # corners and heights agree
            c = lv["lat_corners"]
            ant = np.hypot(*np.subtract(c["anterior_superior"], c["anterior_inferior"]))
            assert ant == pytest.approx(ha, abs=0.05)
        if p.label == "Normal":
            assert max(grades) == 0
            assert all(lv["height_loss_ratio"] < 0.15 and lv["fracture_type"] == "none" for lv in p.gt["levels"])
            assert all(lv["listhesis_offset_px"] == 0 for lv in p.gt["levels"])
        else:
            assert max(grades) >= 1
            assert all(lv["fracture_type"] != "none" for lv in p.gt["levels"] if lv["genant_grade"] > 0)


def test_burst_widens_interpedicular_distance():
    found = 0
    for i in range(40):
        p = generate_patient(i, 1, 128, "Damaged")
        lv = p.gt["levels"]
        for k, x in enumerate(lv):
            if x["fracture_type"] == "burst":
                found += 1
                nb = [lv[j]["interpedicular_distance_px"] for j in (k - 1, k + 1) if 0 <= j < len(lv)
                      and lv[j]["fracture_type"] == "none"]
                assert x["interpedicular_distance_px"] > 1.05 * max(nb)
                assert x["retropulsion_px"] > 0
        if found >= 2:
            break
    assert found >= 2


def test_otsu_baseline_is_poor(patients):
    from skimage.filters import threshold_otsu

    for name, task in TASKS.items():
        dice = []
        for p in patients:
            g = p.grey(task.view)
            fg = g > threshold_otsu(g)
            m = p.masks[name] > 0
            dice.append(2 * (fg & m).sum() / (fg.sum() + m.sum()))
        assert np.mean(dice) < 0.5, (name, np.mean(dice))


def test_assign_patients_balanced_and_seeded():
    plan = assign_patients(20, 4, 0.2)
    labels = [lab for lab, _ in plan]
    assert labels.count("Normal") == labels.count("Damaged") == 10
    assert sum(sp == "Test" for _, sp in plan) == 4
    assert sum(sp == "Test" and lab == "Damaged" for lab, sp in plan) == 2
    assert assign_patients(20, 4, 0.2) == plan and assign_patients(20, 5, 0.2) != plan


def _files(root: Path):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_dataset_layout_determinism_and_refusal(tmp_path):
    out = tmp_path / "phantom"
    s = generate_dataset(out, 4, 7, size=128, test_fraction=0.5, workers=2, progress=False)
    assert s["patients"] == 4 and s["normal"] == 2 and s["damaged"] == 2 and s["test"] == 2
    dirs = sorted(p for p in out.glob("*/*/ID (*)") if p.is_dir())
    assert len(dirs) == 4
    for d in dirs:
        split, label = d.parts[-3], d.parts[-2]
        assert split in ("Training", "Test") and label in ("Normal", "Damaged")
        names = {p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()}
        want = {"ground_truth.json", "AP/AP.jpg", "LAT/LAT.jpg"}
        want |= {f"{'AP' if t.view == 'ap' else 'LAT'}/{t.mask_stem}.png" for t in TASKS.values()}
        assert names == want
        gt = json.loads((d / "ground_truth.json").read_text())
        assert gt["patient_id"] == d.name and gt["label"] == label and gt["split"] == split
        img = cv2.imread(str(d / "AP" / "AP.jpg"), cv2.IMREAD_UNCHANGED)
        assert img.ndim == 3 and img.shape[:2] == (gt["views"]["ap"]["height"], gt["views"]["ap"]["width"])
        m = cv2.imread(str(d / "LAT" / "Lat_Vertebra.png"), cv2.IMREAD_UNCHANGED)
        assert m.dtype == np.uint8 and m.ndim == 2 and m.shape == (gt["views"]["lat"]["height"], gt["views"]["lat"]["width"])
    first = _files(out)
    # same arguments into its own output: fine and byte-identical, whatever the worker count
    generate_dataset(out, 4, 7, size=128, test_fraction=0.5, workers=1, progress=False)
    assert _files(out) == first
    # different arguments into it: refused
    with pytest.raises(FileExistsError):
        generate_dataset(out, 4, 8, size=128, test_fraction=0.5, workers=1, progress=False)
    # a foreign non-empty folder: refused, untouched
    foreign = tmp_path / "user"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate_dataset(foreign, 2, 0, size=128, workers=1, progress=False)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    assert (out / MARKER).is_file()


def test_cli_help_and_refusal(tmp_path, capsys):
    from spine_det.tools import make_phantom as mod

    (tmp_path / "x.txt").write_text("x")
    assert mod.main(["--out", str(tmp_path), "--patients", "2", "--size", "128", "--quiet"]) == 2
    assert "refusing" in capsys.readouterr().err


def test_a_phantom_stopped_half_way_is_refused_by_the_scan_and_completed_by_a_rerun(tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C or a full disk during make-phantom used to leave a smaller dataset that every tool took as whole."""
    from spine_det.data.io import DataError
    from spine_det.data.layout import scan_dataset
    from spine_det.data.phantom import writer

    out = tmp_path / "phantom"
    real, calls = writer.write_patient, []

    def dies_on_the_third(job):
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        calls.append(job)
        return real(job)

    monkeypatch.setattr(writer, "write_patient", dies_on_the_third)
    with pytest.raises(OSError):
        writer.generate_dataset(out, 4, seed=3, size=96, test_fraction=0.0, workers=1, progress=False)
    assert json.loads((out / writer.MARKER).read_text())["complete"] is False
    with pytest.raises(DataError, match="never finished"):
        scan_dataset(out)
    monkeypatch.setattr(writer, "write_patient", real)
    writer.generate_dataset(out, 4, seed=3, size=96, test_fraction=0.0, workers=1, progress=False)
    assert json.loads((out / writer.MARKER).read_text())["complete"] is True
    assert len({s.patient_id for s in scan_dataset(out).samples}) == 4

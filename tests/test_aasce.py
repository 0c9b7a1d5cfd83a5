"""AASCE importer on a synthetic fixture in the dataset's own file format, and what the package then reads.

The fixture is made here (no real radiograph): a few grey JPEGs and the three label CSVs with
17 four-cornered vertebrae per image, two of them made to overlap as in a scoliotic spine.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest

from spine_det.data.aasce import (
    N_VERTEBRAE,
    corners_from_row,
    implausible_vertebrae,
    import_aasce,
    rasterise_vertebrae,
    read_landmarks,
)
from spine_det.data.io import DataError


def spine_corners(h: int, w: int, rng: np.random.Generator, overlap: bool = True) -> np.ndarray:
    """(17, 4, 2) pixel corners TL, TR, BL, BR of a gently curved spine; vertebrae 6 and 7 overlap."""
    out = []
    top, step = 0.06 * h, 0.88 * h / N_VERTEBRAE
    for k in range(N_VERTEBRAE):
        cx = w / 2 + 0.08 * w * np.sin(k / 5.0) + rng.uniform(-1, 1)
        y0, y1 = top + k * step, top + k * step + 0.7 * step
        if overlap and k == 7:
            y0 -= 0.5 * step  # reaches into vertebra 6
        half = 0.12 * w
        tilt = 0.05 * step * np.cos(k / 3.0)
        out.append([[cx - half, y0 - tilt], [cx + half, y0 + tilt], [cx - half, y1 - tilt], [cx + half, y1 + tilt]])
    return np.asarray(out, dtype=np.float64)


def write_source(root: Path, n_train: int = 4, n_test: int = 2, size=(200, 80), seed: int = 0,
                 defect: bool = False, mats: bool = True) -> Path:
    """A boostnet_labeldata folder: data/{training,test}/*.jpg + labels/{training,test}/*.csv, and (``mats``)
    labels/<split>/<name>.mat with the corners in pixels ("p2", 68 x 2), as the dataset ships them."""
    rng = np.random.default_rng(seed)
    h, w = size
    label_root = root / "boostnet_labeldata"
    for split, n in (("training", n_train), ("test", n_test)):
        (label_root / "data" / split).mkdir(parents=True)
        (label_root / "labels" / split).mkdir(parents=True)
        names: List[str] = []
        marks, angles = [], []
        for i in range(n):
            name = f"sunhl-{split}-{i} A AP.jpg"
            img = rng.integers(30, 200, (h, w), dtype=np.uint8)
            cv2.imwrite(str(label_root / "data" / split / name), img)
            c = spine_corners(h, w, rng)
            if defect and split == "training" and i == 0:
                c[-1, 2:, 1] = 0.02 * h  # bottom corners of L5 at the top of the film (a real defect)
            norm = c / np.array([w, h])
            pts = norm.reshape(-1, 2)
            if mats:
                from scipy.io import savemat

                savemat(str(label_root / "labels" / split / f"{name}.mat"), {"p2": c.reshape(-1, 2)})
            marks.append(list(pts[:, 0]) + list(pts[:, 1]))
            angles.append([10.0 + i, 20.0, 5.0])
            names.append(name)
        with open(label_root / "labels" / split / "filenames.csv", "w", newline="") as f:
            csv.writer(f).writerows([[n_] for n_ in names])
        with open(label_root / "labels" / split / "landmarks.csv", "w", newline="") as f:
            csv.writer(f).writerows(marks)
        with open(label_root / "labels" / split / "angles.csv", "w", newline="") as f:
            csv.writer(f).writerows(angles)
    return label_root


def test_corners_from_row_reads_x_then_y():
    row = list(np.arange(68) / 100.0) + list(1 + np.arange(68) / 100.0)
    c = corners_from_row(row)
    assert c.shape == (17, 4, 2)
    assert c[0, 1, 0] == pytest.approx(0.01) and c[0, 1, 1] == pytest.approx(1.01)  # point 1: x, y
    assert c[16, 3, 0] == pytest.approx(0.67) and c[16, 3, 1] == pytest.approx(1.67)  # point 67
    with pytest.raises(ValueError):
        corners_from_row(row[:-1])


def test_rasterise_keeps_overlapping_vertebrae_apart():
    c = spine_corners(200, 80, np.random.default_rng(1))
    labels = rasterise_vertebrae(c, 200, 80)
    assert labels.dtype == np.uint16
    assert sorted(int(k) for k in np.unique(labels) if k) == list(range(1, 18))
    # vertebrae 7 and 8 (1-based) overlap: their union is one connected blob, but two labels
    blob = (labels == 7) | (labels == 8)
    n, _ = cv2.connectedComponents(blob.astype(np.uint8))
    assert n - 1 == 1
    # every filled pixel lies inside its own quadrilateral (polygon order TL, TR, BR, BL)
    ys, xs = np.nonzero(labels == 3)
    poly = c[2][[0, 1, 3, 2]].astype(np.float32)
    inside = [cv2.pointPolygonTest(poly, (float(x), float(y)), True) >= -1.0 for x, y in zip(xs, ys)]
    assert all(inside)


def test_implausible_vertebrae_flags_misplaced_corners_only():
    c = spine_corners(400, 160, np.random.default_rng(2), overlap=False)
    assert implausible_vertebrae(c) == []
    bad = c.copy()
    bad[16, 2:, 1] = 5.0  # bottom corners at the top of the film
    swapped = c.copy()
    swapped[3, [1, 3]] = swapped[3, [3, 1]]  # TR <-> BR: a bow tie
    assert implausible_vertebrae(bad) == [16]
    assert implausible_vertebrae(swapped) == [3]


def test_import_writes_layout_landmarks_and_index(tmp_path):
    src = write_source(tmp_path / "src", defect=True)
    out = tmp_path / "aasce"
    s = import_aasce(tmp_path / "src", out, workers=1, progress=False)  # the folder holding it works too
    assert s["images"] == {"training": 4, "test": 2}
    assert s["images_with_implausible_vertebrae"] == 1
    view = out / "Training" / "sunhl-training-0 A AP" / "AP"
    assert (view / "AP.jpg").read_bytes() == (src / "data" / "training" / "sunhl-training-0 A AP.jpg").read_bytes()
    info = read_landmarks(view)
    assert info["implausible_vertebrae"] == ["L5"]
    assert info["cobb_angles"] == {"PT": 10.0, "MT": 20.0, "TL": 5.0}
    assert info["corners"].shape == (17, 4, 2)
    labels = cv2.imread(str(view / "Ap_Vertebra_instances.png"), cv2.IMREAD_UNCHANGED)
    mask = cv2.imread(str(view / "Ap_Vertebra.png"), cv2.IMREAD_UNCHANGED)
    assert labels.dtype == np.uint16 and 17 not in np.unique(labels)  # the defective L5 is left out
    assert np.array_equal(mask > 0, labels > 0)
    test_info = read_landmarks(out / "Test" / "sunhl-test-1 A AP" / "AP")
    assert test_info["source_name"] == "sunhl-test-1 A AP.jpg" and test_info["implausible_vertebrae"] == []
    rows = list(csv.DictReader(open(out / "aasce_index.csv")))
    assert len(rows) == 6 and {r["split"] for r in rows} == {"training", "test"}


def test_import_refuses_to_overwrite_or_write_into_the_source(tmp_path):
    write_source(tmp_path / "src")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user's file")
    with pytest.raises(DataError, match="not an empty folder"):
        import_aasce(tmp_path / "src", out, workers=1, progress=False)
    assert (out / "keep.txt").read_text() == "user's file"
    with pytest.raises(DataError, match="inside the source"):
        import_aasce(tmp_path / "src", tmp_path / "src" / "boostnet_labeldata" / "x", workers=1, progress=False)
    with pytest.raises(DataError, match="boostnet_labeldata"):
        import_aasce(tmp_path, tmp_path / "o2", workers=1, progress=False)


def test_imported_dataset_is_unlabelled_ap_only_with_one_instance_per_vertebra(tmp_path, caplog):
    import logging

    from spine_det.data.rle import decode_segmentation
    from spine_det.data.prepare import prepare_dataset

    write_source(tmp_path / "src", n_train=5, n_test=2)
    out = tmp_path / "aasce"
    import_aasce(tmp_path / "src", out, workers=1, progress=False)
    with caplog.at_level(logging.WARNING):
        prep = prepare_dataset(out, cache_dir=tmp_path / "cache", tasks=["ap_vertebra"], workers=1, strict=True)
    m = prep.manifest
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # no warning per patient
    assert m.problems == [] and m.tasks == ["ap_vertebra"] and not m.labelled
    assert m.absent == ["lat", "ap_pedicle", "ap_spinous_process"]
    assert {s.label for s in m.samples} == {""} and {s.view for s in m.samples} == {"ap"}
    assert len(m.select(split="test")) == 2 and m.test_from_folder
    assert "unlabelled 7" in m.summary() and "0 missing masks" in m.summary()
    coco = json.loads((prep.coco_dir / "spine_ap_vertebra_test.json").read_text())
    for img in coco["images"]:
        anns = [a for a in coco["annotations"] if a["image_id"] == img["id"]]
        assert len(anns) == 17  # although vertebrae 7 and 8 touch: one instance per vertebra
        union = np.zeros((img["height"], img["width"]), bool)
        for a in anns:
            piece = decode_segmentation(a["segmentation"], img["height"], img["width"])
            assert not (union & piece).any()  # no pixel in two instances
            union |= piece
        sample = next(s for s in m.samples if s.image == img["file_name"])
        mask = cv2.imread(sample.masks["ap_vertebra"], cv2.IMREAD_UNCHANGED) > 0
        assert np.array_equal(union, mask)  # the semantic ground truth is unchanged


def test_classifier_refuses_an_unlabelled_dataset(tmp_path):
    from spine_det.data.prepare import prepare_dataset
    from spine_det.engine.classifier_trainer import split_patients

    write_source(tmp_path / "src", n_train=3, n_test=1)
    import_aasce(tmp_path / "src", tmp_path / "aasce", workers=1, progress=False)
    m = prepare_dataset(tmp_path / "aasce", cache_dir=tmp_path / "cache", convert=False).manifest
    with pytest.raises(DataError, match="Normal/ or Damaged/"):
        split_patients(None, m)


def test_eval_instances_tool_scores_ground_truth_as_perfect_and_refuses_missing(tmp_path, monkeypatch, load_tool, capsys):
    import shutil

    from spine_det.data.prepare import prepare_dataset

    monkeypatch.setenv("SPINE_DET_CACHE", str(tmp_path / "cache"))
    write_source(tmp_path / "src", n_train=2, n_test=2)
    root = tmp_path / "aasce"
    import_aasce(tmp_path / "src", root, workers=1, progress=False)
    m = prepare_dataset(root, convert=False).manifest
    pred = tmp_path / "pred"
    tests = m.select(split="test")
    for k, s in enumerate(tests):  # Mask R-CNN-style label map for one, LinkNet-style mask for the other
        d = pred / s.key
        d.mkdir(parents=True)
        if k == 0:
            shutil.copy(s.instance_maps["ap_vertebra"], d / "ap_vertebra_instances.png")
        else:
            shutil.copy(s.masks["ap_vertebra"], d / "ap_vertebra_mask.png")
    tool = load_tool("eval_instances")
    out = tmp_path / "out"
    assert tool.main(["--data-root", str(root), "--pred-dir", str(pred), "--expected", "17", "--out", str(out),
                      "--no-levels"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = list(csv.DictReader(open(out / "per_image.csv")))
    by_kind = {r["prediction"]: r for r in rows}
    assert int(by_kind["instances"]["detected"]) == 17 and int(by_kind["instances"]["merges"]) == 0
    # the semantic mask's components merge the two overlapping vertebrae into one instance: a merge, which
    # still detects the larger of the two (IoU > 0.5) but not the other
    assert int(by_kind["mask components"]["detected"]) == 16 and int(by_kind["mask components"]["merges"]) == 1
    assert summary["images_with_all_detected"] == 0.5
    assert "level_named_correctly" not in summary
    # by default the instances pass order-aware post-processing: all 17 kept, each named after its true level
    assert tool.main(["--data-root", str(root), "--pred-dir", str(pred), "--expected", "17", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    by_kind = {r["prediction"]: r for r in csv.DictReader(open(out / "per_image.csv"))}
    assert int(by_kind["instances, levels"]["detected"]) == 17
    assert int(by_kind["instances, levels"]["levels_correct"]) == 17
    assert summary["level_named_correctly"] == 1.0 and summary["levels_checked"] >= 17
    shutil.rmtree(pred / tests[1].key)
    assert tool.main(["--data-root", str(root), "--pred-dir", str(pred), "--out", str(tmp_path / "out2")]) == 2
    assert "have no prediction" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()  # refused before the output folder is made
    assert tool.main(["--data-root", str(root), "--pred-dir", str(pred), "--out", str(root / "x")]) == 2
    assert "inside the data root" in capsys.readouterr().err


def test_eval_instances_split_mask_separates_vertebrae_that_components_merge(tmp_path, monkeypatch, load_tool):
    import shutil

    from spine_det.data.prepare import prepare_dataset

    monkeypatch.setenv("SPINE_DET_CACHE", str(tmp_path / "cache"))
    write_source(tmp_path / "src", n_train=2, n_test=1, size=(800, 320))
    root = tmp_path / "aasce"
    import_aasce(tmp_path / "src", root, workers=1, progress=False)
    s = prepare_dataset(root, convert=False).manifest.select(split="test")[0]
    d = tmp_path / "pred" / s.key
    d.mkdir(parents=True)
    shutil.copy(s.masks["ap_vertebra"], d / "ap_vertebra_mask.png")
    tool = load_tool("eval_instances")
    counts = {}
    for flag in ([], ["--split-mask"]):
        out = tmp_path / f"out{len(flag)}"
        assert tool.main(["--data-root", str(root), "--pred-dir", str(tmp_path / "pred"), "--out", str(out), *flag,
                          "--no-levels"]) == 0
        counts[bool(flag)] = json.loads((out / "summary.json").read_text())["detected_per_image"]
    assert counts[False] == 16 and counts[True] > counts[False]  # the split separates the overlapping pair


# -- hostile sources: every film checked, nothing outside the source read, no half-written output --------


def _rows(path: Path) -> List[List[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _write_rows(path: Path, rows) -> None:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def test_import_refuses_a_filenames_csv_out_of_step_with_the_landmarks(tmp_path):
    # each film's own .mat (pixels) tells whose landmarks a row holds
    src = tmp_path / "src"
    write_source(src, n_train=3, n_test=1)
    lr = src / "boostnet_labeldata"
    for i, w in enumerate((80, 120, 160)):  # redraw the training films: three widths, spines placed apart
        name = f"sunhl-training-{i} A AP.jpg"
        c = spine_corners(200, w, np.random.default_rng(i)) + np.array([(i - 1) * 0.15 * w, 4.0 * i])
        cv2.imwrite(str(lr / "data" / "training" / name), np.full((200, w), 90, np.uint8))
        from scipy.io import savemat

        savemat(str(lr / "labels" / "training" / f"{name}.mat"), {"p2": c.reshape(-1, 2)})
        marks = _rows(lr / "labels" / "training" / "landmarks.csv")
        pts = (c / np.array([w, 200])).reshape(-1, 2)
        marks[i] = list(pts[:, 0]) + list(pts[:, 1])
        _write_rows(lr / "labels" / "training" / "landmarks.csv", marks)
    listing = lr / "labels" / "training" / "filenames.csv"
    names = _rows(listing)
    _write_rows(listing, names[1:] + names[:1])  # shuffled
    s = import_aasce(src, tmp_path / "shuffled", workers=1, progress=False)
    assert s["images"] == {"training": 0, "test": 1} and s["skipped"] == 3
    assert all("does not match" in f["problem"] and "out of step" in f["problem"] for f in s["skipped_films"])
    assert not (tmp_path / "shuffled" / "Training").exists()  # no mask on a wrong film
    skipped = list(csv.DictReader(open(tmp_path / "shuffled" / "aasce_skipped.csv")))
    assert [r["film"] for r in skipped] == [f"training/{n[0]}" for n in names[1:] + names[:1]]
    with pytest.raises(DataError, match=r"does not match .*\(refused under strict"):
        import_aasce(src, tmp_path / "strict", workers=1, progress=False, strict=True)
    assert not (tmp_path / "strict").exists()
    _write_rows(listing, names)  # in step again: every film passes the check
    s = import_aasce(src, tmp_path / "ok", workers=1, progress=False)
    assert s["skipped"] == 0 and s["pairing_verified"] == 4


def test_import_skips_films_whose_landmarks_cannot_make_a_mask(tmp_path, load_tool, capsys, caplog):
    import logging

    src = tmp_path / "src"
    lr = write_source(src, n_train=4, n_test=1)
    marks = _rows(lr / "labels" / "training" / "landmarks.csv")
    marks[0] = [float(v) * (80 if k < 68 else 200) for k, v in enumerate(marks[0])]  # pixels, not fractions
    marks[1] = ["nan"] * 136  # an all-NaN row
    marks[2][5] = "inf"
    _write_rows(lr / "labels" / "training" / "landmarks.csv", marks)
    tool = load_tool("import_aasce")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        assert tool.main(["--source", str(src), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    captured = capsys.readouterr()
    for k, why in ((0, "not fractions of the image size"), (1, "136 of 136 landmark values are not finite"),
                   (2, "1 of 136 landmark values are not finite")):
        line = [r.getMessage() for r in caplog.records if f"sunhl-training-{k} A AP.jpg" in r.getMessage()]
        assert len(line) == 1 and why in line[0], line  # one line naming the film and why
        assert not (out / "Training" / f"sunhl-training-{k} A AP").exists()
    assert "3 skipped" in captured.out
    assert (out / "Training" / "sunhl-training-3 A AP" / "AP" / "Ap_Vertebra.png").is_file()
    info = read_landmarks(out / "Training" / "sunhl-training-3 A AP" / "AP")
    assert info["vertebrae_in_mask"] == 17
    # --strict refuses the import at the first such film, one line, nothing written
    assert tool.main(["--source", str(src), "--out", str(tmp_path / "s"), "--workers", "1", "--quiet",
                      "--strict"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "sunhl-training-0 A AP.jpg" in err[0] and not (tmp_path / "s").exists()


@pytest.mark.parametrize("kind", ["dotdot", "absolute"])
def test_import_refuses_names_that_reach_outside_the_source(tmp_path, kind):
    src = tmp_path / "src"
    lr = write_source(src, n_train=3, n_test=1)
    secret = tmp_path / "secret.jpg"
    cv2.imwrite(str(secret), np.full((200, 80), 128, np.uint8))
    names = _rows(lr / "labels" / "training" / "filenames.csv")
    names[0] = ["../../../../secret.jpg" if kind == "dotdot" else str(secret)]
    _write_rows(lr / "labels" / "training" / "filenames.csv", names)
    with pytest.raises(DataError, match="not a plain file name"):
        import_aasce(src, tmp_path / "out", workers=1, progress=False)
    assert not (tmp_path / "out").exists()


def test_import_skips_a_truncated_film_and_names_it(tmp_path, caplog):
    import logging

    src = tmp_path / "src"
    lr = write_source(src, n_train=3, n_test=1)
    film = lr / "data" / "training" / "sunhl-training-1 A AP.jpg"
    film.write_bytes(film.read_bytes()[: film.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        s = import_aasce(src, tmp_path / "out", workers=1, progress=False)
    assert s["images"] == {"training": 2, "test": 1} and s["skipped"] == 1
    assert "cannot decode the whole image" in s["skipped_films"][0]["problem"]
    assert any("sunhl-training-1 A AP.jpg" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "out" / "Training" / "sunhl-training-1 A AP").exists()


@pytest.mark.parametrize("fault", ["disk_full", "ctrl_c"])
def test_import_cut_short_leaves_no_output_and_a_rerun_succeeds(tmp_path, monkeypatch, fault):
    import errno

    import spine_det.data.aasce as aasce

    src = tmp_path / "src"
    write_source(src, n_train=4, n_test=2)
    out = tmp_path / "out"
    real, calls = aasce._write_png, []

    def failing(path, array):
        calls.append(path)
        if len(calls) == 5:  # the third film's first mask
            if fault == "ctrl_c":
                raise KeyboardInterrupt
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, array)

    monkeypatch.setattr(aasce, "_write_png", failing)
    with pytest.raises(KeyboardInterrupt if fault == "ctrl_c" else OSError):
        import_aasce(src, out, workers=1, progress=False)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # nothing half-written
    monkeypatch.setattr(aasce, "_write_png", real)
    s = import_aasce(src, out, workers=1, progress=False)  # the rerun is not refused
    assert s["images"] == {"training": 4, "test": 2}


def test_a_rerun_removes_only_the_staging_its_dead_predecessor_left(tmp_path):
    import subprocess
    import sys

    from spine_det.data.aasce import STAGING_MARK

    src = tmp_path / "src"
    write_source(src, n_train=2, n_test=1)
    out = (tmp_path / "out").resolve()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    left = tmp_path / f".out.importing-{dead_pid}-abc123"  # killed (SIGKILL) mid-import
    (left / "Training").mkdir(parents=True)
    (left / STAGING_MARK).write_text(json.dumps({"pid": dead_pid, "out": str(out), "source": str(src)}))
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = tmp_path / f".out.importing-{running.pid}-def456"  # another import, still running
        busy.mkdir()
        (busy / STAGING_MARK).write_text(json.dumps({"pid": running.pid, "out": str(out), "source": str(src)}))
        foreign = tmp_path / ".out.importing-notes"  # named alike, not an import's: no mark
        foreign.mkdir()
        (foreign / "keep.txt").write_text("user's file")
        import_aasce(src, out, workers=1, progress=False)
        assert not left.exists() and busy.is_dir() and (foreign / "keep.txt").read_text() == "user's file"
        assert (out / "aasce_index.csv").is_file() and not (out / STAGING_MARK).exists()
    finally:
        running.kill()
        running.wait()


def test_measure_calls_an_ap_only_patient_not_measured_rather_than_normal(tmp_path, monkeypatch, load_tool, capsys):
    monkeypatch.setenv("SPINE_DET_CACHE", str(tmp_path / "cache"))
    write_source(tmp_path / "src", n_train=2, n_test=1)
    root = tmp_path / "aasce"
    import_aasce(tmp_path / "src", root, workers=1, progress=False)
    out = tmp_path / "m"
    assert load_tool("measure").main(["--data-root", str(root), "--out", str(out), "--quiet", "--no-overlay"]) == 0
    summary = json.loads((out / "measure_summary.json").read_text())
    assert {c["label"] for c in summary["calls"].values()} == {"Not measured"}  # never "Normal" from 0 levels
    assert summary["patients"] == 3 and summary["not_measured"] == 3 and summary["damaged_calls"] == 0
    assert "3 not measured" in capsys.readouterr().out

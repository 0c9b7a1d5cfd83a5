"""Layout scanning, patient-level seeded splits, problems reporting, manifest caching."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import cv2
import numpy as np
import pytest

from spine_det.data.io import DataError
from spine_det.data.layout import Manifest, scan_dataset, split_patients
from spine_det.data.prepare import default_cache_dir, prepare_dataset
from spine_det.tasks import TASK_NAMES, VIEW_IMAGE_STEM, tasks_of_view


def draw_masks(view: str, h: int, w: int, rng: np.random.Generator) -> Dict[str, np.ndarray]:
    """A few random blobs / thin lines per task (some masks left empty on purpose)."""
    out = {}
    for task in tasks_of_view(view):
        m = np.zeros((h, w), np.uint8)
        if task.thin:
            x = int(rng.integers(min(5, w // 3), max(w - 5, w // 3 + 1)))
            cv2.line(m, (x, 2), (x + int(rng.integers(-4, 5)), h - 3), 255, 1)
        elif rng.random() > 0.15:
            for _ in range(int(rng.integers(1, 4))):
                c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
                cv2.ellipse(m, c, (int(rng.integers(2, 9)), int(rng.integers(2, 6))), float(rng.integers(0, 180)), 0, 360, 255, -1)
        out[task.name] = m
    return out


def make_layout(
    root: Path,
    n_normal: int = 3,
    n_damaged: int = 3,
    size: Sequence[int] = (40, 32),
    seed: int = 0,
    test_patients: int = 0,
    start: int = 1,
) -> Dict[str, Path]:
    """Write a tiny dataset in the real layout (``ID (n)`` folders); returns patient folder by id."""
    rng = np.random.default_rng(seed)
    h, w = size
    folders = {}
    groups = [("Training", "Normal", n_normal), ("Training", "Damaged", n_damaged)]
    if test_patients:
        groups += [("Test", "Normal", test_patients), ("Test", "Damaged", test_patients)]
    idx = start
    for top, label, n in groups:
        for _ in range(n):
            pdir = root / top / label / f"ID ({idx})"
            for view, folder in (("ap", "AP"), ("lat", "LAT")):
                vdir = pdir / folder
                vdir.mkdir(parents=True, exist_ok=True)
                img = rng.integers(0, 256, (h, w), dtype=np.uint8)
                cv2.imwrite(str(vdir / f"{VIEW_IMAGE_STEM[view]}.jpg"), img)
                for task, m in draw_masks(view, h, w, rng).items():
                    from spine_det.tasks import get_task

                    cv2.imwrite(str(vdir / f"{get_task(task).mask_stem}.png"), m)
            folders[f"{top}/{label}/ID ({idx})"] = pdir
            idx += 1
    return folders


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    root = tmp_path / "spine data (v2)"
    make_layout(root, 4, 4)
    return root


def test_scan_layout_with_spaces(data_root: Path) -> None:
    m = scan_dataset(data_root)
    assert len(m.patients()) == 8 and not m.problems
    assert len(m.select(view="ap")) == 8 and len(m.select(view="lat")) == 8
    s = m.select(view="lat")[0]
    assert " (" in s.patient_id and s.key == f"{s.patient_id}/lat"
    assert Path(s.image).is_file() and (s.height, s.width) == (40, 32)
    assert set(s.masks) == {t.name for t in tasks_of_view("lat")} and all(Path(p).is_file() for p in s.masks.values())
    assert len({x.key for x in m.samples}) == len(m.samples)
    assert {x.label for x in m.samples} == {"Normal", "Damaged"}


def test_manifest_roundtrip_and_select(data_root: Path, tmp_path: Path) -> None:
    m = scan_dataset(data_root, seed=3)
    path = tmp_path / "cache" / "manifest.json"
    m.save(path)
    back = Manifest.load(path)
    assert back == m
    for task in TASK_NAMES:
        sel = back.select(task=task)
        assert sel and all(task in x.masks and x.masks[task] for x in sel)
    assert "8 patients" in back.summary()


def test_missing_files_reported_and_strict(data_root: Path) -> None:
    pdir = data_root / "Training" / "Normal" / "ID (2)"
    (pdir / "AP" / "Ap_Pedicle.png").unlink()
    (pdir / "LAT" / "LAT.jpg").unlink()
    m = scan_dataset(data_root)
    files = {Path(p["file"]).name: p for p in m.problems}
    assert files["Ap_Pedicle.png"]["patient"] == "Training/Normal/ID (2)"
    assert files["Ap_Pedicle.png"]["reason"] == "mask missing"
    assert "LAT.jpg" in files and "image missing" in files["LAT.jpg"]["reason"]
    ap = [s for s in m.samples if s.patient_id == "Training/Normal/ID (2)"]
    assert [s.view for s in ap] == ["ap"] and ap[0].masks["ap_pedicle"] is None
    assert all(s.patient_id != "Training/Normal/ID (2)" for s in m.select(task="ap_pedicle"))
    with pytest.raises(DataError) as e:
        scan_dataset(data_root, strict=True)
    msg = str(e.value)
    assert "\n" not in msg and "ID (2)" in msg and ("Ap_Pedicle.png" in msg or "LAT.jpg" in msg)


def test_bad_inputs_one_line(data_root: Path) -> None:
    pdir = data_root / "Training" / "Damaged" / "ID (6)"
    (pdir / "AP" / "AP.jpg").write_bytes(b"not an image at all")
    cv2.imwrite(str(pdir / "LAT" / "Lat_Vertebra.png"), np.zeros((41, 32), np.uint8))
    m = scan_dataset(data_root)
    reasons = {Path(p["file"]).name: p["reason"] for p in m.problems}
    assert "AP.jpg" in reasons and "Lat_Vertebra.png" in reasons
    assert "differs from its image" in reasons["Lat_Vertebra.png"]
    lat = m.get("Training/Damaged/ID (6)/lat")
    assert lat.masks["lat_vertebra"] is None
    with pytest.raises(KeyError):
        m.get("Training/Damaged/ID (6)/ap")
    with pytest.raises(DataError, match=r"ID \(6\)"):
        scan_dataset(data_root, strict=True)


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="Training"):
        scan_dataset(tmp_path)
    (tmp_path / "Training" / "Normal").mkdir(parents=True)
    with pytest.raises(DataError, match="no patients"):
        scan_dataset(tmp_path)


def test_splits_patient_level_and_seeded(tmp_path: Path) -> None:
    root = tmp_path / "d"
    make_layout(root, 10, 10, size=(12, 10))
    a, b, c = scan_dataset(root, seed=0), scan_dataset(root, seed=0), scan_dataset(root, seed=1)
    split_a = {s.key: s.split for s in a.samples}
    assert split_a == {s.key: s.split for s in b.samples}
    assert split_a != {s.key: s.split for s in c.samples}
    for m in (a, c):
        per_patient: Dict[str, set] = {}
        for s in m.samples:
            per_patient.setdefault(s.patient_id, set()).add(s.split)
        assert all(len(v) == 1 for v in per_patient.values())  # AP and LAT in the same split
        counts = {sp: len(m.patients(sp)) for sp in ("train", "val", "test")}
        assert counts == {"train": 14, "val": 2, "test": 4}  # 20 % test, then 10 % of the rest (rounded)
        for sp in ("val", "test"):  # stratified by label
            labels = [lab for _, lab in m.patients(sp)]
            assert labels.count("Normal") == labels.count("Damaged")


def test_split_patients_fraction_and_determinism() -> None:
    pats = [(f"p{i}", "Normal" if i % 3 else "Damaged") for i in range(100)]
    kept, carved = split_patients(pats, 0.1, seed=5)
    assert len(carved) == 10 and set(kept).isdisjoint(carved) and len(kept) + len(carved) == 100
    assert split_patients(pats, 0.1, seed=5) == (kept, carved)
    assert split_patients(pats, 0.1, seed=6)[1] != carved
    assert split_patients(pats[:5], 0.1, seed=0)[1].__len__() == 1  # at least one when the fraction > 0


def test_test_folder_used(tmp_path: Path) -> None:
    root = tmp_path / "with test"
    make_layout(root, 5, 5, size=(12, 10), test_patients=2)
    m = scan_dataset(root)
    assert m.test_from_folder
    test = m.patients("test")
    assert len(test) == 4 and all(pid.startswith("Test/") for pid, _ in test)
    assert all(pid.startswith("Training/") for sp in ("train", "val") for pid, _ in m.patients(sp))
    assert len(m.patients("val")) == 1


def test_prepare_writes_manifest_once(data_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SPINE_DET_CACHE", str(tmp_path / "cache"))
    cache = default_cache_dir(data_root)
    assert (tmp_path / "cache") in cache.parents and data_root not in cache.parents
    p1 = prepare_dataset(data_root, convert=False)
    assert p1.manifest_path.is_file() and p1.cache_dir == cache
    mtime = p1.manifest_path.stat().st_mtime_ns
    p2 = prepare_dataset(data_root, convert=False)
    assert p2.manifest_path.stat().st_mtime_ns == mtime and p2.manifest == p1.manifest
    p3 = prepare_dataset(data_root, convert=False, seed=1)
    assert p3.manifest_path != p1.manifest_path and p3.manifest.seed == 1
    with pytest.raises(DataError, match="inside the data root"):
        prepare_dataset(data_root, cache_dir=data_root / "cache", convert=False)
    assert not (data_root / "cache").exists()

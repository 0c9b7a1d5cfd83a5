"""The scan decodes every file: truncated files, non-binary / empty / full masks, clashing names."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_layout import make_layout

from spine_det.data.io import DataError, image_size, read_mask
from spine_det.data.layout import scan_dataset
from spine_det.data.validate import check_mask, decode_image_checked, name_key


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "data"
    make_layout(r, 3, 3, size=(64, 48))
    return r


def _truncate(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _two_touching_blobs(h: int = 64, w: int = 48, aa: bool = True) -> np.ndarray:
    """Two vertebra-like boxes 1 px apart: separate at mid-grey, joined by the anti-aliased fringe."""
    m = np.zeros((h, w), np.float32)
    m[10:30, 8:40] = 255
    m[31:50, 8:40] = 255
    if aa:
        m[30, 8:40] = 60  # the fringe between them: > 0 but below half the max
        m[9, 8:40] = m[50, 8:40] = 200  # outer edges, above half
    return m.astype(np.uint8)


def test_truncated_image_is_a_problem_fatal_under_strict(root: Path) -> None:
    img = root / "Training" / "Normal" / "ID (1)" / "LAT" / "LAT.jpg"
    big = (np.random.default_rng(0).integers(0, 256, (64, 48))).astype(np.uint8)
    cv2.imwrite(str(img), big)
    _truncate(img)
    assert image_size(img) == (64, 48)  # before: the scan read headers only, and this passed
    m = scan_dataset(root)
    probs = {Path(p["file"]).name: p["reason"] for p in m.problems if p["patient"] == "Training/Normal/ID (1)"}
    assert "cannot decode the whole image" in probs["LAT.jpg"]
    assert all(s.key != "Training/Normal/ID (1)/lat" for s in m.samples)
    with pytest.raises(DataError, match=r"LAT\.jpg: cannot decode the whole image") as e:
        scan_dataset(root, strict=True)
    assert "\n" not in str(e.value)


def test_truncated_mask_is_a_problem(root: Path) -> None:
    mask = root / "Training" / "Damaged" / "ID (5)" / "AP" / "Ap_Vertebra.png"
    cv2.imwrite(str(mask), _two_touching_blobs(aa=False))
    _truncate(mask, 0.5)
    m = scan_dataset(root)
    probs = {Path(p["file"]).name for p in m.problems}
    assert "Ap_Vertebra.png" in probs
    assert m.get("Training/Damaged/ID (5)/ap").masks["ap_vertebra"] is None


def test_antialiased_and_jpeg_masks_warn_and_keep_their_instances(root: Path) -> None:
    vdir = root / "Training" / "Normal" / "ID (2)" / "LAT"
    aa = _two_touching_blobs()
    cv2.imwrite(str(vdir / "Lat_Vertebra.png"), aa)
    # before (every pixel > 0 foreground) the fringe joined the two vertebrae into one instance
    assert cv2.connectedComponents((aa > 0).astype(np.uint8), connectivity=8)[0] - 1 == 1
    got = read_mask(vdir / "Lat_Vertebra.png")
    assert cv2.connectedComponents(got.astype(np.uint8), connectivity=8)[0] - 1 == 2
    # a JPEG-saved mask: noise around the edges
    jpg_dir = root / "Training" / "Normal" / "ID (3)" / "LAT"
    for old in jpg_dir.glob("Lat_Vertebra.*"):
        old.unlink()
    cv2.imwrite(str(jpg_dir / "Lat_Vertebra.jpg"), _two_touching_blobs(aa=False), [cv2.IMWRITE_JPEG_QUALITY, 60])
    raw = cv2.imread(str(jpg_dir / "Lat_Vertebra.jpg"), cv2.IMREAD_GRAYSCALE)
    assert len(np.unique(raw)) > 2
    assert cv2.connectedComponents(read_mask(jpg_dir / "Lat_Vertebra.jpg").astype(np.uint8), connectivity=8)[0] - 1 == 2
    m = scan_dataset(root)
    warns = {(w["patient"], Path(w["file"]).name): w for w in m.warnings if w["kind"] == "mask_not_binary"}
    w = warns[("Training/Normal/ID (2)", "Lat_Vertebra.png")]
    assert f"{32 * 3} of {64 * 48} pixels" in w["reason"] and "64 of them became foreground, 32 background" in w["reason"]
    assert ("Training/Normal/ID (3)", "Lat_Vertebra.jpg") in warns
    assert m.get("Training/Normal/ID (2)/lat").masks["lat_vertebra"]  # kept, with the policy applied
    assert "masks not binary" in m.summary()


def test_empty_and_full_masks_warn(root: Path) -> None:
    vdir = root / "Training" / "Damaged" / "ID (4)" / "AP"
    cv2.imwrite(str(vdir / "Ap_Pedicle.png"), np.zeros((64, 48), np.uint8))
    cv2.imwrite(str(vdir / "Ap_Vertebra.png"), np.full((64, 48), 255, np.uint8))
    m = scan_dataset(root)
    kinds = {(Path(w["file"]).name, w["kind"]) for w in m.warnings if w["patient"] == "Training/Damaged/ID (4)"}
    assert ("Ap_Pedicle.png", "mask_empty") in kinds and ("Ap_Vertebra.png", "mask_full") in kinds
    big = np.zeros((64, 48), np.uint8)
    big[:45] = 255  # 70 % of the image
    cv2.imwrite(str(vdir / "Ap_Spinous_Process.png"), big)
    assert [k for k, _ in check_mask(vdir / "Ap_Spinous_Process.png")[2]] == ["mask_large"]
    assert "70%" in check_mask(vdir / "Ap_Spinous_Process.png")[2][0][1]
    assert check_mask(vdir / "Ap_Vertebra.png")[2] == [("mask_full", "mask is foreground everywhere (inverted?)")]
    with pytest.raises(DataError, match="differs from its image"):
        check_mask(vdir / "Ap_Vertebra.png", 64, 47)


def test_clashing_names_are_refused_naming_both(root: Path) -> None:
    pdir = root / "Training" / "Normal" / "ID (1)"
    (pdir / "lat").mkdir()
    (pdir / "lat" / "LAT.jpg").write_bytes((pdir / "LAT" / "LAT.jpg").read_bytes())
    with pytest.raises(DataError) as e:
        scan_dataset(root)
    msg = str(e.value)
    assert str(pdir / "LAT") in msg and str(pdir / "lat") in msg and "\n" not in msg
    (pdir / "lat" / "LAT.jpg").unlink()
    (pdir / "lat").rmdir()
    twin = root / "Training" / "Normal" / "ID_(1)"
    twin.mkdir()
    with pytest.raises(DataError, match=r"ID_\(1\).*clashes with .*ID \(1\)"):
        scan_dataset(root)
    assert name_key("ID (5)") == name_key("ID_(5)") == name_key("id  (5)") != name_key("ID (6)")
    assert name_key("ID-5") != name_key("ID 5")


def test_cached_manifest_of_an_older_scan_is_rescanned(root: Path, tmp_path: Path) -> None:
    from spine_det.data.prepare import prepare_dataset

    cache = tmp_path / "cache"
    first = prepare_dataset(root, cache_dir=cache, convert=False)
    data = json.loads(first.manifest_path.read_text())
    assert data["checks_version"] >= 1
    img = root / "Training" / "Normal" / "ID (1)" / "AP" / "AP.jpg"
    data["checks_version"] = 0  # as written before the scan decoded files
    first.manifest_path.write_text(json.dumps(data))
    again = prepare_dataset(root, cache_dir=cache, convert=False)
    assert again.manifest.checks_version >= 1
    assert decode_image_checked(img) == (64, 48)


def test_truncated_instance_map_is_a_problem(root: Path) -> None:
    vdir = root / "Training" / "Normal" / "ID (2)" / "LAT"
    labels = np.zeros((64, 48), np.uint16)
    labels[10:30, 8:40], labels[31:50, 8:40] = 1, 2
    cv2.imwrite(str(vdir / "Lat_Vertebra_instances.png"), labels)
    assert scan_dataset(root).get("Training/Normal/ID (2)/lat").instance_maps.get("lat_vertebra")
    _truncate(vdir / "Lat_Vertebra_instances.png", 0.5)
    m = scan_dataset(root)
    assert "Lat_Vertebra_instances.png" in {Path(p["file"]).name for p in m.problems}
    assert "lat_vertebra" not in m.get("Training/Normal/ID (2)/lat").instance_maps


@pytest.mark.parametrize("dtype,top", [(np.uint8, 255), (np.uint16, 65535), (np.uint8, 1), (np.uint16, 3)])
def test_value_counts_follow_the_mask_policy(dtype, top) -> None:
    from spine_det.data.validate import inspect_array

    rng = np.random.default_rng(top)
    a = rng.integers(0, top + 1, (37, 23)).astype(dtype)
    a[0, 0] = top
    info = inspect_array(a)
    mx = int(a.max())
    assert (info.max_value, info.zeros, info.at_max) == (mx, int((a == 0).sum()), int((a == mx).sum()))
    assert info.other_fg == int(((a > mx / 2) & (a != mx)).sum())
    assert info.other_bg == int(((a > 0) & (a <= mx / 2)).sum())
    assert info.foreground == int(read_binarized(a).sum())


def read_binarized(a: np.ndarray) -> np.ndarray:
    from spine_det.data.io import binarize

    return binarize(a)

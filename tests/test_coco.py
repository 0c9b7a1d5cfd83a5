"""Mask → COCO: exact round trip for every class, bbox/area vs pycocotools, atomic idempotent conversion."""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from scipy import ndimage

from spine_det.data.coco import coco_json_name, convert_dataset
from spine_det.data.rle import decode_segmentation, instances_to_mask, mask_to_instances
from spine_det.data.io import DataError, read_mask
from spine_det.data.layout import scan_dataset
from spine_det.tasks import SPLITS, TASK_NAMES, VIEWS, get_task, tasks_of_view

try:
    from tests.test_layout import make_layout
except ImportError:  # tests/ not a package: pytest puts it on sys.path
    from test_layout import make_layout

REPO = Path(__file__).resolve().parents[1]


def synthetic_masks() -> dict:
    """Hard cases for exactness, drawn by hand."""
    h, w = 48, 64
    cases = {}
    m = np.zeros((h, w), np.uint8)
    cv2.line(m, (2, 2), (40, 40), 1, 1)  # 1-px diagonal line
    cv2.line(m, (60, 5), (45, 45), 1, 1)  # 1-px steep line
    cases["thin_lines"] = m
    m = np.zeros((h, w), np.uint8)
    cv2.circle(m, (20, 20), 12, 1, 3)  # ring: one hole
    m[30:45, 40:60] = 1
    m[35:38, 45:50] = 0  # rectangle with a hole
    cases["holes"] = m
    m = np.zeros((h, w), np.uint8)
    m[5:10, 5:10] = 1
    m[10:15, 10:15] = 1  # touches the first one at a corner only: one 8-connected component
    m[20:25, 5:10] = 1
    m[20:25, 11:15] = 1  # one column apart: two components
    m[30:34, 30:34] = 1
    m[34:38, 30:40] = 1  # edge-touching: one component
    cases["touching"] = m
    m = np.zeros((h, w), np.uint8)
    m[0:5, 0:7] = 1
    m[h - 3 :, w - 9 :] = 1
    m[10:20, w - 1] = 1  # 1-px column at the border
    m[h - 1, 20:30] = 1
    m[0, w - 1] = 1  # single corner pixel
    cases["border"] = m
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (30, 24), (20, 9), 25, 0, 360, 255, -1, cv2.LINE_AA)  # anti-aliased, values 1..255
    cases["antialiased"] = m
    m = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[:20, :20]
    m[10:30, 20:40] = (yy + xx) % 2 == 0  # checkerboard: diagonal touches only → one component with holes
    m[40:44:2, 2:10:2] = 1  # isolated single pixels
    cases["checker"] = m
    cases["empty"] = np.zeros((h, w), np.uint8)
    cases["full"] = np.ones((h, w), np.uint8)
    return cases


def _check_instances(mask: np.ndarray, instances: list) -> None:
    h, w = mask.shape
    binary = mask > 0
    assert np.array_equal(instances_to_mask(instances, h, w), binary)
    _, n = ndimage.label(binary, structure=np.ones((3, 3)))
    assert len(instances) == n  # one instance per 8-connected component
    seen = np.zeros_like(binary)
    for inst in instances:
        d = decode_segmentation(inst["segmentation"], h, w)
        assert ndimage.label(d, structure=np.ones((3, 3)))[1] == 1
        assert not (seen & d).any()
        seen |= d
        rle = mask_utils.encode(np.asfortranarray(d.astype(np.uint8)))
        assert inst["bbox"] == [float(v) for v in mask_utils.toBbox(rle)]
        assert inst["area"] == float(mask_utils.area(rle)) == float(d.sum())
        assert inst["iscrowd"] == 0
        seg = inst["segmentation"]
        if isinstance(seg, list):
            assert len(seg) == 1 and len(seg[0]) >= 6  # Detectron2 keeps it
        else:
            assert isinstance(seg["counts"], str) and seg["size"] == [h, w]
    json.dumps(instances)  # serialisable


@pytest.mark.parametrize("name", list(synthetic_masks()))
def test_round_trip_synthetic(name: str) -> None:
    mask = synthetic_masks()[name]
    _check_instances(mask, mask_to_instances(mask))
    _check_instances(mask, mask_to_instances(mask, polygons=False))


def test_polygons_where_exact_rle_where_not() -> None:
    cases = synthetic_masks()
    def kinds(insts):
        return [isinstance(i["segmentation"], list) for i in insts]

    assert all(kinds(mask_to_instances(cases["touching"])))  # solid shapes → polygons
    holes = mask_to_instances(cases["holes"])
    assert not any(kinds(holes))  # holes cannot be a single polygon
    m = np.zeros((30, 30), np.uint8)
    cv2.ellipse(m, (15, 15), (10, 6), 30, 0, 360, 1, -1)
    (inst,) = mask_to_instances(m)
    assert isinstance(inst["segmentation"], list)
    # Polygon vertices lie on pixel corners (integers).
    assert all(float(v).is_integer() for v in inst["segmentation"][0])


def test_round_trip_random_shapes() -> None:
    rng = np.random.default_rng(7)
    for _ in range(30):
        h, w = (int(v) for v in rng.integers(15, 60, 2))
        m = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(1, 6))):
            p = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            q = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            kind = int(rng.integers(0, 3))
            if kind == 0:
                cv2.line(m, p, q, 1, int(rng.integers(1, 3)))
            elif kind == 1:
                cv2.circle(m, p, int(rng.integers(1, 12)), 1, int(rng.choice([-1, 1, 2])))
            else:
                cv2.ellipse(m, p, (int(rng.integers(1, 15)), int(rng.integers(1, 8))), float(rng.integers(0, 180)), 0, 360, 1, -1)
        _check_instances(m, mask_to_instances(m))


# --------------------------------------------------------------------------- datasets


def _assert_files_round_trip(coco_dir: Path, manifest) -> None:
    for split in SPLITS:
        for name in (*TASK_NAMES, *VIEWS):
            coco = json.loads((coco_dir / coco_json_name(name, split)).read_text())
            tasks = [c["task"] for c in coco["categories"]]
            assert tasks == ([name] if name in TASK_NAMES else [t.name for t in tasks_of_view(name)])
            keys = {s.key for s in manifest.select(split=split, view=get_task(tasks[0]).view)}
            assert {img["key"] for img in coco["images"]} == keys
            for img in coco["images"]:
                anns = [a for a in coco["annotations"] if a["image_id"] == img["id"]]
                assert set(img["mask_files"]) == set(tasks)
                for cat, task in enumerate(tasks, start=1):
                    gt = read_mask(img["mask_files"][task])
                    got = instances_to_mask([a for a in anns if a["category_id"] == cat], img["height"], img["width"])
                    assert np.array_equal(got, gt), (img["key"], task)


def test_convert_dataset_exact_and_idempotent(tmp_path: Path) -> None:
    root = tmp_path / "data root (1)"
    make_layout(root, 3, 3, size=(40, 32))
    manifest = scan_dataset(root)
    out = tmp_path / "coco"
    summary = convert_dataset(manifest, out, workers=1, progress=False)
    assert len(summary["written"]) == len(SPLITS) * (len(TASK_NAMES) + len(VIEWS))
    assert summary["masks_converted"] == 6 * len(TASK_NAMES) and not summary["problems"]
    _assert_files_round_trip(out, manifest)
    # Images without foreground stay in with no annotations.
    n_empty = 0
    for split in SPLITS:
        for t in TASK_NAMES:
            coco = json.loads((out / coco_json_name(t, split)).read_text())
            with_anns = {a["image_id"] for a in coco["annotations"]}
            for img in coco["images"]:
                if img["id"] not in with_anns:
                    assert not read_mask(img["mask_files"][t]).any()
                    n_empty += 1
    assert n_empty > 0
    # Second run: nothing rewritten.
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")}
    again = convert_dataset(manifest, out, workers=1, progress=False)
    assert again["written"] == [] and again["masks_converted"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.json")} == mtimes
    # A changed mask makes its outputs stale.
    s = manifest.select(split="train", task="ap_pedicle")[0]
    m = np.zeros((40, 32), np.uint8)
    m[5:9, 5:9] = 255
    cv2.imwrite(s.masks["ap_pedicle"], m)
    os.utime(s.masks["ap_pedicle"], ns=(1, 1))  # size may not change; mtime does
    third = convert_dataset(manifest, out, workers=1, progress=False)
    assert "spine_ap_pedicle_train.json" in third["written"] and "spine_ap_train.json" in third["written"]
    assert "spine_lat_train.json" not in third["written"]
    _assert_files_round_trip(out, manifest)
    assert not list(out.glob(".*tmp*"))


def test_convert_tasks_subset_and_pool(tmp_path: Path) -> None:
    root = tmp_path / "d"
    make_layout(root, 3, 2, size=(30, 24), seed=3)
    manifest = scan_dataset(root)
    out = tmp_path / "coco"
    summary = convert_dataset(manifest, out, tasks=["lat"], workers=2, progress=False)
    names = sorted(p.name for p in out.glob("spine_*.json"))
    expected = sorted(coco_json_name(n, sp) for sp in SPLITS for n in [t.name for t in tasks_of_view("lat")] + ["lat"])
    assert names == expected and summary["masks_converted"] == 5 * 5
    bad = manifest.select(task="lat_disk_height")[-1]
    Path(bad.masks["lat_disk_height"]).write_bytes(Path(bad.masks["lat_disk_height"]).read_bytes()[:60])
    with pytest.raises(DataError, match="Lat_Disk_Height.png"):  # strict errors cross the process pool intact
        convert_dataset(manifest, tmp_path / "strict", tasks=["lat"], workers=2, strict=True, progress=False)
    assert not list((tmp_path / "strict").glob("*.json"))


def test_bad_mask_skipped_or_strict_without_partial_output(tmp_path: Path) -> None:
    root = tmp_path / "d"
    make_layout(root, 2, 2, size=(30, 24))
    manifest = scan_dataset(root)
    bad = manifest.select(split="train", task="lat_vertebra")[0]
    data = Path(bad.masks["lat_vertebra"]).read_bytes()
    Path(bad.masks["lat_vertebra"]).write_bytes(data[: len(data) // 2])  # header fine, pixels truncated
    out = tmp_path / "strict"
    with pytest.raises(DataError) as e:
        convert_dataset(manifest, out, workers=1, strict=True, progress=False)
    assert "Lat_Vertebra.png" in str(e.value) and bad.patient_id in str(e.value) and "\n" not in str(e.value)
    assert not list(out.glob("*.json")) and not list(out.glob(".*"))
    out = tmp_path / "lenient"
    summary = convert_dataset(manifest, out, workers=1, progress=False)
    assert [Path(p["file"]).name for p in summary["problems"]] == ["Lat_Vertebra.png"]
    assert summary["problems"][0]["patient"] == bad.patient_id
    lat = json.loads((out / "spine_lat_vertebra_train.json").read_text())
    assert bad.key not in {img["key"] for img in lat["images"]}
    assert summary["excluded_images"]["spine_lat_train.json"] == 1
    with pytest.raises(DataError, match="inside the data root"):
        convert_dataset(manifest, root / "coco", progress=False)
    assert not (root / "coco").exists()


def _load_tool(name: str):
    return importlib.import_module(f"spine_det.tools.{name}")


def test_convert_tool(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("SPINE_DET_CACHE", str(tmp_path / "cache"))
    tool = _load_tool("convert_to_coco")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert tool.main(["--data-root", str(empty), "--out", str(tmp_path / "o1"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "Training" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o1").exists()
    root = tmp_path / "my data"
    make_layout(root, 2, 2, size=(20, 16))
    (root / "Training" / "Normal" / "ID (1)" / "AP" / "Ap_Vertebra.png").unlink()
    out = tmp_path / "o2"
    assert tool.main(["--data-root", str(root), "--out", str(out), "--tasks", "ap", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "Ap_Vertebra.png" in text and "ID (1)" in text and "wrote 12 files" in text
    assert tool.main(["--data-root", str(root), "--out", str(out), "--strict", "--no-progress"]) == 2
    assert "Ap_Vertebra.png" in capsys.readouterr().err


def test_phantom_round_trip(tmp_path: Path) -> None:
    phantom = pytest.importorskip("spine_det.data.phantom")
    generate = getattr(phantom, "generate_dataset", None)
    if generate is None:
        generate = pytest.importorskip("spine_det.data.phantom.writer").generate_dataset
    root = tmp_path / "phantom"
    generate(root, patients=2, seed=0, size=256, test_fraction=0.0, workers=1, progress=False)
    manifest = scan_dataset(root)
    assert len(manifest.patients()) == 2 and not manifest.problems
    out = tmp_path / "coco"
    convert_dataset(manifest, out, workers=1, progress=False)
    _assert_files_round_trip(out, manifest)


def test_visualize_tool(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SPINE_DET_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "vis data"
    make_layout(root, 3, 3, size=(40, 32))
    tool = _load_tool("visualize_data")
    for source in ("masks", "coco"):
        out = tmp_path / f"vis_{source}"
        assert tool.main(["--data-root", str(root), "--out", str(out), "--source", source, "--num", "2"]) == 0
        pngs = sorted(out.glob("*.png"))
        assert len(pngs) == 4 and {p.name.split("_")[-2] for p in pngs} == {"ap", "lat"}
        img = cv2.imread(str(pngs[0]))
        assert img.shape[1:] == (32, 3) and img.shape[0] > 40  # the film, then the legend's strip below it
        assert (img[:40, :, 0] != img[:40, :, 2]).any()  # colour drawn on the film

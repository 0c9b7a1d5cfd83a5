"""Morphometry end to end: phantom patients in memory, the prediction-folder reader, both tools."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from spine_det.morphometry.evaluate import compare_patient, summarize
from spine_det.morphometry.pipeline import MeasureConfig, measure_patient



@pytest.fixture(scope="module")
def phantom_patients():
    from spine_det.data.phantom import generate_patient

    return [generate_patient(i, 5, size=512, label=lab) for i, lab in enumerate(["Normal", "Damaged", "Damaged"])]


def _measure(p, cfg=None):
    m = {k: v > 0 for k, v in p.masks.items()}
    lat = {k: v for k, v in m.items() if k.startswith("lat")}
    ap = {k: v for k, v in m.items() if k.startswith("ap")}
    return measure_patient(lat, ap, cfg or MeasureConfig())


def test_phantom_heights_and_grades_from_ground_truth_masks(phantom_patients):
    comps = [compare_patient(_measure(p), p.gt) for p in phantom_patients]
    s = summarize(comps)
    assert s["matched_levels"] == s["true_levels"] == 8 * len(phantom_patients)
    for k in ("ha", "hm", "hp"):
        assert s[f"{k}_mae_pct"] < 5.0, s
    assert s["grade_exact_agreement"] >= 0.9, s["grade_confusion_true_by_pred"]
    assert s["ap_width_mae_pct"] < 6.0
    # every fractured level of grade >= 2 is found
    rows = [r for c in comps for r in c["levels"] if r["true_grade"] >= 2]
    assert all(r["grade"] >= 1 for r in rows)


def test_record_is_json_and_flags_a_merged_instance(phantom_patients):
    p = phantom_patients[0]
    lat = p.masks["lat_vertebra"] > 0
    rec = measure_patient({"lat_vertebra": lat, "lat_disk_height": p.masks["lat_disk_height"] > 0}, None)
    json.dumps(rec, allow_nan=True)
    n = len(p.gt["lat_levels"])  # every level of the LAT field (T10..L5 in a lumbar one, up to T1..L5)
    assert len(rec["lat"]["vertebrae"]) == n >= 8
    assert len(rec["lat"]["discs"]) >= n - 2  # one per gap (L5/S1 lies below the last body)
    assert {d["upper"] for d in rec["lat"]["discs"]} <= set(range(n))
    # fill the disc between levels 3 and 4 -> one fused blob that no erosion splits
    from spine_det.morphometry.vertebrae import components

    comps = components(lat)
    disc = [c for c in components(p.masks["lat_disk_height"] > 0)]
    fused = lat.copy()
    cy = [np.nonzero(c)[0].mean() for c in comps]
    for d in disc:
        if cy[3] < np.nonzero(d)[0].mean() < cy[4]:
            fused |= cv2.dilate(d.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    rec2 = measure_patient({"lat_vertebra": fused}, None)
    flags = [v["flags"] for v in rec2["lat"]["vertebrae"]]
    assert sum("merged" in f for f in flags) == 1
    merged = next(v for v in rec2["lat"]["vertebrae"] if "merged" in v["flags"])
    assert merged["grade"] == -1 and merged["ha"] is None


def test_prediction_folder_reader(tmp_path):
    from spine_det.data.layout import ViewSample
    from spine_det.morphometry.sources import load_view_masks

    key_dir = tmp_path / "Training" / "Normal" / "ID (1)" / "lat"
    key_dir.mkdir(parents=True)
    lab = np.zeros((40, 30), np.uint16)
    lab[2:10, 5:20] = 1
    lab[10:18, 5:20] = 2  # touching instances stay apart
    cv2.imwrite(str(key_dir / "lat_vertebra_instances.png"), lab)
    cv2.imwrite(str(key_dir / "lat_disk_height.png"), (lab > 0).astype(np.uint8) * 255)
    s = ViewSample("Training/Normal/ID (1)", "Normal", "train", "lat", "x.jpg", {}, 40, 30)
    got = load_view_masks(s, "maskrcnn", tmp_path)
    assert isinstance(got["lat_vertebra"], list) and len(got["lat_vertebra"]) == 2
    assert got["lat_disk_height"].dtype == bool and got["lat_disk_height"].sum() == 16 * 15
    assert got["lat_spinous_process"] is None
    # linknet reads the binary mask (the two touching instances become one component)
    cv2.imwrite(str(key_dir / "lat_vertebra.png"), (lab > 0).astype(np.uint8) * 255)
    assert load_view_masks(s, "linknet", tmp_path)["lat_vertebra"].sum() == 16 * 15
    np.savez(key_dir / "lat_vertebra_instances.npz", masks=np.stack([lab == 1, lab == 2, lab == 2]),
             scores=np.array([0.9, 0.8, 0.1]))
    assert len(load_view_masks(s, "maskrcnn", tmp_path)["lat_vertebra"]) == 2


def _run_tool(name, argv):
    import importlib

    return importlib.import_module(f"spine_det.tools.{name}").main(argv)


def test_tools_measure_and_eval(phantom_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPINE_DET_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "measure"
    assert _run_tool("measure", ["--data-root", str(phantom_root), "--out", str(out), "--split", "test", "--quiet"]) == 0
    jsons = sorted(p for p in out.glob("*.json") if p.name != "measure_summary.json")
    assert jsons and len(jsons) == len(list(out.glob("*.png")))
    rec = json.loads(jsons[0].read_text())
    assert rec["lat"]["vertebrae"] and rec["call"]["label"] in ("Normal", "Damaged")
    img = cv2.imread(str(out / (jsons[0].stem + ".png")))
    assert img is not None and img.shape[0] > 0
    ev = tmp_path / "eval"
    assert _run_tool("eval_morphometry", ["--data-root", str(phantom_root), "--split", "test", "--out", str(ev),
                                          "--quiet"]) == 0
    m = json.loads((ev / "morphometry_metrics.json").read_text())
    assert m["meta"]["split"] == "test" and m["meta"]["source"] == "gt" and m["meta"]["seed"] == 0
    assert m["meta"]["calibration"]["fitted_on"] == "train"
    assert m["metrics"]["matched_levels"] > 0
    assert m["metrics"]["height_mae_pct"] < 10.0  # 256-px images: ~20-px bodies
    printed = capsys.readouterr().out
    assert "split test" in printed and "source gt" in printed
    # the fitted config drives measure.py
    assert _run_tool("measure", ["--data-root", str(phantom_root), "--out", str(tmp_path / "m2"), "--split", "test",
                                 "--config", str(ev / "morphometry_config.json"), "--no-overlay", "--quiet"]) == 0
    assert not list((tmp_path / "m2").glob("*.png"))


def test_tools_need_pred_dir_for_predictions(tmp_path, capsys):
    assert _run_tool("measure", ["--data-root", str(tmp_path), "--source", "linknet", "--out", str(tmp_path / "o")]) == 2
    assert "--pred-dir" in capsys.readouterr().err


def test_predict_outputs_round_trip_into_morphometry(tmp_path):
    """predict.py's files for a Mask R-CNN prediction (label map) keep touching vertebrae apart."""
    from spine_det.data.layout import ViewSample
    from spine_det.engine.predictor import TaskPrediction
    from spine_det.morphometry.sources import load_view_masks

    import importlib

    predict = importlib.import_module("spine_det.tools.predict")
    a = np.zeros((40, 30), bool)
    a[2:10, 5:20] = True
    b = np.zeros((40, 30), bool)
    b[9:18, 5:20] = True  # overlaps a on row 9: the higher score keeps it
    insts = [{"score": 0.6, "bbox": [5, 2, 15, 8], "area": int(a.sum())},
             {"score": 0.9, "bbox": [5, 9, 15, 9], "area": int(b.sum())}]
    p = TaskPrediction(mask=a | b, instances=insts, instance_masks=np.stack([a, b]))
    lab = p.label_map()
    assert lab.dtype == np.uint16 and set(np.unique(lab)) == {0, 1, 2}
    assert (lab[9] == 2).sum() == 15 and (lab == 1).sum() == 7 * 15  # row 9 went to the 0.9 instance
    key = "Training/Normal/ID (1)/lat"
    predict.write_outputs(tmp_path / key, np.zeros((40, 30), np.uint8), {"lat_vertebra": p}, Path("x.jpg"))
    s = ViewSample("Training/Normal/ID (1)", "Normal", "train", "lat", "x.jpg", {}, 40, 30)
    got = load_view_masks(s, "maskrcnn", tmp_path)["lat_vertebra"]
    assert len(got) == 2 and sorted(int(m.sum()) for m in got) == [7 * 15, 9 * 15]
    # the LinkNet reader finds the binary <task>_mask.png (one merged component here)
    assert load_view_masks(s, "linknet", tmp_path)["lat_vertebra"].sum() == (a | b).sum()
    # without instance masks the label map is the connected components
    assert TaskPrediction(mask=a | b).label_map().max() == 1


def test_eval_morphometry_from_instance_files_of_ground_truth(phantom_root, tmp_path, monkeypatch):
    """Instance files written the way predict.py writes them, from the true vertebrae, give the
    ground-truth figures: the --source maskrcnn path reads, calibrates and scores what it is given."""
    from spine_det.data.io import read_mask
    from spine_det.data.prepare import prepare_dataset
    from spine_det.engine.predictor import TaskPrediction
    from spine_det.morphometry.vertebrae import components

    monkeypatch.setenv("SPINE_DET_CACHE", str(tmp_path / "cache"))
    import importlib

    predict = importlib.import_module("spine_det.tools.predict")
    manifest = prepare_dataset(phantom_root, convert=False).manifest
    preds = tmp_path / "pred"
    for s in manifest.select(view="lat"):
        m = read_mask(s.masks["lat_vertebra"], (s.height, s.width))
        inst = components(m)
        p = TaskPrediction(mask=m, instances=[{"score": 1.0 - 0.01 * i} for i in range(len(inst))],
                           instance_masks=np.stack(inst))
        predict.write_outputs(preds / s.key, np.zeros(m.shape, np.uint8), {"lat_vertebra": p}, Path(s.image))
    res = {}
    for source in ("gt", "maskrcnn"):
        argv = ["--data-root", str(phantom_root), "--split", "test", "--out", str(tmp_path / source), "--quiet",
                "--source", source] + (["--pred-dir", str(preds)] if source != "gt" else [])
        assert _run_tool("eval_morphometry", argv) == 0
        res[source] = json.loads((tmp_path / source / "morphometry_metrics.json").read_text())
    g, p = res["gt"]["metrics"], res["maskrcnn"]["metrics"]
    assert p["matched_levels"] == g["matched_levels"] > 0
    assert p["hm_mae_pct"] == pytest.approx(g["hm_mae_pct"], abs=0.5)
    assert res["maskrcnn"]["meta"]["calibration"]["height_scale"].keys() == {"ha", "hm", "hp"}

"""spine_det.tools.benchmark end to end with only the cheap parts (Otsu, tables, figures) on the phantom fixture."""
from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def bench_main():
    from spine_det.tools.benchmark import main

    return main


def test_benchmark_tool_otsu_only(tmp_path, phantom_root, monkeypatch, bench_main):
    monkeypatch.setenv("SPINE_DET_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "results"
    from spine_det.modeling.registry import family_keys

    skip_all = [f"--skip-{k.replace('_', '-')}" for k in family_keys()]  # every installed family, not only ours
    argv = ["--profile", "cpu", "--data-root", str(phantom_root), "--out", str(out), "--tasks", "lat_vertebra",
            *skip_all, "--skip-classifier", "--figure-images", "2"]
    assert bench_main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    otsu = json.loads((out / "runs/otsu/lat_vertebra/inference/spine_lat_vertebra_test/semantic_metrics.json").read_text())
    row = res["segmentation"][0]
    assert row["task"] == "lat_vertebra" and row["models"]["otsu"]["dice"] == otsu["dice"]
    assert set(row["models"]) == {"otsu"}  # skipped families are no columns
    assert row["test_images"] == otsu["counts"]["images"] > 0
    md = (out / "results.md").read_text()
    assert f"{otsu['dice']:.4f}" in md and "| profile | cpu |" in md
    assert (out / "figures" / "lat_vertebra_overlays.png").stat().st_size > 0
    assert "otsu" in (out / "results.csv").read_text()


def test_benchmark_tool_missing_data_root(tmp_path, capsys, bench_main):
    out = tmp_path / "results"
    assert bench_main(["--data-root", str(out / "data"), "--out", str(out), "--skip-classifier"]) == 2
    assert "--make-phantom" in capsys.readouterr().err
    assert bench_main(["--data-root", str(tmp_path / "elsewhere"), "--out", str(out)]) == 2


@pytest.mark.slow
def test_benchmark_transfer_root_scores_the_trained_model_on_the_second_dataset(tmp_path, phantom_root, monkeypatch,
                                                                              bench_main):
    """A tiny LinkNet trained on one phantom is scored on another's test split: the numbers are those an
    independent predict-and-score loop gives on that second data set, and a re-run reuses everything."""
    import csv

    from spine_det.data.io import read_image, read_mask
    from spine_det.data.phantom import generate_dataset
    from spine_det.data.prepare import prepare_dataset
    from spine_det.engine.semseg_predictor import SemSegPredictor
    from spine_det.evaluation.metrics import binary_scores

    monkeypatch.setenv("SPINE_DET_CACHE", str(tmp_path / "cache"))
    other = tmp_path / "other"
    generate_dataset(other, 5, seed=11, size=192, progress=False)
    out = tmp_path / "results"
    argv = ["--profile", "cpu", "--data-root", str(phantom_root), "--out", str(out), "--tasks", "lat_vertebra",
            "--models", "linknet", "--skip-classifier", "--cost-images", "1", "--figure-images", "1",
            "--transfer-root", str(other), "--linknet-opts", "MODEL.PRETRAINED", "False", "INPUT.HEIGHT", "64",
            "INPUT.WIDTH", "48", "SOLVER.MAX_EPOCHS", "1", "DATALOADER.NUM_WORKERS", "0"]
    assert bench_main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    row = res["transfer"]["rows"][0]
    scored = out / "runs" / "transfer-other" / "linknet" / "lat_vertebra" / "inference" / "spine_lat_vertebra_test"
    js = json.loads((scored / "semantic_metrics.json").read_text())
    ck = out / "runs" / "linknet" / "lat_vertebra" / "model_best.pth"
    assert row["task"] == "lat_vertebra" and row["models"]["linknet"]["dice"] == js["dice"]
    assert js["checkpoint"] == str(ck) and row["models"]["otsu"]["dice"] is not None
    test = prepare_dataset(other, cache_dir=tmp_path / "cache2").manifest.select(split="test", task="lat_vertebra")
    with open(scored / "semantic_per_image.csv", newline="") as f:
        assert {r["image_id"] for r in csv.DictReader(f)} == {s.key for s in test}  # the second data set's images
    pred = SemSegPredictor.from_checkpoint(str(ck))
    dice = [binary_scores(pred.predict_masks(read_image(s.image))["lat_vertebra"],
                          read_mask(s.masks["lat_vertebra"], shape=read_image(s.image).shape))["dice"] for s in test]
    assert js["dice"] == pytest.approx(sum(dice) / len(dice), abs=1e-9)
    assert "## Transfer: trained on" in (out / "results.md").read_text()
    assert (out / "figures" / "lat_vertebra_on_other_overlays.png").stat().st_size > 0  # the second set's pictures
    assert bench_main(argv) == 0  # resumed: the trained model and its transfer score are reused
    units = {u["unit"]: u["status"] for u in json.loads((out / "results.json").read_text())["units"]}
    assert units["linknet-lat_vertebra"] == "reused" and units["linknet-lat_vertebra-on-other"] == "reused"
    assert bench_main(argv[:-13] + ["--transfer-root", str(phantom_root)]) == 2  # the training data is no second set

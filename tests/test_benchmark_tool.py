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

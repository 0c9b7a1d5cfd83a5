"""nnU-Net v2 as a model family: the export to nnU-Net's raw format (no nnunetv2 needed), the config,
the path binding, and (with nnunetv2 installed) a one-epoch run end to end through the module's CLI.

CI runs them all: `make test` installs the nnunet extra (nnunetv2 and what it brings, about 0.6 GB). Where
nnunetv2 is missing (a developer's `pip install -e .[test]`) the two tests that need it skip."""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from spine_det.engine import nnunet as fam
from spine_det.modeling.families.nnunet import config_file
from spine_det.tools.train_nnunet import main as train_nnunet_main

TASK = "lat_vertebra"
HAS_NNUNET = importlib.util.find_spec("nnunetv2") is not None
NO_NNUNET = "nnunetv2 is not installed (pip install 'spine_det[nnunet]'; make test installs it)"


def _tree(root):
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_registered_with_its_configs():
    from spine_det.modeling.registry import family_keys, get_family
    from spine_det.tasks import TASK_NAMES

    assert "nnunet" in family_keys()
    spec = get_family("nnunet")
    assert spec.available() == (None if HAS_NNUNET else fam.INSTALL_HINT)
    for t in TASK_NAMES:
        cfg = spec.get_config(spec.config_file(t), "cpu")
        assert list(cfg.SPINE.TASKS) == [t] and cfg.OUTPUT_DIR.endswith(t)
    full, cpu = (spec.get_config(spec.config_file(TASK), p) for p in ("full", "cpu"))
    assert (full.NNUNET.EPOCHS, full.NNUNET.ITERS_PER_EPOCH) == (1000, 250)  # nnU-Net's own schedule
    assert cpu.NNUNET.EPOCHS * cpu.NNUNET.ITERS_PER_EPOCH < 1000 and cpu.MODEL.DEVICE == "cpu"


def test_one_task_per_run():
    from spine_det.config.nnunet import load_nnunet_config
    from spine_det.config.safe import ConfigError

    with pytest.raises(ConfigError, match="one task at a time"):
        load_nnunet_config(config_file(TASK), "cpu", ["SPINE.TASKS", "['lat_vertebra', 'lat_disk_height']"])


def test_export_follows_the_manifest_and_leaves_the_data_root_alone(prepared, tmp_path):
    from spine_det.data.io import read_image, read_mask

    manifest = prepared.manifest
    before = _tree(Path(manifest.root))
    out = fam.export_task(manifest, TASK, tmp_path / "raw", dataset_id=901, max_side=128)
    root = out["folder"]
    assert root.name == "Dataset901_spine_lat_vertebra"
    cases = json.loads((root / "cases.json").read_text())
    for split in ("train", "val", "test"):  # every image of the task, in the manifest's own split
        assert sorted(cases[split].values()) == sorted(s.key for s in manifest.select(split=split, task=TASK))
    n_tr = len(cases["train"]) + len(cases["val"])
    assert len(list((root / "imagesTr").glob("*_0000.png"))) == len(list((root / "labelsTr").glob("*.png"))) == n_tr
    assert len(list((root / "imagesTs").glob("*_0000.png"))) == len(cases["test"]) > 0
    ds = json.loads((root / "dataset.json").read_text())
    assert ds["file_ending"] == ".png" and ds["channel_names"] == {"0": "grey"} and ds["numTraining"] == n_tr
    assert ds["labels"] == {"background": 0, TASK: 1}

    import cv2

    case, key = next(iter(cases["train"].items()))
    s = manifest.get(key)
    img = cv2.imread(str(root / "imagesTr" / f"{case}_0000.png"), cv2.IMREAD_UNCHANGED)
    lab = cv2.imread(str(root / "labelsTr" / f"{case}.png"), cv2.IMREAD_UNCHANGED)
    h, w = read_image(s.image).shape
    assert img.ndim == 2 and max(img.shape) == 128 and abs(min(img.shape) - 128 * min(h, w) / max(h, w)) <= 1
    assert lab.shape == img.shape and set(np.unique(lab)) == {0, 1}
    gt = cv2.resize(read_mask(s.masks[TASK]).astype(np.float32), img.shape[::-1], interpolation=cv2.INTER_AREA) >= 0.5
    assert np.array_equal(lab == 1, gt)
    assert _tree(Path(manifest.root)) == before  # nothing written in the data root


def test_splits_file(tmp_path):
    cases = {"train": {"case_0001": "a", "case_0000": "b"}, "val": {"case_0002": "c"}, "test": {}}
    assert fam.write_splits(tmp_path, cases) == [{"train": ["case_0000", "case_0001"], "val": ["case_0002"]}]
    assert json.loads((tmp_path / "splits_final.json").read_text())[0]["val"] == ["case_0002"]
    no_val = fam.write_splits(tmp_path, {**cases, "val": {}})  # nnU-Net cannot run without val cases
    assert no_val[0]["val"] == no_val[0]["train"] == ["case_0000", "case_0001"]


def test_output_inside_the_data_root_is_refused(phantom_root, capsys, monkeypatch):
    monkeypatch.setattr(fam, "available", lambda: None)  # as with the extra installed: the tool checks that first
    rc = train_nnunet_main(["--config-file", "nnunet/lat_vertebra.yaml", "--data-root", str(phantom_root), "--profile", "cpu",
                   "OUTPUT_DIR", str(phantom_root / "runs")])
    assert rc != 0 and "data root" in capsys.readouterr().err
    assert not (phantom_root / "runs").exists()


@pytest.mark.skipif(not HAS_NNUNET, reason=NO_NNUNET)
def test_bind_paths_rebinds_imported_modules(tmp_path, monkeypatch):
    for k in fam.ENV_KEYS:
        monkeypatch.setenv(k, os.environ.get(k, ""))
    import nnunetv2.paths

    paths = fam.bind_paths(tmp_path / "work")
    assert nnunetv2.paths.nnUNet_raw == str(paths["nnUNet_raw"]) == os.environ["nnUNet_raw"]
    assert paths["nnUNet_results"].is_dir() and paths["nnUNet_preprocessed"].parent == (tmp_path / "work").resolve()


@pytest.mark.slow
@pytest.mark.skipif(not HAS_NNUNET, reason=NO_NNUNET)
def test_train_predict_score_end_to_end(prepared, phantom_root, tmp_path, monkeypatch):
    """One epoch of two iterations on 64-px exports: the run leaves the files every family leaves."""
    for k in (*fam.ENV_KEYS, "nnUNet_n_proc_DA", "nnUNet_compile"):
        monkeypatch.setenv(k, os.environ.get(k, ""))
    out = tmp_path / "run"
    argv = ["--config-file", "nnunet/lat_vertebra.yaml", "--data-root", str(phantom_root), "--profile", "cpu",
            "--cache-dir", str(tmp_path / "cache"),
            "OUTPUT_DIR", str(out), "NNUNET.EPOCHS", "1", "NNUNET.ITERS_PER_EPOCH", "2", "NNUNET.VAL_ITERS_PER_EPOCH", "1",
            "NNUNET.BATCH_SIZE", "2", "NNUNET.MAX_SIDE", "64", "NNUNET.NUM_PROCESSES", "0"]
    assert train_nnunet_main(argv) == 0
    ck = out / fam.CHECKPOINT
    assert ck.is_symlink() and ck.resolve().name == "checkpoint_final.pth"
    res = json.loads((out / "inference" / f"spine_{TASK}_test" / "semantic_metrics.json").read_text())
    n_test = len(prepared.manifest.select(split="test", task=TASK))
    assert res["model"] == "nnunet" and res["counts"]["images"] == n_test > 0 and 0.0 <= res["dice"] <= 1.0
    from spine_det.modeling.registry import get_family

    spec = get_family("nnunet")
    curves = spec.benchmark.curves(out, TASK, 0)
    assert curves["iterations"] == 2 and len(curves["loss"]) == 1 and curves["s_per_iter"] > 0
    from spine_det.modeling.registry import checkpoint_family
    from spine_det.utils.checkpoint_io import load_plain

    assert checkpoint_family(load_plain(ck)) == "nnunet"  # read as plain data, told apart from other families

    from spine_det.data.io import read_image
    from spine_det.engine.predictor import build_predictor

    pred = build_predictor("nnunet", str(ck))  # through the registry, from the checkpoint alone
    s = prepared.manifest.select(split="test", task=TASK)[0]
    img = read_image(s.image)
    p = pred(img)[TASK]
    assert p.mask.shape == img.shape and p.mask.dtype == bool
    assert all(i["area"] > 0 for i in p.instances) and sum(i["area"] for i in p.instances) == int(p.mask.sum())
    module, (x,) = pred.flop_count_inputs(img)  # the cost table's FLOPs: every patch the image needs
    assert x.shape[0] == pred.sliding_windows(img) >= 1 and list(x.shape[-2:]) == list(pred.predictor.configuration_manager.patch_size)

    # --resume after a finished run trains nothing and re-scores the same checkpoint
    assert train_nnunet_main(["--resume", *argv]) == 0
    again = json.loads((out / "inference" / f"spine_{TASK}_test" / "semantic_metrics.json").read_text())
    assert again["dice"] == res["dice"]

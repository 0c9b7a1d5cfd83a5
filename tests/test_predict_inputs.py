"""``spine-det predict`` and the Python API on what a user points them at: only films are read, the
view comes from the checkpoint, output folders never mix two models' files, the config must fit the
checkpoint, and bad numbers or devices are one-line refusals (the CLI's and the API's alike)."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from spine_det.tools import predict


def _linknet_checkpoint(path: Path, task: str, seed: int = 0) -> Path:
    """A fresh LinkNet checkpoint as train-linknet writes it (weights, tasks, config), 32 x 32 input."""
    from spine_det.config.loading import load_cfg
    from spine_det.config.semseg import get_semseg_cfg
    from spine_det.modeling.semseg import build_seg_model
    from spine_det.utils.checkpoint_io import save_plain

    torch.manual_seed(seed)
    cfg = load_cfg(get_semseg_cfg(), opts=["MODEL.PRETRAINED", "False", "MODEL.DEVICE", "cpu", "INPUT.HEIGHT", "32",
                                            "INPUT.WIDTH", "32", "SPINE.TASKS", f"['{task}']"])
    path.parent.mkdir(parents=True, exist_ok=True)
    save_plain(path, {"model": build_seg_model(cfg).state_dict(), "epoch": 1, "score": 0.5, "metric": "val_dice",
                      "tasks": [task], "cfg": cfg.dump(), "model_name": "linknet"})
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ck")
    return {"lat": _linknet_checkpoint(root / "lat" / "model_best.pth", "lat_vertebra"),
            "lat_other": _linknet_checkpoint(root / "lat_other" / "model_best.pth", "lat_vertebra", seed=1),
            "ap": _linknet_checkpoint(root / "ap" / "model_best.pth", "ap_vertebra")}


def _film(h: int, w: int) -> np.ndarray:
    return (np.arange(h * w) % 251).astype(np.uint8).reshape(h, w)


def _patient(root: Path) -> Path:
    """One patient laid out as the dataset is: AP and LAT films, each with masks and an instance map."""
    for view, stem, mask, shape in (("AP", "AP", "Ap_Vertebra", (120, 50)), ("LAT", "LAT", "Lat_Vertebra", (60, 50))):
        d = root / view
        d.mkdir(parents=True)
        cv2.imwrite(str(d / f"{stem}.png"), _film(*shape))
        cv2.imwrite(str(d / f"{mask}.png"), np.zeros(shape, np.uint8))
        cv2.imwrite(str(d / f"{mask}_instances.png"), np.zeros(shape, np.uint16))
    return root


def _run(ck: Path, inp: Path, out: Path, *extra: str) -> int:
    return predict.main(["--checkpoint", str(ck), "--input", str(inp), "--output", str(out), *extra])


def _refusal(capsys, rc: int) -> str:
    """The one ``error:`` line of a refused run, whose exit status is 2 (every refusal's)."""
    assert rc == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error:")]
    assert len(err) == 1, err
    return err[0]


def _predicted(out: Path) -> set:
    return {p.parent.relative_to(out).as_posix() for p in out.rglob("*_mask.png")}


# -- 1. only films, of the checkpoint's view ---------------------------------------------------------


def test_patient_folder_gives_only_the_films_of_the_checkpoints_view(checkpoints, tmp_path, caplog, capsys):
    pat = _patient(tmp_path / "ID (1)")
    out = tmp_path / "out"
    with caplog.at_level(logging.INFO, logger="spine_det.predict"):
        assert _run(checkpoints["lat"], pat, out) == 0
    assert _predicted(out) == {"LAT/LAT"}  # before: 6 "films", the masks and the AP film through a LAT model
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(left_out) == 1 and "4 file(s) named like masks or predictions" in left_out[0] and "1 AP film(s)" in left_out[0]

    # --view all takes the AP film too, with one warning; --strict refuses it before writing anything
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="spine_det.predict"):
        assert _run(checkpoints["lat"], pat, tmp_path / "all", "--view", "all") == 0
    assert _predicted(tmp_path / "all") == {"AP/AP", "LAT/LAT"}
    assert any("may not be LAT films" in r.getMessage() and "its folder says AP" in r.getMessage() for r in caplog.records)
    refusal = _refusal(capsys, _run(checkpoints["lat"], pat, tmp_path / "strict", "--view", "all", "--strict"))
    assert re.search("its folder says AP.*--strict", refusal)
    assert not _predicted(tmp_path / "strict")


def test_plain_folder_skips_mask_and_prediction_names_and_an_explicit_mask_is_refused(checkpoints, tmp_path, caplog, capsys):
    inp = tmp_path / "films"
    inp.mkdir()
    for name in ("scan1.png", "scan2.jpg", "Lat_Vertebra.png", "lat_vertebra_mask.png", "lat_vertebra_overlay.png",
                 "old_instances.png", "._scan1.png"):
        cv2.imwrite(str(inp / name), _film(60, 50))
    with caplog.at_level(logging.INFO, logger="spine_det.predict"):
        assert _run(checkpoints["lat"], inp, tmp_path / "out") == 0
    assert _predicted(tmp_path / "out") == {"scan1", "scan2"}
    assert any("left out: 5 file(s) named like masks or predictions, or hidden" in r.getMessage() for r in caplog.records)
    refusal = _refusal(capsys, _run(checkpoints["lat"], inp / "Lat_Vertebra.png", tmp_path / "one"))
    assert re.search("named like a mask, not a film", refusal)


def test_film_shape_is_a_weak_hint_without_a_view_folder(checkpoints, tmp_path, caplog, capsys):
    inp = tmp_path / "films"
    inp.mkdir()
    cv2.imwrite(str(inp / "tall.png"), _film(150, 50))  # 3 times taller than wide: a full-spine AP film?
    with caplog.at_level(logging.INFO, logger="spine_det.predict"):
        assert _run(checkpoints["lat"], inp, tmp_path / "out") == 0
    assert any("taller than wide" in r.getMessage() for r in caplog.records)
    refusal = _refusal(capsys, _run(checkpoints["lat"], inp, tmp_path / "strict", "--strict"))
    assert re.search("taller than wide.*--strict", refusal)
    assert _run(checkpoints["ap"], inp, tmp_path / "ap", "--strict") == 0  # an AP model: no doubt


def test_data_root_defaults_to_the_checkpoints_view(checkpoints, phantom_root, tmp_path, monkeypatch):
    monkeypatch.setenv("SPINE_DET_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert predict.main(["--checkpoint", str(checkpoints["ap"]), "--data-root", str(phantom_root), "--split", "test",
                         "--output", str(out)]) == 0
    views = {Path(k).name for k in _predicted(out)}
    assert views == {"ap"}  # before: --view all, LAT films through the AP model too


# -- 2. the device ----------------------------------------------------------------------------------


def test_device_defaults_to_auto_and_a_bad_device_is_an_argparse_error(checkpoints, tmp_path, monkeypatch, capsys):
    import spine_det.engine.predictor as engine

    asked = {}

    def fake_build(name, checkpoint, **kwargs):
        asked.update(kwargs)
        raise engine.CheckpointError("stop here")

    monkeypatch.setattr(engine, "build_predictor", fake_build)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU machine
    inp = tmp_path / "in" / "scan.png"
    inp.parent.mkdir()
    cv2.imwrite(str(inp), _film(60, 50))
    assert re.search("stop here", _refusal(capsys, _run(checkpoints["lat"], inp, tmp_path / "out")))
    assert asked["device"] == "cuda"  # before: cpu on a GPU machine
    for bad in ("tpu", "cuda:x", "gpu"):
        with pytest.raises(SystemExit) as e:
            _run(checkpoints["lat"], inp, tmp_path / "out", "--device", bad)
        assert e.value.code == 2
        assert "cpu, cuda, cuda:N, auto" in capsys.readouterr().err


# -- 3. output folders never mix two models' files --------------------------------------------------


def test_other_models_outputs_are_refused_or_replaced_never_mixed(checkpoints, tmp_path, capsys):
    RECORD_NAME = "predicted_by.json"  # spine_det.engine.prediction_files.RECORD_NAME
    inp = tmp_path / "scan.png"
    cv2.imwrite(str(inp), _film(60, 50))
    out = tmp_path / "out"
    dest = out / "scan"
    dest.mkdir(parents=True)
    # what a Mask R-CNN run left there, and a file of the user's
    cv2.imwrite(str(dest / "lat_vertebra_instances.png"), np.ones((60, 50), np.uint16))
    (dest / "notes.txt").write_text("mine")
    refusal = _refusal(capsys, _run(checkpoints["lat"], inp, out))
    assert re.search("hold predictions of other settings.*--overwrite", refusal)
    assert sorted(p.name for p in dest.iterdir()) == ["lat_vertebra_instances.png", "notes.txt"]  # nothing written
    assert _run(checkpoints["lat"], inp, out, "--overwrite") == 0
    names = sorted(p.name for p in dest.iterdir())
    assert "lat_vertebra_instances.png" not in names and "notes.txt" in names and RECORD_NAME in names
    record = json.loads((dest / RECORD_NAME).read_text())
    assert record["model"] == "linknet" and record["tasks"] == ["lat_vertebra"] and len(record["checkpoint_sha1"]) == 40

    # same model and settings: rerun and --skip-existing are fine; the skip leaves the files as they are
    assert _run(checkpoints["lat"], inp, out) == 0
    stamp = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    assert _run(checkpoints["lat"], inp, out, "--skip-existing") == 0
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == stamp
    # another checkpoint of the same task, or another threshold: --skip-existing no longer "succeeds" writing nothing
    assert re.search("other settings", _refusal(capsys, _run(checkpoints["lat_other"], inp, out, "--skip-existing")))
    refusal = _refusal(capsys, _run(checkpoints["lat"], inp, out, "--score-threshold", "0.7"))
    assert re.search("other settings", refusal)
    assert _run(checkpoints["lat_other"], inp, out, "--skip-existing", "--overwrite") == 0
    record = json.loads((dest / RECORD_NAME).read_text())
    assert record["checkpoint"] == str(checkpoints["lat_other"].resolve())


# -- 4. the config must fit the checkpoint; shipped names resolve as in the API ---------------------


def test_config_for_other_tasks_is_refused_and_shipped_names_resolve(checkpoints, tmp_path, capsys):
    inp = tmp_path / "AP.png"
    cv2.imwrite(str(inp), _film(120, 50))
    refusal = _refusal(capsys, _run(checkpoints["ap"], inp, tmp_path / "out", "--config-file",
                                    "configs/linknet/lat_vertebra.yaml"))
    assert re.search("segments lat_vertebra, but .* was trained for ap_vertebra", refusal)
    assert not (tmp_path / "out").exists() or not _predicted(tmp_path / "out")
    # a shipped config named as the API takes it (before: "config file not found")
    assert _run(checkpoints["lat"], inp, tmp_path / "ok", "--config-file", "linknet/lat_vertebra.yaml") == 0
    assert _predicted(tmp_path / "ok") == {"AP"}

    from spine_det import Predictor

    with pytest.raises(ValueError, match="trained for ap_vertebra"):
        Predictor.from_checkpoint(checkpoints["ap"], config_file="linknet/lat_vertebra.yaml", device="cpu")


def test_maskrcnn_config_for_other_tasks_is_refused(tmp_path, capsys):
    """The issue's case: an ap_vertebra Mask R-CNN (its config.yaml beside says so) given the shipped
    lat_vertebra config fits the weights (one class each) and wrote lat_vertebra_mask.png."""
    pytest.importorskip("detectron2")
    import spine_det.compat  # noqa: F401
    from detectron2.modeling import build_model

    from spine_det.config import get_spine_cfg
    from spine_det.config.paths import resolve_config_file
    from spine_det.utils.checkpoint_io import save_plain

    torch.manual_seed(0)
    cfg = get_spine_cfg(resolve_config_file("ap_vertebra.yaml"),
                        opts=["MODEL.WEIGHTS", str(tmp_path / "model_best.pth"), "MODEL.DEVICE", "cpu", "OUTPUT_DIR", str(tmp_path)])
    save_plain(tmp_path / "model_best.pth", {"model": build_model(cfg).state_dict()})
    (tmp_path / "config.yaml").write_text(cfg.dump())
    inp = tmp_path / "in" / "AP.png"
    inp.parent.mkdir()
    cv2.imwrite(str(inp), _film(120, 50))
    refusal = _refusal(capsys, _run(tmp_path / "model_best.pth", inp, tmp_path / "out", "--config-file",
                                    "lat_vertebra.yaml", "--device", "cpu"))
    assert re.search(r"segments lat_vertebra, but .* was trained for ap_vertebra \(recorded in .*config.yaml\)", refusal)
    assert not _predicted(tmp_path / "out") if (tmp_path / "out").exists() else True


# -- 5. numbers on the command line -----------------------------------------------------------------


@pytest.mark.parametrize("tool, argv", [
    ("visualize_data", ["--data-root", "x", "--out", "y", "--max-size", "-5"]),
    ("measure_cobb", ["--data-root", "x", "--out", "y", "--overlay-max-side", "0"]),
    ("predict", ["--checkpoint", "c", "--input", "i", "--output", "o", "--seed", "-1"]),
    ("predict", ["--checkpoint", "c", "--input", "i", "--output", "o", "--score-threshold", "nan"]),
])
def test_bad_numbers_are_argparse_errors(tool, argv, load_tool, capsys):
    with pytest.raises(SystemExit) as e:
        load_tool(tool).main(argv)
    assert e.value.code == 2  # before: a cv2 traceback after the data was read (the first two)
    assert "error: argument" in capsys.readouterr().err


# -- 6. the Python API refuses what the CLI refuses -------------------------------------------------


def test_api_refuses_the_values_the_cli_refuses(checkpoints, tmp_path, caplog):
    from spine_det import Predictor

    for bad in (float("nan"), -0.5, 1.5, float("inf")):
        with pytest.raises(ValueError, match=r"score_threshold must be a number in \[0, 1\]"):
            Predictor.from_checkpoint(checkpoints["lat"], device="cpu", score_threshold=bad)
    with pytest.raises(ValueError, match="device must be one of cpu, cuda, cuda:N, auto"):
        Predictor.from_checkpoint(checkpoints["lat"], device="tpu")
    pred = Predictor.from_checkpoint(checkpoints["lat"], device="cpu")
    assert pred.view == "lat"
    for bad in (np.full((40, 30), np.nan, np.float32), np.zeros((0, 0), np.uint8), np.zeros((0, 5), np.float32)):
        with pytest.raises(ValueError, match="^image has no"):
            pred(bad)
    assert pred(_film(40, 30)).masks["lat_vertebra"].shape == (40, 30)
    # files: a mask is no film; a film whose folder names the other view is predicted with a warning
    pat = _patient(tmp_path / "ID (1)")
    with pytest.raises(ValueError, match="named like a mask, not a film"):
        pred.predict(pat / "LAT" / "Lat_Vertebra.png")
    with caplog.at_level(logging.WARNING, logger="spine_det.api"):
        assert pred.predict(pat / "AP" / "AP.png").image_shape == (120, 50)
    assert any("its folder says AP" in r.getMessage() for r in caplog.records)

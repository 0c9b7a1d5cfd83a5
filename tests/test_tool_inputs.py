"""Tools on bad arguments: no silent wrong result, nothing written into the data, one-line errors."""
from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
LINKNET_CFG = REPO / "configs" / "linknet" / "lat_vertebra.yaml"


def _tool(name: str):
    """``spine_det.tools.<name>``; a tool not yet moved into the package from ``tools/<name>.py``."""
    if importlib.util.find_spec(f"spine_det.tools.{name}") is not None:
        return importlib.import_module(f"spine_det.tools.{name}")
    spec = importlib.util.spec_from_file_location(f"tool_{name}", REPO / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod




@pytest.fixture
def data(phantom_copy):
    return phantom_copy


def _tree(root: Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*")}


def test_measure_refuses_a_pred_dir_without_predictions(data, tmp_path, capsys, one_error_line):
    measure, evalm = _tool("measure"), _tool("eval_morphometry")
    empty = tmp_path / "typo_pred"
    empty.mkdir()
    out = tmp_path / "m"
    assert measure.main(["--data-root", str(data), "--source", "linknet", "--pred-dir", str(empty), "--out", str(out),
                         "--quiet", "--no-overlay"]) == 2
    msg = one_error_line()
    assert "no linknet prediction for" in msg and str(empty) in msg
    assert not (out / "measure_summary.json").exists()  # no "Normal" calls from zero levels
    # one patient predicted, the others not: still refused, with the count
    from spine_det.data.prepare import prepare_dataset

    manifest = prepare_dataset(data, convert=False).manifest
    test_patients = manifest.patients("test")
    s = manifest.select(split="test", view="lat")[0]
    (empty / s.key).mkdir(parents=True)
    cv2.imwrite(str(empty / s.key / "lat_vertebra_mask.png"), np.zeros((s.height, s.width), np.uint8))
    assert evalm.main(["--data-root", str(data), "--split", "test", "--source", "linknet", "--pred-dir", str(empty),
                       "--out", str(tmp_path / "e"), "--no-fit", "--quiet"]) == 2
    msg = one_error_line()
    assert f"for {len(test_patients) - 1} of {len(test_patients)} patients" in msg
    assert not (tmp_path / "e" / "morphometry_metrics.json").exists()


def test_outputs_inside_the_data_root_are_refused(data, tmp_path, capsys, one_error_line):
    before = _tree(data)
    inside = data / "Training" / "out"
    assert _tool("measure").main(["--data-root", str(data), "--out", str(inside), "--quiet"]) == 2
    assert "inside the data root" in one_error_line()
    assert _tool("visualize_data").main(["--data-root", str(data), "--out", str(inside), "--source", "masks"]) == 2
    assert "inside the data root" in one_error_line()
    assert _tool("train_linknet").main(["--config-file", str(LINKNET_CFG), "--data-root", str(data), "--profile", "cpu",
                                        "OUTPUT_DIR", str(inside)]) == 2
    assert "inside the data root" in one_error_line()
    assert _tool("convert_to_coco").main(["--data-root", str(data), "--out", str(tmp_path / "c"),
                                          "--cache-dir", str(data / "cache")]) == 2
    assert "inside the data root" in one_error_line()
    assert _tree(data) == before  # nothing written there


def test_unwritable_output_is_one_line(tmp_path):
    from spine_det.utils.paths import OutputLocationError, prepare_output

    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OutputLocationError, match="cannot write the output here") as e:
        prepare_output(blocker / "out")
    assert "\n" not in str(e.value)
    if os.geteuid() != 0:  # root writes through permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        with pytest.raises(OutputLocationError, match="cannot write"):
            prepare_output(ro / "out")


def _tiny_linknet_checkpoint(path: Path) -> None:
    from spine_det.config.loading import load_cfg
    from spine_det.config.semseg import get_semseg_cfg
    from spine_det.engine.semseg_trainer import save_checkpoint
    from spine_det.modeling.semseg import build_seg_model

    cfg = load_cfg(get_semseg_cfg(), opts=["MODEL.PRETRAINED", "False", "MODEL.DEVICE", "cpu", "INPUT.HEIGHT", "32",
                                            "INPUT.WIDTH", "32", "SPINE.TASKS", "['lat_vertebra']"])
    save_checkpoint(path, {"model": build_seg_model(cfg).state_dict(), "epoch": 1, "score": 0.5, "metric": "val_dice",
                           "tasks": ["lat_vertebra"], "cfg": cfg.dump(), "model_name": "linknet"})


def test_predict_keeps_same_stem_inputs_apart_and_refuses_bad_numbers(tmp_path, capsys):
    predict = _tool("predict")
    ck = tmp_path / "model_best.pth"
    _tiny_linknet_checkpoint(ck)
    inp = tmp_path / "in"
    inp.mkdir()
    img = (np.arange(40 * 30) % 251).astype(np.uint8).reshape(40, 30)
    cv2.imwrite(str(inp / "scan.jpg"), img)
    cv2.imwrite(str(inp / "scan.png"), img[:, ::-1])
    cv2.imwrite(str(inp / "other.png"), img)
    out = tmp_path / "out"
    assert predict.main(["--model", "linknet", "--checkpoint", str(ck), "--input", str(inp), "--output", str(out)]) == 0
    folders = sorted(p.name for p in out.iterdir() if p.name != ".spine_det.lock")  # (held until the process exits)
    assert folders == ["other", "scan_jpg", "scan_png"]
    for f in folders:
        meta = (out / f / "lat_vertebra_instances.json").read_text()
        assert f.split("_")[0] in meta
    for bad in ("nan", "1.5", "-0.1", "inf"):
        with pytest.raises(SystemExit) as e:
            predict.main(["--model", "linknet", "--checkpoint", str(ck), "--input", str(inp), "--output", str(out),
                          "--score-threshold", bad])
        assert e.value.code == 2
        assert "[0, 1]" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert predict.main(["--model", "linknet", "--checkpoint", str(ck), "--input", str(inp), "--output", str(out),
                             "--device", "cuda"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err


def test_predict_without_model_asks_the_api_which_family_wrote_the_checkpoint(tmp_path, one_error_line):
    predict = _tool("predict")
    ck = tmp_path / "model_best.pth"
    _tiny_linknet_checkpoint(ck)
    inp = tmp_path / "in.png"
    cv2.imwrite(str(inp), (np.arange(40 * 30) % 251).astype(np.uint8).reshape(40, 30))
    assert predict.main(["--checkpoint", str(ck), "--input", str(inp), "--output", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "in" / "lat_vertebra_mask.png").is_file()
    unknown = tmp_path / "weights.pth"
    torch.save({"state": {"w": torch.zeros(1)}}, unknown)  # nothing says who wrote it
    assert predict.main(["--checkpoint", str(unknown), "--input", str(inp), "--output", str(tmp_path / "out2")]) == 2
    assert "cannot tell which model wrote it; give --model, one of linknet, maskrcnn" in one_error_line()
    assert predict.main(["--checkpoint", str(tmp_path / "none.pth"), "--input", str(inp),
                         "--output", str(tmp_path / "o3")]) == 2
    assert "checkpoint not found" in one_error_line()


def test_corrupt_last_checkpoint_on_resume_is_one_line(data, tmp_path, capsys, one_error_line):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last_checkpoint").write_text("model_0000009.pth")
    (out / "model_0000009.pth").write_bytes(b"\x00" * 100)  # a copy cut short / disk full
    def argv(run):
        return ["--config-file", str(LINKNET_CFG), "--data-root", str(data), "--profile", "cpu", "--resume", "OUTPUT_DIR",
                str(run), "MODEL.PRETRAINED", "False", "INPUT.HEIGHT", "32", "INPUT.WIDTH", "32", "DATALOADER.NUM_WORKERS", "0"]

    assert _tool("train_linknet").main(argv(out)) == 2
    msg = one_error_line()
    assert "model_0000009.pth" in msg and "cannot be read as a PyTorch checkpoint" in msg
    # a run folder of the epoch loop before issue 31: refused in one line that says what to do
    old = tmp_path / "old"
    old.mkdir()
    (old / "last_checkpoint.pth").write_bytes(b"\x00" * 100)
    assert _tool("train_linknet").main(argv(old)) == 2
    msg = one_error_line()
    assert "last_checkpoint.pth was written by the epoch loop of an older spine_det" in msg
    assert f"MODEL.INIT_WEIGHTS {old / 'model_best.pth'}" in msg and not list(old.glob("model_*"))
    rc = _tool("train_classifier").main(["--data-root", str(data), "--profile", "cpu", "SOLVER.MAX_EPOCH", "3"])
    assert rc == 2 and "did you mean SOLVER.MAX_EPOCHS" in one_error_line()

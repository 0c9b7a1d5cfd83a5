"""The public API: ``from spine_det import Predictor`` on checkpoints made from fresh models, the
README's example run as written, and ``import spine_det`` staying light."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _image(h: int = 180, w: int = 120) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = (rng.random((h, w)) * 60).astype(np.uint8)
    img[40:140, 30:90] = 200  # something body-like
    img[60:80, 40:70] = 120
    return img


@pytest.fixture(scope="module")
def linknet_checkpoint(tmp_path_factory) -> Path:
    """A LinkNet checkpoint as train_semseg writes it (weights + its config + model name), fresh weights."""
    from spine_det.config.loading import load_cfg
    from spine_det.config.semseg import get_semseg_cfg
    from spine_det.modeling.semseg import build_seg_model
    from spine_det.utils.checkpoint_io import save_plain

    torch.manual_seed(0)
    cfg = load_cfg(get_semseg_cfg(), opts=["MODEL.PRETRAINED", "False", "MODEL.DEVICE", "cpu", "INPUT.HEIGHT", "64",
                                            "INPUT.WIDTH", "48", "TASKS", "['lat_vertebra']"])
    model = build_seg_model(cfg)
    path = tmp_path_factory.mktemp("linknet") / "model_best.pth"
    save_plain(path, {"model": model.state_dict(), "epoch": 1, "score": 0.0, "metric": "val_dice",
                      "tasks": ["lat_vertebra"], "cfg": cfg.dump(), "model_name": cfg.MODEL.NAME})
    return path


def test_readme_example_runs_as_written(linknet_checkpoint, tmp_path, monkeypatch, write_dicom):
    """The README's Python block, with only its checkpoint and image paths pointed at test files."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- api-example[^>]*-->\s*```python\n(.*?)```", text, re.S).group(1)
    assert len([ln for ln in block.splitlines() if ln.strip()]) == 5  # the five lines
    ckpt_in_readme = re.search(r'from_checkpoint\("([^"]+)"\)', block).group(1)
    image_in_readme = re.search(r'predict\("([^"]+)"\)', block).group(1)
    assert image_in_readme.endswith(".dcm")
    write_dicom(tmp_path / "scan.dcm", _image().astype(np.uint16) * 16)  # 12-bit-like values: windowed on reading
    code = block.replace(ckpt_in_readme, str(linknet_checkpoint)).replace(image_in_readme, str(tmp_path / "scan.dcm"))
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    from spine_det.data.io import read_image
    from spine_det.engine.predictor import build_predictor

    direct = build_predictor("linknet", str(linknet_checkpoint), device="cpu")(read_image(tmp_path / "scan.dcm"))
    assert namespace["mask"].dtype == bool and namespace["mask"].shape == (180, 120)
    assert np.array_equal(namespace["mask"], direct["lat_vertebra"].mask)  # the tool's path, the same masks
    assert namespace["boxes"].shape == (len(direct["lat_vertebra"].instances), 4)


def test_linknet_file_array_and_instances(linknet_checkpoint, tmp_path):
    from spine_det import Predictor
    from spine_det.api import Prediction

    img = _image()
    # fresh weights: a threshold at the 70th percentile of its probabilities gives a mask with parts
    probs = Predictor.from_checkpoint(linknet_checkpoint, device="cpu").predictor.predict_probs(img)
    pred = Predictor.from_checkpoint(linknet_checkpoint, device="cpu", score_threshold=float(np.quantile(probs, 0.7)))
    assert pred.model == "linknet" and pred.tasks == ["lat_vertebra"]
    cv2.imwrite(str(tmp_path / "x.png"), img)
    from_file, from_array = pred.predict(tmp_path / "x.png"), pred(img)
    assert isinstance(from_file, Prediction) and from_file.image_shape == (180, 120)
    assert np.array_equal(from_file.masks["lat_vertebra"], from_array.masks["lat_vertebra"])
    # colour arrays (RGB) and 16-bit arrays go through the file readers' rules
    rgb = np.repeat(img[:, :, None], 3, axis=2)
    assert np.array_equal(pred(rgb).masks["lat_vertebra"], from_array.masks["lat_vertebra"])
    assert pred(img.astype(np.uint16) * 257).masks["lat_vertebra"].shape == (180, 120)
    # LinkNet's objects are the mask's connected components less the specks (spine_det.evaluation.component_filter):
    # kept and dropped components partition the mask, each kept one inside its box
    inst, mask = from_array.instances["lat_vertebra"], from_array.masks["lat_vertebra"]
    specks = from_array.raw["lat_vertebra"].component_filter
    assert inst.masks is None and len(inst) == len(inst.boxes) == len(inst.areas)
    assert int(inst.areas.sum()) + specks["dropped_area"] == int(mask.sum())
    assert 0 < mask.sum() < mask.size  # a real mask, so the checks below check something
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    want = sorted((x, y, x + w, y + h) for x, y, w, h, a in stats[1:].tolist() if a >= specks["min_area"])
    assert sorted(tuple(b) for b in inst.boxes.astype(int).tolist()) == want  # XYXY, one per kept component
    assert len(want) == n - 1 - specks["dropped"] > 0
    assert from_array.label_map("lat_vertebra").max() == n - 1


def test_maskrcnn_instances_with_masks(tmp_path):
    """A fresh Mask R-CNN saved as train_net saves it (weights + config.yaml beside): boxes, scores and
    one mask per instance, whose union is the task's mask."""
    import spine_det.compat  # noqa: F401
    from detectron2.modeling import build_model

    from spine_det import Predictor
    from spine_det.config import get_spine_cfg
    from spine_det.config.paths import resolve_config_file
    from spine_det.utils.checkpoint_io import save_plain

    torch.manual_seed(0)
    cfg = get_spine_cfg(resolve_config_file("lat_vertebra.yaml"), profile="cpu",
                        opts=["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu",
                              "INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST", "192", "SPINE.EVAL.SCORE_THRESHOLD", "0.0",
                              "OUTPUT_DIR", str(tmp_path)])
    model = build_model(cfg)
    save_plain(tmp_path / "model_best.pth", {"model": model.state_dict()})
    (tmp_path / "config.yaml").write_text(cfg.dump())

    pred = Predictor.from_checkpoint(tmp_path / "model_best.pth", device="cpu")
    assert pred.model == "maskrcnn" and pred.tasks == ["lat_vertebra"]
    out = pred.predict(_image())
    inst, mask = out.instances["lat_vertebra"], out.masks["lat_vertebra"]
    assert len(inst) > 0 and inst.boxes.shape == (len(inst), 4) and inst.scores.shape == (len(inst),)
    masks = np.asarray(inst.masks)
    assert masks.shape == (len(inst), 180, 120) and masks.dtype == bool
    assert np.array_equal(masks.any(0), mask)
    assert (inst.boxes[:, 2] >= inst.boxes[:, 0]).all() and (inst.boxes[:, 3] >= inst.boxes[:, 1]).all()
    assert (inst.boxes[:, [0, 2]] <= 120).all() and (inst.boxes[:, [1, 3]] <= 180).all()
    assert inst.areas.tolist() == masks.reshape(len(inst), -1).sum(1).tolist()


def test_checkpoint_errors_are_one_line(tmp_path):
    from spine_det import Predictor
    from spine_det.utils.checkpoint_io import CheckpointError, save_plain

    with pytest.raises(CheckpointError, match="not found"):
        Predictor.from_checkpoint(tmp_path / "nope.pth", device="cpu")
    save_plain(tmp_path / "cls.pth", {"model": {}, "view": "ap", "backbone": "resnet18"})
    with pytest.raises(CheckpointError, match="classifier"):
        Predictor.from_checkpoint(tmp_path / "cls.pth", device="cpu")
    save_plain(tmp_path / "what.pth", {"weights": {}})
    with pytest.raises(CheckpointError, match="cannot tell which model"):
        Predictor.from_checkpoint(tmp_path / "what.pth", device="cpu")


def test_import_spine_det_stays_light():
    code = ("import sys, spine_det; assert spine_det.Predictor.__name__ == 'Predictor'; "
            "print(sorted(m for m in ('torch', 'detectron2', 'cv2', 'fvcore') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", "import sys, spine_det; print(sorted(m for m in ('torch', 'numpy', "
                          "'detectron2', 'cv2') if m in sys.modules))"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # even the Predictor class loads no model library until used

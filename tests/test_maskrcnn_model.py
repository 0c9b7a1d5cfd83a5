"""Mask R-CNN configs, model, one training step, compiled-op errors, checkpoint checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import spine_det.compat as compat
from spine_det.config import get_spine_cfg, spine_tasks, split_dataset_names
from spine_det.tasks import TASK_NAMES

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", [*TASK_NAMES, "ap_all", "lat_all"])
def test_every_config_merges_and_is_consistent(name):
    cfg = get_spine_cfg(CONFIGS / f"{name}.yaml")
    tasks = spine_tasks(cfg)
    assert tasks == ([name] if name in TASK_NAMES else [t for t in TASK_NAMES if t.startswith(name[:-4])])
    assert cfg.INPUT.MASK_FORMAT == "bitmask" and cfg.MODEL.WEIGHTS.startswith("detectron2://")
    assert cfg.DATASETS.TRAIN[0].endswith("_train") and split_dataset_names(cfg, "test")[0].endswith("_test")
    # Real lateral films face either way and a mirror keeps every class: every config trains with flips.
    assert cfg.INPUT.RANDOM_FLIP == "horizontal"


def test_cpu_profile_merges_over_the_task_config():
    cfg = get_spine_cfg(CONFIGS / "lat_vertebra.yaml", profile="cpu")
    assert cfg.MODEL.RESNETS.DEPTH == 18 and cfg.MODEL.RESNETS.NORM == "GN" and cfg.MODEL.WEIGHTS == ""
    assert cfg.DATASETS.TRAIN == ("spine_lat_vertebra_train",)


def _node(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def test_task_profile_merges_after_the_profile_and_only_for_its_task():
    """profiles/cpu/<task>.yaml (the lines' larger input) wins over profiles/cpu.yaml; others keep the profile;
    command-line opts still win over both."""
    line = get_spine_cfg(CONFIGS / "lat_anterior_line.yaml", profile="cpu")
    vert = get_spine_cfg(CONFIGS / "lat_vertebra.yaml", profile="cpu")
    assert line.INPUT.MIN_SIZE_TEST == 768 and tuple(line.INPUT.MIN_SIZE_TRAIN) == (768,)
    assert line.MODEL.RESNETS.DEPTH == 18  # the generic profile was merged too
    for task in ("lat_anterior_line", "lat_posterior_line"):  # both lines: the converged schedule
        sched = get_spine_cfg(CONFIGS / f"{task}.yaml", profile="cpu").SOLVER
        assert (sched.MAX_ITER, tuple(sched.STEPS)) == (800, (600,))
    assert vert.INPUT.MIN_SIZE_TEST == 448
    # the small AP processes: upscaled to the smallest anchors' size, trained on windows like the lines
    spinous = get_spine_cfg(CONFIGS / "ap_spinous_process.yaml", profile="cpu")
    assert spinous.INPUT.MIN_SIZE_TEST == 640 and tuple(spinous.SPINE.INPUT.CROP_AFTER_RESIZE) == (512, 384)
    assert spinous.SPINE.EVAL.SCORE_THRESHOLD < 0  # tuned on val, as the lines
    # pedicles, as small: the spinous processes' input and schedule through the leaf's _BASE_, tuned threshold too
    pedicle = get_spine_cfg(CONFIGS / "ap_pedicle.yaml", profile="cpu")
    for key in ("INPUT.MIN_SIZE_TRAIN", "INPUT.MIN_SIZE_TEST", "INPUT.MAX_SIZE_TEST", "SPINE.INPUT.CROP_AFTER_RESIZE",
                "SOLVER.MAX_ITER", "SOLVER.STEPS"):
        assert _node(pedicle, key) == _node(spinous, key), key
    assert pedicle.SPINE.EVAL.SCORE_THRESHOLD < 0
    assert get_spine_cfg(CONFIGS / "ap_pedicle.yaml", profile="full").INPUT.MIN_SIZE_TEST != 640
    # AP vertebrae paste lower-scoring instances than the base (real films score lower), every profile
    for profile in ("cpu", "full"):
        assert get_spine_cfg(CONFIGS / "ap_vertebra.yaml", profile=profile).SPINE.EVAL.SCORE_THRESHOLD == 0.3
    assert get_spine_cfg(CONFIGS / "lat_vertebra.yaml", profile="cpu").SPINE.EVAL.SCORE_THRESHOLD == 0.5
    assert get_spine_cfg(CONFIGS / "lat_anterior_line.yaml", profile="full").INPUT.MIN_SIZE_TEST != 768
    opts = get_spine_cfg(CONFIGS / "lat_anterior_line.yaml", profile="cpu", opts=["INPUT.MIN_SIZE_TEST", "448"])
    assert opts.INPUT.MIN_SIZE_TEST == 448


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="NUM_CLASSES"):
        spine_tasks(get_spine_cfg(CONFIGS / "lat_all.yaml", opts=["MODEL.ROI_HEADS.NUM_CLASSES", "2"]))
    # random init with FrozenBN: replaced automatically, or a clear failure
    cfg = get_spine_cfg(CONFIGS / "lat_vertebra.yaml", opts=["MODEL.WEIGHTS", ""])
    assert cfg.MODEL.RESNETS.NORM == "GN"
    with pytest.raises(ValueError, match="FrozenBN"):
        get_spine_cfg(CONFIGS / "lat_vertebra.yaml", opts=["MODEL.WEIGHTS", "", "SPINE.SCRATCH_NORM", ""])


@pytest.mark.skipif(not compat.uses_stand_in() and compat.has_compiled_ops(), reason="real compiled ops installed")
def test_compiled_op_raises_clear_error():
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated

    boxes = torch.tensor([[10.0, 10.0, 4.0, 4.0, 0.0], [11.0, 10.0, 4.0, 4.0, 10.0]])
    with pytest.raises(compat.CompiledOpsMissingError, match="compiled ops"):
        pairwise_iou_rotated(boxes, boxes)
    with pytest.raises(compat.CompiledOpsMissingError):
        from detectron2 import _C

        _C.COCOevalAccumulate({}, [])  # COCOEvaluator(use_fast_impl=True)


def _tiny_batch(h: int, w: int):
    from detectron2.structures import BitMasks, Boxes, Instances

    batch = []
    for k in range(2):
        inst = Instances((h, w))
        boxes = torch.tensor([[w * 0.3, h * (0.1 + 0.2 * i), w * 0.7, h * (0.25 + 0.2 * i)] for i in range(3)])
        masks = torch.zeros(3, h, w, dtype=torch.bool)
        for i, b in enumerate(boxes.int()):
            masks[i, b[1] : b[3], b[0] : b[2]] = True
        inst.gt_boxes, inst.gt_classes, inst.gt_masks = Boxes(boxes), torch.zeros(3, dtype=torch.int64), BitMasks(masks)
        img = torch.from_numpy(np.random.default_rng(k).integers(0, 255, (3, h, w), dtype=np.uint8))
        batch.append({"image": img, "instances": inst})
    return batch


def test_maskrcnn_builds_and_one_step_from_random_init_stays_finite():
    from detectron2.modeling import build_model
    from detectron2.solver import build_optimizer
    from detectron2.utils.events import EventStorage

    torch.manual_seed(0)
    cfg = get_spine_cfg(CONFIGS / "lat_vertebra.yaml", profile="cpu")
    model = build_model(cfg)
    assert model.roi_heads.box_predictor.cls_score.out_features == 2  # 1 class + background
    model.train()
    opt = build_optimizer(cfg, model)
    with EventStorage(0):
        losses = model(_tiny_batch(128, 96))
        total = sum(losses.values())
        assert all(torch.isfinite(v) for v in losses.values()), losses
        opt.zero_grad()
        total.backward()
        opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        out = model([{"image": _tiny_batch(128, 96)[0]["image"], "height": 256, "width": 192}])[0]["instances"]
    assert out.image_size == (256, 192)


def test_predictor_refuses_a_checkpoint_of_another_config(tmp_path):
    from detectron2.modeling import build_model

    from spine_det.engine.predictor import CheckpointError, build_predictor

    cfg = get_spine_cfg(CONFIGS / "lat_vertebra.yaml", profile="cpu")
    ckpt = tmp_path / "model.pth"
    torch.save({"model": build_model(cfg).state_dict()}, ckpt)
    (tmp_path / "config.yaml").write_text(cfg.dump())
    pred = build_predictor("maskrcnn", str(ckpt))  # config.yaml beside the checkpoint
    res = pred(np.zeros((64, 48), np.uint8))
    assert set(res) == {"lat_vertebra"} and res["lat_vertebra"].mask.shape == (64, 48)
    other = get_spine_cfg(CONFIGS / "lat_all.yaml", profile="cpu")
    (tmp_path / "other.yaml").write_text(other.dump())
    with pytest.raises(CheckpointError, match="NUM_CLASSES"):
        build_predictor("maskrcnn", str(ckpt), config_file=str(tmp_path / "other.yaml"))
    with pytest.raises(CheckpointError, match="not found"):
        build_predictor("maskrcnn", str(tmp_path / "missing.pth"))


def test_missing_weights_give_one_clear_line():
    from spine_det.engine.trainer import WeightsUnavailableError, ensure_weights_available

    assert ensure_weights_available("") is None
    with pytest.raises(WeightsUnavailableError, match="MODEL.WEIGHTS /path/to/"):
        ensure_weights_available("/nonexistent/model_final_f10217.pkl")

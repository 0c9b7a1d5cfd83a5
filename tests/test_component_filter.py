"""LinkNet / smp instances: specks of the mask's fringe leave the instance list, by a minimum area
chosen on validation (stored in the checkpoint) or, for older checkpoints, a relative rule; the mask
keeps them."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from spine_det.evaluation.component_filter import (RELATIVE_RULE, VALIDATION_RULE, choose_min_area, drop_specks,
                                                   relative_min_area, validation_film)


def _film(true_sizes, speck_sizes, shape=(100, 100)):
    """(prediction, ground-truth label map): each true size a square in both; each speck only predicted."""
    pred = np.zeros(shape, bool)
    gt = np.zeros(shape, np.int32)
    x = 1
    for k, side in enumerate(true_sizes, start=1):
        gt[1:1 + side, x:x + side] = k
        pred[1:1 + side, x:x + side] = True
        x += side + 2
    x = 1
    for side in speck_sizes:
        pred[60:60 + side, x:x + side] = True
        x += side + 2
    return pred, gt


def test_minimum_chosen_on_a_tiny_validation_set_is_the_f1_best_cut():
    """Two films: six true 10x10 vertebrae and one true 4x4 one; specks of 1, 4, 9 and 25 px.
    Dropping the three smallest specks gives F1 14/15, better than keeping all (14/18), dropping the
    true 16-px one too (12/14) or also the 25-px speck (12/13); the minimum sits between 9 and 16 px
    on a log scale: 12 px of 10 000."""
    films = [validation_film(*_film([10, 10, 10, 4], [1, 2, 3])), validation_film(*_film([10, 10, 10], [5]))]
    assert [int(f[2]) for f in films] == [4, 3] and [int(f[1].sum()) for f in films] == [4, 3]
    rule = choose_min_area(films)
    assert rule["rule"] == VALIDATION_RULE
    assert rule["min_area_share"] == pytest.approx(12 / 10_000)
    assert rule["instance_f1"] == pytest.approx(14 / 15, abs=1e-4)
    assert rule["instance_f1_keeping_all"] == pytest.approx(14 / 18, abs=1e-4)
    assert rule["dropped_on_validation"] == 3 and rule["true_instances_kept"] == 1.0
    assert choose_min_area([validation_film(*_film([10], []))])["min_area_share"] == 0.0  # no speck: keep all
    # films that cannot decide: no minimum, a reason, and drop_specks takes the relative rule saying why
    no_truth = choose_min_area([validation_film(np.ones((9, 9), bool), np.zeros((9, 9), int))])
    assert no_truth["min_area_share"] is None and "no ground-truth" in no_truth["reason"]
    pred, gt = _film([10, 10], [1, 2])
    no_match = choose_min_area([validation_film(pred, np.roll(gt, 50, axis=1))])  # a model that finds nothing true
    assert no_match["min_area_share"] is None and "matched" in no_match["reason"]
    kept, rec = drop_specks([{"area": 100}, {"area": 1}], (100, 100), no_match)
    assert len(kept) == 1 and rec["rule"] == RELATIVE_RULE and "could not choose" in rec["about"]


def test_relative_rule_uses_the_area_weighted_median():
    # 17 vertebrae of 400 px and 300 one-pixel specks: the plain median is a speck, the weighted one a vertebra
    assert relative_min_area([400] * 17 + [1] * 300) == pytest.approx(40.0)
    assert relative_min_area([]) == 0.0


def _linknet_with(probs: np.ndarray, rules=None):
    """A SemSegPredictor whose network answers ``probs`` (1, H, W) whatever the image."""
    from spine_det.config.loading import load_cfg
    from spine_det.config.semseg import get_semseg_cfg
    from spine_det.engine.semseg_predictor import SemSegPredictor

    cfg = load_cfg(get_semseg_cfg(), opts=["MODEL.PRETRAINED", "False", "SPINE.TASKS", "['lat_vertebra']"])
    pred = SemSegPredictor(cfg, model=torch.nn.Identity())
    pred.predict_probs = lambda image: probs
    if rules is not None:
        pred.speck_filter = rules
    return pred


def test_specks_below_the_chosen_size_leave_predicts_json_not_the_mask(tmp_path):
    """Before: every speck was an instance of the JSON (here 3 vertebrae + 40 specks = 43)."""
    from spine_det.tools import predict

    mask, _ = _film([20, 20, 20], [])
    rng = np.random.default_rng(0)
    for y, x in zip(rng.integers(40, 95, 40), rng.integers(0, 95, 40)):  # 40 one- to four-pixel specks
        mask[y:y + rng.integers(1, 3), x:x + rng.integers(1, 3)] = True
    probs = np.where(mask, 0.9, 0.1).astype(np.float32)[None]
    n_components = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1
    assert n_components > 3

    rule = {"rule": VALIDATION_RULE, "min_area_share": 50 / 10_000, "iou": 0.5}
    out = _linknet_with(probs, {"lat_vertebra": rule})(np.zeros((100, 100), np.uint8))["lat_vertebra"]
    assert [i["area"] for i in out.instances] == [400, 400, 400]
    assert np.array_equal(out.mask, mask)  # the mask keeps its specks: Dice is the model's
    predict.write_outputs(tmp_path / "a", np.zeros((100, 100), np.uint8), {"lat_vertebra": out}, Path("a.png"))
    data = json.loads((tmp_path / "a" / "lat_vertebra_instances.json").read_text())
    assert len(data["instances"]) == 3
    f = data["component_filter"]
    assert f["rule"] == VALIDATION_RULE and f["min_area"] == 50 and f["dropped"] == n_components - 3
    assert "validation" in f["about"]

    # a checkpoint without a chosen minimum: the relative rule, and the JSON says so
    old = _linknet_with(probs)(np.zeros((100, 100), np.uint8))["lat_vertebra"]
    assert len(old.instances) == 3 and old.component_filter["rule"] == RELATIVE_RULE
    assert old.component_filter["min_area"] == 40  # 0.1 x the 400-px vertebrae


def test_checkpoint_stores_the_rule_as_plain_data_and_the_predictor_reads_it(tmp_path):
    from spine_det.config.loading import load_cfg
    from spine_det.config.semseg import get_semseg_cfg
    from spine_det.engine.component_calibration import store_in_checkpoint
    from spine_det.engine.semseg_predictor import SemSegPredictor
    from spine_det.modeling.semseg import build_seg_model
    from spine_det.utils.checkpoint_io import save_plain

    cfg = load_cfg(get_semseg_cfg(), opts=["MODEL.PRETRAINED", "False", "SPINE.TASKS", "['lat_vertebra']",
                                            "INPUT.HEIGHT", "64", "INPUT.WIDTH", "48"])
    path = tmp_path / "model_best.pth"
    save_plain(path, {"model": build_seg_model(cfg).state_dict(), "cfg": cfg.dump(), "model_name": cfg.MODEL.NAME})
    assert SemSegPredictor(cfg, weights=str(path)).speck_filter == {}  # older checkpoint: none
    rule = {"rule": VALIDATION_RULE, "min_area_share": 0.001, "iou": 0.5, "films": 2}
    store_in_checkpoint(path, {"lat_vertebra": rule})
    assert torch.load(path, weights_only=True)["component_filter"] == {"lat_vertebra": rule}
    assert SemSegPredictor.from_checkpoint(str(path)).speck_filter == {"lat_vertebra": rule}


def test_drop_specks_keeps_everything_at_minimum_zero():
    inst = [{"area": 1}, {"area": 500}]
    kept, rec = drop_specks(inst, (100, 100), {"min_area_share": 0.0})
    assert kept == inst and rec["dropped"] == 0 and rec["min_area"] == 0

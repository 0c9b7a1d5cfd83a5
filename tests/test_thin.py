"""Instance definitions (exact union, per-level pieces) and threshold selection on val."""
from __future__ import annotations

import math

import numpy as np
import pytest

from spine_det.data.rle import decode_segmentation, instances_to_mask
from spine_det.data.instances import (
    definitions_from_cfg,
    definitions_tag,
    mask_to_instances_as,
    parse_spec,
    split_mask,
)
from spine_det.evaluation.threshold_tuning import choose_best, choose_thresholds
from spine_det.evaluation.thresholds import load_thresholds, save_thresholds


def _broken_line(h: int = 300, w: int = 80) -> np.ndarray:
    """A 2-px wavy vertical polyline with two gaps (a broken line), plus a diagonal-only touch."""
    m = np.zeros((h, w), dtype=np.uint8)
    for y in range(10, h - 10):
        x = int(40 + 15 * math.sin(y / 30.0))
        m[y, x : x + 2] = 255
    m[100:104] = 0  # gaps
    m[200:203] = 0
    m[5, 5] = 1
    m[6, 6] = 1  # diagonal pair: one 8-connected component
    return m


@pytest.mark.parametrize("spec", ["components", "whole", "per_level", "per_level:4", "per_level:50"])
def test_union_of_instances_equals_mask_exactly(spec):
    mask = _broken_line()
    pieces = split_mask(mask, spec)
    assert pieces, spec
    stack = np.stack(pieces)
    assert np.array_equal(stack.any(axis=0), mask > 0)
    assert stack.sum(axis=0).max() == 1  # no pixel in two instances
    anns = mask_to_instances_as(mask, spec)
    assert len(anns) == len(pieces)
    assert np.array_equal(instances_to_mask(anns, *mask.shape), mask > 0)
    for a, p in zip(anns, pieces):  # each annotation is its piece, box included
        dec = decode_segmentation(a["segmentation"], *mask.shape)
        assert np.array_equal(dec, p)
        ys, xs = np.nonzero(p)
        assert a["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_per_level_pieces_are_horizontal_bands():
    mask = _broken_line()
    rows = np.flatnonzero(mask.any(axis=1))
    pieces = split_mask(mask, "per_level:5")
    assert len(pieces) == 5
    spans = [(np.flatnonzero(p.any(axis=1))[[0, -1]]) for p in pieces]
    band = (rows[-1] + 1 - rows[0]) / 5
    for (_, b), (c, _) in zip(spans[:-1], spans[1:]):
        assert b < c  # ordered top to bottom, disjoint in y
    for a, b in spans:
        assert b - a + 1 <= math.ceil(band) + 1
    # components keeps the gaps as separate instances; whole keeps one
    assert len(split_mask(mask, "components")) == 4
    assert len(split_mask(mask, "whole")) == 1


def test_empty_mask_and_bad_specs():
    assert split_mask(np.zeros((10, 10)), "per_level") == []
    assert mask_to_instances_as(np.zeros((10, 10)), "whole") == []
    with pytest.raises(ValueError, match="unknown instance definition"):
        parse_spec("tiles")
    with pytest.raises(ValueError, match="not an integer"):
        parse_spec("per_level:x")


def test_definitions_from_cfg_and_cache_tag():
    from spine_det.config import get_spine_cfg

    cfg = get_spine_cfg()
    tasks = ["lat_vertebra", "lat_anterior_line", "lat_posterior_line"]
    assert definitions_from_cfg(cfg, tasks) == {}
    assert definitions_tag({}) == ""  # default -> the old coco/ folder
    cfg.SPINE.INSTANCES.LINE = "per_level"
    cfg.SPINE.INSTANCES.LEVELS = 7
    defs = definitions_from_cfg(cfg, tasks)
    assert defs == {"lat_anterior_line": "per_level:7", "lat_posterior_line": "per_level:7"}
    assert definitions_tag(defs) != definitions_tag({"lat_anterior_line": "whole"}) != ""


def test_choose_best_picks_highest_dice_and_breaks_ties_toward_default():
    table = {(0.05, 0.5): 0.2, (0.3, 0.3): 0.61, (0.5, 0.5): 0.4, (0.7, 0.2): float("nan")}
    assert choose_best(table) == (0.3, 0.3)
    tie = {(0.1, 0.5): 0.6, (0.4, 0.5): 0.6, (0.8, 0.5): 0.6}
    assert choose_best(tie) == (0.4, 0.5)
    assert choose_best({}) == (0.5, 0.5)


def test_threshold_sweep_on_constructed_predictions(tmp_path):
    """Raw predictions whose best paste needs score ≥ 0.3 and mask ≥ 0.3: the sweep finds it."""
    import cv2
    import torch
    from detectron2.structures import Boxes, Instances

    from spine_det.evaluation.threshold_tuning import evaluate_with, sweep

    h = w = 64
    gt = np.zeros((h, w), np.uint8)
    gt[10:50, 30:32] = 255
    f = tmp_path / "gt.png"
    cv2.imwrite(str(f), gt)
    raw = Instances((h, w))
    raw.pred_boxes = Boxes(torch.tensor([[30.0, 10.0, 32.0, 50.0], [0.0, 0.0, 20.0, 20.0]]))
    raw.scores = torch.tensor([0.35, 0.25])  # the true line is scored low; a false blob lower
    raw.pred_classes = torch.tensor([0, 0])
    probs = torch.full((2, 1, 28, 28), 0.4)  # line prob 0.4 everywhere in its box: mask 0.5 loses it
    raw.pred_masks = probs
    inp = {"image_id": "a", "height": h, "width": w, "mask_files": {"t": str(f)}}
    swept = sweep([(inp, raw)], ["t"], score_grid=(0.2, 0.3, 0.5), mask_grid=(0.3, 0.5))
    assert swept["t"][(0.5, 0.5)]["dice"] == 0.0
    assert swept["t"][(0.3, 0.3)]["dice"] > 0.9
    assert swept["t"][(0.2, 0.3)]["dice"] < swept["t"][(0.3, 0.3)]["dice"]  # the false blob
    chosen = choose_thresholds(swept)
    assert (chosen["t"]["score_threshold"], chosen["t"]["mask_threshold"]) == (0.3, 0.3)
    save_thresholds(tmp_path, chosen)
    assert load_thresholds(tmp_path)["t"]["score_threshold"] == 0.3
    assert evaluate_with([(inp, raw)], ["t"], chosen)["t"]["dice"] == swept["t"][(0.3, 0.3)]["dice"]


def test_score_threshold_for_reads_tuned_file(tmp_path):
    from spine_det.config import get_spine_cfg
    from spine_det.evaluation.thresholds import score_threshold_for

    cfg = get_spine_cfg()
    cfg.OUTPUT_DIR = str(tmp_path)
    cfg.SPINE.EVAL.SCORE_THRESHOLD = 0.7
    assert score_threshold_for(cfg, ["lat_anterior_line"]) == 0.7  # fixed: the file is ignored
    cfg.SPINE.EVAL.SCORE_THRESHOLD = -1.0
    assert score_threshold_for(cfg, ["lat_anterior_line"]) == 0.5  # tuned, nothing saved yet
    save_thresholds(tmp_path, {"lat_anterior_line": {"score_threshold": 0.2, "mask_threshold": 0.4}})
    assert score_threshold_for(cfg, ["lat_anterior_line"]) == 0.2
    from spine_det.evaluation.thresholds import mask_threshold_for, with_tuned_mask_threshold

    assert mask_threshold_for(cfg, ["lat_anterior_line"]) == 0.4
    import torch

    base = torch.nn.Linear(1, 1)
    cfg.SPINE.TASKS = ["lat_anterior_line"]
    wrapped = with_tuned_mask_threshold(cfg, base)
    assert wrapped.model is base and wrapped.mask_threshold == 0.4
    cfg.SPINE.EVAL.SCORE_THRESHOLD = 0.5  # fixed thresholds: the plain model again
    assert with_tuned_mask_threshold(cfg, wrapped) is base
    # a model evaluated elsewhere: its own folder's file first, then OUTPUT_DIR's, and only when tuned
    from spine_det.evaluation.thresholds import thresholds_beside_checkpoint

    cfg.SPINE.EVAL.SCORE_THRESHOLD = -1.0
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    assert thresholds_beside_checkpoint(cfg, model_dir / "model_best.pth") == tmp_path
    save_thresholds(model_dir, {"lat_anterior_line": {"score_threshold": 0.35, "mask_threshold": 0.3}})
    assert thresholds_beside_checkpoint(cfg, model_dir / "model_best.pth") == model_dir.resolve()
    cfg.SPINE.EVAL.THRESHOLDS_DIR = str(model_dir)
    assert score_threshold_for(cfg, ["lat_anterior_line"]) == 0.35
    assert mask_threshold_for(cfg, ["lat_anterior_line"]) == 0.3
    cfg.SPINE.EVAL.THRESHOLDS_DIR = ""
    cfg.SPINE.EVAL.SCORE_THRESHOLD = 0.5
    assert thresholds_beside_checkpoint(cfg, model_dir / "model_best.pth") is None
    cfg.SPINE.EVAL.SCORE_THRESHOLD = -1.0
    (tmp_path / "thresholds.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="thresholds.json"):
        score_threshold_for(cfg, ["lat_anterior_line"])


def test_ablation_reuses_a_run_only_when_its_options_match(tmp_path, monkeypatch):
    """dev/ablation_thin.py trains once per (task, variant); a run made with other options (here more
    iterations) is moved aside and trained again, and the set-aside run leaves the table."""
    import importlib.util
    import json
    from pathlib import Path
    from types import SimpleNamespace

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("tool_ablation_thin", root / "dev" / "ablation_thin.py")
    ablation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ablation)
    calls = []

    def fake_train_net(cmd, **kw):
        calls.append(cmd)
        out = Path(cmd[cmd.index("OUTPUT_DIR") + 1])
        (out / "model_final.pth").write_bytes(b"weights %d" % len(calls))
        (out / "metrics.json").write_text(json.dumps({"iteration": 9, "time": 1.5}) + "\n")
        return 0

    monkeypatch.setattr(ablation.subprocess, "call", fake_train_net)
    args = SimpleNamespace(cache_dir=tmp_path / "cache", split_seed=0, seed=0, iters=10, data_root=tmp_path,
                           profile="cpu", threads=1)
    out = tmp_path / "runs"
    run = out / "lat_anterior_line" / "per_level+mask28"
    first = ablation.train("lat_anterior_line", "per_level+mask28", args, run)
    assert ablation.train("lat_anterior_line", "per_level+mask28", args, run) == first and len(calls) == 1
    args.iters = 20
    again = ablation.train("lat_anterior_line", "per_level+mask28", args, run)
    assert len(calls) == 2 and again["iters"] == 20
    aside = [p for p in run.parent.iterdir() if p.name.startswith("per_level+mask28.before-")]
    assert len(aside) == 1 and json.loads((aside[0] / "run.json").read_text())["iters"] == 10
    for d in (run, aside[0]):
        (d / "eval.json").write_text("{}")
    assert [r["variant"] for r in ablation.finished_rows(out)] == ["per_level+mask28"]

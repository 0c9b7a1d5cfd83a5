"""The vertebra-landmark family: targets and decoding round trip, the loss on a tiny phantom overfit, and the
whole route (train-landmark -> predict's instance masks and corners -> the evaluator and measure-cobb)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spine_det.data.landmark_dataset import _warp_quads, quads_to_film, quads_to_network, read_vertebra_corners
from spine_det.data.seg_dataset import Letterbox
from spine_det.modeling.landmark_targets import decode_maps, encode_quads


def synthetic_spine(n: int = 17, seed: int = 0) -> np.ndarray:
    """A scoliotic column of n tilted quadrilaterals (TL, TR, BL, BR) in a 512 x 192 input."""
    rng = np.random.default_rng(seed)
    quads = []
    for k in range(n):
        cx, cy = 96 + 25 * np.sin(k / 4.0), 20 + 28.5 * k
        t = np.deg2rad(rng.uniform(-15, 15))
        r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        local = np.array([[-20, -10], [20, -10], [-20, 10], [20, 10]]) * rng.uniform(0.8, 1.1)
        quads.append(local @ r.T + (cx, cy))
    return np.array(quads)


def _by_height(quads):
    return np.array(sorted(quads, key=lambda q: q[:, 1].mean()))


def test_encode_decode_round_trip_within_a_pixel():
    quads = synthetic_spine()
    heat, reg, weight = encode_quads(quads, (128, 48), stride=4)
    assert heat.shape == (1, 128, 48) and reg.shape == (10, 128, 48) and weight.sum() == 17
    assert heat.max() == 1.0 and np.isclose(heat[0][weight > 0], 1.0).all()
    found = decode_maps(heat[0], reg, stride=4, max_instances=17, threshold=0.5)
    assert len(found) == 17 and all(s == 1.0 for s, _ in found)
    assert np.abs(_by_height([q for _, q in found]) - quads).max() < 1.0


def test_decoding_keeps_top_k_above_the_threshold_and_one_peak_per_vertebra():
    quads = synthetic_spine()
    heat, reg, _ = encode_quads(quads, (128, 48), stride=4)
    heat[0] *= np.linspace(0.2, 1.0, 128)[:, None]  # lower vertebrae score higher
    found = decode_maps(heat[0], reg, stride=4, max_instances=5, threshold=0.1)
    assert len(found) == 5 and [s for s, _ in found] == sorted((s for s, _ in found), reverse=True)
    assert min(q[:, 1].mean() for _, q in found) > quads[11:, :, 1].mean(1).min() - 1  # the 5 lowest
    assert decode_maps(np.zeros((128, 48)), reg, 4, 17, 0.3) == []


def test_letterbox_and_mirror_maps_are_exact_inverses():
    quads = synthetic_spine() * (4.6, 4.6)
    lb = Letterbox.fit((2375, 890), (512, 192))
    assert np.allclose(quads_to_film(quads_to_network(quads, lb), lb), quads)
    m = np.array([[-1.0, 0, 192], [0, 1, 0]])  # a mirror: left and right corners trade places
    flipped = _warp_quads(synthetic_spine(), m, flipped=True)
    assert (flipped[:, 0, 0] < flipped[:, 1, 0]).all()  # TL still left of TR


def test_phantom_ground_truth_gives_corners(prepared):
    ap = prepared.manifest.select(view="ap")[0]
    lat = prepared.manifest.select(view="lat")[0]
    for s in (ap, lat):
        c = read_vertebra_corners(s)
        assert c is not None and c.ndim == 3 and c.shape[1:] == (4, 2) and len(c) >= 6
        assert (c[:, 0, 1] < c[:, 2, 1]).all()  # superior above inferior
    c = read_vertebra_corners(ap)
    assert (c[:, 0, 0] < c[:, 1, 0]).all()  # AP: left corners left


def test_loss_falls_on_a_tiny_phantom_overfit(prepared):
    from spine_det.config.common import shipped_config
    from spine_det.config.landmark import load_landmark_config
    from spine_det.engine.landmark_trainer import build_landmark_datasets, landmark_loss
    from spine_det.modeling.landmark_net import build_landmark_net

    torch.manual_seed(0)
    cfg = load_landmark_config(shipped_config("landmark/ap_vertebra.yaml"), "cpu", ["INPUT.HEIGHT", "128", "INPUT.WIDTH", "96",
                                                                     "AUG.ENABLED", "False", "LANDMARK.WIDTH", "32"])
    net = build_landmark_net(cfg)
    ds = build_landmark_datasets(cfg, prepared.manifest, net.stride)["train"]
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = landmark_loss(net(batch["image"]), batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all() and np.mean(losses[-3:]) < 0.5 * losses[0], losses


@pytest.fixture(scope="module")
def trained(phantom_root, tmp_path_factory, load_tool):
    """One epoch of train-landmark on the phantom (its test films scored), at a small input."""
    out = tmp_path_factory.mktemp("landmark_run")
    rc = load_tool("train_landmark").main([
        "--config-file", "landmark/ap_vertebra.yaml", "--data-root", str(phantom_root), "--profile", "cpu",
        "OUTPUT_DIR", str(out / "run"), "SPINE.CACHE_DIR", str(out / "cache"), "SOLVER.MAX_EPOCHS", "1",
        "INPUT.HEIGHT", "128", "INPUT.WIDTH", "96", "LANDMARK.WIDTH", "32"])
    assert rc == 0
    return out


def test_train_landmark_writes_the_shared_run_folder_and_test_scores(trained):
    run = trained / "run"
    for f in ("model_best.pth", "model_final.pth", "last_checkpoint", "metrics.json", "config.yaml"):
        assert (run / f).is_file(), f
    scores = json.loads((run / "inference" / "spine_ap_vertebra_test" / "semantic_metrics.json").read_text())
    assert {"dice", "jaccard", "tpr"} <= set(scores)
    from spine_det.modeling.registry import checkpoint_family
    from spine_det.utils.checkpoint_io import load_plain

    assert checkpoint_family(load_plain(run / "model_best.pth")) == "landmark"


def test_predict_writes_instance_masks_with_corners_and_measure_cobb_takes_them(trained, phantom_root, load_tool,
                                                                              monkeypatch, tmp_path):
    from spine_det.utils.checkpoint_io import load_plain, save_plain

    monkeypatch.setenv("SPINE_DET_CACHE", str(trained / "cache"))
    # one epoch learns little: a head set by hand makes a flat heatmap (0.5 everywhere: 17 peaks along the top
    # rows) and every quadrilateral 24 x 16 input pixels, so the route is tested on instances that exist
    ck = load_plain(trained / "run" / "model_best.pth")
    ck["model"]["head.1.weight"] = torch.zeros_like(ck["model"]["head.1.weight"])
    ck["model"]["head.1.bias"] = torch.tensor([0.0, 0.5, 0.5, -3, -2, 3, -2, -3, 2, 3, 2])
    save_plain(tmp_path / "flat.pth", ck)
    pred = tmp_path / "pred"
    assert load_tool("predict").main(["--model", "landmark", "--checkpoint", str(tmp_path / "flat.pth"),
                                      "--data-root", str(phantom_root), "--split", "test", "--view", "ap",
                                      "--output", str(pred)]) == 0
    files = sorted(pred.rglob("ap_vertebra_instances.json"))
    assert files
    d = json.loads(files[0].read_text())
    assert 0 < len(d["instances"]) <= 17 and all(len(i["quad"]) == 4 for i in d["instances"])
    assert (files[0].parent / "ap_vertebra_instances.png").is_file()

    from spine_det.evaluation.instance_quality import match_instances
    from spine_det.morphometry.sources import load_scored_instances

    masks, scores = load_scored_instances(files[0].parent / "ap_vertebra_instances.png")
    assert len(masks) >= 1 and scores is not None
    assert match_instances(np.zeros(masks[0].shape, int), np.zeros(masks[0].shape, int)).pred == 0

    out = tmp_path / "cobb"
    rc = load_tool("measure_cobb").main(["--pred-dir", str(pred), "--source", "quads", "--out", str(out),
                                         "--no-overlay", "--no-levels"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == len(files) if "images" in summary else True
    rows = (out / "cobb_angles.csv").read_text().splitlines()
    assert len(rows) == len(files) + 1

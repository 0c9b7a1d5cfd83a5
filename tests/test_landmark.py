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
    levels = np.arange(1.0, 18.0)  # T1..L5
    heat, reg, weight = encode_quads(quads, (128, 48), stride=4, levels=levels)
    assert heat.shape == (1, 128, 48) and reg.shape == (11, 128, 48) and weight.sum() == 17
    assert heat.max() == 1.0 and np.isclose(heat[0][weight > 0], 1.0).all()
    found = decode_maps(heat[0], reg, stride=4, max_instances=17, threshold=0.5)
    assert len(found) == 17 and all(p.score == 1.0 for p in found)
    assert np.abs(_by_height([p.quad for p in found]) - quads).max() < 1.0
    by_height = sorted(found, key=lambda p: p.quad[:, 1].mean())
    assert [p.level for p in by_height] == list(levels)  # each centre carries its own level number
    assert all(np.isnan(p.level) for p in decode_maps(heat[0], reg[:10], 4, 17, 0.5))  # no level channel: NaN


def test_decoding_keeps_top_k_above_the_threshold_and_one_peak_per_vertebra():
    quads = synthetic_spine()
    heat, reg, _ = encode_quads(quads, (128, 48), stride=4)
    heat[0] *= np.linspace(0.2, 1.0, 128)[:, None]  # lower vertebrae score higher
    found = decode_maps(heat[0], reg, stride=4, max_instances=5, threshold=0.1)
    assert len(found) == 5 and [p.score for p in found] == sorted((p.score for p in found), reverse=True)
    assert min(p.quad[:, 1].mean() for p in found) > quads[11:, :, 1].mean(1).min() - 1  # the 5 lowest
    assert decode_maps(np.zeros((128, 48)), reg, 4, 17, 0.3) == []


def test_test_time_flip_pairs_the_mirrored_pass_and_halves_what_one_pass_alone_found():
    from spine_det.engine.landmark_predictor import merge_mirrored_peaks, unmirror_quad

    quads, width = synthetic_spine(), 192
    mirrored = np.stack([unmirror_quad(q, width) for q in quads])  # the same map both ways (an involution)
    assert np.allclose(np.stack([unmirror_quad(q, width) for q in mirrored]), quads)
    assert np.allclose(mirrored[:, 0, 0], width - 1 - quads[:, 1, 0])  # the mirror's TL is the film's TR
    heat, reg, _ = encode_quads(mirrored, (128, 48), stride=4, levels=np.arange(1.0, 18.0))
    seen_mirrored = [p._replace(quad=unmirror_quad(p.quad, width)) for p in decode_maps(heat[0], reg, 4, 34, 0.15)]
    heat, reg, _ = encode_quads(quads[:-1], (128, 48), stride=4, levels=np.arange(1.0, 17.0))  # L5 missed here
    direct = [p._replace(quad=p.quad + 0.8, level=p.level + 0.5) for p in decode_maps(heat[0], reg, 4, 34, 0.15)]
    merged = merge_mirrored_peaks(direct, seen_mirrored, max_instances=17, threshold=0.3)
    assert len(merged) == 17 and [p.score for p in merged] == [1.0] * 16 + [0.5]  # L5: one pass only, half score
    merged = sorted(merged, key=lambda p: p.quad[:, 1].mean())
    assert np.abs(np.stack([p.quad for p in merged[:16]]) - (quads[:16] + 0.4)).max() < 0.05  # corners averaged
    assert [p.level for p in merged] == [k + 0.25 for k in range(1, 17)] + [17.0]
    assert len(merge_mirrored_peaks(direct, seen_mirrored, 17, threshold=0.6)) == 16  # 0.5 < 0.6: dropped


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


def test_level_channel_learns_the_phantom_level_numbers(prepared):
    from spine_det.config.common import shipped_config
    from spine_det.config.landmark import load_landmark_config
    from spine_det.engine.landmark_trainer import build_landmark_datasets, landmark_loss
    from spine_det.modeling.landmark_net import build_landmark_net

    torch.manual_seed(0)
    cfg = load_landmark_config(shipped_config("landmark/ap_vertebra.yaml"), "cpu", [
        "INPUT.HEIGHT", "128", "INPUT.WIDTH", "96", "AUG.ENABLED", "False", "LANDMARK.WIDTH", "32",
        "LANDMARK.LEVEL_WEIGHT", "1.0"])
    net = build_landmark_net(cfg)
    assert net.head[-1].out_channels == 12
    ds = build_landmark_datasets(cfg, prepared.manifest, net.stride)["train"]
    item = ds[0]
    centres = item["weight"] > 0
    known = item["regression"][10][centres]
    # the phantom names its levels: every centre carries its number (T1 = 1 ... L5 = 17), top to bottom
    assert torch.isfinite(known).all() and set(known.tolist()) <= set(range(18))
    rows = torch.nonzero(centres)[:, 0]
    assert (torch.diff(item["regression"][10][centres][torch.argsort(rows)]) > 0).all()
    batch = torch.utils.data.default_collate([ds[0], ds[1]])

    def level_error() -> float:
        with torch.no_grad():
            out = net(batch["image"])
        w = batch["weight"] > 0
        return (out[:, 11][w] - batch["regression"][:, 10][w]).abs().mean().item()

    before = level_error()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(25):
        loss = landmark_loss(net(batch["image"]), batch, level_weight=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert level_error() < 0.5 * before


def test_a_checkpoint_with_levels_writes_level_numbers_the_post_processing_reads(trained, phantom_root, load_tool,
                                                                               monkeypatch, tmp_path):
    from spine_det.engine.landmark_predictor import checkpoint_has_levels
    from spine_det.morphometry.sources import load_hinted_instances, load_scored_instances
    from spine_det.utils.checkpoint_io import load_plain, save_plain

    monkeypatch.setenv("SPINE_DET_CACHE", str(trained / "cache"))
    ck = load_plain(trained / "run" / "model_best.pth")
    assert not checkpoint_has_levels(ck)  # LANDMARK.LEVEL_WEIGHT 0 (the default): 11 outputs
    w = ck["model"]["head.1.weight"]
    ck["model"]["head.1.weight"] = torch.zeros((12, *w.shape[1:]), dtype=w.dtype)  # its config still says no levels:
    ck["model"]["head.1.bias"] = torch.tensor([0.0, 0.5, 0.5, -3, -2, 3, -2, -3, 2, 3, 2, 7.25])  # the head decides
    save_plain(tmp_path / "levels.pth", ck)
    assert checkpoint_has_levels(load_plain(tmp_path / "levels.pth"))
    pred = tmp_path / "pred"
    assert load_tool("predict").main(["--model", "landmark", "--checkpoint", str(tmp_path / "levels.pth"),
                                      "--data-root", str(phantom_root), "--split", "test", "--view", "ap",
                                      "--output", str(pred)]) == 0
    f = sorted(pred.rglob("ap_vertebra_instances.json"))[0]
    inst = json.loads(f.read_text())["instances"]
    assert inst and all(i["level_number"] == 7.25 for i in inst)
    masks, scores, hints = load_hinted_instances(f.parent / "ap_vertebra_instances.png")
    assert hints is not None and len(hints) == len(masks) >= 1 and set(hints) == {7.25}
    assert scores == load_scored_instances(f.parent / "ap_vertebra_instances.png")[1]


def test_test_flip_is_switched_per_load_for_the_families_that_have_it(trained, monkeypatch):
    from spine_det.api import Predictor

    monkeypatch.setenv("SPINE_DET_CACHE", str(trained / "cache"))
    ck = trained / "run" / "model_best.pth"
    assert Predictor.from_checkpoint(ck, device="cpu").predictor.cfg.TEST.HFLIP  # the family's default: on
    off = Predictor.from_checkpoint(ck, device="cpu", test_flip=False)
    assert not off.predictor.cfg.TEST.HFLIP
    calls = []
    raw = off.predictor.raw_maps
    monkeypatch.setattr(off.predictor, "raw_maps", lambda img: calls.append(img.shape) or raw(img))
    off.predictor(np.full((256, 96), 90, np.uint8))
    assert len(calls) == 1  # one pass without the flip
    on = Predictor.from_checkpoint(ck, device="cpu", test_flip=True)
    monkeypatch.setattr(on.predictor, "raw_maps", lambda img: calls.append(img.shape) or raw(img))
    on.predictor(np.full((256, 96), 90, np.uint8))
    assert len(calls) == 3  # the film and its mirror

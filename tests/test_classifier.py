"""Classifier: metrics on hand-made arrays, the report's view-selection rule, balanced validation, a tiny run."""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from spine_det.evaluation.classification import binary_classification_metrics, combine_views, rates, roc_auc, select_view_strategy


def test_metrics_hand_made():
    y = [0, 0, 0, 1, 1, 1, 1]
    p = [0.1, 0.6, 0.2, 0.9, 0.4, 0.8, 0.7]
    m = binary_classification_metrics(y, p)
    assert m["confusion_matrix"] == [[2, 1], [1, 3]]  # [[TN, FP], [FN, TP]]
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["sensitivity"] == pytest.approx(3 / 4) and m["specificity"] == pytest.approx(2 / 3)
    # AUC: pairs (pos > neg) = 0.9:3, 0.4:2, 0.8:3, 0.7:3 -> 11 of 12
    assert m["roc_auc"] == pytest.approx(11 / 12)
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5 and roc_auc([0, 1], [0.9, 0.1]) == 0.0
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_rates_hand_made_and_undefined():
    r = rates([True, True, False, False, False], [True, False, True, False, False])
    assert (r["tp"], r["fn"], r["tn"], r["fp"], r["n"]) == (1, 1, 2, 1, 5)
    assert r["confusion_matrix"] == [[2, 1], [1, 1]]
    assert r["accuracy"] == pytest.approx(3 / 5) and r["sensitivity"] == 0.5 and r["specificity"] == pytest.approx(2 / 3)
    assert r["balanced_accuracy"] == pytest.approx(0.5 * (0.5 + 2 / 3))
    no_pos = rates([False, False], [True, False])
    assert math.isnan(no_pos["sensitivity"]) and no_pos["specificity"] == 0.5 and math.isnan(no_pos["balanced_accuracy"])
    assert rates([False, False], [True, False], undefined=0.0)["balanced_accuracy"] == 0.25  # the grading fit's rule
    assert math.isnan(rates([], [])["accuracy"])
    with pytest.raises(ValueError, match="differ in shape"):
        rates([True], [True, False])


def test_select_view_strategy_picks_best():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    good = np.array([0.1, 0.2, 0.3, 0.2, 0.8, 0.9, 0.7, 0.6])
    noise = np.array([0.9, 0.2, 0.8, 0.3, 0.1, 0.7, 0.2, 0.6])
    name, scores = select_view_strategy(good, noise, labels)
    assert name == "ap" and scores["ap"] == 1.0 and scores["lat"] < 1.0
    name, _ = select_view_strategy(noise, good, labels)
    assert name == "lat"
    # each view wrong on a different patient, but only mildly: the average is right on all
    ap = np.array([0.55, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9])
    lat = np.array([0.1, 0.1, 0.1, 0.1, 0.45, 0.9, 0.9, 0.9])
    name, scores = select_view_strategy(ap, lat, labels)
    assert name == "average" and scores["average"] == 1.0 and scores["ap"] == scores["lat"] == 7 / 8
    # a run with one view offers only that view, even where the other would win
    name, scores = select_view_strategy(ap, lat, labels, strategies=("lat",))
    assert name == "lat" and set(scores) == {"lat"}
    with pytest.raises(ValueError, match="subset"):
        select_view_strategy(ap, lat, labels, strategies=("both",))


def test_combine_views_missing_view_falls_back():
    c = combine_views([0.2, np.nan], [0.6, 0.8])
    assert c["average"].tolist() == pytest.approx([0.4, 0.8]) and c["ap"].tolist() == pytest.approx([0.2, 0.8])


def test_balanced_val_patients():
    from spine_det.engine.classifier_trainer import balanced_val_patients

    patients = [(f"n{i}", "Normal") for i in range(30)] + [(f"d{i}", "Damaged") for i in range(12)]
    v = balanced_val_patients(patients, per_class=50, max_fraction=0.25, seed=3)
    assert sum(p.startswith("n") for p in v) == sum(p.startswith("d") for p in v) == 3  # floor(0.25 * 12)
    assert v == balanced_val_patients(patients, 50, 0.25, 3)
    assert v != balanced_val_patients(patients, 50, 0.25, 4)
    assert len(balanced_val_patients(patients, 2, 0.25, 3)) == 4


def test_tiny_classifier_run(prepared, tmp_path):
    import torch

    from spine_det.config.classifier import get_classifier_cfg
    from spine_det.config.loading import load_cfg
    from spine_det.engine.classifier_trainer import train_classifier

    torch.set_num_threads(1)
    cfg = load_cfg(get_classifier_cfg(), opts=[
        "MODEL.BACKBONE", "resnet10s", "MODEL.PRETRAINED", "False", "MODEL.DEVICE", "cpu", "INPUT.HEIGHT", "64",
        "INPUT.WIDTH", "48", "SOLVER.MAX_EPOCHS", "2", "SOLVER.IMS_PER_BATCH", "4", "DATALOADER.NUM_WORKERS", "0",
        "DATALOADER.SAMPLER", "balanced", "EARLY_STOP.METRIC", "auc", "SOLVER.LABEL_SMOOTHING", "0.1",
        "OUTPUT_DIR", str(tmp_path / "cls")])
    res = train_classifier(cfg, prepared.manifest)
    data = json.loads((tmp_path / "cls" / "classification_metrics.json").read_text())
    assert data["selected"] in ("ap", "lat", "average") and data["selected"] == res["selected"]
    for k in ("ap", "lat", "average"):
        m = data["test"][k]
        assert m["n"] == len(prepared.manifest.patients("test"))
        assert sum(map(sum, m["confusion_matrix"])) == m["n"]
    assert data["val"]["damaged"] == data["val"]["normal"] >= 1  # balanced validation
    for v in ("ap", "lat"):  # plain data: torch's own weights_only check, no allow-list; one run folder per view
        best = torch.load(tmp_path / "cls" / v / "model_best.pth", weights_only=True)
        assert best["view"] == v and best["metric"] == f"{v}/score" and "confusion_matrix" in best["val"]
        assert (tmp_path / "cls" / v / "last_checkpoint").read_text().strip() == "model_final.pth"
    assert {"config.yaml", "log.txt"} <= {f.name for f in (tmp_path / "cls").iterdir()}
    assert "resnet10s" in data["backbone"]["ap"] and "centerline crop" in data["backbone"]["ap"]
    assert set(data["train_seconds"]) == {"ap", "lat"}

    # --resume: a third epoch on top of the first two, the log continues; TensorBoard events beside it
    more = cfg.clone()
    more.defrost()
    more.SOLVER.MAX_EPOCHS = 3
    more.EARLY_STOP.ENABLED = False
    train_classifier(more, prepared.manifest, resume=True)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for v in ("ap", "lat"):
        recs = [json.loads(ln) for ln in (tmp_path / "cls" / v / "metrics.json").read_text().splitlines()]
        assert [r["epoch"] for r in recs if f"{v}/accuracy" in r] == [1, 2, 3]
        acc = EventAccumulator(str(tmp_path / "cls" / v))
        acc.Reload()
        # sorted: the resumed run's event file may sort first when both runs start within the same second
        assert sorted(e.step for e in acc.Scalars(f"{v}/accuracy")) == [r["iteration"] for r in recs if f"{v}/accuracy" in r]
    # --eval-only: the same test figures from the checkpoints, nothing trained
    after = json.loads((tmp_path / "cls" / "classification_metrics.json").read_text())
    again = train_classifier(more, prepared.manifest, eval_only=True)
    assert again["test"] == after["test"] and again["best_epochs"] == after["best_epochs"]
    # one view: its own figures only, not the same numbers again under "ap" and "average"
    lat_only = more.clone()
    lat_only.defrost()
    lat_only.VIEWS = ["lat"]
    one = train_classifier(lat_only, prepared.manifest, eval_only=True)
    assert one["selected"] == "lat" and set(one["selection"]["val_accuracy"]) == {"lat"}
    assert {k for k, v in one["test"].items() if isinstance(v, dict)} == {"lat"}
    assert one["test"]["lat"] == after["test"]["lat"]

    # a run folder of the epoch loop before issue 31: --eval-only reads its model_best_<view>.pth, --resume is
    # refused in one line
    import shutil

    from spine_det.utils.errors import UserError

    old = more.clone()
    old.defrost()
    old.OUTPUT_DIR = str(tmp_path / "old")
    (tmp_path / "old").mkdir()
    for v in ("ap", "lat"):
        shutil.copy(tmp_path / "cls" / v / "model_best.pth", tmp_path / "old" / f"model_best_{v}.pth")
    assert train_classifier(old, prepared.manifest, eval_only=True)["test"] == after["test"]
    (tmp_path / "old" / "last_checkpoint_ap.pth").write_bytes(b"")
    with pytest.raises(UserError, match="last_checkpoint_ap.pth was written by the epoch loop of an older spine_det"):
        train_classifier(old, prepared.manifest, resume=True)


def test_spine_crop_dataset_shapes(prepared):
    from spine_det.engine.classifier_trainer import SpineCropDataset

    samples = [s for s in prepared.manifest.samples if s.view == "lat"][:2]
    whole = SpineCropDataset(samples, (96, 48), "none", 0.3, (0.0, 1.0))
    crop = SpineCropDataset(samples, (96, 48), "centerline", 0.3, (0.0, 0.8))
    a, b = whole[0]["image"], crop[0]["image"]
    assert a.shape == b.shape == (1, 96, 48)
    # the whole X-ray fills the side that binds (a lumbar field, aspect ~0.66, the width, leaving padding rows
    # at the top; a narrower full-spine field the height, leaving padding columns); the tall spine crop
    # (0.8 x 0.3 of the height) fills the height
    w, c = whole._cache[0], crop._cache[0]
    h0, w0 = cv2.imread(str(samples[0].image), cv2.IMREAD_GRAYSCALE).shape
    if w0 / h0 > 48 / 96 + 0.02:
        assert w[:3].max() == 0 and w[48].max() > 0
    elif w0 / h0 < 48 / 96 - 0.02:
        assert w[:, :2].max() == 0 and w[:, 24].max() > 0 and w[3].max() > 0
    assert c[:3, 24].max() > 0 and c[-3:, 24].max() > 0 and c[:, 0].max() == 0
    with pytest.raises(ValueError):
        SpineCropDataset(samples, (96, 48), "boxes", 0.3, (0.0, 1.0))


def test_classifier_domain_randomisation_is_off_by_default_and_works_when_on(prepared):
    import torch

    from spine_det.config.classifier import get_classifier_cfg
    from spine_det.engine.classifier_trainer import SpineCropDataset

    samples = [s for s in prepared.manifest.samples if s.view == "lat"][:1]
    cfg = get_classifier_cfg()
    assert cfg.AUG.DR_PROB == 0.0

    def image(**aug):
        a = cfg.AUG.clone()
        a.defrost()
        for k, v in aug.items():
            setattr(a, k, v)
        return SpineCropDataset(samples, (96, 48), "centerline", 0.3, (0.0, 0.8), "letterbox", a)[0]["image"]

    base = image()
    assert torch.equal(base, image(BLUR=3.0, NOISE=0.2))  # the strengths alone change nothing while DR_PROB is 0
    noisy = image(DR_PROB=1.0, BLUR=0.0, UNSHARP=0.0, NOISE=0.2)
    assert not torch.equal(base, noisy) and (noisy - base).abs().mean() > 0.01


def test_slim_backbone_builds_and_runs():
    import torch

    from spine_det.config.classifier import get_classifier_cfg
    from spine_det.config.loading import load_cfg
    from spine_det.modeling.classifier import build_classifier

    cfg = load_cfg(get_classifier_cfg(), opts=["MODEL.BACKBONE", "resnet10s", "MODEL.PRETRAINED", "True"])
    m = build_classifier(cfg).eval()
    assert m.imagenet_init is False  # never downloads
    with torch.no_grad():
        out = m(torch.randn(2, 1, 96, 48))
    assert out.shape == (2, 1)
    assert sum(p.numel() for p in m.parameters()) < 1_000_000
    cfg18 = load_cfg(get_classifier_cfg(), opts=["MODEL.BACKBONE", "resnet18", "MODEL.PRETRAINED", "False"])
    r18 = build_classifier(cfg18)
    assert r18.conv1.in_channels == 1 and r18.imagenet_init is False
    with pytest.raises(ValueError):
        build_classifier(load_cfg(get_classifier_cfg(), opts=["MODEL.BACKBONE", "vgg16"]))


def _band_image(h: int = 300, w: int = 220, centre=None, half: int = 18, seed: int = 0):
    """Noisy grey background, a bright textured band of half-width ``half`` around ``centre(y)``,
    and a brighter-but-flat marker square in a corner (must not attract the crop)."""
    rng = np.random.default_rng(seed)
    img = rng.normal(80, 6, (h, w))
    img += np.linspace(0, 40, w)[None, :]  # exposure gradient
    centre = centre or (lambda y: 140.0)
    for y in range(h):
        c = int(round(centre(y)))
        img[y, max(0, c - half) : c + half] += 70 + 30 * ((y // 12) % 2)  # "vertebrae" with endplates
    img[5:30, 5:30] = 255
    return np.clip(img, 0, 255).astype(np.uint8)


def test_find_spine_column_finds_bright_band():
    from spine_det.data.spine_crop import crop_spine, find_spine_column

    for c in (60.0, 140.0, 170.0):
        img = _band_image(centre=lambda y, c=c: c)
        x0, x1 = find_spine_column(img, width_frac=0.2)
        assert x1 - x0 == 60  # 0.2 x 300 rows
        assert abs((x0 + x1) / 2 - c) <= 6, (c, x0, x1)
    crop = crop_spine(_band_image(), "column", 0.2, rows=(0.1, 0.9))
    assert crop.shape == (240, 60)
    # the band fills the middle of the crop, the background its edges
    assert crop[:, 25:35].mean() > crop[:, :5].mean() + 40 and crop[:, 25:35].mean() > crop[:, -5:].mean() + 40


def test_spine_centerline_follows_a_curved_band():
    from spine_det.data.spine_crop import crop_spine, spine_centerline

    def curve(y):  # drifts 70 px over the height, like a lordosis
        return 80.0 + 70.0 * (y / 300.0) ** 2

    img = _band_image(centre=curve)
    cx = spine_centerline(img, width_frac=0.2, rows=(0.0, 1.0))
    ys = np.arange(15, 285)
    assert np.abs(cx[ys] - curve(ys)).max() <= 8
    straight = crop_spine(img, "centerline", 0.2, rows=(0.0, 1.0)).astype(float)
    assert straight.shape == (300, 60)
    # straightened: the band sits in the middle columns on every row, so a straight column crop would not
    assert straight[15:285, 25:35].mean() > straight[15:285, :4].mean() + 40
    assert crop_spine(img, "none") is img
    with pytest.raises(ValueError):
        crop_spine(img, "blob")


def _old_classifier_config_text(root: str, cache: str, seed: int) -> str:
    """A classifier config as runs before issue 31 wrote it (config.yaml, the checkpoint's "cfg"): DATA.ROOT,
    DATA.CACHE_DIR and DATA.SEED where every family now has SPINE.DATA_ROOT, SPINE.CACHE_DIR, SPINE.SPLIT_SEED."""
    import yaml

    from spine_det.config.classifier import get_classifier_cfg

    data = yaml.safe_load(get_classifier_cfg().dump())
    data.pop("SPINE")
    data["DATA"] = {"ROOT": root, "CACHE_DIR": cache, "SEED": seed}
    return yaml.safe_dump(data)


def test_classifier_reads_spine_keys_and_old_data_keys_with_a_warning(tmp_path, caplog):
    import argparse
    import logging

    from spine_det.config.classifier import get_classifier_cfg, load_classifier_config
    from spine_det.config.safe import merge_yaml_text
    from spine_det.tools import train_classifier

    cfg = get_classifier_cfg()
    assert (cfg.SPINE.DATA_ROOT, cfg.SPINE.CACHE_DIR, cfg.SPINE.SPLIT_SEED) == ("", "", 0)
    assert "DATA" not in cfg and "TASKS" not in cfg.SPINE  # the classifier reads VIEWS, no tasks
    old_yaml = tmp_path / "config.yaml"  # an old run folder's config.yaml, or a user's YAML with the old names
    old_yaml.write_text(_old_classifier_config_text("/old/data", "/old/cache", 5))
    with caplog.at_level(logging.WARNING, logger="spine_det.config.common"):
        old = load_classifier_config(old_yaml)
    assert (old.SPINE.DATA_ROOT, old.SPINE.CACHE_DIR, old.SPINE.SPLIT_SEED) == ("/old/data", "/old/cache", 5)
    assert "DATA" not in old
    for key, new in (("DATA.ROOT", "SPINE.DATA_ROOT"), ("DATA.CACHE_DIR", "SPINE.CACHE_DIR"),
                     ("DATA.SEED", "SPINE.SPLIT_SEED")):
        assert f"config key {key} is deprecated, read as {new}" in caplog.text
    # old keys on the command line, through the tool's own load chain
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="spine_det.config.common"):
        cli = train_classifier.load_config(argparse.Namespace(
            config_file=train_classifier.DEFAULT_CONFIG, profile="full", data_root=None, cache_dir=None,
            output_dir=None, opts=["DATA.ROOT", "/d", "DATA.SEED", "7"]))
    assert (cli.SPINE.DATA_ROOT, cli.SPINE.SPLIT_SEED) == ("/d", 7)
    assert "DATA.SEED is deprecated, read as SPINE.SPLIT_SEED" in caplog.text
    # the config text an old checkpoint carries
    stored = merge_yaml_text(get_classifier_cfg(), _old_classifier_config_text("/x", "", 2), "ckpt")
    assert stored.SPINE.SPLIT_SEED == 2 and "DATA" not in stored


def test_an_old_classifier_checkpoint_still_predicts(prepared, tmp_path):
    """A model_best_<view>.pth whose stored config has the old DATA.* keys: --eval-only reads and scores it."""
    import torch

    from spine_det.config.classifier import get_classifier_cfg
    from spine_det.config.loading import load_cfg
    from spine_det.engine.classifier_trainer import _trained_view, patient_probs
    from spine_det.modeling.classifier import build_classifier
    from spine_det.utils.checkpoint_io import checkpoint_kind, save_plain

    cfg = load_cfg(get_classifier_cfg(), opts=["MODEL.BACKBONE", "resnet10s", "MODEL.PRETRAINED", "False",
                                               "MODEL.DEVICE", "cpu", "INPUT.HEIGHT", "64", "INPUT.WIDTH", "48",
                                               "OUTPUT_DIR", str(tmp_path), "SPINE.SPLIT_SEED", "2"])
    torch.manual_seed(0)
    ck = {"model": build_classifier(cfg).state_dict(), "view": "lat", "backbone": "resnet10s (random init)",
          "epoch": 3, "cfg": _old_classifier_config_text(str(prepared.manifest.root), "", 2)}
    save_plain(tmp_path / "model_best_lat.pth", ck)
    assert checkpoint_kind(torch.load(tmp_path / "model_best_lat.pth", weights_only=True)) == "classifier"
    assert _trained_view(cfg, "lat")["best_epoch"] == 3
    samples = [s for s in prepared.manifest.select(split="test") if s.view == "lat"]
    patients = [s.patient_id for s in samples]
    probs = patient_probs(cfg, "lat", samples, patients, torch.device("cpu"))
    assert probs.shape == (len(patients),) and np.all((probs >= 0) & (probs <= 1))

"""A few CPU iterations of spine_det.tools.train_net on phantoms; --eval-only reproduces; predict.py writes outputs."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
ITERS = 8  # enough to exercise periodic validation, checkpoints and resume


def _load_tool(name: str):
    return importlib.import_module(f"spine_det.tools.{name}")


def _tiny_opts(prepared, out: Path, iters: int):
    return [
        "SPINE.CACHE_DIR", str(prepared.cache_dir), "OUTPUT_DIR", str(out),
        "SOLVER.MAX_ITER", str(iters), "SOLVER.WARMUP_ITERS", "4", "SOLVER.STEPS", "()",
        "SOLVER.CHECKPOINT_PERIOD", str(iters // 2), "TEST.EVAL_PERIOD", str(iters // 2),
        "INPUT.MIN_SIZE_TRAIN", "(176,)", "INPUT.MAX_SIZE_TRAIN", "320",
        "INPUT.MIN_SIZE_TEST", "176", "INPUT.MAX_SIZE_TEST", "320",
        "DATALOADER.NUM_WORKERS", "0", "SPINE.EVAL.COCO_AP", "True",
    ]


@pytest.fixture(scope="module")
def trained(prepared, phantom_root, tmp_path_factory):
    """A short Mask R-CNN run (~9 s on CI): every test that takes it is marked slow."""
    torch.set_num_threads(1)
    train_net = _load_tool("train_net")
    out = tmp_path_factory.mktemp("maskrcnn") / "run"
    args = train_net.get_parser().parse_args(
        ["--config-file", str(ROOT / "configs/lat_vertebra.yaml"), "--profile", "cpu", "--data-root", str(phantom_root),
         *_tiny_opts(prepared, out, ITERS)]
    )
    results = train_net.train(args)
    return train_net, out, results


@pytest.mark.slow
def test_training_writes_checkpoints_and_metrics(trained):
    _, out, results = trained
    for f in ("model_final.pth", "model_best.pth", "model_best.json", "config.yaml", "metrics.json"):
        assert (out / f).is_file(), f
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pth"  # model_best does not steal the tag
    import torch

    for f in ("model_final.pth", "model_best.pth"):  # plain data: loads with torch's weights_only check
        assert "model" in torch.load(out / f, weights_only=True)
    best = json.loads((out / "model_best.json").read_text())
    assert best["metric"] == "lat_vertebra/dice" and 0.0 <= best["value"] <= 1.0
    for split in ("val", "test"):
        js = json.loads((out / "inference" / f"spine_lat_vertebra_{split}" / "semantic_metrics.json").read_text())
        assert js["checkpoint"].endswith("model_best.pth") and js["counts"]["images"] > 0
        assert 0.0 <= js["dice"] <= 1.0 and "segm" in results[split]
    # validation ran during training and its Dice reached the event storage
    events = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert any("lat_vertebra/dice" in e for e in events)


@pytest.mark.slow
def test_eval_only_reproduces_the_numbers(trained, prepared, phantom_root, tmp_path):
    train_net, out, results = trained
    out2 = tmp_path / "eval"
    args = train_net.get_parser().parse_args(
        ["--config-file", str(ROOT / "configs/lat_vertebra.yaml"), "--profile", "cpu", "--data-root", str(phantom_root),
         "--eval-only", *_tiny_opts(prepared, out2, ITERS), "MODEL.WEIGHTS", str(out / "model_best.pth")]
    )
    again = train_net.train(args)
    for split in ("val", "test"):
        a = json.loads((out / "inference" / f"spine_lat_vertebra_{split}" / "semantic_metrics.json").read_text())
        b = json.loads((out2 / "inference" / f"spine_lat_vertebra_{split}" / "semantic_metrics.json").read_text())
        for m in ("dice", "jaccard", "tpr", "counts"):
            assert a[m] == b[m], (split, m)
        assert again[split]["lat_vertebra"]["dice"] == pytest.approx(results[split]["lat_vertebra"]["dice"], abs=1e-12)


@pytest.mark.slow
def test_eval_only_in_the_run_folder_keeps_its_training_config(trained, prepared, phantom_root, tmp_path):
    """config.yaml records how a folder's model was trained; re-scoring it there must not replace it."""
    import shutil

    train_net, out, _ = trained
    run = tmp_path / "run"
    run.mkdir()
    for f in ("model_best.pth", "config.yaml"):
        shutil.copy(out / f, run / f)
    before = (run / "config.yaml").read_bytes()
    args = train_net.get_parser().parse_args(
        ["--config-file", str(ROOT / "configs/lat_vertebra.yaml"), "--profile", "cpu", "--data-root", str(phantom_root),
         "--eval-only", *_tiny_opts(prepared, run, ITERS), "MODEL.WEIGHTS", str(run / "model_best.pth"),
         "SPINE.EVAL.SPLITS", "('test',)", "SPINE.EVAL.COCO_AP", "False"])
    train_net.train(args)
    assert (run / "config.yaml").read_bytes() == before
    assert f"WEIGHTS: {run / 'model_best.pth'}" in (run / "config_eval.yaml").read_text()
    assert not (run / "config.yaml.training").exists()
    assert (run / "inference" / "spine_lat_vertebra_test" / "semantic_metrics.json").is_file()


@pytest.mark.slow
def test_eval_only_elsewhere_reads_the_thresholds_tuned_for_the_checkpoint(trained, prepared, phantom_root, tmp_path):
    """Scoring a model on another dataset writes to another OUTPUT_DIR; its tuned thresholds come along."""
    import shutil

    from spine_det.evaluation.thresholds import save_thresholds

    train_net, out, _ = trained
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    shutil.copy(out / "model_best.pth", model_dir / "model_best.pth")

    def score_threshold_used(dest: Path) -> float:
        args = train_net.get_parser().parse_args(
            ["--config-file", str(ROOT / "configs/lat_vertebra.yaml"), "--profile", "cpu", "--data-root",
             str(phantom_root), "--eval-only", *_tiny_opts(prepared, dest, ITERS), "MODEL.WEIGHTS",
             str(model_dir / "model_best.pth"), "SPINE.EVAL.SCORE_THRESHOLD", "-1.0", "SPINE.EVAL.SPLITS", "('test',)",
             "SPINE.EVAL.COCO_AP", "False"])
        train_net.train(args)
        js = json.loads((dest / "inference" / "spine_lat_vertebra_test" / "semantic_metrics.json").read_text())
        return js["score_threshold"]

    assert score_threshold_used(tmp_path / "none") == 0.5  # nothing tuned anywhere: Detectron2's default
    save_thresholds(model_dir, {"lat_vertebra": {"score_threshold": 0.85, "mask_threshold": 0.5}})
    assert score_threshold_used(tmp_path / "elsewhere") == 0.85
    assert not (tmp_path / "elsewhere" / "thresholds.json").exists()  # read where it was, not copied


@pytest.mark.slow
def test_predict_tool_writes_mask_instances_overlay(trained, phantom_root, tmp_path, capsys):
    _, out, _ = trained
    predict = _load_tool("predict")
    image = next(phantom_root.rglob("LAT.jpg"))
    assert predict.main(["--checkpoint", str(out / "model_best.pth"), "--input", str(image), "--output", str(tmp_path / "p")]) == 0
    d = tmp_path / "p" / "LAT"
    for f in ("lat_vertebra_mask.png", "lat_vertebra_instances.json", "lat_vertebra_overlay.png"):
        assert (d / f).is_file(), f
    assert json.loads((d / "lat_vertebra_instances.json").read_text())["task"] == "lat_vertebra"
    assert predict.main(["--checkpoint", str(out / "model_best.pth"), "--input", str(image.parent),
                         "--output", str(image.parent / "out")]) == 2
    assert "inside the input folder" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_tool_dataset_mode_writes_the_morphometry_layout(trained, prepared, phantom_root, tmp_path, monkeypatch,
                                                                  capsys):
    import cv2

    monkeypatch.setenv("SPINE_DET_CACHE", str(tmp_path / "cache"))  # same seed -> same split as `prepared`
    _, out, _ = trained
    predict = _load_tool("predict")
    dest = tmp_path / "pred"
    argv = ["--checkpoint", str(out / "model_best.pth"), "--data-root", str(phantom_root), "--split", "test",
            "--view", "lat", "--output", str(dest)]
    assert predict.main(argv) == 0
    keys = {s.key for s in prepared.manifest.select(split="test", view="lat")}
    assert keys and {str(p.parent.relative_to(dest)) for p in dest.rglob("lat_vertebra_mask.png")} == keys
    for k in keys:
        lab = cv2.imread(str(dest / k / "lat_vertebra_instances.png"), cv2.IMREAD_UNCHANGED)
        n = len(json.loads((dest / k / "lat_vertebra_instances.json").read_text())["instances"])
        assert lab.dtype == "uint16" and int(lab.max()) <= n
    # --skip-existing resumes without touching what is there
    stamp = {p: p.stat().st_mtime_ns for p in dest.rglob("*.png")}
    assert predict.main(argv + ["--skip-existing"]) == 0
    assert {p: p.stat().st_mtime_ns for p in dest.rglob("*.png")} == stamp
    # an output inside the data root would be scanned as data: refused before anything is written
    inside = phantom_root / "predictions"
    assert predict.main(argv[:-1] + [str(inside)]) == 2
    assert "inside the input folder" in capsys.readouterr().err
    assert not inside.exists()


@pytest.mark.slow
def test_resume_continues_an_interrupted_run(trained, prepared, phantom_root, tmp_path):
    import shutil

    train_net, out, _ = trained
    run = tmp_path / "run"
    shutil.copytree(out, run)
    half = ITERS // 2
    (run / "last_checkpoint").write_text(f"model_{half - 1:07d}.pth")  # as if stopped after the first checkpoint
    best_before = json.loads((run / "model_best.json").read_text())
    args = train_net.get_parser().parse_args(
        ["--config-file", str(ROOT / "configs/lat_vertebra.yaml"), "--profile", "cpu", "--data-root", str(phantom_root),
         "--resume", *_tiny_opts(prepared, run, ITERS), "TEST.EVAL_PERIOD", "0", "SPINE.EVAL.COCO_AP", "False"]
    )
    cfg = train_net.setup(args)
    trainer = train_net.Trainer(cfg)
    trainer.resume_or_load(resume=True)
    assert trainer.start_iter == half
    trainer.train()
    best_after = json.loads((run / "model_best.json").read_text())
    assert best_after["value"] >= best_before["value"]  # the restored best is never replaced by a worse one


def test_train_subset_draws_the_films_linknet_draws(prepared, phantom_root):
    """DATALOADER.TRAIN_SUBSET (label-efficiency rows): the same nested, seeded films as LinkNet's key."""
    from spine_det.config import get_spine_cfg
    from spine_det.data.layout import nested_subset
    from spine_det.engine.trainer import register_datasets, train_subset

    def subset(n: int, seed: int) -> list:
        cfg = get_spine_cfg(str(ROOT / "configs/lat_vertebra.yaml"), "cpu",
                            ["SPINE.CACHE_DIR", str(prepared.cache_dir), "DATALOADER.TRAIN_SUBSET", str(n), "SEED", str(seed)],
                            data_root=str(phantom_root), training=True)
        register_datasets(cfg)
        return [d["image_id"] for d in train_subset(cfg)]

    train = [s for s in prepared.manifest.select(split="train", view="lat") if s.masks.get("lat_vertebra")]
    assert len(train) > 3
    for seed in (0, 1):
        two, three = subset(2, seed), subset(3, seed)
        assert sorted(two) == sorted(s.key for s in nested_subset(train, 2, seed))  # LinkNet's films
        assert len(two) == 2 and set(two) <= set(three)  # nested
    assert set(subset(2, 0)) != set(subset(2, 1)) or len(train) <= 2

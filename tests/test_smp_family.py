"""segmentation_models_pytorch architectures as model families: registered by name, trained and
predicted as LinkNet is (only the network differs), any encoder by name, no download by default."""
from __future__ import annotations

import json
import math

import pytest

smp = pytest.importorskip("segmentation_models_pytorch", reason="segmentation_models_pytorch is not installed "
                                                                "(pip install 'spine_det[smp]')")
import torch  # noqa: E402

from spine_det.modeling.families import smp as fam  # noqa: E402,F401  (registers the smp families)

KEYS = ("smp_unet", "smp_unetplusplus", "smp_fpn", "smp_deeplabv3plus")


def _cfg(name="smp_unet", *opts, task="lat_vertebra", profile="cpu"):
    from spine_det.modeling.registry import get_family

    spec = get_family(name)  # as the benchmark runs it: the family's plan opts, then the user's
    return spec.get_config(spec.config_file(task), profile, [*spec.benchmark.unit_opts(None, task, 0, None), *opts])


def test_families_registered_and_differ_from_linknet_by_the_network_only():
    from spine_det.modeling.registry import family_keys, get_family
    from spine_det.tasks import TASK_NAMES

    assert set(KEYS) <= set(family_keys())
    linknet = get_family("linknet")
    for key in KEYS:
        spec = get_family(key)
        assert spec.available() is None and spec.checkpoints == ("model_best.pth",)
        for task in TASK_NAMES:  # same input size, schedule and per-task cpu profile as LinkNet's
            mine = _cfg(key, task=task)
            ref = linknet.get_config(linknet.config_file(task), "cpu")
            assert mine.MODEL.NAME == key and list(mine.SPINE.TASKS) == [task]
            for node in ("INPUT", "SOLVER", "AUG", "LOSS", "EARLY_STOP", "TEST", "SPINE"):
                assert mine[node] == ref[node], (key, task, node)
        assert spec.benchmark.unit_opts(None, "lat_vertebra", 0, None) == ["MODEL.NAME", key]  # what the benchmark passes


@pytest.mark.parametrize("key", KEYS)
def test_network_any_input_size_one_logit_per_task(key):
    from spine_det.modeling.semseg import build_seg_model

    torch.manual_seed(0)
    cfg = _cfg(key, "MODEL.SMP.ENCODER", "resnet18", "SPINE.TASKS", "['lat_vertebra', 'lat_disk_height']")
    model = build_seg_model(cfg).eval()
    with torch.no_grad():
        y = model(torch.rand(1, 1, 70, 45))  # not a multiple of the encoder's stride
    assert y.shape == (1, 2, 70, 45) and torch.isfinite(y).all()


def test_encoder_by_name_and_clear_errors():
    from spine_det.modeling.semseg import build_seg_model

    n18 = sum(p.numel() for p in build_seg_model(_cfg("smp_fpn", "MODEL.SMP.ENCODER", "resnet18")).parameters())
    n34 = sum(p.numel() for p in build_seg_model(_cfg("smp_fpn", "MODEL.SMP.ENCODER", "resnet34")).parameters())
    assert n34 - n18 > 5_000_000  # resnet34 has ~10 M more encoder weights
    with pytest.raises(ValueError, match="resnet_nope"):
        build_seg_model(_cfg("smp_unet", "MODEL.SMP.ENCODER", "resnet_nope"))


def test_refused_download_says_what_to_do(monkeypatch):
    from spine_det.modeling.semseg import build_seg_model

    calls = []

    def offline(*args, **kwargs):
        calls.append(args)
        raise OSError("Network is unreachable")

    monkeypatch.setattr(smp.encoders, "hf_hub_download", offline)
    cfg = _cfg("smp_unet", "MODEL.PRETRAINED", "True", "MODEL.SMP.ENCODER", "resnet18", "MODEL.SMP.ENCODER_WEIGHTS",
               "imagenet")
    with pytest.raises(RuntimeError, match=r"MODEL\.SMP\.ENCODER_WEIGHTS ''.*HF_HOME"):
        build_seg_model(cfg)
    assert calls  # it did try
    calls.clear()
    build_seg_model(_cfg("smp_unet", "MODEL.SMP.ENCODER", "resnet18"))  # the default: random init, no download
    cfg_pred = _cfg("smp_unet", "MODEL.PRETRAINED", "False", "MODEL.SMP.ENCODER", "resnet18",
                    "MODEL.SMP.ENCODER_WEIGHTS", "imagenet")  # as the predictor builds it: weights come from the checkpoint
    build_seg_model(cfg_pred)
    assert not calls


def test_train_evaluate_predict_through_the_semseg_trainer(prepared, tmp_path):
    from spine_det.data.io import read_image
    from spine_det.engine.semseg_trainer import evaluate_semseg, train_semseg
    from spine_det.engine.predictor import build_predictor

    torch.set_num_threads(1)
    out = tmp_path / "run"
    cfg = _cfg("smp_unet", "MODEL.SMP.ENCODER", "resnet18", "OUTPUT_DIR", str(out), "INPUT.HEIGHT", "64",
               "INPUT.WIDTH", "48", "SOLVER.MAX_EPOCHS", "2", "SOLVER.MAX_ITERS_PER_EPOCH", "2",
               "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.CACHE", "False")
    summary = train_semseg(cfg, prepared.manifest)
    assert (out / "model_best.pth").is_file() and summary["epochs"] == 2
    res = evaluate_semseg(cfg, prepared.manifest)["lat_vertebra"]
    data = json.loads((out / "inference" / "spine_lat_vertebra_test" / "semantic_metrics.json").read_text())
    assert data["model"] == "smp_unet" and data["counts"]["images"] > 0 and not math.isnan(res["dice"])
    from spine_det.modeling.registry import get_family

    n_train = len(prepared.manifest.select(split="train", task="lat_vertebra"))
    curves = get_family("smp_unet").benchmark.curves(out, "lat_vertebra", n_train)
    assert [e for e, _ in curves["loss"]] == [1, 3] and curves["x_label"] == "iteration"  # each epoch's end

    pred = build_predictor("smp_unet", str(out / "model_best.pth"))  # the network comes back from the checkpoint
    assert pred.cfg.MODEL.NAME == "smp_unet" and isinstance(pred.model, torch.nn.Module)
    s = prepared.manifest.select(split="test", task="lat_vertebra")[0]
    img = read_image(s.image)
    assert pred(img)["lat_vertebra"].mask.shape == img.shape

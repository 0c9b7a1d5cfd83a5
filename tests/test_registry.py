"""A model family is one registered object: a toy family, one module and its config in tests/toy_family/
found the way a module of spine_det.modeling.families is, shows up in the benchmark's plan and tables,
in predict, in the cost tool and in the morphometry sources, without any other module naming it."""
from __future__ import annotations

import csv
import dataclasses
import io
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from spine_det.engine.predictor import SegmentationPredictor
from spine_det.modeling.registry import LOAD_ERRORS, MODEL_FAMILIES, family_keys, get_family, load_families

TOY = "toy_thresh"
TOY_DIR = Path(__file__).resolve().parent / "toy_family"  # the toy family: one module and its config


@pytest.fixture
def toy(monkeypatch):
    """The toy family, found as a module of spine_det.modeling.families is: by load_families."""
    import spine_det.modeling.families as package

    monkeypatch.setattr(package, "__path__", [*package.__path__, str(TOY_DIR)])
    load_families(reload=True)
    yield get_family(TOY)
    MODEL_FAMILIES.unregister(TOY)
    sys.modules.pop(f"{package.__name__}.{TOY}", None)
    assert TOY not in family_keys()


def test_registry_lists_the_shipped_families_in_order_and_explains_unknown_keys():
    keys = family_keys()
    assert keys[:2] == ["linknet", "maskrcnn"]  # then whatever other families are installed, by their order
    from spine_det.config.paths import resolve_config_file

    assert get_family("linknet").predictor_class().family_key == "linknet"
    assert get_family("maskrcnn").predictor_class().family_key == "maskrcnn"
    for key in ("linknet", "maskrcnn"):
        spec = get_family(key)
        config = resolve_config_file(spec.config_file("lat_vertebra"))
        assert config.is_file() and issubclass(spec.predictor_class(), SegmentationPredictor)
        cfg = spec.get_config(config, "cpu", ["SEED", "5"])  # the family's own load chain, shared keys
        assert list(cfg.SPINE.TASKS) == ["lat_vertebra"] and cfg.SEED == 5 and cfg.MODEL.DEVICE == "cpu"
        assert spec.benchmark.profile_yamls(config, "cpu") and spec.benchmark.profile_yamls(config, "full") == []
    with pytest.raises(KeyError, match="unknown model 'unet'.*linknet"):
        get_family("unet")
    with pytest.raises(TypeError):
        MODEL_FAMILIES.register({"key": "x"})
    assert LOAD_ERRORS == {}  # every family module registered


def test_toy_family_passes_the_conformance_checks(toy, tmp_path):
    """The checks every registered family goes through (test_family_conformance.py), on the toy."""
    from test_family_conformance import (CHECKPOINT_EXAMPLES, check_benchmark_adapter, check_config_builds,
                                         check_recogniser, check_trainer_and_predictor)

    examples = {**CHECKPOINT_EXAMPLES, TOY: {"toy_threshold": 100}}
    check_config_builds(toy)
    for family in (toy, get_family("linknet"), get_family("maskrcnn")):  # and the others refuse its checkpoint
        check_recogniser(family, examples)
    check_trainer_and_predictor(toy)
    check_benchmark_adapter(toy, tmp_path)


def test_toy_family_units_in_the_benchmark_plan(toy, tmp_path):
    from spine_det.benchmark.pipeline import Benchmark
    from spine_det.tools.benchmark import parse_args

    args = parse_args(["--data-root", "D", "--out", str(tmp_path / "o"), "--skip-maskrcnn", "--toy-thresh-start", "one",
                       "--toy-thresh-opts", "TOY.LR", "0.1"])
    assert args.family_args["toy_thresh_start"] == "one" and args.toy_thresh_opts == ["TOY.LR", "0.1"]
    from spine_det.benchmark.pipeline import BenchmarkOptions

    o = BenchmarkOptions(data_root=str(tmp_path), out=tmp_path / "o", tasks=["lat_vertebra"], seeds=[0, 1],
                         skip_models=["maskrcnn"], model_opts={TOY: ["TOY.LR", "0.1"]},
                         family_args=args.family_args)
    defaults = [k for k in family_keys() if get_family(k).benchmark.default]  # smp / nnU-Net only when named
    assert [s.key for s in o.model_families()] == [k for k in defaults if k != "maskrcnn"]
    assert o.model_families()[-1].key == TOY  # order 99: after the shipped families
    units = Benchmark(o).seg_units()
    toy_units = [u for u in units if u.model == TOY]
    assert [u.name for u in toy_units] == [f"{TOY}-lat_vertebra", f"{TOY}-lat_vertebra-seed1"]
    u = toy_units[1]
    assert u.out_dir == tmp_path / "o" / "runs" / TOY / "lat_vertebra-seed1"
    train = u.commands["train"]
    assert train[1:3] == ["-m", "spine_det.modeling.families.toy_thresh"]
    assert train[train.index("--config-file") + 1] == str(TOY_DIR / "configs" / TOY / "lat_vertebra.yaml")
    pairs = dict(zip(train[train.index("OUTPUT_DIR")::2], train[train.index("OUTPUT_DIR") + 1::2]))
    assert pairs["SEED"] == "1" and pairs["SPINE.SPLIT_SEED"] == "0" and pairs["TOY.START"] == "one"
    assert pairs["TOY.LR"] == "0.1" and "--resume" in u.commands["resume"]
    assert u.commands["eval"][-2:] == ["TOY.EVAL", "1"] and u.checkpoints == ["toy.ckpt"]
    assert "toy_thresh/lat_vertebra.yaml" in "".join(u.spec["configs"])  # the config's hash: an edit retrains


def test_toy_family_columns_in_the_tables(toy, tmp_path):
    from spine_det.benchmark import tables
    from spine_det.benchmark.pipeline import Benchmark, BenchmarkOptions
    from spine_det.benchmark.records import ResultRecord
    from spine_det.tools.benchmark import summary_text

    class Manifest:
        def summary(self):
            return "3 patients"

        def patients(self, split=None):
            return ["p"]

        def select(self, split=None, view=None, task=None):
            return [None]

    o = BenchmarkOptions(data_root=str(tmp_path), out=tmp_path / "o", tasks=["lat_vertebra"],
                         family_args={"toy_thresh_start": "zero"})
    b = Benchmark(o)
    b.prepared = SimpleNamespace(manifest=Manifest())
    b.records.put(ResultRecord("otsu", "lat_vertebra", 0, {"dice": 0.1, "jaccard": 0.05, "tpr": 0.2}))
    b.records.put(ResultRecord(TOY, "lat_vertebra", 0, {"dice": 0.625, "jaccard": 0.4545, "tpr": 0.75,
                                                        "counts": {"images": 1}}, cost={"parameters": 10, "gflops": 0.25}))
    res = b.results()
    defaults = [k for k in family_keys() if get_family(k).benchmark.default]
    assert list(res["segmentation"][0]["models"]) == ["otsu", *defaults] and defaults[-1] == TOY
    assert res["header"]["models"][TOY] == "Toy threshold" and res["header"]["notes"]["Toy start"] == "zero"
    assert "Toy threshold options" not in res["header"]["notes"]  # no overrides, no row
    b.o.model_opts = {TOY: ["TOY.LR", "0.1"]}
    assert b.results()["header"]["notes"]["Toy threshold options"] == "`TOY.LR 0.1`"  # the table says what ran
    paths = tables.write_results(tmp_path, res)
    md = paths["md"].read_text()
    head = next(line for line in md.splitlines() if line.startswith("| task |"))
    assert "| Toy threshold |" in head and head.index("Mask R-CNN") < head.index("Toy threshold")
    assert "0.6250 / 0.4545 / 0.7500" in md and "| Toy start | zero |" in md
    assert "| Toy threshold | lat_vertebra |" in md  # the cost table names it by its label
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert {r["value"] for r in rows if r["model"] == TOY and r["metric"] == "dice"} == {"0.625"}
    assert "Toy threshold Dice" in summary_text(res, paths["md"])


def test_toy_family_in_predict_cost_and_morphometry(toy, tmp_path):
    from spine_det.benchmark import cost
    from spine_det.data.layout import ViewSample
    from spine_det.morphometry.sources import SOURCES, load_view_masks
    from spine_det.tools.predict import main as predict

    img = np.zeros((20, 30), np.uint8)
    img[5:15, 10:20] = 200
    img[0, 0] = 90
    cv2.imwrite(str(tmp_path / "x.png"), img)
    ck = tmp_path / "toy.ckpt"
    ck.write_text("100")
    out = tmp_path / "pred"
    assert predict(["--model", TOY, "--checkpoint", str(ck), "--input", str(tmp_path / "x.png"), "--output", str(out)]) == 0
    mask = cv2.imread(str(out / "x" / "lat_vertebra_mask.png"), cv2.IMREAD_GRAYSCALE) > 0
    assert np.array_equal(mask, img > 100)
    out2 = tmp_path / "pred2"  # --score-threshold reaches the family's predictor: 0.3 * 255 ~ 76 < 90
    assert predict(["--model", TOY, "--checkpoint", str(ck), "--input", str(tmp_path / "x.png"), "--output", str(out2),
                    "--score-threshold", "0.3"]) == 0
    assert (cv2.imread(str(out2 / "x" / "lat_vertebra_mask.png"), cv2.IMREAD_GRAYSCALE) > 0).sum() == 101

    sample = SimpleNamespace(image=str(tmp_path / "x.png"), key="p/lat")
    res = cost.measure(TOY, str(ck), "lat_vertebra", [sample], n_images=1, keep_predictions=1,
                       pred_dir=tmp_path / "cost")
    assert res["parameters"] == 10 and res["gflops"] == 0.25 and res["gflops_input"] == [20, 30]
    assert (tmp_path / "cost" / "p_lat.png").is_file()

    assert TOY in SOURCES
    (tmp_path / "pd" / "p" / "lat").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "pd" / "p" / "lat" / "lat_vertebra_mask.png"), mask.astype(np.uint8) * 255)
    s = ViewSample("p", "Normal", "test", "lat", "x.png", {}, 20, 30)
    assert load_view_masks(s, TOY, tmp_path / "pd")["lat_vertebra"].sum() == mask.sum()


def test_build_predictor_keeps_its_signature_and_errors():
    from spine_det.engine.predictor import CheckpointError, build_predictor

    with pytest.raises(CheckpointError, match="not found"):
        build_predictor("linknet", "/nonexistent/model_best.pth", device="cpu")
    with pytest.raises(KeyError, match="unknown model"):
        build_predictor("nope", __file__)


def test_engine_predictor_names_no_family_module():
    """engine/predictor.py no longer imports semseg_predictor by a string map: the registry does."""
    src = (Path(__file__).resolve().parents[1] / "spine_det" / "engine" / "predictor.py").read_text()
    assert "semseg_predictor" not in src and "_LAZY_MODULES" not in src


def test_checkpoints_name_the_family_that_wrote_them(toy):
    from spine_det.modeling.registry import checkpoint_family, require_family
    from spine_det.utils.checkpoint_io import CheckpointError

    linknet = {"model": {"w": 0}, "cfg": "SPINE: {}", "model_name": "linknet"}
    maskrcnn = {"model": {"backbone.bottom_up.stem.conv1.weight": 0}, "iteration": 3}
    classifier = {"model": {}, "view": "ap", "backbone": "resnet18", "cfg": ""}
    assert [checkpoint_family(d) for d in (linknet, maskrcnn, classifier, {"model": {}})] == \
           ["linknet", "maskrcnn", "classifier", None]
    assert checkpoint_family({"toy_threshold": 3}) == TOY
    with pytest.raises(CheckpointError, match="Toy threshold checkpoint; use --model toy_thresh .*"
                                              "python -m spine_det.modeling.families.toy_thresh"):
        require_family({"toy_threshold": 3}, "linknet", "x.pth")
    require_family({"toy_threshold": 3}, TOY, "x.pth")  # its own: fine


def test_flops_come_from_what_the_predictor_feeds_its_network():
    """No family-specific FLOP code in the benchmark: the predictor says what one forward pass is."""
    import torch

    from spine_det.benchmark.cost import count_parameters, gflops, model_flops
    from spine_det.config.loading import load_cfg
    from spine_det.config.semseg import get_semseg_cfg
    from spine_det.engine.semseg_predictor import SemSegPredictor

    cfg = load_cfg(get_semseg_cfg(), opts=["MODEL.PRETRAINED", "False", "INPUT.HEIGHT", "64", "INPUT.WIDTH", "32"])
    pred = SemSegPredictor(cfg)
    image = np.zeros((100, 70), np.uint8)
    module, inputs = pred.flop_count_inputs(image)
    assert module is pred.model and tuple(inputs[0].shape) == (1, 1, 64, 32)
    g, size = model_flops(get_family("linknet"), pred, image)
    assert size == [64, 32] and g == pytest.approx(gflops(pred.model, inputs)) and g > 0
    # doubling the input area doubles the count of this fully convolutional network
    cfg2 = load_cfg(get_semseg_cfg(), opts=["MODEL.PRETRAINED", "False", "INPUT.HEIGHT", "128", "INPUT.WIDTH", "32"])
    pred2 = SemSegPredictor(cfg2, model=pred.model)
    assert model_flops(get_family("linknet"), pred2, image)[0] == pytest.approx(2 * g, rel=1e-6)
    assert count_parameters(pred.model) == sum(p.numel() for p in pred.model.parameters()) > 0
    assert SegmentationPredictor().flop_count_inputs(image) is None and isinstance(module, torch.nn.Module)


def test_models_option_names_the_families_to_run(toy, tmp_path):
    """Optional baselines run only when named, so installing smp never lengthens the demo."""
    from spine_det.benchmark.pipeline import BenchmarkOptions
    from spine_det.tools.benchmark import main

    family = type(get_family(TOY))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(family, "benchmark", dataclasses.replace(family.benchmark, default=False))
        o = BenchmarkOptions(data_root=str(tmp_path), out=tmp_path / "o", tasks=["lat_vertebra"])
        assert TOY not in [s.key for s in o.model_families()] and "linknet" in [s.key for s in o.model_families()]
        o.models = [TOY, "linknet"]
        assert [s.key for s in o.model_families()] == ["linknet", TOY]  # registry order, not the option's
        o.skip_models = ["linknet"]
        assert [s.key for s in o.model_families()] == [TOY]
    assert main(["--data-root", str(tmp_path), "--out", str(tmp_path / "o2"), "--models", "linknet,no_such"]) == 2

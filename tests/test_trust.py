"""No code from files: planted pickles and YAML tags are refused before anything runs.

Every attack writes a marker file if it runs; each test proves the marker is absent and the
error names the file in one line.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


class _Evil:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def _evil_yaml(marker: Path) -> str:
    return f"MODEL:\n  DEVICE: !!python/object/apply:os.system ['touch {marker}']\n"


@pytest.fixture
def marker(tmp_path):
    m = tmp_path / "ran"
    assert not m.exists()
    yield m
    assert not m.exists(), "code from a file ran"


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_planted_pickle_checkpoint_is_refused_by_every_loader(tmp_path, marker):
    from spine_det.engine.semseg_trainer import load_checkpoint
    from spine_det.engine.predictor import CheckpointError, build_predictor

    bad = tmp_path / "model_best.pth"
    torch.save({"model": {}, "cfg": "TASKS: [lat_vertebra]", "x": _Evil(marker)}, bad)
    (tmp_path / "config.yaml").write_text((CONFIGS / "lat_vertebra.yaml").read_text())
    for load in (lambda: build_predictor("linknet", str(bad)), lambda: build_predictor("maskrcnn", str(bad)),
                 lambda: load_checkpoint(bad)):
        with pytest.raises(CheckpointError, match="refused") as e:
            load()
        assert str(bad) in _one_line(e)


def test_detectron2_checkpointer_refuses_pickles(tmp_path, marker):
    from spine_det.engine.checkpointer import TRUST_ENV, SafeDetectionCheckpointer
    from spine_det.utils.checkpoint_io import CheckpointError

    model = torch.nn.Linear(2, 2)
    pth = tmp_path / "last.pth"
    torch.save({"model": model.state_dict(), "x": _Evil(marker)}, pth)
    with pytest.raises(CheckpointError, match="refused"):
        SafeDetectionCheckpointer(model).load(str(pth))
    import pickle

    pkl = tmp_path / "weights.pkl"
    pkl.write_bytes(pickle.dumps({"model": {}, "x": _Evil(marker)}))
    os.environ.pop(TRUST_ENV, None)
    with pytest.raises(CheckpointError, match=TRUST_ENV) as e:
        SafeDetectionCheckpointer(model).load(str(pkl))
    assert str(pkl) in _one_line(e)
    # a clean checkpoint of the package's own kind loads
    ok = tmp_path / "ok.pth"
    torch.save({"model": {k: v + 1 for k, v in model.state_dict().items()}, "iteration": 3}, ok)
    other = torch.nn.Linear(2, 2)
    assert SafeDetectionCheckpointer(other).load(str(ok))["iteration"] == 3
    assert torch.equal(other.weight, model.weight + 1)


def test_malicious_yaml_is_refused_by_every_config_loader(tmp_path, marker):
    from spine_det.config import get_spine_cfg
    from spine_det.config.classifier import get_classifier_cfg
    from spine_det.config.loading import load_cfg
    from spine_det.config.semseg import get_semseg_cfg
    from spine_det.config.safe import ConfigError
    from spine_det.engine.predictor import CheckpointError, build_predictor

    evil = tmp_path / "config.yaml"
    evil.write_text(_evil_yaml(marker))
    for load in (lambda: get_spine_cfg(evil), lambda: load_cfg(get_semseg_cfg(), str(evil)),
                 lambda: load_cfg(get_classifier_cfg(), str(evil))):
        with pytest.raises(ConfigError, match="refused") as e:
            load()
        assert str(evil) in _one_line(e)
    # the config.yaml beside a Mask R-CNN checkpoint (found automatically)
    torch.save({"model": {"backbone.x": torch.zeros(1)}}, tmp_path / "model.pth")
    with pytest.raises(ConfigError, match="refused"):
        build_predictor("maskrcnn", str(tmp_path / "model.pth"))
    # a _BASE_ that points at the evil file
    (tmp_path / "child.yaml").write_text("_BASE_: config.yaml\n")
    with pytest.raises(ConfigError, match="refused"):
        get_spine_cfg(tmp_path / "child.yaml")
    # the config text stored inside a LinkNet checkpoint
    ck = tmp_path / "linknet.pth"
    torch.save({"model": {}, "cfg": _evil_yaml(marker), "model_name": "linknet"}, ck)
    with pytest.raises(CheckpointError, match="YAML|constructor"):
        build_predictor("linknet", str(ck))


def test_written_checkpoints_are_plain_data_and_rng_round_trips(tmp_path):
    import random

    from spine_det.engine.semseg_trainer import load_checkpoint, save_checkpoint
    from spine_det.utils.checkpoint_io import rng_state, set_rng_state

    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.normal()  # a cached gaussian in the state
    state = rng_state()
    path = tmp_path / "last_checkpoint.pth"
    save_checkpoint(path, {"model": {"w": torch.ones(2)}, "rng": state, "score": np.float64(0.5), "n": np.int64(3),
                           "hist": np.arange(3)})
    raw = torch.load(path, weights_only=True)  # torch's own check, no allow-list
    assert isinstance(raw["score"], float) and raw["n"] == 3 and torch.equal(raw["hist"], torch.arange(3))
    expect = (random.random(), float(np.random.normal()), float(torch.rand(1)))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    set_rng_state(load_checkpoint(path)["rng"])
    assert (random.random(), float(np.random.normal()), float(torch.rand(1))) == expect


def test_checkpoints_written_before_this_change_still_load(tmp_path):
    """numpy RNG states (raw getstate tuples) from older last_checkpoint.pth files: data only, allowed."""
    import random

    from spine_det.engine.semseg_trainer import load_checkpoint
    from spine_det.utils.checkpoint_io import set_rng_state

    old = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    expect = (random.random(), float(np.random.rand()))
    torch.save({"model": {}, "rng": old, "val": {"roc_auc": np.float64(0.7)}}, tmp_path / "old.pth")
    ck = load_checkpoint(tmp_path / "old.pth")
    set_rng_state(ck["rng"])
    assert (random.random(), float(np.random.rand())) == expect and ck["val"]["roc_auc"] == 0.7


def test_wrong_model_type_says_which_tool(tmp_path):
    from spine_det.engine.predictor import CheckpointError, build_predictor

    ln = tmp_path / "ln" / "model_best.pth"
    ln.parent.mkdir()
    torch.save({"model": {"w": torch.zeros(1)}, "cfg": "TASKS: [lat_vertebra]\n", "model_name": "linknet"}, ln)
    (ln.parent / "config.yaml").write_text("TASKS: [lat_vertebra]\n")
    with pytest.raises(CheckpointError, match="LinkNet checkpoint; use --model linknet"):
        build_predictor("maskrcnn", str(ln))
    mr = tmp_path / "mr.pth"
    torch.save({"model": {"backbone.bottom_up.stem.conv1.weight": torch.zeros(1)}, "iteration": 9}, mr)
    with pytest.raises(CheckpointError, match="Mask R-CNN checkpoint; use --model maskrcnn"):
        build_predictor("linknet", str(mr))
    cl = tmp_path / "model_best_ap.pth"
    torch.save({"model": {}, "view": "ap", "backbone": "resnet18", "cfg": ""}, cl)
    with pytest.raises(CheckpointError, match="classifier"):
        build_predictor("linknet", str(cl))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="cannot be read"):
        build_predictor("linknet", str(junk))


def test_config_typos_name_the_nearest_key(tmp_path):
    from spine_det.config import get_spine_cfg
    from spine_det.config.loading import load_cfg
    from spine_det.config.semseg import get_semseg_cfg
    from spine_det.config.safe import ConfigError

    typo = tmp_path / "typo.yaml"
    typo.write_text("SOLVER:\n  BASE_LRR: 0.1\n")
    for load in (lambda: get_spine_cfg(typo), lambda: load_cfg(get_semseg_cfg(), str(typo))):
        with pytest.raises(ConfigError, match=r"SOLVER.BASE_LRR; did you mean SOLVER.BASE_LR\?"):
            load()
    with pytest.raises(ConfigError, match="did you mean SOLVER.MAX_EPOCHS"):
        load_cfg(get_semseg_cfg(), opts=["SOLVER.MAX_EPOCH", "3"])
    with pytest.raises(ConfigError, match="did you mean SPINE.EVAL.SCORE_THRESHOLD"):
        get_spine_cfg(CONFIGS / "lat_vertebra.yaml", opts=["SPINE.EVAL.SCORE_TRESHOLD", "0.3"])
    with pytest.raises(ConfigError, match="Type mismatch.*SOLVER.MAX_EPOCHS"):
        load_cfg(get_semseg_cfg(), opts=["SOLVER.MAX_EPOCHS", "abc"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_cfg(get_semseg_cfg(), str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="KEY VALUE pairs"):
        load_cfg(get_semseg_cfg(), opts=["SOLVER.MAX_EPOCHS"])


def test_maskrcnn_resume_with_a_dangling_last_checkpoint_is_one_line(tmp_path):
    from types import SimpleNamespace

    import spine_det.compat  # noqa: F401
    from detectron2.checkpoint import DetectionCheckpointer

    from spine_det.engine.checkpointer import SafeDetectionCheckpointer
    from spine_det.engine.trainer import SpineTrainer
    from spine_det.utils.checkpoint_io import CheckpointError

    ck = DetectionCheckpointer(torch.nn.Linear(2, 2), save_dir=str(tmp_path))
    (tmp_path / "last_checkpoint").write_text("model_0000999.pth")  # the run's folder was pruned
    fake = SimpleNamespace(checkpointer=ck, cfg=SimpleNamespace(OUTPUT_DIR=str(tmp_path), MODEL=SimpleNamespace(WEIGHTS="")))
    with pytest.raises(CheckpointError, match=r"last_checkpoint names .*model_0000999.pth, which does not exist") as e:
        SpineTrainer.resume_or_load(fake, resume=True)
    assert "\n" not in str(e.value) and isinstance(ck, SafeDetectionCheckpointer)  # hardened in place

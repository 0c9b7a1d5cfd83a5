"""One config system: leaf YAMLs that leave out what the tasks imply give the same final configs as the
old ones that spelled it out; shared key names (old ones still read); one profile rule."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from spine_det.config import get_spine_cfg, spine_tasks
from spine_det.config.semseg import get_semseg_cfg, load_semseg_config
from spine_det.config.paths import resolve_config_file
from spine_det.config.safe import merge_yaml_text

BASE = resolve_config_file("Base-SpineMaskRCNN.yaml")
LINKNET_BASE = resolve_config_file("linknet/Base-LinkNet.yaml")

# The leaf configs as they were before the finalize step derived NUM_CLASSES, DATASETS, VIEW, OUTPUT_DIR
# (verbatim but for the _BASE_ path, and LinkNet's old top-level TASKS).
OLD_MASKRCNN = {
    "lat_vertebra": """
MODEL:
  ROI_HEADS:
    NUM_CLASSES: 1
INPUT:
  RANDOM_FLIP: "horizontal"  # was "none": changed after the trim (real lateral films face either way)
DATASETS:
  TRAIN: ("spine_lat_vertebra_train",)
  TEST: ("spine_lat_vertebra_val",)
SPINE:
  VIEW: "lat"
  TASKS: ["lat_vertebra"]
OUTPUT_DIR: "./output/maskrcnn/lat_vertebra"
""",
    "ap_all": """
MODEL:
  ROI_HEADS:
    NUM_CLASSES: 3
  ROI_MASK_HEAD:
    POOLER_RESOLUTION: 28
DATASETS:
  TRAIN: ("spine_ap_train",)
  TEST: ("spine_ap_val",)
SPINE:
  VIEW: "ap"
  TASKS: ["ap_vertebra", "ap_spinous_process", "ap_pedicle"]
OUTPUT_DIR: "./output/maskrcnn/ap_all"
""",
    "lat_anterior_line": """
MODEL:
  ROI_HEADS:
    NUM_CLASSES: 1
  ROI_MASK_HEAD:
    POOLER_RESOLUTION: 28
    NAME: "DiceMaskRCNNHead"  # not in the old leaf: a setting added after the trim
INPUT:
  RANDOM_FLIP: "horizontal"  # was "none": changed after the trim (real lateral films face either way)
DATASETS:
  TRAIN: ("spine_lat_anterior_line_train",)
  TEST: ("spine_lat_anterior_line_val",)
SPINE:
  INSTANCES:
    LINE: "per_level"
  EVAL:
    SCORE_THRESHOLD: -1.0
  VIEW: "lat"
  TASKS: ["lat_anterior_line"]
OUTPUT_DIR: "./output/maskrcnn/lat_anterior_line"
""",
}
OLD_LINKNET = {
    "lat_all": """
TASKS: ["lat_vertebra", "lat_disk_height", "lat_spinous_process", "lat_anterior_line", "lat_posterior_line"]
LOSS:
  NAME: "bce_dice"
AUG:
  HFLIP: 0.5  # not in the old leaf: changed after the trim (real lateral films face either way)
OUTPUT_DIR: "./output/linknet/lat_all"
""",
    "ap_vertebra": """
TASKS: ["ap_vertebra"]
INPUT:
  CLAHE: 2.0
TEST:
  HFLIP: True
OUTPUT_DIR: "./output/linknet/ap_vertebra"
""",
}


def _old_leaf(tmp_path: Path, name: str, base: Path, body: str) -> Path:
    p = tmp_path / f"{name}.yaml"  # same stem: the task's own profile file applies as to the shipped one
    p.write_text(f'_BASE_: "{base}"\n{body}')
    return p


@pytest.mark.parametrize("profile", ["full", "cpu"])
@pytest.mark.parametrize("name", sorted(OLD_MASKRCNN))
def test_trimmed_maskrcnn_leaf_gives_the_old_final_config(tmp_path, name, profile):
    old = get_spine_cfg(_old_leaf(tmp_path, name, BASE, OLD_MASKRCNN[name]), profile=profile)
    new = get_spine_cfg(resolve_config_file(f"{name}.yaml"), profile=profile)
    assert new.dump() == old.dump()
    leaf = yaml.safe_load(resolve_config_file(f"{name}.yaml").read_text())
    assert "DATASETS" not in leaf and "OUTPUT_DIR" not in leaf and "VIEW" not in leaf["SPINE"]
    assert "ROI_HEADS" not in leaf.get("MODEL", {})  # NUM_CLASSES: said once, by the finalize step


@pytest.mark.parametrize("profile", ["full", "cpu"])
@pytest.mark.parametrize("name", sorted(OLD_LINKNET))
def test_trimmed_linknet_leaf_gives_the_old_final_config(tmp_path, name, profile, caplog):
    with caplog.at_level(logging.WARNING, logger="spine_det.config.common"):
        old = load_semseg_config(_old_leaf(tmp_path, name, LINKNET_BASE, OLD_LINKNET[name]), profile)
    assert "config key TASKS is deprecated, read as SPINE.TASKS" in caplog.text
    new = load_semseg_config(resolve_config_file(f"linknet/{name}.yaml"), profile)
    assert new.dump() == old.dump()
    assert new.OUTPUT_DIR == f"./output/linknet/{name}" and new.SPINE.VIEW == name[: name.index("_")]


def test_finalize_derives_from_the_tasks_and_refuses_a_contradiction():
    cfg = get_spine_cfg(resolve_config_file("lat_vertebra.yaml"),
                        opts=["SPINE.TASKS", "['lat_vertebra', 'lat_disk_height', 'lat_spinous_process', "
                                             "'lat_anterior_line', 'lat_posterior_line']"])
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 5 and cfg.DATASETS.TRAIN == ("spine_lat_train",)
    assert cfg.OUTPUT_DIR == "./output/maskrcnn/lat_all" and cfg.SPINE.VIEW == "lat"
    assert get_spine_cfg(resolve_config_file("lat_vertebra.yaml"), opts=["OUTPUT_DIR", "/tmp/x"]).OUTPUT_DIR == "/tmp/x"
    with pytest.raises(ValueError, match="NUM_CLASSES=2 but SPINE.TASKS has 5 tasks.*derived"):
        get_spine_cfg(resolve_config_file("lat_all.yaml"), opts=["MODEL.ROI_HEADS.NUM_CLASSES", "2"])
    with pytest.raises(ValueError, match="mixes views"):
        load_semseg_config(None, opts=["SPINE.TASKS", "['ap_vertebra', 'lat_vertebra']"])
    bare = get_spine_cfg()  # no tasks: nothing derived, nothing refused
    assert list(bare.SPINE.TASKS) == [] and bare.MODEL.ROI_HEADS.NUM_CLASSES == 0


def test_shared_keys_and_old_names(tmp_path, caplog):
    m = get_spine_cfg(resolve_config_file("ap_vertebra.yaml"), data_root=tmp_path, opts=["SPINE.SPLIT_SEED", "4"])
    ln = load_semseg_config(resolve_config_file("linknet/ap_vertebra.yaml"), data_root=tmp_path,
                             opts=["SPINE.SPLIT_SEED", "4"])
    for cfg in (m, ln):
        assert (cfg.SPINE.DATA_ROOT, cfg.SPINE.SPLIT_SEED, list(cfg.SPINE.TASKS), cfg.SPINE.VIEW) == \
               (str(tmp_path), 4, ["ap_vertebra"], "ap")
    with caplog.at_level(logging.WARNING, logger="spine_det.config.common"):
        old = load_semseg_config(None, opts=["DATA.ROOT", "/d", "DATA.SEED", "3", "DATA.CACHE_DIR", "/c"])
    assert (old.SPINE.DATA_ROOT, old.SPINE.SPLIT_SEED, old.SPINE.CACHE_DIR) == ("/d", 3, "/c")
    assert "DATA.SEED is deprecated, read as SPINE.SPLIT_SEED" in caplog.text
    # the config text stored in a LinkNet checkpoint written before the rename still loads
    stored = "TASKS: [lat_vertebra, lat_disk_height]\nDATA:\n  ROOT: /data\n  SEED: 2\n  CACHE_DIR: ''\n"
    cfg = merge_yaml_text(get_semseg_cfg(), stored, "ckpt")
    assert list(cfg.SPINE.TASKS) == ["lat_vertebra", "lat_disk_height"] and cfg.SPINE.SPLIT_SEED == 2
    assert "DATA" not in cfg and "TASKS" not in cfg


def test_one_profile_rule_for_every_family(tmp_path):
    own = tmp_path / "mine.yaml"
    own.write_text("SOLVER:\n  BASE_LR: 0.123\n")
    assert get_spine_cfg(resolve_config_file("lat_vertebra.yaml"), profile=str(own)).SOLVER.BASE_LR == 0.123
    assert load_semseg_config(resolve_config_file("linknet/lat_vertebra.yaml"), str(own)).SOLVER.BASE_LR == 0.123
    # a config outside the shipped folder still finds its family's shipped profile
    leaf = tmp_path / "lat_vertebra.yaml"
    leaf.write_text(f'_BASE_: "{LINKNET_BASE}"\nSPINE:\n  TASKS: [lat_vertebra]\n')
    assert load_semseg_config(leaf, "cpu").MODEL.DEVICE == "cpu"
    with pytest.raises(FileNotFoundError, match="profile 'gpu9'"):
        get_spine_cfg(resolve_config_file("lat_vertebra.yaml"), profile="gpu9")
    assert spine_tasks(get_spine_cfg(resolve_config_file("lat_vertebra.yaml"), profile="full")) == ["lat_vertebra"]


def test_configs_that_are_not_yaml_mappings_or_inherit_in_a_circle_are_one_line(tmp_path):
    """A YAML list or scalar, a ``_BASE_`` naming itself (or a circle of two), a PNG, a text file or a
    missing file: one line naming the file, for both families and the tool (were tracebacks, or lines
    such as "utf-8" / "'str' object does not support item assignment")."""
    from PIL import Image

    from spine_det.config.safe import ConfigError
    from spine_det.tools import train_linknet

    Image.new("L", (4, 4)).save(tmp_path / "film.png")
    (tmp_path / "notes.txt").write_text("measured on the AP films\n")
    cases = {
        "list.yaml": ("- SOLVER\n- MODEL\n", "not a config: a YAML list"),
        "scalar.yaml": ("3\n", r"not a config: a single value \(3\)"),
        "empty.yaml": ("", "not a config: an empty file"),
        "self.yaml": ("_BASE_: self.yaml\nSEED: 1\n", r"makes a cycle \(self.yaml -> self.yaml\)"),
        "a.yaml": ("_BASE_: b.yaml\n", r"makes a cycle \(a.yaml -> b.yaml -> a.yaml\)"),
        "png.yaml": ("_BASE_: film.png\n", r"film.png \(the _BASE_ of .*png.yaml\): not a YAML config \(binary"),
        "txt.yaml": ("_BASE_: [notes.txt]\n", r"notes.txt \(the _BASE_ of .*txt.yaml\): not a config: plain text"),
        "gone.yaml": ("_BASE_: ../nowhere.yaml\n", "_BASE_ config not found: .*nowhere.yaml"),
    }
    (tmp_path / "b.yaml").write_text("_BASE_: a.yaml\n")
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        for load in (lambda name=name: get_spine_cfg(tmp_path / name), lambda name=name: load_semseg_config(tmp_path / name)):
            with pytest.raises(ConfigError, match=message) as e:
                load()
            assert "\n" not in str(e.value)
    # a plain _BASE_ chain still loads
    (tmp_path / "leaf.yaml").write_text(f'_BASE_: "{LINKNET_BASE}"\nSOLVER:\n  BASE_LR: 0.01\n')
    assert load_semseg_config(tmp_path / "leaf.yaml").SOLVER.BASE_LR == 0.01
    out = tmp_path / "out"
    assert train_linknet.main(["--config-file", str(tmp_path / "self.yaml"), "--data-root", str(tmp_path),
                               "OUTPUT_DIR", str(out)]) == 2
    assert not out.exists()

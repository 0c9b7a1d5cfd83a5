"""Every registered model family through the same checks (smp's BaseModelTester idea): its config builds
for every task and profile, its checkpoint recogniser refuses every other family's checkpoint, its trainer
and predictor resolve, its benchmark adapter is complete. The test ids name each registered family, so a
new family module is checked without editing this file (the toy family in tests/toy_family is, in
test_registry.py). Also: how a family is checked when it registers, and what a missing optional
dependency looks like."""
from __future__ import annotations

import argparse
import inspect
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict

import pytest

from spine_det.config.paths import resolve_config_file
from spine_det.modeling.registry import (LOAD_ERRORS, MODEL_FAMILIES, BenchmarkAdapter, FamilyDefinitionError,
                                         FamilyUnavailableError, ModelFamily, family_keys, get_family, resolve)
from spine_det.tasks import TASK_NAMES

FAMILIES = family_keys()  # at collection: one test id per registered family
PACKAGE = Path(__file__).resolve().parents[1] / "spine_det"


def shipped(family: ModelFamily) -> bool:
    """A family whose module is part of the package (not a plug-in, nor the toy)."""
    return Path(inspect.getfile(type(family))).resolve().is_relative_to(PACKAGE)


# A minimal checkpoint of each shipped family's format, read as plain data (what ``recognizes`` sees): every
# family must refuse the others'; a family with an example here must also take its own.
CHECKPOINT_EXAMPLES: Dict[str, Dict[str, Any]] = {
    "linknet": {"model": {"encoder.conv1.weight": 0}, "cfg": "SPINE: {}", "model_name": "linknet"},
    "maskrcnn": {"model": {"backbone.bottom_up.stem.conv1.weight": 0}, "iteration": 3},
    "nnunet": {"network_weights": {}, "init_args": {}, "trainer_name": "nnUNetTrainer"},
    "landmark": {"model": {"stem.0.weight": 0}, "cfg": "SPINE: {}", "model_name": "landmark"},
    **{k: {"model": {"encoder.conv1.weight": 0}, "cfg": "SPINE: {}", "model_name": k}
       for k in ("smp_unet", "smp_unetplusplus", "smp_fpn", "smp_deeplabv3plus")},
}
CLASSIFIER_CHECKPOINT = {"model": {}, "view": "ap", "backbone": "resnet18", "cfg": ""}


def check_config_builds(family: ModelFamily) -> None:
    """Each task the family has a config for builds, in both profiles, for that task alone; a family
    shipped with the package has a config for every task it learns (``tasks``; () = all of them)."""
    built = []
    for task in family.tasks or TASK_NAMES:
        try:
            config = resolve_config_file(family.config_file(task))
        except FileNotFoundError:
            assert not shipped(family), f"{family.key}: no config for {task}"
            continue
        for profile in ("cpu", "full"):
            cfg = family.get_config(config, profile, ["SEED", "3"])
            assert list(cfg.SPINE.TASKS) == [task] and cfg.SEED == 3, (family.key, task, profile)
        for f in family.benchmark.profile_yamls(config, "cpu"):
            assert Path(f).is_file(), f
        built.append(task)
    assert built, f"{family.key}: no config for any task"


def check_recogniser(family: ModelFamily, examples: Dict[str, Dict[str, Any]]) -> None:
    """Its own checkpoint is its own (when an example is known), no other family's and not the classifier's."""
    if family.key in examples:
        assert family.recognizes(examples[family.key]), family.key
    for other, data in examples.items():
        if other != family.key:
            assert not family.recognizes(data), f"{family.key} claims a {other} checkpoint"
    assert not family.recognizes(CLASSIFIER_CHECKPOINT) and not family.recognizes({}) and not family.recognizes(None)


def check_trainer_and_predictor(family: ModelFamily) -> None:
    """The trainer is a tool's ``main(argv)``; the predictor a class with ``from_checkpoint`` that learns its
    family's key, or, without an optional dependency, one line naming it."""
    main = resolve(family.reference("trainer"))
    assert callable(main) and family.train_module == main.__module__
    why = family.available()
    if why is not None:
        assert why and "\n" not in why and "install" in why
        with pytest.raises(FamilyUnavailableError, match=f"{family.key}.*{why[:20]}"):
            family.predictor_class()
        return
    cls = family.predictor_class()
    assert callable(getattr(cls, "from_checkpoint", None)) and cls.family_key in (family.key, *family_keys())


def benchmark_options(family: ModelFamily) -> SimpleNamespace:
    """The family's own benchmark options at their defaults, as the benchmark tool passes them."""
    parser = argparse.ArgumentParser()
    group = parser.add_argument_group(family.label)
    family.benchmark.add_args(group)
    flag = f"--{family.key.replace('_', '-')}-"
    assert all(s.startswith(flag) for a in group._group_actions for s in a.option_strings), (family.key, flag)
    return SimpleNamespace(family_args=vars(parser.parse_args([])))


def check_benchmark_adapter(family: ModelFamily, tmp_path: Path) -> None:
    """Every hook resolves and answers in the form the benchmark reads."""
    adapter = family.benchmark
    assert isinstance(adapter, BenchmarkAdapter) and isinstance(adapter.default, bool)
    options = benchmark_options(family)
    opts = adapter.unit_opts(tmp_path, "lat_vertebra", 0, options)
    assert isinstance(opts, list) and len(opts) % 2 == 0 and all(isinstance(o, str) for o in opts)
    eval_opts = adapter.eval_command_opts(tmp_path)
    assert len(eval_opts) % 2 == 0 and all(isinstance(o, str) for o in eval_opts)
    note = adapter.note(options)
    assert note is None or (len(note) == 2 and all(isinstance(v, str) and v for v in note))
    curves = adapter.curves(tmp_path, "lat_vertebra", 0)  # a run folder without logs yet
    assert isinstance(curves, dict) and set(curves) <= {"x_label", "loss", "val_dice", "s_per_iter", "s_per_iter_note",
                                                        "iterations", "epochs", "lr_steps"}
    assert adapter.train_peak_memory_mb(tmp_path / "no.log") is None
    assert all(isinstance(m, str) for m in adapter.done_markers) and family.checkpoints
    for name in ("plan_opts", "eval_opts", "profile_files", "benchmark_args", "header_note", "read_curves",
                 "train_memory", "flops"):
        ref = getattr(adapter, name)
        assert ref is None or callable(resolve(ref)), (family.key, name)


@pytest.mark.parametrize("key", FAMILIES)
def test_config_builds(key):
    check_config_builds(get_family(key))


@pytest.mark.parametrize("key", FAMILIES)
def test_checkpoint_recogniser_refuses_other_families(key):
    check_recogniser(get_family(key), CHECKPOINT_EXAMPLES)


@pytest.mark.parametrize("key", FAMILIES)
def test_trainer_and_predictor_resolve(key):
    check_trainer_and_predictor(get_family(key))


@pytest.mark.parametrize("key", FAMILIES)
def test_benchmark_adapter_complete(key, tmp_path):
    check_benchmark_adapter(get_family(key), tmp_path)


def test_every_family_module_registered():
    assert LOAD_ERRORS == {}
    assert {"linknet", "maskrcnn"} <= set(FAMILIES)


def test_listing_families_imports_none_of_their_parts():
    """Registration checks references on disk: listing families loads no tool, engine, torch or optional package."""
    code = ("import sys; from spine_det.modeling.registry import families; families(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'detectron2', 'nnunetv2', "
            "'segmentation_models_pytorch') or m.startswith(('spine_det.engine', 'spine_det.tools', "
            "'spine_det.benchmark', 'spine_det.config.semseg', 'spine_det.config.classifier', 'spine_det.config.nnunet', "
            "'spine_det.config.loading', 'spine_det.config.maskrcnn'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- checked when it registers


class _Family(ModelFamily):
    """A family for the registration checks (registered nowhere unless a test does)."""

    key = "check_me"
    label = "Check me"
    trainer = "spine_det.tools.train_linknet:main"
    predictor = "spine_det.engine.semseg_predictor:SemSegPredictor"
    load_config = "spine_det.config.semseg:load_semseg_config"

    def config_file(self, task):
        return f"linknet/{task}.yaml"


@pytest.mark.parametrize("change, message", [
    ({"predictor": "spine_det.engine.semseg_predictor:LinkNetPredicter"}, "predictor: .*defines no 'LinkNetPredicter'"),
    ({"trainer": "spine_det.tools.train_linknt:main"}, "trainer: .*no module named spine_det.tools.train_linknt"),
    ({"trainer": "spine_det.tools.train_linknet"}, "trainer: .*not of the form 'package.module:attr'"),
    ({"load_config": "spine_det.config.semseg:get_semseg_cfg"}, "load_config: .*does not take 3 positional"),
    ({"benchmark": BenchmarkAdapter(plan_opts=lambda runs, task: [])}, "plan_opts: .*does not take 4 positional"),
    ({"benchmark": BenchmarkAdapter(read_curves="spine_det.benchmark.curves:no_such")}, "read_curves: .*no_such"),
    ({"benchmark": {"default": False}}, "benchmark must be a BenchmarkAdapter"),
    ({"key": "Check-Me"}, "lower case"),
    ({"label": ""}, "label is empty"),
    ({"checkpoints": ["model.pth"]}, "checkpoints must be a tuple"),
    ({"config_file": ModelFamily.config_file}, "defines no config_file"),
    ({"recognizes": staticmethod(lambda: True)}, "recognizes does not take 1 positional"),
], ids=["predictor-typo", "trainer-typo", "trainer-not-a-function", "load_config-arguments", "plan_opts-arguments",
        "read_curves-typo", "benchmark-type", "key", "label", "checkpoints", "config_file-missing", "recognizes-arguments"])
def test_a_broken_family_fails_when_it_registers(change, message):
    broken = type("Broken", (_Family,), change)
    with pytest.raises(FamilyDefinitionError, match=message):
        MODEL_FAMILIES.register(broken)
    assert broken.key not in MODEL_FAMILIES._obj_map


def test_decorator_registers_one_instance_and_refuses_a_taken_key():
    try:
        assert MODEL_FAMILIES.register()(_Family) is _Family  # as a decorator: the class stays the class
        family = get_family("check_me")
        assert isinstance(family, _Family) and family.description.startswith("A family for the registration")
        assert family.train_command == "spine-det train-linknet"
        MODEL_FAMILIES.register(_Family)  # the same class again (a module reloaded): replaces it
        other = type("Other", (_Family,), {})
        with pytest.raises(FamilyDefinitionError, match="'check_me' is taken"):
            MODEL_FAMILIES.register(other)
        with pytest.raises(FamilyDefinitionError, match="'linknet' is taken"):
            MODEL_FAMILIES.register(type("Dup", (_Family,), {"key": "linknet"}))
    finally:
        MODEL_FAMILIES.unregister("check_me")


def test_a_family_without_its_optional_dependency_registers_and_says_so(tmp_path):
    """References into a missing optional package are not checked; using the family says what to install."""
    missing = type("Missing", (_Family,), {
        "key": "check_missing", "requires": {"no_such_package_xyz": "no_such_package_xyz is not installed: pip install xyz"},
        "predictor": "no_such_package_xyz.predict:Predictor", "trainer": "no_such_package_xyz.train:main"})
    MODEL_FAMILIES.register(missing)
    try:
        family = get_family("check_missing")
        assert family.available() == "no_such_package_xyz is not installed: pip install xyz"
        with pytest.raises(FamilyUnavailableError, match="'check_missing'.*cannot run here: no_such_package_xyz is "
                                                         "not installed: pip install xyz"):
            family.build_predictor(str(tmp_path / "model.pth"))
        check_config_builds(family)  # its config needs no dependency
    finally:
        MODEL_FAMILIES.unregister("check_missing")
    with pytest.raises(FamilyDefinitionError, match="no module named no_such_package_xyz"):
        MODEL_FAMILIES.register(type("Undeclared", (missing,), {"key": "check_undeclared", "requires": {}}))


def test_a_broken_family_module_is_reported_and_hides_no_other(tmp_path, monkeypatch):
    import spine_det.modeling.families as package
    from spine_det.modeling.registry import load_families

    (tmp_path / "typo_family.py").write_text(
        "from spine_det.modeling.registry import MODEL_FAMILIES, ModelFamily\n\n\n"
        "@MODEL_FAMILIES.register()\nclass Typo(ModelFamily):\n    key, label = 'typo', 'Typo'\n"
        "    trainer = 'spine_det.tools.train_linknet:main'\n    predictor = 'spine_det.engine.nowhere:P'\n\n"
        "    def config_file(self, task):\n        return task\n")
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(tmp_path)])
    name = f"{package.__name__}.typo_family"
    try:
        load_families(reload=True)
        assert "typo" not in family_keys() and {"linknet", "maskrcnn"} <= set(family_keys())
        assert "no module named spine_det.engine.nowhere" in LOAD_ERRORS[name]
    finally:
        LOAD_ERRORS.pop(name, None)
        sys.modules.pop(name, None)

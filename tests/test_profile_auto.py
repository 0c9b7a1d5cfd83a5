"""One default profile rule for every tool (issue 32, item 6): ``--profile auto`` is the cpu profile on a
machine without a CUDA device and the full profile on one with it, and the run says which and why.

Before: the benchmark defaulted to cpu and the trainers to full, so the README's training commands on a
CPU asked for ImageNet / COCO weights and fell back with a warning."""
from __future__ import annotations

import logging

import pytest
import torch

from spine_det.config import profiles


class _Stop(Exception):
    """Raised by a stand-in config loader: the tool got as far as choosing its profile."""


@pytest.fixture(params=[False, True], ids=["no-cuda", "cuda"])
def cuda(request, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: request.param)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: int(request.param))
    return request.param


def test_auto_resolves_to_cpu_without_cuda_and_full_with_it(cuda, caplog):
    with caplog.at_level(logging.INFO, logger="spine_det.config.profiles"):
        chosen = profiles.resolve_profile("auto")
    assert chosen == ("full" if cuda else "cpu")
    assert f"profile: {chosen} (--profile auto: " in caplog.text  # the log says which, and why
    assert ("CUDA device found" if cuda else "no CUDA device found") in caplog.text


def test_explicit_profiles_and_device_win_over_the_machine(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert profiles.resolve_profile("cpu") == "cpu"
    assert profiles.resolve_profile("full") == "full"
    assert profiles.resolve_profile("my/profile.yaml") == "my/profile.yaml"
    assert profiles.resolve_profile("auto", device="cpu") == "cpu"  # the benchmark's --device cpu
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert profiles.resolve_profile("auto", device="cuda") == "full"


def test_auto_reaching_the_profile_files_is_resolved_there_too(monkeypatch):
    """A caller that passes ``auto`` straight to the config loaders (the API, a test) gets the same rule."""
    from spine_det.config.paths import resolve_config_file

    cfg = resolve_config_file("linknet/lat_vertebra.yaml")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert profiles.profile_files(cfg, "auto", None) == profiles.profile_files(cfg, "cpu", None) != []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert profiles.profile_files(cfg, "auto", None) == []


def _trainer_parsers():
    from spine_det.tools import benchmark, train_classifier, train_linknet, train_nnunet, train_net

    return {
        "train_net": lambda: train_net.get_parser().parse_args(["--config-file", "x.yaml"]),
        "train_linknet": lambda: train_linknet.parse_args(["--config-file", "x.yaml"]),
        "train_classifier": lambda: train_classifier.parse_args([]),
        "train_nnunet": lambda: train_nnunet.parse_args(["--config-file", "x.yaml"]),
        "benchmark": lambda: benchmark.parse_args(["--data-root", "D", "--out", "O"]),
    }


@pytest.mark.parametrize("tool", ["train_net", "train_linknet", "train_classifier", "train_nnunet", "benchmark"])
def test_every_training_tool_defaults_to_auto(tool):
    assert _trainer_parsers()[tool]().profile == "auto"


def test_trainers_hand_the_resolved_profile_to_their_config(cuda, monkeypatch, tmp_path):
    """Each trainer's own code path: what reaches the config loader is cpu / full, never auto."""
    from spine_det.tools import train_classifier, train_linknet, train_net, train_nnunet

    seen = []

    def stop(args, load, *keys):
        seen.append(args.profile)
        raise _Stop

    for tool, argv in ((train_net, ["--config-file", "lat_vertebra.yaml"]),
                       (train_linknet, ["--config-file", "linknet/lat_vertebra.yaml"]),
                       (train_classifier, []),
                       (train_nnunet, ["--config-file", "nnunet/lat_vertebra.yaml"])):
        monkeypatch.setattr(tool, "load_config_from_args", stop)  # the one load step of spine_det.engine.defaults
        with pytest.raises(_Stop):
            tool.main(argv)
    assert seen == ["full" if cuda else "cpu"] * 4


def test_benchmark_records_the_resolved_profile(cuda, monkeypatch, tmp_path):
    import spine_det.benchmark.pipeline as pipeline
    from spine_det.tools import benchmark

    chosen = {}

    class FakeBenchmark:
        def __init__(self, opts):
            chosen["profile"] = opts.profile
            raise _Stop

    monkeypatch.setattr(pipeline, "Benchmark", FakeBenchmark)
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(_Stop):
        benchmark.main(["--data-root", str(data), "--out", str(tmp_path / "out"), "--tasks", "lat_vertebra"])
    assert chosen["profile"] == ("full" if cuda else "cpu")  # what results.md's header and every unit get


def test_the_benchmark_always_names_the_classifier_profile(tmp_path):
    """The classifier's own default is auto now: the benchmark must pass its choice, full included."""
    from spine_det.benchmark.plan import classifier_unit

    for profile in ("cpu", "full"):
        argv = classifier_unit(tmp_path, str(tmp_path), profile, 0, 0).commands["train"]
        assert argv[argv.index("--profile") + 1] == profile

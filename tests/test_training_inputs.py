"""The trainers on hostile inputs: one line each, before anything is written (spine_det.engine.preflight),
and the Mask R-CNN resume pointer read as the text file it is."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
LINKNET_CFG = str(REPO / "configs" / "linknet" / "lat_vertebra.yaml")
TINY = ["MODEL.PRETRAINED", "False", "INPUT.HEIGHT", "32", "INPUT.WIDTH", "32", "DATALOADER.NUM_WORKERS", "0"]


@pytest.fixture
def data(phantom_copy):
    return phantom_copy


def _error_line(capsys) -> str:
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("error:")]
    assert len(err) == 1, err
    return err[0]


def test_unknown_network_name_lists_the_registered_ones(data, tmp_path, capsys):
    from spine_det.tools import train_linknet

    out = tmp_path / "run"
    rc = train_linknet.main(["--config-file", LINKNET_CFG, "--data-root", str(data), "--profile", "cpu",
                             "OUTPUT_DIR", str(out), "MODEL.NAME", "linknett", *TINY])
    assert rc == 2  # every refusal: one line, exit status 2
    msg = _error_line(capsys)
    assert "MODEL.NAME 'linknett' is not a registered network; did you mean linknet?" in msg
    assert "smp_unet" in msg  # the families' networks are listed too
    assert not out.exists()  # was: config.yaml written, then a KeyError traceback


def test_bad_device_is_refused_before_anything_is_written(data, tmp_path, capsys):
    from spine_det.engine.nnunet import resolve_device
    from spine_det.tools import train_classifier, train_linknet, train_net
    from spine_det.utils.arguments import ArgumentValueError

    out = tmp_path / "run"
    # LinkNet and the classifier trained on the CPU without a word; Mask R-CNN and nnU-Net: torch's traceback
    assert train_linknet.main(["--config-file", LINKNET_CFG, "--data-root", str(data), "--profile", "cpu",
                               "OUTPUT_DIR", str(out), "MODEL.DEVICE", "tpu", *TINY]) == 2
    assert "MODEL.DEVICE must be one of cpu, cuda, cuda:N, auto; got 'tpu'" in _error_line(capsys)
    assert train_classifier.main(["--data-root", str(data), "--profile", "cpu", "OUTPUT_DIR", str(out),
                                  "MODEL.DEVICE", "gpu"]) == 2
    assert "MODEL.DEVICE must be one of cpu, cuda, cuda:N, auto; got 'gpu'" in _error_line(capsys)
    assert train_net.main(["--config-file", "lat_vertebra.yaml", "--profile", "cpu", "--data-root", str(data),
                           "OUTPUT_DIR", str(out), "MODEL.DEVICE", "tpu"]) == 2
    assert "MODEL.DEVICE must be one of cpu, cuda, cuda:N, auto; got 'tpu'" in _error_line(capsys)
    with pytest.raises(ArgumentValueError, match="MODEL.DEVICE must be one of .*; got 'cuda:x'"):
        resolve_device("cuda:x")
    assert not out.exists()
    from spine_det.config import get_spine_cfg

    # "auto", as the other families take it (was: torch's "device string: auto" traceback in Detectron2)
    auto = get_spine_cfg(str(REPO / "configs" / "lat_vertebra.yaml"), opts=["MODEL.DEVICE", "auto"])
    assert auto.MODEL.DEVICE == ("cuda" if torch.cuda.is_available() else "cpu")


def test_train_net_checks_its_inputs_before_writing_anything(data, tmp_path, capsys):
    from spine_det.tools import train_net

    out = tmp_path / "run"
    # was: config.yaml and log.txt written, then an 8-frame traceback
    assert train_net.main(["--config-file", "lat_vertebra.yaml", "--profile", "cpu", "OUTPUT_DIR", str(out)]) == 2
    assert "give --data-root DIR" in _error_line(capsys)
    assert train_net.main(["--config-file", "lat_vertebra.yaml", "--profile", "cpu", "--data-root",
                           str(tmp_path / "nope"), "OUTPUT_DIR", str(out)]) == 2
    assert "data root is not a folder" in _error_line(capsys)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert train_net.main(["--config-file", "lat_vertebra.yaml", "--profile", "cpu", "--data-root", str(data),
                           "OUTPUT_DIR", str(out), "SPINE.CACHE_DIR", str(blocker / "cache")]) == 2
    assert "cannot write the cache here (Not a directory); choose another" in _error_line(capsys)
    if torch.cuda.is_available() and torch.cuda.device_count() < 2:  # without CUDA: 2 CPU processes (test_maskrcnn_ddp)
        assert train_net.main(["--config-file", "lat_vertebra.yaml", "--profile", "cpu", "--data-root", str(data),
                               "--num-gpus", "2", "OUTPUT_DIR", str(out)]) == 2
        assert re.search(r"--num-gpus 2 asks for 2 GPUs, but this machine has \d", _error_line(capsys))
    # was: config.yaml, log.txt and the COCO conversion, then a line without "error:" (exit status 1)
    assert train_net.main(["--config-file", "lat_vertebra.yaml", "--profile", "cpu", "--data-root", str(data),
                           "--eval-only", "OUTPUT_DIR", str(out)]) == 2
    assert "--eval-only needs a checkpoint: MODEL.WEIGHTS" in _error_line(capsys)
    assert not out.exists()


def test_unwritable_cache_dir_is_one_line_before_anything_is_written(data, tmp_path, capsys):
    from spine_det.tools import train_classifier, train_linknet

    blocker = tmp_path / "a_file"
    blocker.write_text("x")  # a file where the cache folder should be: unwritable even for root
    out = tmp_path / "run"
    assert train_linknet.main(["--config-file", LINKNET_CFG, "--data-root", str(data), "--profile", "cpu",
                               "--cache-dir", str(blocker / "cache"), "OUTPUT_DIR", str(out), *TINY]) == 2
    msg = _error_line(capsys)
    assert "cache: cannot write the cache here (Not a directory); choose another (--cache-dir, SPINE.CACHE_DIR" in msg
    assert train_classifier.main(["--data-root", str(data), "--profile", "cpu", "--cache-dir", str(blocker / "c"),
                                  "OUTPUT_DIR", str(out)]) == 2
    assert "choose another (--cache-dir, SPINE.CACHE_DIR" in _error_line(capsys)
    assert train_linknet.main(["--config-file", LINKNET_CFG, "--data-root", str(data), "--profile", "cpu",
                               "--cache-dir", str(data / "cache"), "OUTPUT_DIR", str(out), *TINY]) == 2
    assert "cache folder lies inside the data root" in _error_line(capsys)
    if os.geteuid() != 0:  # root writes through permissions
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        assert train_linknet.main(["--config-file", LINKNET_CFG, "--data-root", str(data), "--profile", "cpu",
                                   "--cache-dir", str(ro / "cache"), "OUTPUT_DIR", str(out), *TINY]) == 2
        assert "cannot write the cache here" in _error_line(capsys)
    assert not out.exists() and not (data / "cache").exists()


def test_maskrcnn_resume_with_a_binary_last_checkpoint_is_one_line(tmp_path):
    from types import SimpleNamespace

    import spine_det.compat  # noqa: F401
    from detectron2.checkpoint import DetectionCheckpointer

    from spine_det.engine.trainer import SpineTrainer
    from spine_det.utils.checkpoint_io import CheckpointError

    ck = DetectionCheckpointer(torch.nn.Linear(2, 2), save_dir=str(tmp_path))
    fake = SimpleNamespace(checkpointer=ck, cfg=SimpleNamespace(OUTPUT_DIR=str(tmp_path), MODEL=SimpleNamespace(WEIGHTS="")))
    for pointer in (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8", b"", b"model_0000999.pth\nmodel_final.pth\n"):
        (tmp_path / "last_checkpoint").write_bytes(pointer)  # was: UnicodeDecodeError traceback (the PNG)
        with pytest.raises(CheckpointError, match="last_checkpoint: not the file Detectron2 writes there") as e:
            SpineTrainer.resume_or_load(fake, resume=True)
        assert "\n" not in str(e.value)


def test_linknet_and_classifier_runs_write_their_log_txt(data, tmp_path):
    """A Mask R-CNN run folder has Detectron2's log.txt; LinkNet's and the classifier's had none."""
    import logging

    from spine_det.tools import train_classifier, train_linknet

    root, package = logging.getLogger(), logging.getLogger("spine_det")
    before, before_package, propagate = list(root.handlers), list(package.handlers), package.propagate
    package.propagate = False  # as after a Mask R-CNN run in the same process (Detectron2's setup_logger)
    try:
        out = tmp_path / "linknet"
        assert train_linknet.main(["--config-file", LINKNET_CFG, "--data-root", str(data), "--profile", "cpu", "--no-test",
                                   "OUTPUT_DIR", str(out), "SOLVER.MAX_EPOCHS", "1", *TINY]) == 0
        text = (out / "log.txt").read_text()
        assert "training done" in text and "epoch 1/1" in text
        lines = [line for line in text.splitlines() if " INFO: " in line]  # each record once, not once per setup
        assert all(a != b for a, b in zip(lines, lines[1:])), "log.txt repeats records"
        cls = tmp_path / "cls"
        assert train_classifier.main(["--data-root", str(data), "--profile", "cpu", "MODEL.BACKBONE", "resnet10s",
                                      "MODEL.PRETRAINED", "False", "INPUT.HEIGHT", "64", "INPUT.WIDTH", "48",
                                      "SOLVER.MAX_EPOCHS", "1", "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(cls)]) == 0
        cls_lines = [line for line in (cls / "log.txt").read_text().splitlines() if " INFO: " in line]
        assert any("data:" in line for line in cls_lines) and all(a != b for a, b in zip(cls_lines, cls_lines[1:]))
    finally:  # the tools' file handlers are this test's, not the session's
        package.propagate = propagate
        for lg, kept in ((root, before), (package, before_package)):
            for h in set(lg.handlers) - set(kept):
                lg.removeHandler(h)
                h.close()


def test_num_gpus_counts_cuda_devices_or_cpu_processes(monkeypatch):
    """--num-gpus N: N CUDA devices where CUDA is, N CPU processes (gloo) where it is not and the device is the CPU."""
    from spine_det.engine.preflight import check_gpu_count
    from spine_det.utils.errors import UserError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(UserError, match="--num-gpus 2 asks for 2 GPUs, but this machine has 1; use --num-gpus 1"):
        check_gpu_count(2, "auto")
    check_gpu_count(1, "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    check_gpu_count(2, "cpu")
    check_gpu_count(2, "auto")
    with pytest.raises(UserError, match="has 0"):
        check_gpu_count(2, "cuda")

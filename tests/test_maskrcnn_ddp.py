"""``train-net --num-gpus 2`` on a machine without CUDA: two gloo processes train Mask R-CNN (Detectron2's
DDP wrapper needs no device_ids for a CPU model: spine_det.compat shim 3) and rank 0 writes the run folder."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_net_accepts_two_cpu_processes(prepared, phantom_root, tmp_path, monkeypatch):
    if torch.cuda.is_available():  # pragma: no cover
        pytest.skip("a machine with CUDA launches NCCL workers; this checks the CPU path")
    from spine_det.tools import train_net

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "run"
    rc = train_net.main([
        "--config-file", str(ROOT / "configs/lat_vertebra.yaml"), "--profile", "cpu", "--data-root", str(phantom_root),
        "--num-gpus", "2", "SPINE.CACHE_DIR", str(prepared.cache_dir), "OUTPUT_DIR", str(out),
        "SOLVER.MAX_ITER", "2", "SOLVER.WARMUP_ITERS", "1", "SOLVER.STEPS", "()", "SOLVER.IMS_PER_BATCH", "2",
        "SOLVER.CHECKPOINT_PERIOD", "100", "TEST.EVAL_PERIOD", "0", "INPUT.MIN_SIZE_TRAIN", "(128,)",
        "INPUT.MAX_SIZE_TRAIN", "224", "INPUT.MIN_SIZE_TEST", "128", "INPUT.MAX_SIZE_TEST", "224",
        "DATALOADER.NUM_WORKERS", "0"])
    assert rc in (0, None)
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pth"
    iters = [json.loads(ln)["iteration"] for ln in (out / "metrics.json").read_text().splitlines() if "total_loss" in ln]
    assert iters and max(iters) == 1  # two iterations (0, 1), each of 2 processes x 1 image
    from spine_det.utils.checkpoint_io import load_plain

    state = load_plain(out / "model_final.pth")["model"]
    assert not any(k.startswith("module.") for k in state)  # saved unwrapped, loads in one process

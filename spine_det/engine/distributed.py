"""Small torch.distributed helpers for torchrun / DDP training.

``torchrun --nproc_per_node N tools/train_linknet.py ...`` sets RANK,
WORLD_SIZE and LOCAL_RANK; :func:`init_from_env` reads them (NCCL on CUDA,
gloo on CPU). Without them everything degrades to one process: every helper
here is safe to call in a plain ``python`` run.
"""
from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any, List

import torch
import torch.distributed as dist

from spine_det.utils.arguments import check_device_name
from spine_det.utils.errors import UserError

logger = logging.getLogger(__name__)


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def get_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0)) if is_dist() else 0


def is_main_process() -> bool:
    """Only the main process writes checkpoints, logs and metric files."""
    return get_rank() == 0


class DeviceUnavailableError(UserError, RuntimeError):
    """The configured device does not exist here (``cuda`` on a machine without a GPU)."""


def check_device(device: str, what: str = "device") -> None:
    """One line (a :class:`~spine_det.utils.errors.UserError`) for a device name spine_det does not run on
    (``tpu``, ``gpu``: :func:`spine_det.utils.arguments.check_device_name`, the rule the command line and
    the API share) or a CUDA device this machine does not have."""
    check_device_name(device, what)
    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceUnavailableError(f"{what} {device!r} asked for, but CUDA is not available here; use cpu")
        idx = str(device).partition(":")[2]
        if idx.isdigit() and int(idx) >= torch.cuda.device_count():
            raise DeviceUnavailableError(f"{what} {device!r} asked for, but only {torch.cuda.device_count()} GPU(s) here")


def init_from_env(device_hint: str = "auto", timeout_min: int = 30) -> torch.device:
    """Join the process group torchrun describes (if any) and return this process's device.

    ``device_hint``: "auto" (CUDA when available), "cpu", "cuda" or "cuda:K".
    """
    device_hint = check_device_name(device_hint, "MODEL.DEVICE")  # tpu, gpu: one line, not a silent CPU run
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() if device_hint == "auto" else device_hint.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise DeviceUnavailableError(f"MODEL.DEVICE={device_hint!r} but CUDA is not available here; use MODEL.DEVICE cpu")
    if world > 1 and not is_dist():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=timedelta(minutes=timeout_min))
        logger.info("process group: rank %d / %d (%s)", get_rank(), world, dist.get_backend())
    if use_cuda:
        if is_dist():
            return torch.device("cuda", get_local_rank())
        return torch.device(device_hint if device_hint.startswith("cuda") else "cuda")
    return torch.device("cpu")


def synchronize() -> None:
    if is_dist() and get_world_size() > 1:
        dist.barrier()


def all_gather_object(obj: Any) -> List[Any]:
    """Picklable object from every rank, in rank order (a one-element list when not distributed)."""
    if not is_dist() or get_world_size() == 1:
        return [obj]
    out: List[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(value: float, device: torch.device | None = None) -> float:
    """Mean of a float over ranks."""
    if not is_dist() or get_world_size() == 1:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=device or "cpu")
    dist.all_reduce(t)
    return float(t.item()) / get_world_size()


def cleanup() -> None:
    if is_dist():
        dist.destroy_process_group()

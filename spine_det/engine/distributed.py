"""What ``detectron2.utils.comm`` lacks for spine_det's processes: joining a torchrun process group, this
process's device, and the device checks.

Ranks, gathers and barriers are Detectron2's (``comm.get_rank``, ``comm.all_gather``, ``comm.synchronize``).
``detectron2.engine.launch`` (:mod:`spine_det.engine.launch`) forms the process group itself;
``torchrun --nproc_per_node N ...`` only sets RANK, WORLD_SIZE and LOCAL_RANK, and :func:`init_from_env`
joins the group they describe (NCCL on CUDA, gloo on CPU). Without either, everything is one process and
every helper here is safe to call in a plain ``python`` run.
"""
from __future__ import annotations

import logging
import os
from datetime import timedelta

import spine_det.compat  # noqa: F401  (shims before detectron2)
import torch
import torch.distributed as dist
from detectron2.utils import comm

from spine_det.utils.arguments import check_device_name
from spine_det.utils.errors import UserError

__all__ = ["DeviceUnavailableError", "check_device", "cleanup", "get_local_rank", "init_from_env"]

logger = logging.getLogger(__name__)


def get_local_rank() -> int:
    """This process's rank on its machine: Detectron2's local group under ``launch``, LOCAL_RANK under
    torchrun (``comm.get_local_rank`` asserts without ``launch``'s group), 0 in one process."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0
    if comm._LOCAL_PROCESS_GROUP is not None:
        return comm.get_local_rank()
    return int(os.environ.get("LOCAL_RANK", 0))


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
    """Join the process group torchrun describes (if any and none is formed yet) and return this process's device.

    ``device_hint``: "auto" (CUDA when available), "cpu", "cuda" or "cuda:K".
    """
    device_hint = check_device_name(device_hint, "MODEL.DEVICE")  # tpu, gpu: one line, not a silent CPU run
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() if device_hint == "auto" else device_hint.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise DeviceUnavailableError(f"MODEL.DEVICE={device_hint!r} but CUDA is not available here; use MODEL.DEVICE cpu")
    if world > 1 and not dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=timedelta(minutes=timeout_min))
        logger.info("process group: rank %d / %d (%s)", comm.get_rank(), world, dist.get_backend())
    if use_cuda:
        if comm.get_world_size() > 1:
            return torch.device("cuda", get_local_rank())
        return torch.device(device_hint if device_hint.startswith("cuda") else "cuda")
    return torch.device("cpu")


def cleanup() -> None:
    """Leave the process group (the end of a torchrun process; ``launch``'s workers end with their process)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()

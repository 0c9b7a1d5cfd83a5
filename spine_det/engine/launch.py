"""Detectron2's ``launch``, with the compatibility shims applied in every process it spawns.

``detectron2.engine.launch`` starts one worker per GPU with ``torch.multiprocessing.spawn``: each is a
fresh interpreter that unpickles Detectron2's ``_distributed_worker`` first, which imports
``detectron2.engine`` before any spine_det module has run; with PyPI's Python-only Detectron2 that
import fails (``PIL.Image.LINEAR``, ``detectron2._C``: :mod:`spine_det.compat`), so ``--num-gpus 2``
died in every worker. Here the spawned entry point is :func:`_spawned_worker`, in this module, which
imports :mod:`spine_det.compat` at the top: unpickling it in the new process applies the shims before
the arguments (Detectron2's worker, the training function) are unpickled.

Detectron2 v0.6's worker asserts CUDA and forms an NCCL group; on a machine without CUDA the workers run
:func:`_gloo_worker` instead, Detectron2's (main's) worker for that case: a gloo group and the same local
process group, so ``--num-gpus 2`` trains with 2 CPU processes (tests, a machine without GPUs).
"""
from __future__ import annotations

import spine_det.compat  # first: a spawned worker imports this module before anything of Detectron2

from datetime import timedelta
from typing import Any, Callable, Optional, Sequence

__all__ = ["DEFAULT_TIMEOUT", "launch"]

DEFAULT_TIMEOUT = timedelta(minutes=30)  # Detectron2's


def _spawned_worker(local_rank: int, worker: Callable[..., Any], *args: Any) -> Any:
    """What each spawned process runs: ``worker(local_rank, *args)`` (Detectron2's ``_distributed_worker``),
    the shims applied by this module's import; :func:`spine_det.compat.apply` again, in case the worker's
    process imported this module some other way."""
    spine_det.compat.apply()
    return worker(local_rank, *args)


def _gloo_worker(local_rank: int, main_func: Callable[..., Any], world_size: int, num_gpus_per_machine: int,
                 machine_rank: int, dist_url: str, args: Sequence[Any], timeout: timedelta = DEFAULT_TIMEOUT) -> Any:
    """Detectron2's ``_distributed_worker`` with gloo where there is no CUDA (v0.6's asserts CUDA): the process
    group, the local (per-machine) group ``comm.get_local_rank`` reads, a barrier, then ``main_func(*args)``."""
    import torch.distributed as dist  # lazy: start-up (torch/Detectron2; this module stays light)
    from detectron2.utils import comm

    global_rank = machine_rank * num_gpus_per_machine + local_rank
    dist.init_process_group(backend="gloo", init_method=dist_url, world_size=world_size, rank=global_rank, timeout=timeout)
    for i in range(world_size // num_gpus_per_machine):
        group = dist.new_group(list(range(i * num_gpus_per_machine, (i + 1) * num_gpus_per_machine)))
        if i == machine_rank:
            comm._LOCAL_PROCESS_GROUP = group
    comm.synchronize()
    try:
        return main_func(*args)
    finally:
        dist.destroy_process_group()


def launch(main_func: Callable[..., Any], num_gpus_per_machine: int, num_machines: int = 1, machine_rank: int = 0,
           dist_url: Optional[str] = None, args: Sequence[Any] = (), timeout: timedelta = DEFAULT_TIMEOUT) -> Any:
    """``detectron2.engine.launch`` (same arguments, same process group), its workers started through
    :func:`_spawned_worker` (gloo workers without CUDA). One process in all: ``main_func(*args)`` here, as
    Detectron2 does."""
    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        return main_func(*args)
    import torch  # lazy: start-up (torch/Detectron2; this module stays light)
    import torch.multiprocessing as mp
    from detectron2.engine.launch import _distributed_worker, _find_free_port

    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError("dist_url=auto is not supported in multi-machine jobs")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    worker = _distributed_worker if torch.cuda.is_available() else _gloo_worker
    mp.spawn(_spawned_worker, nprocs=num_gpus_per_machine, daemon=False,
             args=(worker, main_func, world_size, num_gpus_per_machine, machine_rank, dist_url,
                   tuple(args), timeout))
    return None

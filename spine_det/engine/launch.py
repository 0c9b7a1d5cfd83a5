"""Detectron2's ``launch``, with the compatibility shims applied in every process it spawns.

``detectron2.engine.launch`` starts one worker per GPU with ``torch.multiprocessing.spawn``: each is a
fresh interpreter that unpickles Detectron2's ``_distributed_worker`` first, which imports
``detectron2.engine`` before any spine_det module has run; with PyPI's Python-only Detectron2 that
import fails (``PIL.Image.LINEAR``, ``detectron2._C``: :mod:`spine_det.compat`), so ``--num-gpus 2``
died in every worker. Here the spawned entry point is :func:`_spawned_worker`, in this module, which
imports :mod:`spine_det.compat` at the top: unpickling it in the new process applies the shims before
the arguments (Detectron2's worker, the training function) are unpickled.
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


def launch(main_func: Callable[..., Any], num_gpus_per_machine: int, num_machines: int = 1, machine_rank: int = 0,
           dist_url: Optional[str] = None, args: Sequence[Any] = (), timeout: timedelta = DEFAULT_TIMEOUT) -> Any:
    """``detectron2.engine.launch`` (same arguments, same process group), its workers started through
    :func:`_spawned_worker`. One process in all: ``main_func(*args)`` here, as Detectron2 does."""
    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        return main_func(*args)
    import torch.multiprocessing as mp
    from detectron2.engine.launch import _distributed_worker, _find_free_port

    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError("dist_url=auto is not supported in multi-machine jobs")
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    mp.spawn(_spawned_worker, nprocs=num_gpus_per_machine, daemon=False,
             args=(_distributed_worker, main_func, world_size, num_gpus_per_machine, machine_rank, dist_url,
                   tuple(args), timeout))
    return None

"""What a training tool checks before it writes anything: the data root, the device, the network
name, the output and cache folders, the number of GPUs.

Each of these used to fail only after the tool had written ``OUTPUT_DIR/config.yaml`` (or after the
data scan, or in the spawned workers), with a traceback; here each is one line (a
:class:`~spine_det.utils.errors.UserError`) before the first file is written.
"""
from __future__ import annotations

import difflib
import logging
import os
from pathlib import Path
from typing import List, Optional, Union

import torch

from spine_det.data.prepare import CACHE_ENV, default_cache_dir
from spine_det.engine.distributed import check_device
from spine_det.modeling.semseg import registered_networks
from spine_det.utils.errors import DataError, UserError
from spine_det.utils.paths import OutputLocationError, ensure_writable, prepare_output, refuse_inside

PathLike = Union[str, os.PathLike]
logger = logging.getLogger(__name__)

__all__ = ["check_cache_dir", "check_data_root", "check_gpu_count", "check_seg_model_name", "check_training_inputs",
           "seg_model_names"]


def check_data_root(data_root: Optional[PathLike], key: str = "SPINE.DATA_ROOT") -> Path:
    """The data root, resolved; :class:`UserError` when none is given, :class:`DataError` when it is not a folder."""
    if not data_root:
        raise UserError(f"give --data-root DIR (or {key} DIR)")
    root = Path(data_root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(root, "data root is not a folder")
    return root


def check_cache_dir(cache_dir: Optional[PathLike], data_root: PathLike, key: str = "SPINE.CACHE_DIR") -> Path:
    """The cache folder the scan will write (``cache_dir``, else the default one of ``data_root``):
    outside the data root and writable, or one line why. Not locked: the cache has its own lock."""
    cache = Path(cache_dir).expanduser().resolve() if cache_dir else default_cache_dir(data_root)
    refuse_inside(cache, data_root, what="cache folder")
    try:
        return ensure_writable(cache)
    except OutputLocationError as e:
        raise OutputLocationError(cache, e.reason.replace("the output", "the cache", 1)
                                  + f"; choose another (--cache-dir, {key} or ${CACHE_ENV})") from None


def seg_model_names() -> List[str]:
    """Every ``MODEL.NAME`` the segmentation trainer can build: the networks every family registers
    (``linknet``, ``smp_*``, ...: :func:`spine_det.modeling.semseg.registered_networks`)."""
    return registered_networks()


def check_seg_model_name(name: str) -> None:
    """:class:`UserError` naming the registered networks (and the nearest one) for an unknown ``MODEL.NAME``."""
    names = seg_model_names()
    if name in names:
        return
    near = difflib.get_close_matches(str(name), names, n=1, cutoff=0.6)
    raise UserError(f"MODEL.NAME {name!r} is not a registered network" + (f"; did you mean {near[0]}?" if near else "")
                    + f" (registered: {', '.join(names)})")


def check_gpu_count(num_gpus: int, device: str = "auto") -> None:
    """:class:`UserError` when ``--num-gpus`` asks for more CUDA devices than this machine has
    (Detectron2's spawned workers would each fail with an assertion). On a machine without CUDA, with
    ``MODEL.DEVICE`` cpu or auto, ``--num-gpus N`` starts N CPU processes (gloo): accepted."""
    if num_gpus <= 1:
        return

    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if have == 0 and str(device).split(":")[0] in ("cpu", "auto"):
        logger.info("--num-gpus %d on a machine without CUDA: %d CPU processes (gloo)", num_gpus, num_gpus)
        return
    if have < num_gpus:
        raise UserError(f"--num-gpus {num_gpus} asks for {num_gpus} GPUs, but this machine has {have}; "
                        f"use --num-gpus {max(1, have)}")


def check_training_inputs(output_dir: PathLike, data_root: Optional[PathLike], cache_dir: Optional[PathLike] = None,
                          device: str = "auto", data_key: str = "SPINE.DATA_ROOT", cache_key: str = "SPINE.CACHE_DIR",
                          lock: bool = True) -> Path:
    """Everything a trainer needs that the user names, checked before anything is written: the data
    root is a folder, ``device`` exists here, the cache folder is writable and outside the data root;
    last, the output folder is prepared (:func:`spine_det.utils.paths.prepare_output`: outside the data
    root, writable, and locked unless ``lock`` is False). Returns the output folder."""
    root = check_data_root(data_root, data_key)
    check_device(device, "MODEL.DEVICE")
    check_cache_dir(cache_dir, root, cache_key)
    return prepare_output(output_dir, root, lock=lock)

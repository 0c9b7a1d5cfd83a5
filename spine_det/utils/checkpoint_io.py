"""Checkpoints as plain data: written so that ``torch.load(weights_only=True)`` reads them, and
read only that way, so that a checkpoint file can never run code.

A pickle can name any Python callable; ``weights_only=True`` restricts unpickling to tensors and
plain containers (dict, list, tuple, str, int, float, bool, None). Everything this package writes
fits that (configs are stored as YAML text, RNG states as tensors and ints), so a file that needs
more was not written by spine_det and is refused with one line naming it.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import random
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np

from spine_det.utils.errors import UserError
from spine_det.utils.fileio import atomic_path
from spine_det.utils.provenance import provenance

# torch (1.1 s to import) is imported by the functions that use it: CheckpointError and load_plain's callers
# include light modules (spine_det.api, engine.predictor, predict's --help) that must start without it.

PathLike = Union[str, os.PathLike]

# Checkpoints of the package that no segmentation model family wrote, to tell a user who passed one to the
# wrong tool. The model families recognise their own (ModelFamily.recognizes, spine_det.modeling.registry:
# checkpoint_family / require_family).
KIND_HINTS = {
    "classifier": "this is a Normal/Damaged classifier checkpoint (spine-det train-classifier), not a segmentation model",
}


class CheckpointError(UserError, ValueError):
    """A missing or unusable checkpoint; one line naming the file."""


def to_plain(obj: Any) -> Any:
    """``obj`` with numpy scalars/arrays turned into Python numbers / tensors (weights_only-loadable)."""
    import torch

    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_plain(v) for v in obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def save_plain(path: PathLike, obj: Dict[str, Any]) -> None:
    """``torch.save`` of :func:`to_plain` (obj), atomically, stamped with the spine_det version (and
    commit) that wrote it (:func:`spine_det.utils.provenance.provenance`: plain strings)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(to_plain({**obj, **provenance()}), tmp)


def load_plain(path: PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line :class:`CheckpointError` s.

    A file holding other Python objects (a planted pickle, a checkpoint of another program) is
    refused before any of its code could run.
    """
    import torch

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        allow = getattr(torch.serialization, "safe_globals", None)  # torch >= 2.5
        with allow(_numpy_globals()) if allow else contextlib.nullcontext():
            return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "global" in ln.lower() or "but got" in ln), "")
        if not detail:  # a damaged file ("Unsupported operand"), not a forbidden object
            why = next((ln for ln in lines if ln.startswith("Unsupported")), "")
            raise CheckpointError(f"{path}: cannot be read as a PyTorch checkpoint (corrupt or cut short"
                                  + (f": {why[:120]})" if why else ")")) from None
        raise CheckpointError(
            f"{path}: refused: it holds Python objects beyond tensors and plain data, which spine_det never "
            f"writes, so it was not loaded (loading it could run code). {detail[:200]}"
        ) from None
    except Exception as e:  # noqa: BLE001  (truncated zip, not a checkpoint at all, ...)
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(f"{path}: cannot be read as a PyTorch checkpoint ({type(e).__name__}: {msg[:200]})") from None


def _numpy_globals() -> list:
    """numpy arrays, dtypes and scalars: data only (their reconstruction calls no user code), found in
    checkpoints written before RNG states were stored as tensors; allowed so those still load."""
    core = getattr(np, "_core", None) or np.core
    numeric = [getattr(np.dtypes, n) for n in dir(getattr(np, "dtypes", None))
               if n.endswith("DType") and n not in ("ObjectDType", "VoidDType", "StringDType")]
    return [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype, *numeric]


def checkpoint_kind(data: Any) -> Optional[str]:
    """``"classifier"`` or None for a loaded checkpoint dict (segmentation families: the model registry)."""
    if isinstance(data, dict) and "view" in data and "backbone" in data:
        return "classifier"
    return None


def restore_training_state(ck: Dict[str, Any], model: Any, optimizer: Any, scheduler: Any = None, scaler: Any = None,
                           early_stop: Any = None) -> None:
    """Load what a trainer's ``last_checkpoint`` holds into the live objects (those given, and present)."""
    model.load_state_dict(ck["model"])
    optimizer.load_state_dict(ck["optimizer"])
    for obj, key in ((scheduler, "scheduler"), (scaler, "scaler"), (early_stop, "early_stop")):
        if obj is not None and ck.get(key) is not None:
            obj.load_state_dict(ck[key])


# -- RNG states as plain data ---------------------------------------------------------------


def rng_state() -> Dict[str, Any]:
    """Python, numpy and torch RNG states, as tensors / ints (no numpy objects in the pickle)."""
    import torch

    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state: Dict[str, Any] = {
        "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss": None if gauss is None else float(gauss)},
        "numpy": {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of :func:`rng_state` (CUDA states skipped when the GPU count changed)."""
    import torch

    py, n = state["python"], state["numpy"]
    if isinstance(py, dict):
        random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    else:  # written by an older version: the raw getstate() tuples
        random.setstate(py)
    if isinstance(n, dict):
        np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    else:
        np.random.set_state(n)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        try:
            torch.cuda.set_rng_state_all(state["cuda"])
        except RuntimeError:  # different GPU count on resume
            pass

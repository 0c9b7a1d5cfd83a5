"""Every compatibility shim spine_det needs to run Detectron2, in one place.

Every spine_det module that uses Detectron2 imports this module first
(``import spine_det.compat``); it is cheap (no Detectron2 or torch import). Each shim is applied only when its problem is actually present, so with
an official Detectron2 build (compiled ``_C``) and matching libraries nothing
here changes anything.

Why each shim exists:

1. ``PIL.Image.LINEAR`` was removed in Pillow 10. Detectron2 v0.6 reads it as a
   default argument in ``data/transforms/transform.py``, so ``import
   detectron2.data`` fails without it. It was always an alias of ``BILINEAR``.
2. ``detectron2._C`` is the compiled extension. PyPI's ``pb1-detectron2==0.6``
   ships the Python sources only, and in v0.6 ``layers``, ``structures`` and
   ``evaluation`` import ``_C`` at module level. We register a stand-in module
   whose ops (rotated boxes, deformable conv, fast COCO eval) raise
   :class:`CompiledOpsMissingError` naming what to install, and whose
   environment probes (used by ``collect_env`` via ``default_setup``) answer.
   Standard Mask R-CNN needs none of those ops (RoIAlign and NMS come from
   torchvision). Known gap: v0.6 reaches ``nms_rotated`` through
   ``torch.ops.detectron2`` rather than ``_C``, so that one op fails with torch's
   own "no such operator" error.
3. ``detectron2.engine.defaults.create_ddp_model`` gives DDP ``device_ids=[local rank]`` also for a model on
   the CPU, which DDP refuses, so ``--num-gpus 2`` on a machine without CUDA (gloo processes: tests, CPU
   servers) failed in the trainer's constructor. :func:`patch_cpu_ddp` (called by the Mask R-CNN trainer
   when it imports Detectron2's engine) leaves ``device_ids`` unset for CPU models.
4. ``pkg_resources`` (used by ``detectron2.model_zoo`` in v0.6 and in main) was
   removed from setuptools 81+; setup.py pins ``setuptools<81`` (no shim needed here).
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path
from typing import Optional

from PIL import Image

_INSTALL_HINT = (
    "this Detectron2 has no compiled ops (installed from PyPI's Python-only sources); "
    "build the official one with `DETECTRON2_SOURCE=git make install` on a machine that reaches GitHub"
)


class CompiledOpsMissingError(RuntimeError):
    """Raised when code asks for a Detectron2 op that needs the compiled extension."""


class _CompiledOpsStandIn(types.ModuleType):
    """Stand-in for ``detectron2._C``: imports fine, fails clearly when an op is used."""

    is_spine_det_stand_in = True

    def __init__(self) -> None:
        super().__init__("detectron2._C", "spine_det stand-in for Detectron2's compiled ops")

    # collect_env() calls these three through default_setup().
    @staticmethod
    def get_compiler_version() -> str:
        return "none (no compiled ops)"

    @staticmethod
    def get_cuda_version() -> str:
        return "none (no compiled ops)"

    @staticmethod
    def has_cuda() -> bool:
        return False

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise CompiledOpsMissingError(f"detectron2._C.{name} is not available: {_INSTALL_HINT}")


def _detectron2_dir() -> Optional[Path]:
    """Folder of the installed detectron2 package, found without importing it."""
    spec = importlib.util.find_spec("detectron2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def has_compiled_ops() -> bool:
    """True when the installed Detectron2 carries its compiled ``_C`` extension."""
    d2 = _detectron2_dir()
    return bool(d2 and any(d2.glob("_C.*")))


def _patch_pillow() -> None:
    if not hasattr(Image, "LINEAR"):
        Image.LINEAR = Image.BILINEAR  # type: ignore[attr-defined]


def _install_compiled_ops_stand_in() -> None:
    if "detectron2._C" in sys.modules or _detectron2_dir() is None or has_compiled_ops():
        return
    # `from detectron2 import _C` falls back to sys.modules["detectron2._C"] when the
    # package has no such attribute, so detectron2 itself need not be imported here.
    sys.modules["detectron2._C"] = _CompiledOpsStandIn()


def patch_cpu_ddp() -> None:
    """Shim 3: Detectron2's ``create_ddp_model`` without ``device_ids`` for a model on the CPU. Imports
    Detectron2's engine, so it is not part of :func:`apply`; idempotent."""
    from detectron2.engine import defaults

    original = defaults.create_ddp_model
    if getattr(original, "is_spine_det_shim", False):
        return

    def create_ddp_model(model, *, fp16_compression: bool = False, **kwargs):
        params = next(iter(model.parameters()), None)
        if params is not None and params.device.type == "cpu":
            kwargs.setdefault("device_ids", None)
        return original(model, fp16_compression=fp16_compression, **kwargs)

    create_ddp_model.is_spine_det_shim = True
    defaults.create_ddp_model = create_ddp_model


def apply() -> None:
    """Apply every shim that is needed; safe to call many times."""
    _patch_pillow()
    _install_compiled_ops_stand_in()


def uses_stand_in() -> bool:
    """True when ``detectron2._C`` is our stand-in rather than the compiled extension."""
    return bool(getattr(sys.modules.get("detectron2._C"), "is_spine_det_stand_in", False))


apply()

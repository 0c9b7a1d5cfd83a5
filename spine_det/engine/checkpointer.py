"""Detectron2's checkpointer (and fvcore's, :class:`PlainCheckpointer`, for the trainers of
:mod:`spine_det.engine.epoch_trainer`), reading only what cannot run code.

Detectron2 unpickles ``.pkl`` weights with ``pickle.load`` and leaves ``torch.load``'s
``weights_only`` at the torch default (False before torch 2.6). Here:

* ``.pth`` (what the trainer writes, resumed from ``last_checkpoint``) is read with
  ``weights_only=True`` (:func:`spine_det.utils.checkpoint_io.load_plain`);
* ``.pkl`` (pickles) are read only from the Detectron2 model zoo's own addresses
  (``detectron2://...`` or ``https://dl.fbaipublicfiles.com/detectron2/...``), or from a local
  file the user vouches for with ``SPINE_DET_TRUST_PICKLE=1`` (e.g. a model-zoo file copied
  to an offline machine). Detectron2 publishes no hashes of those files, so none is checked.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, Optional

import spine_det.compat  # noqa: F401  (shims before detectron2)
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.utils import comm
from fvcore.common.checkpoint import Checkpointer

from spine_det.modeling.backbone_init import convert_loaded
from spine_det.utils.checkpoint_io import CheckpointError, load_plain, save_plain
from spine_det.utils.provenance import provenance

TRUST_ENV = "SPINE_DET_TRUST_PICKLE"
MODEL_ZOO_PREFIXES = (
    "detectron2://",
    "https://dl.fbaipublicfiles.com/detectron2/",
    "https://dl.fbaipublicfiles.com/detectron/",
)
PICKLE_SUFFIXES = (".pkl", ".pyth")


def is_pickle_weights(path: str) -> bool:
    return str(path).lower().endswith(PICKLE_SUFFIXES)


def check_trusted_weights(path: str) -> None:
    """CheckpointError unless ``path`` is a model-zoo address (or trusted through the environment)."""
    path = str(path)
    if not is_pickle_weights(path) or path.startswith(MODEL_ZOO_PREFIXES):
        return
    if os.environ.get(TRUST_ENV, "") == "1":
        return
    raise CheckpointError(
        f"{path}: refused: a {Path(path).suffix} file is a Python pickle and can run code when loaded; "
        f"use the model zoo's address (detectron2://...) or, for a model-zoo file you copied yourself, "
        f"set {TRUST_ENV}=1"
    )


class PlainCheckpointer(Checkpointer):
    """fvcore's :class:`Checkpointer` (Detectron2's for every model) writing and reading plain data only:
    each save is atomic, stamped with the spine_det version and commit and with ``metadata`` (e.g. the config
    text and the tasks, which predict reads back), and ``weights_only=True`` readable; ``.pth`` files are
    read that way. Saves on the main process only, as Detectron2's checkpointer."""

    metadata: Dict[str, Any] = {}

    def __init__(self, model: Any, save_dir: str = "", *, save_to_disk: Optional[bool] = None,
                 metadata: Optional[Dict[str, Any]] = None, **checkpointables: Any) -> None:
        super().__init__(model, save_dir, save_to_disk=comm.is_main_process() if save_to_disk is None else save_to_disk,
                         **checkpointables)
        self.metadata = dict(metadata or {})

    def save(self, name: str, **kwargs: Any) -> None:
        """fvcore's save, stamped (version, commit, :attr:`metadata`) and, for a local folder, written
        atomically: a full disk leaves no half-written checkpoint and is one line naming it."""
        if not self.save_dir or not self.save_to_disk:
            return
        if "://" in str(self.save_dir):  # a PathManager address: fvcore's own writer
            return super().save(name, **{**self.metadata, **kwargs, **provenance()})
        data = {"model": self.model.state_dict(), **{k: obj.state_dict() for k, obj in self.checkpointables.items()},
                **self.metadata, **kwargs}
        basename = f"{name}.pth"
        self.logger.info("Saving checkpoint to %s", os.path.join(self.save_dir, basename))
        save_plain(os.path.join(self.save_dir, basename), data)  # adds the version stamp
        self.tag_last_checkpoint(basename)

    def get_checkpoint_file(self) -> str:
        """The checkpoint ``last_checkpoint`` names (fvcore's rule); :class:`CheckpointError` in one line when
        that file is not the one line of text Detectron2 writes there (binary, empty, several lines)."""
        pointer = os.path.join(self.save_dir, "last_checkpoint")
        try:
            with self.path_manager.open(pointer, "rb") as f:
                raw = f.read()
        except OSError:  # deleted meanwhile (fvcore: no checkpoint)
            return ""
        try:
            name = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            name = ""
        if not name or not name.isprintable():
            raise CheckpointError(
                f"{pointer}: not the file Detectron2 writes there (one line naming the checkpoint to resume "
                "from, e.g. model_0000999.pth); fix or delete it (or start without --resume)")
        return os.path.join(self.save_dir, name)

    def _load_file(self, filename: str) -> Dict[str, Any]:
        loaded = load_plain(filename)
        if not isinstance(loaded, dict):
            raise CheckpointError(f"{filename}: not a checkpoint (a {type(loaded).__name__}, not a dict)")
        return loaded if "model" in loaded else {"model": loaded}


class SafeDetectionCheckpointer(PlainCheckpointer, DetectionCheckpointer):
    """:class:`DetectionCheckpointer` whose loads go through :func:`check_trusted_weights` and
    ``weights_only=True``, and whose saves carry the spine_det version (:class:`PlainCheckpointer`)."""

    def load(self, path: str, *args: Any, **kwargs: Any) -> Dict[str, Any]:
        if path:
            check_trusted_weights(path)
        return super().load(path, *args, **kwargs)

    def _load_file(self, filename: str) -> Dict[str, Any]:
        if is_pickle_weights(filename):  # reached only through load(), after the check above
            return DetectionCheckpointer._load_file(self, filename)
        loaded = super()._load_file(filename)

        converted = convert_loaded(loaded)  # a LinkNet checkpoint: its encoder as the R18 backbone
        return converted if converted is not None else loaded


def harden(trainer: Any) -> None:
    """Make a DefaultTrainer's checkpointer safe in place (the hooks keep the same object)."""
    trainer.checkpointer.__class__ = SafeDetectionCheckpointer

"""A run folder's ``log.txt``, for every family.

Detectron2's ``setup_logger`` gives a Mask R-CNN run its ``OUTPUT_DIR/log.txt``; the other trainers
(LinkNet and the smp networks, the classifier) log to the console only, so a run folder could not say
what happened in it. :func:`log_to_run_folder` appends this process's log records to the same file
name (rank k > 0 of a multi-process run: ``log.txt.rank<k>``, as Detectron2 names them).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Union

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_to_run_folder(output_dir: Union[str, os.PathLike], rank: int = 0, level: int = logging.INFO) -> Path:
    """Append the root logger's records (``level`` and above) to ``<output_dir>/log.txt``; once per file."""
    path = Path(output_dir) / ("log.txt" if rank == 0 else f"log.txt.rank{rank}")
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for h in root.handlers:
        if isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path.resolve():
            return path  # already written there
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)
    if root.level > level or root.level == logging.NOTSET:
        root.setLevel(level)
    package = logging.getLogger("spine_det")
    if not package.propagate:  # Detectron2's setup_logger(name="spine_det") stops it at its own handlers
        package.addHandler(handler)
    return path


__all__ = ["LOG_FORMAT", "log_to_run_folder"]

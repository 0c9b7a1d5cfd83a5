"""The one logging setup of every tool (in place of a ``logging.basicConfig`` call per tool).

Every logger of the package lives under ``spine_det``; :func:`setup_logging` gives that logger its
handlers:

* ``setup_logging()`` (every tool, first thing): the console. Records at ``level`` and above, one line
  each on stderr (``INFO spine_det.predict: ...``), so that stdout keeps what a tool prints as its result.
* ``setup_logging(output_dir, rank)`` (a training run, once its inputs are checked): Detectron2's
  ``setup_logger`` for the ``spine_det``, ``detectron2`` and ``fvcore`` loggers: the console on rank 0
  and ``<output_dir>/log.txt`` (rank k > 0: ``log.txt.rank<k>``) for every family, the file and format a
  Mask R-CNN run has always had. The console handler of the first form steps aside for Detectron2's.

Third-party loggers are left alone: their warnings reach stderr through Python's last-resort handler.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Optional, Union

PACKAGE_LOGGER = "spine_det"
CONSOLE_FORMAT = "%(levelname)s %(name)s: %(message)s"
RUN_LOGGERS = ((PACKAGE_LOGGER, "spine"), ("detectron2", "d2"), ("fvcore", "fvcore"))  # (name, abbreviation)
_CONSOLE = "_spine_det_console"  # marks the console handler setup_logging() added


class _StderrHandler(logging.StreamHandler):
    """A handler on ``sys.stderr`` as it is when a record comes, not as it was at setup (pytest, a
    notebook or a caller's redirect_stderr replace it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ and setStream assign it
        pass


def _console_handlers(logger: logging.Logger) -> list:
    return [h for h in logger.handlers if getattr(h, _CONSOLE, False)]


def setup_logging(output_dir: Optional[Union[str, os.PathLike]] = None, rank: int = 0,
                  level: int = logging.INFO) -> logging.Logger:
    """The package logger, set up for a tool (see the module's text); safe to call again."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    if output_dir is None:
        if not logger.handlers:
            handler = _StderrHandler()
            handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))
            setattr(handler, _CONSOLE, True)
            logger.addHandler(handler)
        for handler in _console_handlers(logger):
            handler.setLevel(level)
        if logger.level == logging.NOTSET or logger.level > level:
            logger.setLevel(level)
        return logger
    for handler in _console_handlers(logger):
        logger.removeHandler(handler)
    # Detectron2 is an optional dependency (spine-det install-detectron2), and its logger module imports
    # torch: 1.5 s that a tool without a run folder does not pay. Its compat shims come first.
    import spine_det.compat  # noqa: F401
    from detectron2.utils.logger import setup_logger

    for name, abbrev in RUN_LOGGERS:
        setup_logger(output=str(Path(output_dir)), distributed_rank=rank, name=name, abbrev_name=abbrev)
    # setup_logger stops propagation; records still reach handlers a caller put on the root logger
    # (pytest's caplog, a notebook's); the command line puts none there.
    logger.propagate = True
    return logger


def log_to_run_folder(output_dir: Union[str, os.PathLike], rank: int = 0) -> Path:
    """The earlier name of ``setup_logging(output_dir, rank)``; returns this process's log file."""
    setup_logging(output_dir, rank)
    return Path(output_dir) / ("log.txt" if rank == 0 else f"log.txt.rank{rank}")


__all__ = ["CONSOLE_FORMAT", "PACKAGE_LOGGER", "log_to_run_folder", "setup_logging"]

"""The one logging setup of every tool (in place of a ``logging.basicConfig`` call per tool).

Every logger of the package lives under ``spine_det``; :func:`setup_logging` gives that logger its
handlers:

* ``setup_logging()`` (every tool, first thing): the console. Records at ``level`` and above, one line
  each on stderr (``INFO spine_det.predict: ...``), so that stdout keeps what a tool prints as its result.
* ``setup_logging(output_dir, rank)`` (a training run, once its inputs are checked): Detectron2's
  ``setup_logger`` for the ``spine_det``, ``detectron2`` and ``fvcore`` loggers: the console on rank 0
  and ``<output_dir>/log.txt`` (rank k > 0: ``log.txt.rank<k>``) for every family, the file and format a
  Mask R-CNN run has always had.

Each call replaces the handlers the previous one added.

Third-party loggers are left alone: their warnings reach stderr through Python's last-resort handler.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple, Union

PACKAGE_LOGGER = "spine_det"
CONSOLE_FORMAT = "%(levelname)s %(name)s: %(message)s"
RUN_LOGGERS = ((PACKAGE_LOGGER, "spine"), ("detectron2", "d2"), ("fvcore", "fvcore"))  # (name, abbreviation)
# The handlers the last call added. The next call removes them first, so that a process running several
# tools one after the other (the tests, a notebook) logs each record once, to the current run's log.txt
# only, and never to a stream that an earlier caller has closed.
_ADDED: List[Tuple[logging.Logger, logging.Handler]] = []


class _CurrentStream:
    """``sys.stdout`` or ``sys.stderr`` as it is when a record is written, not as it was at setup (pytest,
    a notebook or a caller's redirect_stdout replace it, and may close the one they replaced)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, text: str) -> int:
        return getattr(sys, self.name).write(text)

    def flush(self) -> None:
        getattr(sys, self.name).flush()


def _remove_added() -> None:
    for logger, handler in _ADDED:
        logger.removeHandler(handler)  # (Detectron2's file streams stay open: it caches one per file)
    _ADDED.clear()


def setup_logging(output_dir: Optional[Union[str, os.PathLike]] = None, rank: int = 0,
                  level: int = logging.INFO) -> logging.Logger:
    """The package logger, set up for a tool (see the module's text); a new call replaces what the last
    one set up."""
    _remove_added()
    logger = logging.getLogger(PACKAGE_LOGGER)
    if output_dir is None:
        handler = logging.StreamHandler(_CurrentStream("stderr"))
        handler.setFormatter(logging.Formatter(CONSOLE_FORMAT))
        handler.setLevel(level)
        logger.addHandler(handler)
        _ADDED.append((logger, handler))
        if logger.level == logging.NOTSET or logger.level > level:
            logger.setLevel(level)
        return logger
    # Detectron2 is an optional dependency (spine-det install-detectron2), and its logger module imports
    # torch: 1.5 s that a tool without a run folder does not pay. Its compat shims come first.
    import spine_det.compat  # noqa: F401
    from detectron2.utils.logger import setup_logger

    # setup_logger caches its loggers by argument (one set of handlers per output folder, for ever); the
    # function under the cache is called here, and the handlers it adds are the ones _ADDED tracks.
    make = getattr(setup_logger, "__wrapped__", setup_logger)
    for name, abbrev in RUN_LOGGERS:
        named = logging.getLogger(name)
        before = set(named.handlers)
        make(output=str(Path(output_dir)), distributed_rank=rank, name=name, abbrev_name=abbrev)
        for handler in named.handlers:
            if handler in before:
                continue
            if getattr(handler, "stream", None) is sys.stdout:  # the console (rank 0)
                handler.setStream(_CurrentStream("stdout"))
            _ADDED.append((named, handler))
    # setup_logger stops propagation; records still reach handlers a caller put on the root logger
    # (pytest's caplog, a notebook's); the command line puts none there.
    logger.propagate = True
    return logger


def log_to_run_folder(output_dir: Union[str, os.PathLike], rank: int = 0) -> Path:
    """The earlier name of ``setup_logging(output_dir, rank)``; returns this process's log file."""
    setup_logging(output_dir, rank)
    return Path(output_dir) / ("log.txt" if rank == 0 else f"log.txt.rank{rank}")


__all__ = ["CONSOLE_FORMAT", "PACKAGE_LOGGER", "log_to_run_folder", "setup_logging"]

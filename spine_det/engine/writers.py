"""Detectron2's ``metrics.json``, each line also naming the spine_det version (and commit) that wrote it
(:func:`spine_det.utils.provenance.provenance`), as every checkpoint does."""
from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, List

import spine_det.compat  # noqa: F401  (shims before detectron2)
from detectron2.utils import comm
from detectron2.utils.events import EventWriter, JSONWriter, get_event_storage

from spine_det.utils.fileio import atomic_write_text
from spine_det.utils.provenance import provenance


class StampedJSONWriter(JSONWriter):
    """:class:`JSONWriter` whose lines carry ``spine_det_version`` and ``git_commit``.

    ``write`` is Detectron2's (v0.6 and main alike) with the stamp added to each line."""

    def __init__(self, json_file: str, window_size: int = 20) -> None:
        super().__init__(json_file, window_size)
        self._stamp = provenance()

    def write(self) -> None:
        storage = get_event_storage()
        to_save: Any = defaultdict(dict)
        for k, (v, itr) in storage.latest_with_smoothing_hint(self._window_size).items():
            if itr <= self._last_write:  # keep scalars that have not been written
                continue
            to_save[itr][k] = v
        if len(to_save):
            self._last_write = max(to_save)
        for itr, scalars in to_save.items():
            scalars["iteration"] = itr
            self._file_handle.write(json.dumps({**scalars, **self._stamp}, sort_keys=True) + "\n")
        self._file_handle.flush()
        try:
            os.fsync(self._file_handle.fileno())
        except AttributeError:
            pass


def stamp_json_writers(writers: List[EventWriter]) -> List[EventWriter]:
    """``writers`` (Detectron2's ``default_writers``) with each JSONWriter replaced by a
    :class:`StampedJSONWriter` on the same file."""
    out: List[EventWriter] = []
    for w in writers:
        if type(w) is JSONWriter:
            path = w._file_handle.name
            w.close()
            w = StampedJSONWriter(path, w._window_size)
        out.append(w)
    return out


def trim_metrics_json(path: Path, start_iter: int) -> None:
    """Drop the lines of ``metrics.json`` from iteration ``start_iter`` on (main process), before a
    :class:`JSONWriter` appends to it: a resumed run's file then holds each iteration once, and a run started
    afresh (``start_iter`` 0) does not continue an earlier run's file. Lines that are not JSON are dropped."""
    path = Path(path)
    if not path.is_file() or not comm.is_main_process():
        return
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            if int(json.loads(line).get("iteration", start_iter)) < start_iter:
                kept.append(line)
        except (ValueError, AttributeError, TypeError):
            continue
    atomic_write_text(path, "".join(f"{ln}\n" for ln in kept))

"""The one guard every tool puts in front of an output folder: never inside the data, and writable.

An output inside a data root is read back as data by the next scan (and changes the root's
fingerprint, so every cache is rebuilt); a read-only output fails hours later at the first
checkpoint. Both are refused before anything runs, in one line naming the folder.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional, Union

from spine_det.utils.errors import DataError

PathLike = Union[str, os.PathLike]


class OutputLocationError(DataError):
    """An output folder inside the data (or input) folder, or one that cannot be written."""


def is_within(path: PathLike, folder: PathLike) -> bool:
    """True when ``path`` is ``folder`` or lies under it (both resolved)."""
    p, f = Path(path).expanduser().resolve(), Path(folder).expanduser().resolve()
    return p == f or f in p.parents


def refuse_inside(output: PathLike, *sources: Optional[PathLike], label: str = "data root",
                  what: str = "output folder") -> Path:
    """``output`` resolved; :class:`OutputLocationError` if it is or lies in one of ``sources``
    (``None`` / empty entries are skipped)."""
    out = Path(output).expanduser().resolve()
    for src in sources:
        if not src:
            continue
        root = Path(src).expanduser().resolve()
        if is_within(out, root):
            raise OutputLocationError(out, f"{what} lies inside the {label} {root}; write elsewhere")
    return out


def ensure_writable(folder: PathLike) -> Path:
    """Create ``folder`` (and parents) and prove a file can be written there; else one line why."""
    p = Path(folder).expanduser().resolve()
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputLocationError(p, f"cannot write the output here ({e.strerror or type(e).__name__})") from None
    return p


def prepare_output(output: PathLike, *sources: Optional[PathLike], label: str = "data root") -> Path:
    """:func:`refuse_inside` then :func:`ensure_writable`: what a tool calls before writing anything."""
    out = refuse_inside(output, *sources, label=label)
    return ensure_writable(out)

"""The one guard every tool puts in front of an output folder: never inside the data, and writable.

An output inside a data root is read back as data by the next scan (and changes the root's
fingerprint, so every cache is rebuilt); a read-only output fails hours later at the first
checkpoint. Both are refused before anything runs, in one line naming the folder.

Two processes writing one output folder (two conversions, an evaluation started twice, two
benchmarks) would each exit 0 while the last writer silently wins file by file; the guard
therefore also takes an exclusive lock on the folder (``.spine_det.lock`` in it), held until the
process exits, and a second spine-det process asking for the same folder is refused in one line
naming the holder's pid.
"""
from __future__ import annotations

import atexit
import errno
import logging
import os
import tempfile
from pathlib import Path
from typing import IO, Dict, Optional, Tuple, Union

from spine_det.utils.errors import DataError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: output folders are not locked
    fcntl = None

PathLike = Union[str, os.PathLike]

logger = logging.getLogger(__name__)

LOCK_FILE = ".spine_det.lock"
_HELD: Dict[Path, Tuple[int, IO[str]]] = {}  # folder -> (pid, its open, locked lock file), until exit


class OutputLocationError(DataError):
    """An output folder inside the data (or input) folder, or one that cannot be written."""


class OutputBusyError(OutputLocationError):
    """An output folder that another spine-det process is writing right now."""


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


def _distributed_rank() -> int:
    """This process's rank in a torchrun group (``RANK``), 0 outside one."""
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


def lock_output(folder: PathLike) -> Path:
    """Hold an exclusive lock on ``folder`` (an existing folder) until this process exits.

    A second process asking for the same folder gets :class:`OutputBusyError` ("... is being
    written by another spine-det process (pid N)"). The lock is the kernel's (``flock`` on
    ``<folder>/.spine_det.lock``), so it goes with the process however that ends (Ctrl-C, a crash,
    a kill) and a lock file left by a killed process never blocks a rerun; at a normal exit the file
    is removed. Asking again from the same process is a no-op; ranks above 0 of a torchrun group
    skip it (rank 0 holds it for the group); where ``fcntl`` or ``flock`` is missing (Windows, some
    network file systems) it only warns.
    """
    p = Path(folder).expanduser().resolve()
    if p in _HELD or _distributed_rank() != 0:
        return p
    if fcntl is None:  # pragma: no cover - Windows
        return p
    path = p / LOCK_FILE
    for _ in range(10):
        try:
            f = open(path, "a+", encoding="utf-8")
        except OSError as e:
            raise OutputLocationError(p, f"cannot write the output here ({e.strerror or type(e).__name__})") from None
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                f.close()
                logger.warning("%s: cannot lock it against other writers (%s); go on unlocked", p, e.strerror or e)
                return p
            f.seek(0)
            holder = f.read().strip() or "?"
            f.close()
            raise OutputBusyError(p, f"is being written by another spine-det process (pid {holder}); wait for it "
                                     "to finish, or write elsewhere") from None
        if _same_file(f, path):
            break
        f.close()  # its holder removed it at exit between our open and our lock: take the new one
    else:  # pragma: no cover - ten exits in a row
        raise OutputBusyError(p, "its lock file keeps changing; another spine-det process is writing it")
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    _HELD[p] = (os.getpid(), f)
    return p


def _same_file(f: IO[str], path: Path) -> bool:
    try:
        a, b = os.fstat(f.fileno()), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


@atexit.register
def _release_outputs() -> None:
    """At a normal exit: remove this process's lock files, then release them (a process forked from
    it, e.g. a pool worker, inherits the table but never removes its parent's files)."""
    for folder, (pid, f) in list(_HELD.items()):
        if pid == os.getpid():
            try:
                (folder / LOCK_FILE).unlink()
            except OSError:
                pass
            f.close()
    _HELD.clear()


def prepare_output(output: PathLike, *sources: Optional[PathLike], label: str = "data root",
                   lock: bool = True) -> Path:
    """:func:`refuse_inside`, :func:`ensure_writable`, then (``lock``) :func:`lock_output`: what a tool
    calls before writing anything. ``lock=False`` is for library code that runs under another lock
    (the cache's) in many processes at once."""
    out = ensure_writable(refuse_inside(output, *sources, label=label))
    return lock_output(out) if lock else out

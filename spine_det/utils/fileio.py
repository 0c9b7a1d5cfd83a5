"""Atomic file writes: an output file is either absent or complete, never partial.

Files are created with mode ``0666`` and the kernel applies the process umask (and any default ACL)
to it, exactly as for ``open(path, "w")``: under umask 022 the outputs are 0644, so colleagues,
a bind-mounted Docker volume or a web server can read them. A write that fails (disk full, quota,
read-only disk) is one :class:`OutputWriteError` naming the target, and leaves no temporary file.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from spine_det.utils.errors import UserError

PathLike = Union[str, os.PathLike]

# less free space than this after a failed write: the disk being full is why
NEARLY_FULL_BYTES = 1 << 20


class OutputWriteError(UserError, OSError):
    """An output that could not be written (disk full, quota, read-only, not a folder...): one line
    naming the target. An :class:`OSError` too (``errno`` kept), so ``except OSError`` still sees it."""

    def __init__(self, path: PathLike, reason: str, errno_: Optional[int] = None) -> None:
        super().__init__(errno_ or 0, reason, str(path))
        self.path = str(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: cannot write it ({self.reason})"

    def __reduce__(self):  # picklable across process pools
        return (OutputWriteError, (self.path, self.reason, self.errno or None))


def _free_bytes(folder: Path) -> Optional[int]:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs on Windows
        return None
    return st.f_bavail * st.f_frsize


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _create_beside(path: Path) -> Path:
    """A new empty file ``.<stem>.<random>.tmp<suffix>`` beside ``path``, created with mode 0666 so
    that the umask decides its permissions (``tempfile.mkstemp`` would make it 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            os.close(os.open(tmp, flags, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path))  # pragma: no cover


def _about_this_write(e: OSError, *paths: Path) -> bool:
    """Whether ``e`` is the write's own failure (a file object's write names no file), not an input
    of the block that could not be read."""
    names = {str(p) for p in paths}
    return e.filename is None or str(e.filename) in names or str(getattr(e, "filename2", None)) in names


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    The temporary file keeps the target's suffix so that writers which pick a
    format from the extension (cv2.imwrite, torch.save, matplotlib) still work. A failed write
    raises :class:`OutputWriteError` naming ``path`` (also when the writer, like ``cv2.imwrite``,
    reports failure only by removing its file), and the temporary file is always removed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = _create_beside(path)
    except OSError as e:
        raise OutputWriteError(path, e.strerror or type(e).__name__, e.errno) from None
    try:
        yield tmp_path
        if not tmp_path.exists():  # cv2.imwrite removes its file when the encoder fails (e.g. disk full)
            free = _free_bytes(path.parent)
            raise OutputWriteError(path, "the writer failed and left no file" + (
                "" if free is None else f"; {_human(free)} free on that disk"), errno.EIO)
        os.replace(tmp_path, path)
    except OutputWriteError:
        raise
    except OSError as e:
        if not _about_this_write(e, tmp_path, path):
            raise
        raise OutputWriteError(path, e.strerror or str(e), e.errno) from None
    except Exception:
        # torch.save's zip writer says "unexpected pos ..." (a RuntimeError) when the disk fills up
        free = _free_bytes(path.parent)
        if free is not None and free < NEARLY_FULL_BYTES:
            raise OutputWriteError(path, f"{os.strerror(errno.ENOSPC)}: {_human(free)} free", errno.ENOSPC) from None
        raise
    finally:
        try:
            tmp_path.unlink(missing_ok=True)
        except OSError:
            pass


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any, indent: int | None = 2) -> None:
    """Write JSON atomically; NaN is written as null so every reader can parse it."""
    atomic_write_text(path, json.dumps(_nan_to_none(obj), indent=indent, allow_nan=False) + "\n")


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def file_sha1(path: PathLike, chunk: int = 1 << 20) -> str:
    """SHA-1 of a file's bytes, read in chunks (a checkpoint's identity: benchmark specs, prediction
    records, overlay captions)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()

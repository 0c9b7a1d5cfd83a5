"""Progress that a terminal shows as a bar and a log file can read.

On a terminal this is tqdm. Redirected (a log file, the benchmark's per-unit logs, CI), tqdm would write
its carriage-return frames, which pile up into one unreadable line; there a plain line is written at
most every :data:`LOG_EVERY` seconds and when the work ends, e.g.
``epoch 3/4: 21/43 it (49 %), 9 s, loss=-0.7479, lr=1.50e-03``.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, Optional, TextIO

from tqdm import tqdm

LOG_EVERY = 30.0  # seconds between two lines of a redirected progress report


def progress(iterable: Optional[Iterable] = None, *, total: Optional[int] = None, desc: str = "", unit: str = "it",
             disable: Optional[bool] = False, stream: Optional[TextIO] = None, **tqdm_kwargs: Any) -> Any:
    """tqdm on a terminal, :class:`LogProgress` otherwise; the same calls work on both (iteration,
    ``update``, ``set_postfix``, ``close``, ``with``). ``disable``: True shows nothing (None: as False,
    where tqdm would hide a redirected bar, a log line is written instead)."""
    stream = stream if stream is not None else sys.stderr
    if _is_terminal(stream):
        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=bool(disable), file=stream, **tqdm_kwargs)
    return LogProgress(iterable, total=total, desc=desc, unit=unit, disable=bool(disable), stream=stream)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed, or a stream without isatty
        return False


class LogProgress:
    """Progress as whole lines: at most one every :data:`LOG_EVERY` seconds, and one at :meth:`close`."""

    def __init__(self, iterable: Optional[Iterable] = None, total: Optional[int] = None, desc: str = "",
                 unit: str = "it", disable: bool = False, stream: Optional[TextIO] = None) -> None:
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit, self.disable = total, desc, unit, disable
        self.stream = stream if stream is not None else sys.stderr
        self.n = 0
        self.postfix = ""
        self.start = self._last = time.monotonic()
        self._written_at: Optional[int] = None
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("LogProgress without an iterable: call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self._last >= LOG_EVERY:
            self._last = now
            self._write(now)

    def set_postfix(self, ordered_dict: Optional[dict] = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.n and self._written_at != self.n:
            self._write(time.monotonic())

    def _write(self, now: float) -> None:
        if self.disable:
            return
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        share = f" ({100 * self.n / self.total:.0f} %)" if self.total else ""
        line = f"{self.desc + ': ' if self.desc else ''}{count} {self.unit}{share}, {now - self.start:.0f} s"
        self.stream.write(line + (f", {self.postfix}" if self.postfix else "") + "\n")
        self.stream.flush()
        self._written_at = self.n


__all__ = ["LOG_EVERY", "LogProgress", "progress"]

"""One rule per kind of value that both the command line and the Python API take (a threshold, a
device, an image), so that both refuse the same values with the same words. (Numbers only the command
line takes, such as sizes and counts, have their argparse types in :mod:`spine_det.utils.cli`.)

Each ``check_*`` returns the value in its checked form or raises :class:`ArgumentValueError` (a
``ValueError`` naming the argument, one line). :func:`argparse_type` turns a check into an argparse
``type=``, so a bad value on the command line is an argparse error (usage line, exit status 2) and
never a traceback hours later::

    ap.add_argument("--score-threshold", type=argparse_type(check_probability))
    Predictor.from_checkpoint(path, score_threshold=float("nan"))   # ValueError: score_threshold must be ...
"""
from __future__ import annotations

import argparse
import re
from typing import Any, Callable

import numpy as np

from spine_det.utils.errors import UserError

DEVICE_CHOICES = "cpu, cuda, cuda:N, auto"
_DEVICE = re.compile(r"^(cpu|auto|cuda(:\d+)?)$")


class ArgumentValueError(UserError, ValueError):
    """A value outside its argument's rule: ``"<name> <reason>"`` in one line."""

    def __init__(self, name: str, reason: str) -> None:
        self.name, self.reason = name, reason
        super().__init__(f"{name} {reason}")


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ArgumentValueError(name, f"must be a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ArgumentValueError(name, f"must be a number, got {value!r}") from None


def check_probability(value: Any, name: str = "score_threshold") -> float:
    """A finite number in [0, 1] (a threshold on scores or probabilities): nan, inf, -0.5 and 1.5 are
    refused, where they would give empty or all-foreground masks."""
    v = _number(value, name)
    if not 0.0 <= v <= 1.0:  # also False for nan
        raise ArgumentValueError(name, f"must be a number in [0, 1], got {value!r}")
    return v


def check_device_name(value: Any, name: str = "device") -> str:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (spelling only: whether this machine has that GPU is
    :func:`spine_det.api.resolve_device`'s question)."""
    text = str(value).strip().lower() if isinstance(value, str) else value
    if not isinstance(text, str) or not _DEVICE.match(text):
        raise ArgumentValueError(name, f"must be one of {DEVICE_CHOICES}; got {value!r}")
    return text


def check_image_array(image: Any, name: str = "image") -> np.ndarray:
    """An image array the models can take: at least one pixel, and (float images) at least one finite
    one. An empty or all-NaN array would otherwise come back as an empty mask, or a division by zero."""
    a = np.asarray(image)
    if a.ndim < 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ArgumentValueError(name, f"has no pixels (shape {a.shape}); expected (H, W) or (H, W, 3)")
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ArgumentValueError(name, f"must hold numbers, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).any():
        raise ArgumentValueError(name, "has no finite pixel (all NaN or infinite)")
    return a


def argparse_type(check: Callable[..., Any]) -> Callable[[str], Any]:
    """``check`` as an argparse ``type=``: its reason becomes argparse's message (``argument --x: ...``)."""

    def parse(text: str) -> Any:
        try:
            return check(text, name="value")
        except ArgumentValueError as e:
            raise argparse.ArgumentTypeError(e.reason) from None

    parse.__name__ = check.__name__.replace("check_", "")  # argparse names the type in some messages
    return parse


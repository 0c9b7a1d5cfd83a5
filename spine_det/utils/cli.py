"""What the tools share on the command line: the data options, and one line (no traceback) for the
errors a user can fix."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Optional

from spine_det.utils.errors import UserError


def user_errors() -> tuple:
    """The exception types that mean bad input (a config, a checkpoint, a data file, a device), not a
    bug: every :class:`~spine_det.utils.errors.UserError` (ConfigError, CheckpointError, DataError,
    DeviceUnavailableError, ...) and a missing file."""
    return (UserError, FileNotFoundError)


def run_reporting_user_errors(fn: Callable[[Any], int], args: Any) -> int:
    """``fn(args)``; a user error becomes ``error: ...`` on stderr and exit status 1."""
    try:
        return fn(args)
    except user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def add_data_args(parser: Any, config_key: Optional[str] = "SPINE.DATA_ROOT") -> None:
    """``--data-root`` and ``--cache-dir``, as every training tool takes them (``config_key``: the config
    key that may name the data root instead, said in the help; None if the tool has none)."""
    parser.add_argument("--data-root", help="dataset folder (Training/{Normal,Damaged}/..., optional Test/)"
                        + (f"; or set {config_key}" if config_key else ""))
    parser.add_argument("--cache-dir", help="where the manifest is cached (default: $SPINE_DET_CACHE or ~/.cache/spine_det)")


# -- numbers on the command line ----------------------------------------------------------------------
# argparse ``type=`` callables: a bad number is an argparse error (one line, exit 2) before anything runs,
# instead of a Python slice (``--limit -1``: all but the last), an empty split (``--val-fraction 2``) or
# NaN passing every comparison.


def _number(text: str, kind: Callable[[str], Any]) -> Any:
    try:
        v = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
    if kind is float and v != v:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    return v


def _checked(kind: Callable[[str], Any], ok: Callable[[Any], bool], what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        v = _number(text, kind)
        if not ok(v):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return v

    return parse


positive_int = _checked(int, lambda v: v >= 1, "an integer >= 1")
non_negative_int = _checked(int, lambda v: v >= 0, "an integer >= 0")
finite_float = _checked(float, lambda v: abs(v) != float("inf"), "a finite number")
fraction_open = _checked(float, lambda v: 0.0 < v < 1.0, "a fraction in (0, 1)")

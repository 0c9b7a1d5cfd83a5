"""What the tools share on the command line: the data options, and one line (no traceback) for the
errors a user can fix."""
from __future__ import annotations

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

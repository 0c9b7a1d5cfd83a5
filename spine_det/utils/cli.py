"""What every tool does with the errors a user can fix: one line naming the file or key, no traceback."""
from __future__ import annotations

import sys
from typing import Any, Callable

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

"""What every tool does with the errors a user can fix: one line naming the file or key, no traceback."""
from __future__ import annotations

import sys
from typing import Any, Callable


def user_errors() -> tuple:
    """The exception types that mean bad input (a config, a checkpoint, a data file, a device), not a bug."""
    from spine_det.config.safe import ConfigError
    from spine_det.data.io import DataError
    from spine_det.engine.distributed import DeviceUnavailableError
    from spine_det.utils.checkpoint_io import CheckpointError

    return (ConfigError, CheckpointError, DataError, DeviceUnavailableError, FileNotFoundError)


def run_reporting_user_errors(fn: Callable[[Any], int], args: Any) -> int:
    """``fn(args)``; a user error becomes ``error: ...`` on stderr and exit status 1."""
    try:
        return fn(args)
    except user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

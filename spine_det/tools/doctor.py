"""Report the environment (how spine_det was installed, Detectron2 origin, torch, device) and run one
Mask R-CNN forward pass.

When something is missing, the last line names the command that installs it, for the way this copy
was installed: `make install` in a checkout's .venv, `spine-det install-detectron2` after a
`pip install`, a rebuilt image in Docker.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from spine_det.doctor import run_doctor
from spine_det.utils.cli import reports_user_errors
from spine_det.utils.logs import setup_logging


@reports_user_errors
def main(argv: Optional[List[str]] = None) -> int:
    setup_logging()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-forward", action="store_true", help="only report versions, build no model")
    args = p.parse_args(argv)
    return run_doctor(device=args.device, forward=not args.no_forward)


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

"""List the eight segmentation tasks: view, class and mask file name of each."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from spine_det.tasks import TASKS


def main(argv: Optional[List[str]] = None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    for t in TASKS.values():
        print(f"{t.name:22s} {t.view.upper():4s} {t.class_name:26s} {t.mask_stem}.png")
    return 0


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

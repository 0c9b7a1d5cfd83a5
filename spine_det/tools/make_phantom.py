"""Write a synthetic spine X-ray dataset (AP + LAT radiographs, 8 task masks, ground truth).

Example::

    spine-det make-phantom --out datasets/phantom --patients 200 --seed 0
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from spine_det.data.phantom import generate_dataset
from spine_det.data.phantom.patient import DEFAULT_LAT_RENDERER, LAT_RENDERERS
from spine_det.data.phantom.preview import contact_sheet
from spine_det.utils.cli import as_user_error, fraction_closed_left, int_at_least, positive_int, reports_user_errors
from spine_det.utils.logs import setup_logging


@reports_user_errors
def main(argv: Optional[List[str]] = None) -> int:
    setup_logging(level=logging.WARNING)  # the summary is printed
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path,
                   help="output folder; must be empty, new, or earlier phantom output made with the same arguments")
    p.add_argument("--patients", type=positive_int, default=100, help="number of patients (half Normal, half Damaged)")
    p.add_argument("--seed", type=int, default=0, help="seed; same seed -> byte-identical files")
    p.add_argument("--size", type=int_at_least(64), default=1024,
                   help="image height in px, >= 64 (width follows a per-patient aspect)")
    p.add_argument("--test-fraction", type=fraction_closed_left, default=0.2,
                   help="share of patients written under Test/, in [0, 1)")
    p.add_argument("--workers", type=positive_int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--lat-renderer", choices=sorted(LAT_RENDERERS), default=DEFAULT_LAT_RENDERER,
                   help="how the LAT films are drawn (masks and ground truth are the same either way): 'painted' "
                        "2-D shapes, or '3d' rays through the solids and the X-ray chain as AP; the default is "
                        f"the one that transfers better to real lateral films (default: {DEFAULT_LAT_RENDERER})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--contact", type=Path, default=None,
                   help="also write a PNG contact sheet (one Normal + one Damaged patient, masks overlaid) here")
    a = p.parse_args(argv)
    with as_user_error(FileExistsError, ValueError):  # a folder holding other files, a size below 64 px
        s = generate_dataset(a.out, a.patients, a.seed, a.size, a.test_fraction, a.workers, progress=not a.quiet,
                             lat_renderer=a.lat_renderer)
    print(f"wrote {s['patients']} patients ({s['normal']} Normal / {s['damaged']} Damaged, {s['training']} Training / "
          f"{s['test']} Test) at {s['size']} px to {s['out']} in {s['seconds']:.1f}s "
          f"= {s['patients_per_s']} patients/s on {s['workers']} workers")
    if a.contact is not None:
        print(f"contact sheet: {contact_sheet(a.out, a.contact)}")
    return 0


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

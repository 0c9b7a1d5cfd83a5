"""Import the AASCE 2019 / SpineWeb-16 spine radiographs ("boostnet_labeldata") into the package's layout.

The dataset: 609 AP full-spine radiographs of scoliosis patients (481 training, 128 test), with the
four corners of the 17 vertebral bodies T1..L5 and three Cobb angles per image. Download the
``boostnet_labeldata`` folder from the dataset's own site (SpineWeb, dataset 16) or a mirror, then:

    spine-det import-aasce --source boostnet_labeldata --out datasets/aasce

What it writes (``--out`` must be new or empty; nothing in ``--source`` is changed):

    <out>/Training/<image stem>/AP/AP.jpg           the radiograph, byte for byte
    <out>/Training/<image stem>/AP/Ap_Vertebra.png  the 17 vertebral bodies, each quadrilateral filled
    .../AP/Ap_Vertebra_instances.png                16-bit label map, k = k-th vertebra as listed: one
                                                    Mask R-CNN instance per vertebra even where two
                                                    bodies touch or overlap (scoliotic spines do)
    .../AP/landmarks.json                           corners in pixels, T1..L5, Cobb angles, source name
    <out>/Test/<image stem>/...                     the dataset's own 128 test images, same form
    <out>/aasce_index.csv                           folder, split, source name, size, corners outside

Patient folders keep the image's file stem (e.g. "sunhl-1th-01-Mar-2017-310 C AP"), so every
figure can be traced back to the source file; the dataset's train/test split is kept. The few
corners that fall outside their image are kept as given in landmarks.json and clipped only when
the mask is drawn (counted in the summary and the index). A vertebra whose corners cannot be a body
(non-convex, or over 2.5x the median height: two training images have such an L5/L4) is left
out of the masks and named in landmarks.json and the index. There is no Normal/Damaged label and
no lateral view: the package reads the result as an unlabelled, AP-only dataset (task
ap_vertebra; no classifier). Research use only: do not redistribute the images or anything
derived from them.

Each film is checked before it is written (spine_det/data/aasce.py): landmarks that are NaN, inf
or pixels instead of fractions of the image size, an image that does not decode completely, a
CSV row that does not match the film's own ``labels/<split>/<name>.mat`` (a ``filenames.csv`` out
of step), or an empty mask: the film is skipped with a warning naming it and listed in
``<out>/aasce_skipped.csv`` (``--strict``: the import is refused instead). A name in
``filenames.csv`` with folders or an absolute path refuses the import. ``--out`` appears only when
the import is complete; one cut short (Ctrl-C, a full disk) leaves nothing to clean up by hand.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from spine_det.data.aasce import import_aasce
from spine_det.utils.cli import as_user_error, positive_int, reports_user_errors
from spine_det.utils.logs import setup_logging
from spine_det.utils.paths import refuse_inside


@reports_user_errors
def main(argv: Optional[List[str]] = None) -> int:
    setup_logging(level=logging.WARNING)  # one warning per skipped film; the summary is printed
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, type=Path,
                   help="the boostnet_labeldata folder, or a folder (e.g. a mirror's clone) that holds it")
    p.add_argument("--out", required=True, type=Path, help="new or empty output folder: the data root to train on")
    p.add_argument("--splits", default="training,test", help="which source splits to import (default both)")
    p.add_argument("--limit", type=positive_int, default=None, help="import only the first N images of each split")
    p.add_argument("--workers", type=positive_int, default=2, help="worker processes (default 2)")
    p.add_argument("--strict", action="store_true",
                   help="refuse the import at the first film that fails a check (default: skip it with a warning "
                        "and list it in <out>/aasce_skipped.csv)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    try:  # a bad value, a full disk, an unwritable folder: one line, nothing left half-written
        with as_user_error(ValueError, OSError):
            refuse_inside(a.out, a.source, label="source folder")  # the one output guard
            s = import_aasce(a.source, a.out, splits=[x.strip() for x in a.splits.split(",") if x.strip()],
                             workers=a.workers, limit=a.limit, progress=not a.quiet, strict=a.strict)
    except KeyboardInterrupt:
        print(f"error: interrupted; nothing was written ({a.out} appears only once an import is complete)",
              file=sys.stderr)
        return 130
    imgs = ", ".join(f"{k} {v}" for k, v in s["images"].items())
    n = sum(s["images"].values())
    if s["pairing_verified"] < n:
        print(f"warning: the pairing of filenames.csv with landmarks.csv was checked for {s['pairing_verified']} of "
              f"{n} films only (no labels/<split>/<name>.mat for the others)", file=sys.stderr)
    skipped = f" ({s['skipped']} skipped: see {Path(s['out']) / 'aasce_skipped.csv'})" if s["skipped"] else ""
    print(f"imported {imgs} images to {s['out']}{skipped}; "
          f"{s['corners_outside']} corners outside their image in {s['images_with_corners_outside']} images "
          f"(kept in landmarks.json, clipped in the masks); "
          f"{s['images_with_implausible_vertebrae']} images with implausible corners of a vertebra (left out of "
          f"the masks, named in landmarks.json); {s['images_missing_a_vertebra_in_mask']} images whose mask lacks "
          f"a vertebra")
    return 0


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

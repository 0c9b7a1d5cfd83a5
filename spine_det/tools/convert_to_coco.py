"""Convert the spine dataset's binary masks to COCO JSON (one file per task and split, and per view and split).

Example:
    spine-det convert-to-coco --data-root "/data/spine" --out output/coco --workers 2

Instances are the masks' 8-connected components; segmentations are exact
(polygons where exact, RLE otherwise). Re-running skips files that are up to
date. The data root is only read.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from spine_det.data.coco import convert_dataset, format_summary
from spine_det.data.prepare import default_cache_dir, load_or_scan_manifest, split_dir_name
from spine_det.tasks import TASK_NAMES, parse_tasks
from spine_det.utils.cli import as_user_error, fraction_open, positive_int, reports_user_errors
from spine_det.utils.logs import setup_logging
from spine_det.utils.paths import prepare_output, refuse_inside


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", required=True, help="folder with Training/ (and optionally Test/)")
    p.add_argument("--out", required=True, help="output folder for spine_<task|view>_<split>.json (not inside the data root)")
    p.add_argument("--tasks", default="all", help=f"'all', a view (ap/lat) or comma-separated tasks: {', '.join(TASK_NAMES)}")
    p.add_argument("--workers", type=positive_int, default=None, help="processes (default: all cores)")
    p.add_argument("--seed", type=int, default=0, help="seed of the patient-level splits")
    p.add_argument("--val-fraction", type=fraction_open, default=0.1,
                   help="share of Training patients held out for validation, in (0, 1) (default 0.1)")
    p.add_argument("--test-fraction", type=fraction_open, default=0.2,
                   help="share of patients for test when there is no Test/ folder, in (0, 1) (default 0.2)")
    p.add_argument("--cache-dir", default=None, help="where the manifest lives (default: $SPINE_DET_CACHE or ~/.cache/spine_det/...)")
    p.add_argument("--strict", action="store_true", help="fail on the first missing/unreadable file instead of skipping it")
    p.add_argument("--rescan", action="store_true", help="rescan the data root even if a manifest exists")
    p.add_argument("--force", action="store_true", help="rewrite every JSON even if up to date")
    p.add_argument("--overwrite", action="store_true",
                   help="--out holds another data root's COCO files: remove them and convert this one (else refused)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


@reports_user_errors
def main(argv: Optional[List[str]] = None) -> int:
    setup_logging()
    args = get_parser().parse_args(argv)
    with as_user_error(KeyError, ValueError):  # an unknown task, a bad value
        tasks = parse_tasks(args.tasks)
        cache = Path(args.cache_dir).expanduser().resolve() if args.cache_dir else default_cache_dir(args.data_root)
        refuse_inside(cache, args.data_root, what="cache dir")
        refuse_inside(args.out, args.data_root)  # before the scan; prepared (and locked) once the data is known
        manifest_path = cache / split_dir_name(args.seed, args.val_fraction, args.test_fraction) / "manifest.json"
        manifest = load_or_scan_manifest(
            args.data_root, manifest_path, args.seed, args.val_fraction, args.test_fraction,
            strict=args.strict, rescan=args.rescan,
        )
        print(f"manifest {manifest_path}: {manifest.summary()}")
        prepare_output(args.out, args.data_root)  # never inside the data root; writable; one writer at a time
        summary = convert_dataset(
            manifest, args.out, tasks=tasks, workers=args.workers, strict=args.strict,
            force=args.force, progress=not args.no_progress, overwrite=args.overwrite,
        )
    print(format_summary(summary))
    for p in manifest.problems:
        print(f"skipped while scanning: patient {p['patient']!r}: {p['file']}: {p['reason']}")
    return 0


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

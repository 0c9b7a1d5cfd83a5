"""The ``spine-det`` command: environment checks and pointers to the tools."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

TOOLS_HELP = """\
The work itself is done by the scripts in tools/ (each has --help):
  tools/make_phantom.py      synthetic AP + LAT spine radiographs with all eight masks
  tools/convert_to_coco.py   binary masks -> COCO instances per task/view and split
  tools/visualize_data.py    draw masks or COCO instances over the X-rays
  tools/train_net.py         Mask R-CNN (Detectron2) training / evaluation
  tools/train_linknet.py     LinkNet baseline training / evaluation
  tools/train_classifier.py  ResNet50 Normal/Damaged classifier (AP, LAT, average)
  tools/predict.py           masks, instances and overlays for new images (PNG/JPEG/TIFF/DICOM)
  tools/benchmark.py         everything above side by side, with the report's own figures
"""


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="spine-det",
        description="Spine X-ray segmentation: Detectron2 Mask R-CNN vs LinkNet, on the same metrics.",
        epilog=TOOLS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    doc = sub.add_parser("doctor", help="report the environment and run one Mask R-CNN forward pass")
    doc.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    doc.add_argument("--no-forward", action="store_true", help="only report versions, build no model")
    sub.add_parser("tasks", help="list the eight segmentation tasks and their mask files")
    args = parser.parse_args(argv)

    if args.command == "doctor":
        from spine_det.doctor import run_doctor

        return run_doctor(device=args.device, forward=not args.no_forward)
    if args.command == "tasks":
        from spine_det.tasks import TASKS

        for t in TASKS.values():
            print(f"{t.name:22s} {t.view.upper():4s} {t.class_name:26s} {t.mask_stem}.png")
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())

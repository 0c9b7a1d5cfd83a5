"""``spine-det <command> [args]``: every tool of the package under one command.

Also ``python -m spine_det.tools <command>``. A command is the module ``spine_det.tools.<name>``
(``-`` or ``_`` alike: ``train-net`` = ``train_net``), imported only when it runs, so that
``spine-det --help`` is instant and each tool loads only its own dependencies.
"""
from __future__ import annotations

import difflib
import importlib
import sys
from typing import Dict, List, Optional

from spine_det import __version__
from spine_det.utils.cli import report_user_error
from spine_det.utils.errors import UserError

# name -> one line for --help, in the order of a project: data, training, prediction, scoring, setup.
COMMANDS: Dict[str, str] = {
    "make_phantom": "write a synthetic spine X-ray dataset (AP + LAT, eight task masks, ground truth)",
    "import_aasce": "import the AASCE 2019 / SpineWeb-16 radiographs into the package's layout",
    "convert_to_coco": "binary masks -> COCO instances per task/view and split",
    "visualize_data": "draw masks or COCO instances over the X-rays",
    "train_net": "Mask R-CNN (Detectron2) training / evaluation",
    "train_linknet": "LinkNet baseline (and smp networks) training / evaluation",
    "train_landmark": "vertebra landmarks (centre heatmap + corners) training / evaluation, vertebra tasks",
    "train_nnunet": "nnU-Net v2 training / evaluation on one task (needs the nnunet extra)",
    "train_classifier": "ResNet50 Normal/Damaged classifier (AP, LAT, average)",
    "predict": "masks, instances and overlays for new images (PNG/JPEG/TIFF/DICOM)",
    "benchmark": "all models side by side on the same test images, with the report's figures",
    "eval_instances": "score predicted instances object by object (found, merged, split)",
    "eval_morphometry": "score morphometry against the phantom's ground truth",
    "measure": "per-vertebra morphometry and Genant grading for a dataset",
    "measure_cobb": "Cobb angles per AP image, scored like the AASCE 2019 challenge",
    "install_detectron2": "install Detectron2 into this environment, verified",
    "doctor": "report the environment, run one Mask R-CNN forward pass, name the fix for what is missing",
    "tasks": "list the eight segmentation tasks and their mask files",
}
PROG = "spine-det"


def usage() -> str:
    width = max(len(n) for n in COMMANDS) + 2
    lines = [f"usage: {PROG} <command> [args]      ({PROG} <command> --help for its options)", "",
             f"spine_det {__version__}: spine X-ray segmentation, Mask R-CNN vs LinkNet on the same metrics.", "",
             "commands:"]
    lines += [f"  {n.replace('_', '-'):{width}s}{h}" for n, h in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        print(f"spine_det {__version__}")
        return 0
    name = args[0].replace("-", "_")
    if name not in COMMANDS:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f"; did you mean {close[0].replace('_', '-')}?" if close else f"; see {PROG} --help"
        print(f"error: unknown command {args[0]!r}{hint}", file=sys.stderr)
        return 2
    module_name = f"{__package__ or 'spine_det.tools'}.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name != module_name:
            raise
        print(f"error: {PROG} {args[0]}: this installation has no {module_name}", file=sys.stderr)
        return 2
    # The tool's argparse names itself after argv[0]: make its usage line read "spine-det <command>".
    saved = sys.argv[0]
    sys.argv[0] = f"{PROG} {name.replace('_', '-')}"
    try:
        return int(module.main(args[1:]) or 0)
    except UserError as e:  # what a tool did not report itself: the same one line and exit status 2
        return report_user_error(e)
    finally:
        sys.argv[0] = saved


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

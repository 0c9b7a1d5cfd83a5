"""Segment spine X-rays with a trained model: per task a mask PNG, the instances (JSON) and an overlay.

    spine-det predict --checkpoint output/maskrcnn/lat_vertebra/model_best.pth --input LAT.jpg --output out/
    spine-det predict --checkpoint ckpt.pth --input folder/ --output out/          # every image inside
    spine-det predict --model linknet --checkpoint linknet.pth --input scan.dcm --output out/
    spine-det predict --checkpoint ckpt.pth --data-root datasets/phantom --split test --output out/pred

--model is the key of a registered model family (spine_det.modeling.registry; see --help for the
list); without it the family is read from the checkpoint.

The config is read from ``config.yaml`` beside the checkpoint unless --config-file
is given. Outputs go to ``<output>/<image stem>/<task>_mask.png``,
``<task>_instances.json`` and ``<task>_overlay.png``; a model with instance masks (Mask R-CNN) also writes
``<task>_instances.png``, a 16-bit label map (0 = background, k = k-th instance
of the JSON) that keeps touching vertebrae apart. With ``--data-root`` every
image of the split (and view) is predicted into ``<output>/<patient id>/<view>/``,
the layout ``spine-det measure`` / ``spine-det eval-morphometry --pred-dir`` read.
Inputs are never overwritten.

Only films are read (spine_det.data.films): in a folder, files named like the dataset's masks
(``Lat_Vertebra.png``), instance maps (``*_instances.png``) or predictions (``lat_vertebra_mask.png``)
are left out, and so are films whose folder (``AP/``, ``LAT/``) names another view than the model's
(``--view`` defaults to the checkpoint's view; ``--view all`` takes them). A film that may be of
another view (its folder says so, or, with no such folder, its shape: a LAT model given a film over
2.6 times taller than wide, an AP model a film wider than tall) is predicted with a warning, or
refused with ``--strict``.

Each film's folder gets ``predicted_by.json``: model, tasks, checkpoint and config SHA-1, threshold.
A folder holding predictions of other settings (or of an unrecorded run) is refused, so that no folder
mixes two models' files; ``--overwrite`` removes predict's own files there first (never any other file).
``--skip-existing`` skips the films whose folder already holds this model's and settings' masks.
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from spine_det.api import load_predictor
from spine_det.data.films import FILM_SUFFIXES, Film, find_films, folder_view, not_a_film, view_doubts
from spine_det.data.io import DataError, read_image
from spine_det.data.prepare import prepare_dataset
from spine_det.engine.prediction_files import describe, folder_state, has_all_masks, make_record, start_folder
from spine_det.modeling.registry import families, get_family
from spine_det.morphometry.levels import name_instance_levels
from spine_det.utils.arguments import DEVICE_CHOICES, argparse_type, check_device_name, check_probability
from spine_det.utils.cli import as_user_error, non_negative_int, reports_user_errors
from spine_det.utils.errors import UserError
from spine_det.utils.fileio import atomic_path, atomic_write_json
from spine_det.utils.logs import setup_logging
from spine_det.utils.overlay import ModelCaption, box_label, overlay_masks
from spine_det.utils.paths import prepare_output
from spine_det.utils.progress import progress as progress_bar

logger = logging.getLogger("spine_det.predict")


def list_inputs(path: Path, view: Optional[str] = None) -> List[Path]:
    """The films to predict: ``path`` itself, or the films under a folder (``view``: only those whose
    folder does not name another view); what was left out is said in one line."""
    if path.is_file():
        what = not_a_film(path)
        if what:
            raise UserError(f"{path} is named like a {what}, not a film; predict reads films only")
        return [path]
    if path.is_dir():
        found = find_films(path, view)
        left_out = found.summary(view)
        if left_out:
            logger.info("%s: %s", path, left_out)
        if not found.films:
            raise UserError(f"no films ({', '.join(FILM_SUFFIXES)}) in {path}" + (f" ({left_out})" if left_out else ""))
        return [f.path for f in found.films]
    raise UserError(f"input not found: {path}")


def write_outputs(out_dir: Path, grey: np.ndarray, preds, source: Path, caption=None) -> None:
    """One image's files. ``caption`` (a :class:`spine_det.utils.overlay.ModelCaption`): what made the
    predictions, in a strip above each overlay."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for task, p in preds.items():
        extra = name_instance_levels(task, p)
        atomic_write_json(out_dir / f"{task}_instances.json",
                          {"image": str(source), "task": task, "height": int(grey.shape[0]), "width": int(grey.shape[1]),
                           "bbox_mode": "XYWH", **extra,
                           **({"component_filter": p.component_filter} if getattr(p, "component_filter", None) else {}),
                           "instances": p.instances})
        with atomic_path(out_dir / f"{task}_overlay.png") as tmp:
            # the task's colour of every other tool's pictures; an instance model's boxes drawn too, with levels and scores
            with_box = [i for i in p.instances if "bbox" in i] if p.instance_masks is not None else []
            boxes = [(task, i["bbox"]) for i in with_box]
            cv2.imwrite(str(tmp), overlay_masks(grey, [(task, p.mask)], boxes=boxes,
                                                box_labels=[box_label(i) for i in with_box],
                                                header=caption.text(task) if caption is not None else None))
        if p.instance_masks is not None:
            with atomic_path(out_dir / f"{task}_instances.png") as tmp:
                cv2.imwrite(str(tmp), p.label_map())
        # the mask last: --skip-existing takes a present mask to mean this task's files are all there
        with atomic_path(out_dir / f"{task}_mask.png") as tmp:
            cv2.imwrite(str(tmp), p.mask.astype(np.uint8) * 255)


def dataset_inputs(args, view: Optional[str]) -> List[Tuple[Path, Path]]:
    """(image, output folder) for every image of the requested split and ``view`` (None: both) of a dataset."""
    out = output_outside(args.output, args.data_root)
    manifest = prepare_dataset(args.data_root, seed=args.seed, convert=False).manifest
    samples = manifest.select(split=None if args.split == "all" else args.split, view=view)
    if not samples:
        raise UserError(f"no {view or 'all'} images in split {args.split} of {args.data_root}")
    return [(Path(s.image), out / s.key) for s in samples]


def output_outside(output: str | Path, source: str | Path) -> Path:
    """The resolved output folder; refuses one inside a source folder, where predictions would be
    read back as inputs (and, under a data root, change its fingerprint)."""
    src = Path(source).expanduser().resolve()
    return prepare_output(output, src if src.is_dir() else None, label="input folder")


def folder_inputs(args, view: Optional[str]) -> List[Tuple[Path, Path]]:
    src = Path(args.input).expanduser().resolve()
    out = output_outside(args.output, src)
    return separate_same_stems([(f, out / (f.relative_to(src).with_suffix("") if src.is_dir() else Path(f.stem)))
                                for f in list_inputs(src, view)])


def separate_same_stems(jobs: List[Tuple[Path, Path]]) -> List[Tuple[Path, Path]]:
    """Inputs that would share an output folder (``scan.jpg`` + ``scan.png``, or names differing
    only by case) get the suffix in theirs (``scan_jpg/``, ``scan_png/``) instead of overwriting
    each other."""
    groups = defaultdict(list)
    for i, (_, dest) in enumerate(jobs):
        groups[str(dest).casefold()].append(i)
    out = list(jobs)
    for idx in groups.values():
        if len(idx) > 1:
            for i in idx:
                f, dest = jobs[i]
                out[i] = (f, dest.with_name(f"{dest.name}_{f.suffix.lstrip('.').lower()}"))
            logger.warning("inputs %s share a name: outputs kept apart in %s", ", ".join(jobs[i][0].name for i in idx),
                           ", ".join(out[i][1].name + "/" for i in idx))
    if len({str(d).casefold() for _, d in out}) != len(out):
        raise UserError("inputs whose names differ only by case and suffix; rename them")
    return out


def check_views(jobs: List[Tuple[Path, Path]], view: Optional[str], strict: bool) -> None:
    """Warn in one line about films that may not be of the model's ``view`` (their folder, else their
    shape, says otherwise: spine_det.data.films); with ``strict``, refuse them before anything is written."""
    doubts = view_doubts([Film(f, folder_view(f)) for f, _ in jobs], view)
    if not doubts:
        return
    what = (f"{len(doubts)} film(s) may not be {str(view).upper()} films, the view the model segments "
            f"(first: {doubts[0][0]}: {doubts[0][1]})")
    if strict:
        raise UserError(f"{what}; refused under --strict")
    logger.warning("%s; predicted anyway (--strict refuses them)", what)


def plan_outputs(jobs: List[Tuple[Path, Path]], record: Dict, overwrite: bool) -> list:
    """Each output folder's state against this run (spine_det.engine.prediction_files); folders holding
    predictions of other settings are refused, before anything is written, unless ``overwrite``."""
    states = [folder_state(dest, record) for _, dest in jobs]
    others = [s for s in states if s.state == "other"]
    if others and not overwrite:
        raise UserError(f"{len(others)} output folder(s) hold predictions of other settings (first: {others[0].folder}: "
                         f"{describe(others[0].record)}; now: {describe(record)}); pass --overwrite to replace them "
                         "(only predict's own files are removed) or choose another --output")
    return states


@reports_user_errors
def main(argv: Optional[List[str]] = None) -> int:
    setup_logging()
    specs = families()
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="models: " + "; ".join(f"{s.key} = {s.description or s.label}" for s in specs))
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="an image (jpg/png/tif/dcm) or a folder of them")
    src.add_argument("--data-root", type=Path, help="a dataset (Training/ [Test/] layout): predict its images by split")
    ap.add_argument("--output", required=True, help="output folder (must not be inside the input folder or data root)")
    ap.add_argument("--split", default="test", choices=("train", "val", "test", "all"), help="with --data-root (default: test)")
    ap.add_argument("--view", default=None, choices=("ap", "lat", "all"),
                    help="which films: those of this view by their folder (AP/, LAT/) or the dataset; all: every "
                         "film (default: the checkpoint's view)")
    ap.add_argument("--strict", action="store_true",
                    help="refuse films that may be of another view than the model's (default: warn and predict them)")
    ap.add_argument("--seed", type=non_negative_int, default=0,
                    help="with --data-root: split seed (as for every other tool)")
    ap.add_argument("--skip-existing", action="store_true",
                    help="resume: skip images whose output folder already holds every task's mask from this "
                         "checkpoint and these settings")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace predictions of other settings in the output folders (predict's own files only)")
    ap.add_argument("--checkpoint", required=True, help="trained weights (model_best.pth)")
    ap.add_argument("--config-file", default=None,
                    help="config of the checkpoint, a path or a shipped config name such as lat_vertebra.yaml "
                         "(default: the one saved with it); one for other tasks is refused")
    ap.add_argument("--model", default=None, choices=[s.key for s in specs],
                    help="which model family (default: the one that wrote --checkpoint)")
    ap.add_argument("--device", type=argparse_type(check_device_name), default="auto",
                    help=f"one of {DEVICE_CHOICES} (default: auto, the GPU when there is one, as the Python API)")
    ap.add_argument("--score-threshold", type=argparse_type(check_probability), default=None,
                    help="the predictor's threshold in [0, 1] (instance models: paste instances with score ≥ this; "
                         "semantic models: probability threshold)")
    ap.add_argument("--test-flip", action=argparse.BooleanOptionalAction, default=None,
                    help="LinkNet, smp and landmark models: predict each image and its mirror and average them "
                         "(twice the inference), or not (--no-test-flip); default: the checkpoint's own setting")
    args = ap.parse_args(argv)

    with as_user_error(KeyError, ValueError):  # the API's loader: the same argument, config, device and task checks
        loaded = load_predictor(args.checkpoint, config_file=args.config_file, device=args.device, model=args.model,
                                score_threshold=args.score_threshold, how_to_choose="give --model",
                                test_flip=args.test_flip)
    predictor, model = loaded.predictor, loaded.model
    view = loaded.view if args.view is None else (None if args.view == "all" else args.view)
    jobs = dataset_inputs(args, view) if args.data_root is not None else folder_inputs(args, view)
    check_views(jobs, loaded.view, args.strict)
    record = make_record(model, args.checkpoint, predictor, loaded.config_file)
    states = plan_outputs(jobs, record, args.overwrite)
    out = Path(args.output).expanduser().resolve()
    inputs = {f.resolve() for f, _ in jobs}
    clash = [dest for _, dest in jobs if dest.resolve() in inputs]
    if clash:
        raise UserError(f"refusing to overwrite input {clash[0]}")
    caption = ModelCaption.describe(get_family(model).label, args.checkpoint, predictor,  # named on every overlay
                                    sha1=record.get("checkpoint_sha1"))

    failed = skipped = written = 0
    for (f, dest), state in progress_bar(list(zip(jobs, states)), desc="predict", disable=len(jobs) < 2):
        if args.skip_existing and state.state == "same" and has_all_masks(dest, predictor.tasks):
            skipped += 1
            continue
        try:
            grey = read_image(f)
        except DataError as e:
            if len(jobs) == 1:
                raise
            logger.error("skipped: %s", e)
            failed += 1
            continue
        preds = predictor(grey)
        start_folder(dest, record, replace=state.state == "other")  # --overwrite: the other settings' files go first
        write_outputs(dest, grey, preds, f, caption)
        written += 1
    logger.info("wrote predictions for %d image(s) to %s%s%s", written, out,
                f" ({skipped} already there)" if skipped else "", f" ({failed} failed)" if failed else "")
    return 1 if failed else 0


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

"""Train the Normal/Damaged classifiers (one per view) and report test metrics.

  spine-det train-classifier --data-root DATA
  spine-det train-classifier --data-root DATA --config-file classifier/Base-Classifier.yaml MODEL.BACKBONE resnet18

The network sees the mask-free spine crop of each X-ray (INPUT.CROP centerline;
INPUT.CROP none = the whole image, as in the report). The cpu profile uses
resnet10s, a slim 10-layer ResNet (random init; labelled in the outputs), on a
256x96 crop, for up to 100 epochs (from random init it sits at chance for 20-50
epochs, then learns), ~6 min on 2 cores for the demo's 240 patients;
MODEL.BACKBONE resnet50 gives the report's model (the full profile's). --profile auto (the default)
is the cpu profile when no CUDA device is found and the full profile on a GPU; the log says which.

Data size: on the demo phantom (240 patients at 512 px, 154 for training) the
cpu profile's LAT model reaches 0.92 / 0.88 test accuracy (seeds 0 / 1) and the
AP model stays at chance; with 120 patients the LAT model reaches AUC 0.76 but an
18-patient validation set picks the wrong view (results/classifier_schedule.md).
More patients, for example:

  spine-det make-phantom --out datasets/phantom360 --patients 360 --size 512
  spine-det train-classifier --data-root datasets/phantom360 --profile cpu

--resume continues an interrupted run, --eval-only re-scores its checkpoints. Per-epoch figures
go to metrics_<view>.jsonl and to TensorBoard event files in OUTPUT_DIR/tensorboard/<view>.

Writes model_best_ap.pth, model_best_lat.pth and classification_metrics.json
(accuracy, sensitivity, specificity, ROC-AUC, confusion matrix for AP, LAT and
their average, and which one validation selected) to OUTPUT_DIR.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from spine_det.config.profiles import add_profile_argument
from spine_det.utils.cli import add_data_args


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default="classifier/Base-Classifier.yaml",
                   help="a YAML file, or a config shipped with the package (default classifier/Base-Classifier.yaml)")
    add_data_args(p, config_key=None)
    add_profile_argument(p, full_means="the config as written (ResNet50, ImageNet weights, 512 x 512)")
    p.add_argument("--resume", action="store_true",
                   help="continue each view from OUTPUT_DIR/last_checkpoint_<view>.pth (a finished view is not retrained)")
    p.add_argument("--eval-only", action="store_true",
                   help="train nothing: score OUTPUT_DIR/model_best_<view>.pth on val (strategy) and test")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    from spine_det.utils.cli import run_reporting_user_errors

    return run_reporting_user_errors(_main, parse_args(argv))


def _main(args: argparse.Namespace) -> int:
    from spine_det.config.linknet import get_classifier_cfg, load_cfg
    from spine_det.config.paths import config_dir, resolve_config_file
    from spine_det.config.profiles import resolve_profile
    from spine_det.data.prepare import prepare_dataset
    from spine_det.engine.classifier_trainer import train_classifier

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    opts = list(args.opts)
    if args.data_root:
        opts += ["DATA.ROOT", args.data_root]
    if args.cache_dir:
        opts += ["DATA.CACHE_DIR", args.cache_dir]
    profile = resolve_profile(args.profile)
    cfg = load_cfg(get_classifier_cfg(), str(resolve_config_file(args.config_file)), profile, opts,
                   profile_dir=config_dir() / "classifier" / "profiles")
    if not cfg.DATA.ROOT:
        print("error: give --data-root DIR (or DATA.ROOT DIR)", file=sys.stderr)
        return 2
    from spine_det.engine.preflight import check_training_inputs
    from spine_det.utils.paths import OutputLocationError

    try:  # before anything is written: data root, MODEL.DEVICE, cache and output folders (never inside the data root)
        check_training_inputs(cfg.OUTPUT_DIR, cfg.DATA.ROOT, cfg.DATA.CACHE_DIR, cfg.MODEL.DEVICE, data_key="DATA.ROOT",
                              cache_key="DATA.CACHE_DIR")
    except OutputLocationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from spine_det.utils.logs import log_to_run_folder

    log_to_run_folder(cfg.OUTPUT_DIR)  # OUTPUT_DIR/log.txt, as a Mask R-CNN run has
    prepared = prepare_dataset(cfg.DATA.ROOT, cache_dir=cfg.DATA.CACHE_DIR or None, seed=cfg.DATA.SEED, convert=False)
    logging.getLogger("train_classifier").info("data: %s", prepared.manifest.summary())
    train_classifier(cfg, prepared.manifest, resume=args.resume, eval_only=args.eval_only)
    return 0


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

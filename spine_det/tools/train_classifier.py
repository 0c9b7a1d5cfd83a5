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

--resume continues an interrupted run, --eval-only re-scores its checkpoints. Each view trains in
OUTPUT_DIR/<view>/ (model_best.pth, model_final.pth, last_checkpoint, metrics.json, TensorBoard
events), as every family's run folder.

Writes classification_metrics.json (accuracy, sensitivity, specificity, ROC-AUC, confusion matrix for
AP, LAT and their average, and which one validation selected) to OUTPUT_DIR. The data keys are the
shared SPINE.DATA_ROOT, SPINE.CACHE_DIR and SPINE.SPLIT_SEED (the balanced validation draw); the
older DATA.ROOT, DATA.CACHE_DIR and DATA.SEED are still read, with a warning.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, List, Optional

from spine_det.config.classifier import DEFAULT_CONFIG, load_classifier_config
from spine_det.engine.classifier_trainer import train_classifier
from spine_det.engine.defaults import (
    check_inputs,
    default_argument_parser,
    launch_from_args,
    load_config_from_args,
    parse_args_for_training,
    setup_run,
)
from spine_det.utils.cli import reports_user_errors

logger = logging.getLogger("spine_det.train_classifier")


def get_parser() -> argparse.ArgumentParser:
    return default_argument_parser(
        __doc__, "train-classifier", config_file=DEFAULT_CONFIG,
        config_help="a YAML file, or a config shipped with the package",
        full_means="the config as written (ResNet50, ImageNet weights, 512 x 512)",
        resume_help="continue each view from the checkpoint OUTPUT_DIR/<view>/last_checkpoint names (a finished view "
                    "is not retrained)",
        eval_only_help="train nothing: score OUTPUT_DIR/<view>/model_best.pth on val (strategy) and test")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    return get_parser().parse_args(argv)


def load_config(args: argparse.Namespace) -> Any:
    """The classifier's config: its defaults, the YAML, the profile (its own profiles folder), the overrides; frozen."""
    return load_config_from_args(args, load_classifier_config)


def train(args: argparse.Namespace, cfg: Any = None) -> int:
    """One process's run (:func:`spine_det.engine.defaults.launch_from_args` starts it); ``cfg``: the config
    :func:`main` checked (None: load it here)."""
    cfg = load_config(args) if cfg is None else cfg
    prepared = setup_run(cfg, args)
    train_classifier(cfg, prepared.manifest, resume=args.resume, eval_only=args.eval_only)
    return 0


@reports_user_errors
def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv`` (default: the command line), check every input, then train."""
    args = parse_args_for_training(get_parser(), argv)
    cfg = load_config(args)
    check_inputs(cfg, args)  # before anything is written: GPUs, data root, device, cache, output
    launch_from_args(train, args, cfg)
    return 0


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

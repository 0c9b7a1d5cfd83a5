"""Train and evaluate the vertebra-landmark family (centre heatmap + corner offsets) on a vertebra task.

  spine-det train-landmark --config-file landmark/ap_vertebra.yaml --data-root DATA --profile cpu
  spine-det train-landmark --config-file landmark/ap_vertebra.yaml --data-root DATA --eval-only MODEL.WEIGHTS RUN/model_best.pth
  spine-det train-landmark --config-file landmark/ap_vertebra.yaml --data-root PHANTOM --profile cpu OUTPUT_DIR runs/lm_phantom
  spine-det train-landmark --config-file landmark/ap_vertebra.yaml --data-root DATA MODEL.INIT_WEIGHTS runs/lm_phantom/model_best.pth

The ground truth is each film's vertebra corners (an imported AASCE film's landmarks.json, the phantom's
ground_truth.json). After training, the best-validation checkpoint (model_best.pth) is scored on the test
split at the films' own resolution: <OUTPUT_DIR>/inference/spine_<task>_test/ (semantic_metrics.json, as
every family writes, and instance_metrics.json: vertebrae found per film). Predict with spine-det predict
--model landmark; the Cobb angles of its corners: spine-det measure-cobb --source quads.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, List, Optional

from spine_det.config.landmark import landmark_task, load_landmark_config
from spine_det.engine import distributed as du
from spine_det.engine.defaults import (
    check_inputs,
    default_argument_parser,
    launch_from_args,
    load_config_from_args,
    parse_args_for_training,
    setup_run,
)
from spine_det.engine.landmark_trainer import evaluate_landmark, train_landmark
from spine_det.utils.cli import reports_user_errors
from spine_det.utils.errors import UserError

logger = logging.getLogger("spine_det.train_landmark")


def get_parser() -> argparse.ArgumentParser:
    p = default_argument_parser(
        __doc__, "train-landmark", config_help="a YAML file or a shipped config name, e.g. landmark/ap_vertebra.yaml",
        full_means="the config as written (1024 x 384 input, GPU-sized)",
        resume_help="continue from the checkpoint OUTPUT_DIR/last_checkpoint names",
        eval_only_help="only score MODEL.WEIGHTS (default OUTPUT_DIR/model_best.pth)")
    p.add_argument("--no-test", action="store_true", help="skip the test-split evaluation after training")
    return p


def load_config(args: argparse.Namespace) -> Any:
    return load_config_from_args(args, load_landmark_config)


def train(args: argparse.Namespace, cfg: Any = None) -> int:
    """One process's run (started by :func:`spine_det.engine.defaults.launch_from_args`, or torchrun)."""
    cfg = load_config(args) if cfg is None else cfg
    du.init_from_env(cfg.MODEL.DEVICE)
    prepared = setup_run(cfg, args)
    try:
        weights = None
        if not args.eval_only:
            summary = train_landmark(cfg, prepared.manifest, resume=args.resume)
            logger.info("training done: %s", summary)
            if args.no_test:
                return 0
            weights = summary["best_checkpoint"]
        evaluate_landmark(cfg, prepared.manifest, weights=weights)
    finally:
        du.cleanup()
    return 0


@reports_user_errors
def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv`` (default: the command line), check every input, then train in one or more processes."""
    args = parse_args_for_training(get_parser(), argv)
    cfg = load_config(args)
    try:
        landmark_task(cfg)
    except ValueError as e:
        raise UserError(str(e)) from None
    check_inputs(cfg, args)
    launch_from_args(train, args, cfg)
    return 0


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

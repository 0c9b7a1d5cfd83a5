"""Train nnU-Net v2 on one task of a spine_det data root and score it on the test split.

  spine-det train-nnunet --config-file nnunet/lat_vertebra.yaml --data-root DATA
  spine-det train-nnunet --config-file nnunet/lat_vertebra.yaml --data-root DATA --eval-only

--profile auto (the default): a short smoke schedule (profiles/cpu.yaml) when no CUDA device is
found, nnU-Net's own 1000 x 250 schedule on a GPU; the log says which.

Exports the task to nnU-Net's raw format (2-D PNG, the manifest's train/val split as fold 0), plans and
preprocesses through nnunetv2's API, trains nnUNetTrainer (NNUNET.EPOCHS x NNUNET.ITERS_PER_EPOCH),
predicts the test images and scores them with the package's metrics:
<OUTPUT_DIR>/inference/spine_<task>_test/. Everything, nnU-Net's folders included, is written under
OUTPUT_DIR, never inside the data root. Needs `pip install 'spine_det[nnunet]'`.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, List, Optional

from spine_det.config.nnunet import load_nnunet_config
from spine_det.engine import nnunet
from spine_det.engine.defaults import (
    check_inputs,
    default_argument_parser,
    launch_from_args,
    load_config_from_args,
    parse_args_for_training,
    setup_run,
)
from spine_det.utils.cli import reports_user_errors
from spine_det.utils.errors import UserError

logger = logging.getLogger("spine_det.train_nnunet")


def get_parser() -> argparse.ArgumentParser:
    p = default_argument_parser(
        __doc__, "train-nnunet", config_help="a YAML file or a shipped config name, e.g. nnunet/lat_vertebra.yaml",
        full_means="nnU-Net's own 1000 x 250 schedule, for a GPU",
        resume_help="a finished run only re-scores; else training continues from nnU-Net's checkpoint_latest.pth",
        eval_only_help="only score MODEL.WEIGHTS (default: OUTPUT_DIR/model_final.pth)")
    p.add_argument("--no-test", action="store_true", help="skip the test-split evaluation after training")
    return p


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    return get_parser().parse_args(argv)


def load_config(args: argparse.Namespace) -> Any:
    """nnU-Net's load chain (:func:`spine_det.config.nnunet.load_nnunet_config`), frozen."""
    return load_config_from_args(args, load_nnunet_config)


def train(args: argparse.Namespace, cfg: Any = None) -> int:
    """One process's run (:func:`spine_det.engine.defaults.launch_from_args` starts it); ``cfg``: the config
    :func:`main` checked (None: load it here)."""
    cfg = load_config(args) if cfg is None else cfg
    prepared = setup_run(cfg, args)
    weights = None
    if not args.eval_only:
        weights = nnunet.train_nnunet(cfg, prepared.manifest, resume=args.resume)["checkpoint"]
        if args.no_test:
            return 0
    nnunet.evaluate_nnunet(cfg, prepared.manifest, weights=weights)
    return 0


@reports_user_errors
def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv`` (default: the command line), check every input, then train."""
    args = parse_args_for_training(get_parser(), argv)
    cfg = load_config(args)
    if nnunet.available() is not None:  # the extra is missing: one line naming the install command
        raise UserError(nnunet.INSTALL_HINT)
    check_inputs(cfg, args)  # before anything is written: GPUs, data root, device, cache, output folder
    launch_from_args(train, args, cfg)
    return 0


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

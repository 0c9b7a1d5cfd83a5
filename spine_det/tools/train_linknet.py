"""Train and evaluate the LinkNet baseline, or any smp network, on one task (or one view, multi-label).

  spine-det train-linknet --config-file linknet/lat_vertebra.yaml --data-root DATA
  spine-det train-linknet --config-file linknet/lat_vertebra.yaml --data-root DATA --eval-only
  spine-det train-linknet --config-file linknet/ap_all.yaml --data-root DATA --num-gpus 4
  spine-det train-linknet --config-file smp/lat_vertebra.yaml --data-root DATA MODEL.NAME smp_fpn
  torchrun --nproc_per_node 4 --no-python spine-det train-linknet --config-file linknet/ap_all.yaml --data-root DATA

--profile auto (the default) trains the cpu profile (small inputs, random init, a few epochs) when no CUDA
device is found and the full profile (the config as written) on a GPU; the log says which.

--config-file is a YAML path or the name of a shipped config: linknet/<task>.yaml (LinkNet) or smp/<task>.yaml
(an smp network: MODEL.NAME smp_unet, smp_fpn, ...; needs the smp extra). After training,
the best-validation checkpoint (model_best.pth) is scored on the test split at the original
resolution: <OUTPUT_DIR>/inference/spine_<task>_test/.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, List, Optional

from spine_det.config.semseg import load_semseg_config
from spine_det.engine import distributed as du
from spine_det.engine.defaults import (
    check_inputs,
    default_argument_parser,
    launch_from_args,
    load_config_from_args,
    parse_args_for_training,
    setup_run,
)
from spine_det.engine.semseg_trainer import evaluate_semseg, train_semseg
from spine_det.engine.preflight import check_seg_model_name
from spine_det.utils.cli import reports_user_errors

logger = logging.getLogger("spine_det.train_linknet")


def get_parser() -> argparse.ArgumentParser:
    p = default_argument_parser(
        __doc__, "train-linknet", config_help="a YAML file or a shipped config name, e.g. linknet/lat_vertebra.yaml",
        full_means="the config as written (512 x 512, ImageNet encoder, GPU-sized)",
        resume_help="continue from the checkpoint OUTPUT_DIR/last_checkpoint names (also a finished run given more SOLVER.MAX_EPOCHS: "
                    "a cosine schedule then goes on down from the LR reached, never back up)",
        eval_only_help="only score MODEL.WEIGHTS (default OUTPUT_DIR/model_best.pth)")
    p.add_argument("--no-test", action="store_true", help="skip the test-split evaluation after training")
    return p


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    return get_parser().parse_args(argv)


def load_config(args: argparse.Namespace) -> Any:
    """The one segmentation (LinkNet / smp) load chain (:func:`spine_det.config.semseg.load_semseg_config`), frozen."""
    return load_config_from_args(args, load_semseg_config)


def train(args: argparse.Namespace, cfg: Any = None) -> int:
    """One process's run (:func:`spine_det.engine.defaults.launch_from_args` starts it, or torchrun); ``cfg``:
    the config :func:`main` checked (None: load it here)."""
    cfg = load_config(args) if cfg is None else cfg
    du.init_from_env(cfg.MODEL.DEVICE)  # torchrun's process group (Detectron2's launch has joined one already)
    prepared = setup_run(cfg, args)
    try:
        if not args.eval_only:
            summary = train_semseg(cfg, prepared.manifest, resume=args.resume)
            logger.info("training done: %s", summary)
            if args.no_test:
                return 0
            weights = summary["best_checkpoint"]
        else:
            weights = None
        evaluate_semseg(cfg, prepared.manifest, weights=weights)
    finally:
        du.cleanup()
    return 0


@reports_user_errors
def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv`` (default: the command line), check every input, then train in one or more processes."""
    args = parse_args_for_training(get_parser(), argv)
    cfg = load_config(args)
    check_seg_model_name(cfg.MODEL.NAME)  # a typo'd network: one line naming the registered ones
    check_inputs(cfg, args)  # before anything is written: GPUs, data root, device, cache, output folder
    launch_from_args(train, args, cfg)
    return 0


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

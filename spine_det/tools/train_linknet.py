"""Train and evaluate the LinkNet baseline on one task (or one view, multi-label).

  spine-det train-linknet --config-file linknet/lat_vertebra.yaml --data-root DATA
  spine-det train-linknet --config-file linknet/lat_vertebra.yaml --data-root DATA --eval-only
  torchrun --nproc_per_node 4 --no-python spine-det train-linknet --config-file linknet/ap_all.yaml --data-root DATA

--profile auto (the default) trains the cpu profile (small inputs, random init, a few epochs) when no CUDA
device is found and the full profile (the config as written) on a GPU; the log says which.

--config-file is a YAML path or the name of a shipped config (linknet/<task>.yaml). After training,
the best-validation checkpoint (model_best.pth) is scored on the test split at the original
resolution: <OUTPUT_DIR>/inference/spine_<task>_test/.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from spine_det.config.profiles import add_profile_argument
from spine_det.utils.cli import add_data_args


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, help="a YAML file or a shipped config name, e.g. linknet/lat_vertebra.yaml")
    add_data_args(p)
    add_profile_argument(p, full_means="the config as written (512 x 512, ImageNet encoder, GPU-sized)")
    p.add_argument("--eval-only", action="store_true", help="only score MODEL.WEIGHTS (default OUTPUT_DIR/model_best.pth)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUTPUT_DIR/last_checkpoint.pth (also a finished run given more SOLVER.MAX_EPOCHS: "
                        "a cosine schedule then goes on down from the LR reached, never back up)")
    p.add_argument("--no-test", action="store_true", help="skip the test-split evaluation after training")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs, e.g. SOLVER.MAX_EPOCHS 10")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    from spine_det.utils.cli import run_reporting_user_errors

    return run_reporting_user_errors(_main, parse_args(argv))


def _main(args: argparse.Namespace) -> int:
    from spine_det.config.linknet import load_linknet_config
    from spine_det.config.paths import resolve_config_file
    from spine_det.config.profiles import resolve_profile
    from spine_det.data.prepare import prepare_dataset
    from spine_det.engine import distributed as du  # first: the compat shims before detectron2
    from spine_det.engine.linknet_trainer import evaluate_linknet, train_linknet
    from detectron2.utils import comm

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    opts = list(args.opts)
    if args.cache_dir:
        opts = ["SPINE.CACHE_DIR", args.cache_dir, *opts]
    profile = resolve_profile(args.profile)
    cfg = load_linknet_config(resolve_config_file(args.config_file), profile, opts, data_root=args.data_root)
    if not cfg.SPINE.DATA_ROOT:
        print("error: give --data-root DIR (or SPINE.DATA_ROOT DIR)", file=sys.stderr)
        return 2
    from spine_det.engine.preflight import check_seg_model_name, check_training_inputs
    from spine_det.utils.paths import OutputLocationError

    check_seg_model_name(cfg.MODEL.NAME)  # a typo'd network: one line naming the registered ones
    try:  # before anything is written: data root, MODEL.DEVICE, cache and output folders (never inside the data root)
        check_training_inputs(cfg.OUTPUT_DIR, cfg.SPINE.DATA_ROOT, cfg.SPINE.CACHE_DIR, cfg.MODEL.DEVICE)
    except OutputLocationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    du.init_from_env(cfg.MODEL.DEVICE)
    from spine_det.utils.logs import log_to_run_folder

    log_to_run_folder(cfg.OUTPUT_DIR, comm.get_rank())  # OUTPUT_DIR/log.txt, as a Mask R-CNN run has

    def prepare():
        return prepare_dataset(cfg.SPINE.DATA_ROOT, cache_dir=cfg.SPINE.CACHE_DIR or None, seed=cfg.SPINE.SPLIT_SEED,
                               convert=False)

    # Rank 0 scans first (cached manifest), the others then read it.
    if comm.is_main_process():
        prepared = prepare()
    comm.synchronize()
    if not comm.is_main_process():
        prepared = prepare()
    logging.getLogger("train_linknet").info("data: %s", prepared.manifest.summary())
    try:
        if not args.eval_only:
            summary = train_linknet(cfg, prepared.manifest, resume=args.resume)
            logging.getLogger("train_linknet").info("training done: %s", summary)
            if args.no_test:
                return 0
            weights = summary["best_checkpoint"]
        else:
            weights = None
        evaluate_linknet(cfg, prepared.manifest, weights=weights)
    finally:
        du.cleanup()
    return 0


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

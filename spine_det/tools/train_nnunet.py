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
from typing import List, Optional

from spine_det.config.profiles import add_profile_argument
from spine_det.utils.cli import add_data_args


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, help="a YAML file or a shipped config name, e.g. nnunet/lat_vertebra.yaml")
    add_data_args(p)
    add_profile_argument(p, full_means="nnU-Net's own 1000 x 250 schedule, for a GPU")
    p.add_argument("--eval-only", action="store_true", help="only score MODEL.WEIGHTS (default: OUTPUT_DIR/model_final.pth)")
    p.add_argument("--resume", action="store_true",
                   help="a finished run only re-scores; else training continues from nnU-Net's checkpoint_latest.pth")
    p.add_argument("--no-test", action="store_true", help="skip the test-split evaluation after training")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs, e.g. NNUNET.EPOCHS 5")
    return p.parse_args(argv)


def _main(args: argparse.Namespace) -> int:
    from spine_det.config.paths import resolve_config_file
    from spine_det.config.profiles import resolve_profile
    from spine_det.data.prepare import prepare_dataset
    from spine_det.engine import nnunet
    from spine_det.engine.preflight import check_training_inputs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    opts = list(args.opts)
    if args.data_root:
        opts = ["SPINE.DATA_ROOT", args.data_root, *opts]
    if args.cache_dir:
        opts = ["SPINE.CACHE_DIR", args.cache_dir, *opts]
    cfg = nnunet.load_config(resolve_config_file(args.config_file), resolve_profile(args.profile), opts)
    if not cfg.SPINE.DATA_ROOT:
        print("error: give --data-root DIR (or SPINE.DATA_ROOT DIR)", file=sys.stderr)
        return 2
    # before anything is written: data root, MODEL.DEVICE, cache and output folders (never inside the data root)
    check_training_inputs(cfg.OUTPUT_DIR, cfg.SPINE.DATA_ROOT, cfg.SPINE.CACHE_DIR, cfg.MODEL.DEVICE)
    if nnunet.available() is not None:
        print(f"error: {nnunet.INSTALL_HINT}", file=sys.stderr)
        return 2
    prepared = prepare_dataset(cfg.SPINE.DATA_ROOT, cache_dir=cfg.SPINE.CACHE_DIR or None, seed=cfg.SPINE.SPLIT_SEED,
                               convert=False)
    weights = None
    if not args.eval_only:
        weights = nnunet.train_nnunet(cfg, prepared.manifest, resume=args.resume)["checkpoint"]
        if args.no_test:
            return 0
    nnunet.evaluate_nnunet(cfg, prepared.manifest, weights=weights)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    from spine_det.utils.cli import run_reporting_user_errors

    return run_reporting_user_errors(_main, parse_args(argv))


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

#!/usr/bin/env python
"""Train and evaluate the LinkNet baseline on one task (or one view, multi-label).

  python tools/train_linknet.py --config-file configs/linknet/lat_vertebra.yaml --data-root DATA --profile cpu
  python tools/train_linknet.py --config-file configs/linknet/lat_vertebra.yaml --data-root DATA --eval-only
  torchrun --nproc_per_node 4 tools/train_linknet.py --config-file configs/linknet/ap_all.yaml --data-root DATA

After training, the best-validation checkpoint (model_best.pth) is scored on the
test split at the original resolution: <OUTPUT_DIR>/inference/spine_<task>_test/.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True, help="e.g. configs/linknet/lat_vertebra.yaml")
    p.add_argument("--data-root", help="dataset folder (Training/{Normal,Damaged}/..., optional Test/); or set DATA.ROOT")
    p.add_argument("--cache-dir", help="where the manifest is cached (default: $SPINE_DET_CACHE or ~/.cache/spine_det)")
    p.add_argument("--profile", help="merge configs/linknet/profiles/<name>.yaml (e.g. cpu) or a YAML path")
    p.add_argument("--eval-only", action="store_true", help="only score MODEL.WEIGHTS (default OUTPUT_DIR/model_best.pth)")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/last_checkpoint.pth")
    p.add_argument("--no-test", action="store_true", help="skip the test-split evaluation after training")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs, e.g. SOLVER.MAX_EPOCHS 10")
    return p.parse_args(argv)


def main(argv=None) -> int:
    from spine_det.utils.cli import run_reporting_user_errors

    return run_reporting_user_errors(_main, parse_args(argv))


def _main(args: argparse.Namespace) -> int:
    from spine_det.config.linknet import get_linknet_cfg, load_cfg
    from spine_det.data.prepare import prepare_dataset
    from spine_det.engine import distributed as du
    from spine_det.engine.linknet_trainer import evaluate_linknet, train_linknet

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    profile_dir = Path(__file__).resolve().parents[1] / "configs" / "linknet" / "profiles"
    opts = list(args.opts)
    if args.data_root:
        opts += ["DATA.ROOT", args.data_root]
    if args.cache_dir:
        opts += ["DATA.CACHE_DIR", args.cache_dir]
    cfg = load_cfg(get_linknet_cfg(), args.config_file, args.profile, opts, profile_dir=profile_dir)
    if not cfg.DATA.ROOT:
        print("error: give --data-root DIR (or DATA.ROOT DIR)", file=sys.stderr)
        return 2
    from spine_det.utils.paths import OutputLocationError, prepare_output

    try:
        prepare_output(cfg.OUTPUT_DIR, cfg.DATA.ROOT)  # never inside the data root; writable
    except OutputLocationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    du.init_from_env(cfg.MODEL.DEVICE)
    # Rank 0 scans first (cached manifest), the others then read it.
    if du.is_main_process():
        prepared = prepare_dataset(cfg.DATA.ROOT, cache_dir=cfg.DATA.CACHE_DIR or None, seed=cfg.DATA.SEED, convert=False)
    du.synchronize()
    if not du.is_main_process():
        prepared = prepare_dataset(cfg.DATA.ROOT, cache_dir=cfg.DATA.CACHE_DIR or None, seed=cfg.DATA.SEED, convert=False)
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


if __name__ == "__main__":
    sys.exit(main())

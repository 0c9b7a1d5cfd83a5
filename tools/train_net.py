#!/usr/bin/env python
"""Train / evaluate Detectron2 Mask R-CNN on the spine X-ray dataset.

Detectron2's ``tools/train_net.py`` idiom over the spine_det package:

    python tools/train_net.py --config-file configs/lat_vertebra.yaml --data-root DATA
    python tools/train_net.py --config-file configs/lat_vertebra.yaml --data-root DATA --profile cpu
    python tools/train_net.py --config-file configs/lat_vertebra.yaml --data-root DATA --resume
    python tools/train_net.py --config-file configs/lat_vertebra.yaml --data-root DATA --eval-only \
        MODEL.WEIGHTS output/maskrcnn/lat_vertebra/model_best.pth

The data folder is scanned and converted to COCO once, into a cache outside it.
Validation (val split) runs every TEST.EVAL_PERIOD iterations and keeps the best
Dice as ``model_best.pth``; after training that model is evaluated on
SPINE.EVAL.SPLITS (val and test). Results: ``OUTPUT_DIR/inference/<dataset>/``.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

import spine_det.compat  # noqa: E402,F401  (shims before detectron2)
from detectron2.config import get_cfg  # noqa: E402
from detectron2.engine import default_argument_parser, default_setup, launch  # noqa: E402
from detectron2.utils import comm  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from spine_det.config import (PROFILES, add_spine_config, apply_profile, fit_cfg_to_linknet_init, fix_device,  # noqa: E402
                              fix_scratch_norm, spine_tasks)
from spine_det.engine.trainer import (  # noqa: E402
    SpineTrainer,
    evaluate_splits,
    final_evaluation,
    load_for_eval,
    register_datasets,
)
from spine_det.evaluation.semantic_evaluator import build_spine_evaluator  # noqa: E402

logger = logging.getLogger("spine_det.train_net")


def build_evaluator(cfg, dataset_name, output_folder=None, checkpoint: str = ""):
    """Semantic Dice/Jaccard/TPR per task (+ COCO AP if SPINE.EVAL.COCO_AP)."""
    return build_spine_evaluator(cfg, dataset_name, output_folder, checkpoint=checkpoint)


class Trainer(SpineTrainer):
    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None, checkpoint: str = ""):
        return build_evaluator(cfg, dataset_name, output_folder, checkpoint)


def setup(args):
    """get_cfg → add_spine_config → merge_from_file → profile → opts → freeze → default_setup."""
    from spine_det.config.safe import merge_from_file, merge_from_list

    cfg = get_cfg()
    add_spine_config(cfg)
    merge_from_file(cfg, args.config_file)  # safe YAML only (Detectron2's default falls back to unsafe_load)
    apply_profile(cfg, args.config_file, args.profile)
    if args.data_root:
        cfg.SPINE.DATA_ROOT = str(Path(args.data_root).resolve())
    merge_from_list(cfg, args.opts)
    fit_cfg_to_linknet_init(cfg)  # MODEL.WEIGHTS a LinkNet checkpoint: R18 backbone from its encoder
    fix_scratch_norm(cfg)
    fix_device(cfg)
    spine_tasks(cfg)  # fail early on a config whose tasks and NUM_CLASSES disagree
    cfg.freeze()
    from spine_det.utils.paths import prepare_output

    if comm.is_main_process():
        prepare_output(cfg.OUTPUT_DIR, cfg.SPINE.DATA_ROOT)  # never inside the data root; writable
    default_setup(cfg, args)
    # default_setup configures the "detectron2" logger; ours logs under "spine_det".
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="spine_det", abbrev_name="spine")
    return cfg


def main(args):
    cfg = setup(args)
    register_datasets(cfg)

    if args.eval_only:
        if not cfg.MODEL.WEIGHTS:
            raise SystemExit("--eval-only needs a checkpoint: MODEL.WEIGHTS path/to/model_best.pth")
        model = load_for_eval(Trainer, cfg, cfg.MODEL.WEIGHTS)
        return evaluate_splits(Trainer, cfg, model, cfg.SPINE.EVAL.SPLITS, cfg.MODEL.WEIGHTS)

    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    trainer.train()
    return final_evaluation(Trainer, cfg)


def get_parser():
    parser = default_argument_parser(epilog=__doc__)
    parser.add_argument("--data-root", default="", metavar="DIR", help="spine dataset folder (Training/{Normal,Damaged}/...)")
    parser.add_argument(
        "--profile", choices=PROFILES, default="full",
        help="full: the config as written; cpu: merge configs/profiles/cpu.yaml (R18-GN, small inputs, random init)",
    )
    return parser


def _run(args) -> None:
    from spine_det.config.safe import ConfigError
    from spine_det.data.io import DataError
    from spine_det.engine.predictor import CheckpointError
    from spine_det.engine.trainer import WeightsUnavailableError

    try:
        launch(
            main,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
        )
    except (WeightsUnavailableError, CheckpointError, ConfigError, DataError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    args = get_parser().parse_args()
    print("Command Line Args:", args)
    _run(args)

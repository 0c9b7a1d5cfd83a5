"""Train / evaluate Detectron2 Mask R-CNN on the spine X-ray dataset.

Detectron2's ``tools/train_net.py`` idiom over the spine_det package:

    spine-det train-net --config-file lat_vertebra.yaml --data-root DATA
    spine-det train-net --config-file lat_vertebra.yaml --data-root DATA --resume
    spine-det train-net --config-file lat_vertebra.yaml --data-root DATA --eval-only \\
        MODEL.WEIGHTS output/maskrcnn/lat_vertebra/model_best.pth
    spine-det train-net --config-file lat_vertebra.yaml --data-root DATA --num-gpus 8 --profile full

--profile auto (the default) trains the cpu profile (R18-GN from random init, small inputs, a few
hundred iterations) when no CUDA device is found and the full profile (the config as written) on a
GPU; the first line of output says which.

--config-file is a YAML path or the name of a shipped config (<task>.yaml).

The data folder is scanned and converted to COCO once, into a cache outside it.
Validation (val split) runs every TEST.EVAL_PERIOD iterations and keeps the best
Dice as ``model_best.pth``; after training that model is evaluated on
SPINE.EVAL.SPLITS (val and test). Results: ``OUTPUT_DIR/inference/<dataset>/``.
--eval-only into a folder that holds a training run keeps its config.yaml and writes
the evaluation's config to config_eval.yaml.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import spine_det.compat  # noqa: F401  (shims before detectron2)
from spine_det.config import get_spine_cfg
from spine_det.engine.defaults import (
    check_inputs,
    default_argument_parser,
    default_setup,
    launch_from_args,
    load_config_from_args,
    parse_args_for_training,
)
from spine_det.engine.trainer import (
    SpineTrainer,
    WeightsUnavailableError,
    evaluate_splits,
    final_evaluation,
    load_for_eval,
    register_datasets,
)
from spine_det.evaluation.semantic_evaluator import build_spine_evaluator
from spine_det.evaluation.thresholds import thresholds_beside_checkpoint
from spine_det.utils.cli import reports_user_errors
from spine_det.utils.errors import UserError

logger = logging.getLogger("spine_det.train_net")


def build_evaluator(cfg, dataset_name, output_folder=None, checkpoint: str = ""):
    """Semantic Dice/Jaccard/TPR per task (+ COCO AP if SPINE.EVAL.COCO_AP)."""
    return build_spine_evaluator(cfg, dataset_name, output_folder, checkpoint=checkpoint)


class Trainer(SpineTrainer):
    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None, checkpoint: str = ""):
        return build_evaluator(cfg, dataset_name, output_folder, checkpoint)


def load_config(args: argparse.Namespace):
    """The one Mask R-CNN load chain (:func:`spine_det.config.get_spine_cfg`, for training), frozen."""
    cfg = load_config_from_args(args, lambda f, profile, opts: get_spine_cfg(f, profile, opts, training=True))
    cfg.freeze()
    return cfg


def setup(args: argparse.Namespace, cfg: Any = None):
    """One process's config: ``cfg`` (the one :func:`main` checked) or :func:`load_config`, then
    :func:`spine_det.engine.defaults.default_setup` (output folder locked, log.txt, config.yaml;
    --eval-only into a folder holding a training run keeps its config.yaml and writes config_eval.yaml)."""
    cfg = load_config(args) if cfg is None else cfg
    default_setup(cfg, args)
    return cfg


def _thresholds_of_checkpoint(cfg):
    """--eval-only with tuned thresholds (SCORE_THRESHOLD < 0): read those tuned for MODEL.WEIGHTS
    (its folder's thresholds.json), also when OUTPUT_DIR is elsewhere, e.g. scoring on another dataset."""
    if cfg.SPINE.EVAL.SCORE_THRESHOLD >= 0 or cfg.SPINE.EVAL.THRESHOLDS_DIR:
        return cfg
    found = thresholds_beside_checkpoint(cfg, cfg.MODEL.WEIGHTS)
    if found is None:
        logger.warning("SPINE.EVAL.SCORE_THRESHOLD < 0 but no thresholds.json beside %s or in OUTPUT_DIR: "
                       "Detectron2's 0.5 / 0.5", cfg.MODEL.WEIGHTS)
        return cfg
    cfg.defrost()
    cfg.SPINE.EVAL.THRESHOLDS_DIR = str(found)
    cfg.freeze()
    logger.info("Thresholds tuned for this checkpoint: %s", found / "thresholds.json")
    return cfg


def train(args: argparse.Namespace, cfg: Any = None) -> Dict[str, Any]:
    """What Detectron2's ``tools/train_net.py`` calls ``main(args)``: one process's run (``launch`` starts it)."""
    cfg = setup(args, cfg)
    register_datasets(cfg)

    if args.eval_only:
        cfg = _thresholds_of_checkpoint(cfg)
        model = load_for_eval(Trainer, cfg, cfg.MODEL.WEIGHTS)
        return evaluate_splits(Trainer, cfg, model, cfg.SPINE.EVAL.SPLITS, cfg.MODEL.WEIGHTS)

    trainer = Trainer(cfg)
    try:
        trainer.resume_or_load(resume=args.resume)
    except WeightsUnavailableError as e:  # no network for the COCO weights: one line naming what to do
        raise UserError(str(e)) from None
    trainer.train()
    return final_evaluation(Trainer, cfg)


def get_parser() -> argparse.ArgumentParser:
    return default_argument_parser(
        __doc__, "train-net", config_help="a YAML path or the name of a shipped config (<task>.yaml)",
        full_means="the config as written (R50-FPN from COCO weights, GPU-sized)",
        resume_help="continue from OUTPUT_DIR/last_checkpoint (Detectron2's resume_or_load)",
        eval_only_help="train nothing: score MODEL.WEIGHTS on SPINE.EVAL.SPLITS")


def check_family_inputs(cfg) -> None:
    """What only Mask R-CNN needs: --eval-only names a checkpoint that exists."""
    weights = cfg.MODEL.WEIGHTS
    if not weights:
        raise UserError("--eval-only needs a checkpoint: MODEL.WEIGHTS path/to/model_best.pth")
    if "://" not in weights and not Path(weights).expanduser().is_file():
        raise UserError(f"--eval-only: MODEL.WEIGHTS file not found: {weights}")


@reports_user_errors
def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv`` (default: the command line), check every input, then train in one or more processes."""
    args = parse_args_for_training(get_parser(), argv)
    cfg = load_config(args)
    if args.eval_only:
        check_family_inputs(cfg)
    check_inputs(cfg, args)  # before anything is written: GPUs, data root, device, cache, output folder
    launch_from_args(train, args, cfg)
    return 0


def invoke_main() -> None:
    """The console entry point: run on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

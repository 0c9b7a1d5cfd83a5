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

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import List, Optional

import spine_det.compat  # noqa: F401  (shims before detectron2)
from detectron2.engine import default_argument_parser, default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from spine_det.config import get_spine_cfg
from spine_det.config.profiles import resolve_profile
from spine_det.engine.launch import launch  # Detectron2's, the compat shims applied in each spawned worker
from spine_det.engine.trainer import (
    SpineTrainer,
    evaluate_splits,
    final_evaluation,
    load_for_eval,
    register_datasets,
)
from spine_det.evaluation.semantic_evaluator import build_spine_evaluator
from spine_det.config.profiles import add_profile_argument
from spine_det.utils.fileio import atomic_write_bytes

logger = logging.getLogger("spine_det.train_net")


def build_evaluator(cfg, dataset_name, output_folder=None, checkpoint: str = ""):
    """Semantic Dice/Jaccard/TPR per task (+ COCO AP if SPINE.EVAL.COCO_AP)."""
    return build_spine_evaluator(cfg, dataset_name, output_folder, checkpoint=checkpoint)


class Trainer(SpineTrainer):
    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None, checkpoint: str = ""):
        return build_evaluator(cfg, dataset_name, output_folder, checkpoint)


@contextlib.contextmanager
def _training_config_kept(output_dir: str, keep: bool):
    """Around Detectron2's ``default_setup``, which dumps the config it is given to OUTPUT_DIR/config.yaml:
    with ``keep`` (--eval-only) an existing config.yaml, the record of how that folder's model was trained,
    stays; the evaluation's own config goes to config_eval.yaml. A copy is kept on disk until it is back."""
    path = Path(output_dir) / "config.yaml"
    if not (keep and path.is_file()):
        yield
        return
    backup = path.with_name("config.yaml.training")
    atomic_write_bytes(backup, path.read_bytes())
    try:
        yield
        atomic_write_bytes(path.with_name("config_eval.yaml"), path.read_bytes())
    finally:
        os.replace(backup, path)


def setup(args):
    """The one load chain (:func:`spine_det.config.get_spine_cfg`, for training) → freeze → default_setup."""
    from spine_det.config.paths import resolve_config_file

    args.config_file = str(resolve_config_file(args.config_file))
    cfg = get_spine_cfg(args.config_file, args.profile, args.opts, data_root=args.data_root or None, training=True)
    cfg.freeze()
    from spine_det.utils.paths import prepare_output

    if comm.is_main_process():
        prepare_output(cfg.OUTPUT_DIR, cfg.SPINE.DATA_ROOT)  # never inside the data root; writable
    with _training_config_kept(cfg.OUTPUT_DIR, args.eval_only and comm.is_main_process()):
        default_setup(cfg, args)
    # default_setup configures the "detectron2" logger; ours logs under "spine_det".
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="spine_det", abbrev_name="spine")
    return cfg


def _thresholds_of_checkpoint(cfg):
    """--eval-only with tuned thresholds (SCORE_THRESHOLD < 0): read those tuned for MODEL.WEIGHTS
    (its folder's thresholds.json), also when OUTPUT_DIR is elsewhere, e.g. scoring on another dataset."""
    from spine_det.evaluation.thresholds import thresholds_beside_checkpoint

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


def train(args):
    """What Detectron2's ``tools/train_net.py`` calls ``main(args)``: one process's run (``launch`` starts it)."""
    cfg = setup(args)
    register_datasets(cfg)

    if args.eval_only:
        if not cfg.MODEL.WEIGHTS:
            raise SystemExit("--eval-only needs a checkpoint: MODEL.WEIGHTS path/to/model_best.pth")
        cfg = _thresholds_of_checkpoint(cfg)
        model = load_for_eval(Trainer, cfg, cfg.MODEL.WEIGHTS)
        return evaluate_splits(Trainer, cfg, model, cfg.SPINE.EVAL.SPLITS, cfg.MODEL.WEIGHTS)

    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    trainer.train()
    return final_evaluation(Trainer, cfg)


def get_parser():
    parser = default_argument_parser(epilog=__doc__)
    parser.add_argument("--data-root", default="", metavar="DIR", help="spine dataset folder (Training/{Normal,Damaged}/...)")
    add_profile_argument(parser, full_means="the config as written (R50-FPN from COCO weights, GPU-sized)")
    return parser


def _check_inputs(args) -> None:
    """What the run needs, checked here before ``launch`` starts workers and before anything is written
    (Detectron2's ``default_setup`` writes OUTPUT_DIR/config.yaml first thing): the GPUs --num-gpus asks
    for, the config, the data root, MODEL.DEVICE, the cache and output folders."""
    from spine_det.config.paths import resolve_config_file
    from spine_det.engine.preflight import check_gpu_count, check_training_inputs

    check_gpu_count(args.num_gpus)
    cfg = get_spine_cfg(str(resolve_config_file(args.config_file)), args.profile, args.opts,
                        data_root=args.data_root or None)
    if not cfg.SPINE.DATA_ROOT:
        print("error: give --data-root DIR (or SPINE.DATA_ROOT DIR)", file=sys.stderr)
        raise SystemExit(2)
    # lock=False: setup() takes the output folder's lock in the worker (one held here would shut out a spawned rank 0)
    check_training_inputs(cfg.OUTPUT_DIR, cfg.SPINE.DATA_ROOT, cfg.SPINE.CACHE_DIR, cfg.MODEL.DEVICE, lock=False)


def _run(args) -> None:
    from spine_det.config.safe import ConfigError
    from spine_det.data.io import DataError
    from spine_det.engine.predictor import CheckpointError
    from spine_det.engine.trainer import WeightsUnavailableError
    from spine_det.utils.errors import UserError

    try:
        _check_inputs(args)
        launch(
            train,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
        )
    except (WeightsUnavailableError, CheckpointError, ConfigError, DataError, UserError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv`` (default: the command line) and run; 0 on success."""
    args = get_parser().parse_args(argv)
    args.profile = resolve_profile(args.profile, report=print)  # before launch: every worker trains the same
    print("Command Line Args:", args)
    _run(args)
    return 0


def invoke_main() -> None:
    """The console entry point: run on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

"""Detectron2 DefaultTrainer for spine X-rays: datasets, mapper, evaluators, best checkpoint."""
from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import spine_det.compat  # noqa: F401  (shims before detectron2)
from detectron2.data import (DatasetCatalog, MetadataCatalog, build_detection_test_loader, build_detection_train_loader,
                             get_detection_dataset_dicts)
from detectron2.engine import DefaultTrainer, hooks
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager

from spine_det.config import best_metric_key, spine_tasks, split_dataset_names
from spine_det.data.instances import definitions_from_cfg
from spine_det.data.layout import nested_keys
from spine_det.data.mapper import SpineDatasetMapper
from spine_det.data.prepare import prepare_dataset
from spine_det.data.register import register_spine_datasets
from spine_det.engine.checkpointer import check_trusted_weights, harden
from spine_det.engine.hooks import SpineBestCheckpointer
from spine_det.engine.predictor import load_model_weights
from spine_det.engine.writers import stamp_json_writers
from spine_det.evaluation.semantic_evaluator import build_spine_evaluator
from spine_det.evaluation.threshold_tuning import tune_on_val
from spine_det.evaluation.thresholds import with_tuned_mask_threshold
from spine_det.utils.checkpoint_io import CheckpointError

spine_det.compat.patch_cpu_ddp()  # --num-gpus N without CUDA: DDP of a CPU model (compat shim 3)

logger = logging.getLogger(__name__)


class WeightsUnavailableError(RuntimeError):
    """MODEL.WEIGHTS can be neither found nor downloaded."""


def ensure_weights_available(weights: str) -> Optional[str]:
    """Local path of ``MODEL.WEIGHTS`` (downloading it once); one clear line if impossible."""
    if not weights:
        return None

    hint = (
        f"download {Path(weights).name} on a machine with internet and pass `MODEL.WEIGHTS /path/to/{Path(weights).name}` "
        "(a .pkl with SPINE_DET_TRUST_PICKLE=1: it is a pickle), "
        "or train from random init with `--profile cpu` or `MODEL.WEIGHTS ''`"
    )
    if "://" in weights:
        try:
            return PathManager.get_local_path(weights)
        except Exception as e:  # noqa: BLE001  (network errors come in many types)
            raise WeightsUnavailableError(f"cannot download MODEL.WEIGHTS {weights} ({type(e).__name__}: {e}); {hint}") from None
    if not Path(weights).is_file():
        raise WeightsUnavailableError(f"MODEL.WEIGHTS file not found: {weights}; {hint}")
    return weights


def register_datasets(cfg):
    """Scan + convert ``SPINE.DATA_ROOT`` once (cached) and register its datasets; checks the config fits."""
    if not cfg.SPINE.DATA_ROOT:
        raise ValueError("no dataset: pass --data-root DIR (or SPINE.DATA_ROOT DIR)")
    tasks = spine_tasks(cfg)

    prepared = prepare_dataset(
        cfg.SPINE.DATA_ROOT, cache_dir=cfg.SPINE.CACHE_DIR or None, seed=cfg.SPINE.SPLIT_SEED, tasks=tasks,
        definitions=definitions_from_cfg(cfg, tasks),
    )
    register_spine_datasets(prepared.coco_dir, prepared.manifest)
    for name in [*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST]:
        if name not in DatasetCatalog.list():
            raise ValueError(f"dataset {name!r} of the config is not registered (registered: spine_<task|view>_<split>)")
        meta_tasks = list(getattr(MetadataCatalog.get(name), "tasks", []) or [])
        if meta_tasks and meta_tasks != tasks:
            raise ValueError(f"dataset {name} holds classes {meta_tasks} but SPINE.TASKS is {tasks}")
    return prepared


def train_subset(cfg) -> list:
    """The training dataset dicts of ``DATALOADER.TRAIN_SUBSET`` films (spine_det.data.layout.nested_keys
    over the training images, drawn with ``SEED``), empty-annotation filtering as Detectron2 applies it."""
    dicts = get_detection_dataset_dicts(cfg.DATASETS.TRAIN, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS)
    keep = set(nested_keys({d["image_id"] for d in dicts}, cfg.DATALOADER.TRAIN_SUBSET, cfg.SEED))
    subset = [d for d in dicts if d["image_id"] in keep]
    logger.info("DATALOADER.TRAIN_SUBSET: training on %d of %d training images (drawn with SEED %d)",
                len(subset), len(dicts), cfg.SEED)
    return subset


class SpineTrainer(DefaultTrainer):
    """DefaultTrainer with spine_det's mapper and evaluators and a ``model_best.pth`` hook."""

    @classmethod
    def build_train_loader(cls, cfg):
        mapper = SpineDatasetMapper(cfg, True)
        if cfg.DATALOADER.TRAIN_SUBSET > 0:
            return build_detection_train_loader(cfg, mapper=mapper, dataset=train_subset(cfg))
        return build_detection_train_loader(cfg, mapper=mapper)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(cfg, dataset_name, mapper=SpineDatasetMapper(cfg, False))

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None, checkpoint: str = "") -> DatasetEvaluator:
        return build_spine_evaluator(cfg, dataset_name, output_folder, checkpoint=checkpoint)

    @classmethod
    def test(cls, cfg, model, evaluators=None, checkpoint: Optional[str] = None):
        if evaluators is None:
            label = checkpoint or f"{cfg.OUTPUT_DIR} (model in training)"
            evaluators = [cls.build_evaluator(cfg, name, checkpoint=label) for name in cfg.DATASETS.TEST]
        return super().test(cfg, model, evaluators)

    def build_writers(self):
        """Detectron2's writers; ``metrics.json`` lines also name the spine_det version and commit."""
        return stamp_json_writers(super().build_writers())

    def build_hooks(self):
        ret = super().build_hooks()
        if comm.is_main_process():
            best = SpineBestCheckpointer(self.cfg.TEST.EVAL_PERIOD, self.checkpointer, best_metric_key(self.cfg), mode="max")
            idx = next(i for i, h in enumerate(ret) if isinstance(h, hooks.EvalHook))
            ret.insert(idx + 1, best)  # right after EvalHook put the metric in storage
        return ret

    def resume_or_load(self, resume: bool = True):
        harden(self)  # .pth with weights_only=True, .pkl only from the model zoo
        if resume and self.checkpointer.has_checkpoint():
            target = self.checkpointer.get_checkpoint_file()
            if not Path(target).is_file():
                raise CheckpointError(f"{Path(self.cfg.OUTPUT_DIR) / 'last_checkpoint'} names {target}, which does not exist; "
                                      "fix or delete that file to resume from another checkpoint (or start without --resume)")
        if not (resume and self.checkpointer.has_checkpoint()):
            check_trusted_weights(self.cfg.MODEL.WEIGHTS)
            ensure_weights_available(self.cfg.MODEL.WEIGHTS)
        return super().resume_or_load(resume=resume)


def evaluate_splits(
    trainer_cls, cfg, model, splits: Sequence[str], checkpoint: str
) -> Dict[str, Any]:
    """Evaluate ``model`` on the config's datasets moved to each split; empty splits are skipped."""
    results: Dict[str, Any] = OrderedDict()
    for split in splits:
        names = [n for n in split_dataset_names(cfg, split) if _has_images(n)]
        if not names:
            logger.warning("No %s images for %s: not evaluated", split, cfg.DATASETS.TEST)
            continue
        c = cfg.clone()
        c.defrost()
        c.DATASETS.TEST = tuple(names)
        c.freeze()
        results[split] = trainer_cls.test(c, model, checkpoint=checkpoint)
    return results


def _has_images(name: str) -> bool:
    return name in DatasetCatalog.list() and len(DatasetCatalog.get(name)) > 0


def load_for_eval(trainer_cls, cfg, checkpoint: str):
    """A model built from ``cfg`` holding ``checkpoint`` (clear error on a mismatch)."""
    model = trainer_cls.build_model(cfg)
    load_model_weights(model, checkpoint, config_name="the config")
    model.eval()

    return with_tuned_mask_threshold(cfg, model)  # the mask threshold tuned on val, if the config asks for it


def final_evaluation(trainer_cls, cfg) -> Dict[str, Any]:
    """After training: evaluate ``model_best.pth`` (else ``model_final.pth``) on SPINE.EVAL.SPLITS."""
    comm.synchronize()
    out = Path(cfg.OUTPUT_DIR)
    ckpt = out / "model_best.pth"
    if not ckpt.is_file():
        ckpt = out / "model_final.pth"
    model = load_for_eval(trainer_cls, cfg, str(ckpt))
    if cfg.SPINE.EVAL.SCORE_THRESHOLD < 0 and comm.is_main_process():  # "tuned": choose on val, save with the model
        tune_on_val(trainer_cls, cfg, model)
    comm.synchronize()

    model = with_tuned_mask_threshold(cfg, model)  # a no-op unless SCORE_THRESHOLD < 0 (thresholds.json)
    logger.info("Final evaluation of %s on %s", ckpt, list(cfg.SPINE.EVAL.SPLITS))
    return evaluate_splits(trainer_cls, cfg, model, cfg.SPINE.EVAL.SPLITS, str(ckpt))

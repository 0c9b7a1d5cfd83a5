"""Training of every semantic-segmentation network (``MODEL.NAME`` of :data:`spine_det.modeling.semseg.SEG_MODEL_REGISTRY`:
the LinkNet baseline, the smp networks), as the report describes LinkNet's and a bit more.

The report: negative soft Dice loss, 90:10 train/validation split of the
training patients, up to 200 epochs, a checkpoint whenever validation Dice
improves, early stopping and an LR scheduler. The loop is Detectron2's
(:class:`spine_det.engine.epoch_trainer.EpochTrainer`: SimpleTrainer / AMPTrainer steps, hooks for
validation, best checkpoint, early stopping, the per-epoch LR schedule, checkpoints and writers), so a run
folder holds what a Mask R-CNN run's does (``log.txt``, ``metrics.json``, TensorBoard events with
``<task>/dice`` on an iteration axis, ``model_final.pth``, ``model_best.pth``, ``last_checkpoint``,
``config.yaml``); multi-process through ``detectron2.engine.launch`` or torchrun.

Validation Dice is measured per image at the *network* resolution on the
letterbox content (cheap, every ``TEST.EVAL_PERIOD`` epochs); the test-set figures of
:func:`evaluate_semseg` are measured at the original resolution against the
original mask files.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import spine_det.compat  # noqa: F401  (shims before detectron2)
import numpy as np
import torch
from detectron2.evaluation.evaluator import inference_context
from detectron2.utils import comm
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler

from spine_det.config.semseg import tasks_of
from spine_det.data.io import read_image, read_mask
from spine_det.data.layout import nested_subset
from spine_det.data.seg_dataset import SegmentationDataset, collate_letterbox
from spine_det.engine.component_calibration import calibrate_checkpoint
from spine_det.engine.distributed import init_from_env
from spine_det.engine.epoch_trainer import (EpochLoader, EpochTrainer, RankShard, refuse_epoch_loop_checkpoint,
                                            seed_everything, setup_run_logger)
from spine_det.engine.preflight import check_seg_model_name
from spine_det.engine.semseg_predictor import SemSegPredictor
from spine_det.engine.solver import build_optimizer, build_scheduler, clip_gradients, continue_schedule
from spine_det.evaluation.metrics import METRICS, ScoreTable
from spine_det.evaluation.score_files import write_scores
from spine_det.modeling.families.linknet import KEY
from spine_det.modeling.losses import build_loss
from spine_det.modeling.registry import require_family
from spine_det.modeling.semseg import build_seg_model, count_parameters
from spine_det.tasks import get_task
from spine_det.utils.checkpoint_io import CheckpointError, load_plain, save_plain
from spine_det.utils.fileio import atomic_write_text
from spine_det.utils.progress import progress as progress_bar

__all__ = ["BEST_CHECKPOINT", "FINAL_CHECKPOINT", "build_optimizer", "build_scheduler", "build_seg_datasets", "build_seg_trainer",
           "continue_schedule", "evaluate_semseg", "init_from_checkpoint", "load_checkpoint", "save_checkpoint",
           "train_semseg", "validate"]

logger = logging.getLogger(__name__)

BEST_CHECKPOINT = "model_best.pth"
FINAL_CHECKPOINT = "model_final.pth"
# what the epoch loop before issue 31 wrote: such a folder is not resumed (one line says what to do)
EPOCH_LOOP_FILES = ("last_checkpoint.pth", "metrics.jsonl")


def save_checkpoint(path: Path, obj: Dict[str, Any]) -> None:
    """torch.save atomically (main process only), as plain data that ``weights_only=True`` reads."""
    if comm.is_main_process():
        save_plain(path, obj)


def load_checkpoint(path: Path | str, map_location: Any = "cpu") -> Dict[str, Any]:
    """Our own checkpoints, read with ``weights_only=True`` (config as YAML text, RNG states as
    tensors): a planted pickle is refused (:class:`CheckpointError`), never run."""
    ck = load_plain(path, map_location=map_location)
    if not isinstance(ck, dict) or "model" not in ck:
        raise CheckpointError(f"{path}: not a spine_det checkpoint (no 'model' entry)")
    return ck


# --------------------------------------------------------------------------- training


def build_seg_datasets(cfg: Any, manifest: Any) -> Dict[str, SegmentationDataset]:
    """Train (augmented) and val datasets of the config's view/tasks from the manifest's splits."""
    tasks = tasks_of(cfg)
    view = get_task(tasks[0]).view
    out = {}
    for split, aug in (("train", cfg.AUG), ("val", None)):
        samples = [s for s in manifest.select(split=split, view=view) if any(s.masks.get(t) for t in tasks)]
        if split == "train" and cfg.DATALOADER.TRAIN_SUBSET > 0:
            n_all = len(samples)
            samples = nested_subset(samples, cfg.DATALOADER.TRAIN_SUBSET, cfg.SEED)
            logger.info("DATALOADER.TRAIN_SUBSET: training on %d of %d training images (drawn with SEED %d)", len(samples), n_all, cfg.SEED)
        out[split] = SegmentationDataset(
            samples,
            tasks,
            (cfg.INPUT.HEIGHT, cfg.INPUT.WIDTH),
            resize=cfg.INPUT.RESIZE,
            aug=aug,
            in_channels=cfg.MODEL.IN_CHANNELS,
            mask_threshold=cfg.INPUT.MASK_THRESHOLD,
            thin_mask_threshold=cfg.INPUT.THIN_MASK_THRESHOLD,
            cache=cfg.DATALOADER.CACHE,
            seed=cfg.SEED,
            clahe=cfg.INPUT.CLAHE,
        )
    if len(out["train"]) == 0:
        raise ValueError(f"no training images of view {view!r} with masks of {tasks} in the manifest ({manifest.root})")
    return out


@torch.no_grad()
def validate(model: torch.nn.Module, loader: DataLoader, tasks: Sequence[str], device: torch.device, threshold: float,
             amp: bool) -> Dict[str, Dict[str, float]]:
    """Per-image Dice, Jaccard and TPR at network resolution on the letterbox content, gathered over the
    processes (each scores its share of the loader): ``{task: {metric: mean}}`` and, for several tasks,
    ``"mean"`` over them, the layout of the Mask R-CNN evaluator's results (NaN: no image of a task)."""
    rows: Dict[str, List[Dict[str, Any]]] = {t: [] for t in tasks}
    with inference_context(model):
        for batch in loader:
            with torch.autocast(device_type=device.type, enabled=amp and device.type == "cuda"):
                logits = model(batch["image"].to(device, non_blocking=True))
            probs = torch.sigmoid(logits.float()).cpu().numpy()
            masks = batch["masks"].numpy() > 0.5
            valid = batch["valid"].numpy()
            for b in range(probs.shape[0]):
                lb = collate_letterbox(batch["letterbox"][b])
                sl = (slice(lb.top, lb.top + lb.h), slice(lb.left, lb.left + lb.w))
                idx = int(batch["index"][b])
                for c, t in enumerate(tasks):
                    if valid[b, c]:
                        table = ScoreTable()
                        table.add(idx, probs[b, c][sl] >= threshold, masks[b, c][sl])
                        rows[t].extend(table.rows)
    gathered = comm.all_gather(rows)
    results: Dict[str, Dict[str, float]] = {}
    for t in tasks:
        table = ScoreTable()
        for part in gathered:
            table.extend(part[t])
        summary = table.summary() if table.rows else {}
        results[t] = {m: float(summary.get(m, math.nan)) for m in METRICS}
    if len(tasks) > 1:
        results["mean"] = {m: _nanmean([results[t][m] for t in tasks]) for m in METRICS}
    return results


def _nanmean(values: Sequence[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


def selection_metric(tasks: Sequence[str]) -> str:
    """The event-storage key that picks ``model_best.pth`` and drives early stopping: the task's validation
    Dice, or the mean over several tasks (Mask R-CNN's rule: ``spine_det.config.maskrcnn.best_metric_key``)."""
    return f"{tasks[0]}/dice" if len(tasks) == 1 else "mean/dice"


def _loader(ds, batch: int, train: bool, workers: int, seed: int, drop_last: bool = False, epoch_images: int = 0) -> DataLoader:
    """Training: a seeded random order (``epoch_images`` > 0: that many images, whole reshuffled passes, then
    a partial one), each process taking its share (:class:`RankShard`); evaluation: in order, shared out."""
    if train:
        g = torch.Generator()
        g.manual_seed(seed)
        sampler = RankShard(RandomSampler(ds, generator=g, num_samples=epoch_images if epoch_images > 0 else None))
    else:
        sampler = RankShard(SequentialSampler(ds), pad=False)
    return DataLoader(
        ds,
        batch_size=max(1, batch),
        sampler=sampler,
        num_workers=workers,
        drop_last=drop_last,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=workers > 0,
    )


def init_from_checkpoint(model: torch.nn.Module, path: str, device: Any = "cpu") -> Dict[str, List[str]]:
    """Start from another LinkNet checkpoint's weights (``MODEL.INIT_WEIGHTS``): every tensor whose name and
    shape match is copied; the rest (e.g. the last layer for another number of tasks) keep their init."""
    ck = load_checkpoint(path, map_location=device)
    require_family(ck, KEY, path)
    src = ck.get("model", ck) if isinstance(ck, dict) else None
    if not isinstance(src, dict):
        raise CheckpointError(f"{path}: not a LinkNet checkpoint (no model weights)")
    own = model.state_dict()
    take = {k: v for k, v in src.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not take:
        raise CheckpointError(f"{path}: no tensor matches this LinkNet; is it a LinkNet checkpoint?")
    model.load_state_dict(take, strict=False)
    kept = sorted(k for k in own if k not in take)
    logger.info("initialised %d of %d tensors from %s%s", len(take), len(own), path,
                f" ({len(kept)} kept their init, e.g. {kept[0]})" if kept else "")
    return {"loaded": sorted(take), "kept": kept}


def train_semseg(cfg: Any, manifest: Any, resume: bool = False) -> Dict[str, Any]:
    """Train on the manifest's train split, select on val; returns a summary (best score, epochs run).

    ``resume``: continue from the checkpoint ``OUTPUT_DIR/last_checkpoint`` names (also a finished run given
    more SOLVER.MAX_EPOCHS: a cosine schedule then goes on down from the LR reached)."""
    check_seg_model_name(cfg.MODEL.NAME)  # before config.yaml is written
    device = init_from_env(cfg.MODEL.DEVICE)
    out_dir = Path(cfg.OUTPUT_DIR)
    refuse_epoch_loop_checkpoint([out_dir / f for f in EPOCH_LOOP_FILES], out_dir, resume,
                                 f", or start from its weights with MODEL.INIT_WEIGHTS {out_dir / BEST_CHECKPOINT}")
    if comm.is_main_process():
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "config.yaml", cfg.dump())
    setup_run_logger(cfg.OUTPUT_DIR)
    seed_everything(cfg.SEED + comm.get_rank())
    trainer, validated = build_seg_trainer(cfg, manifest, device, resume)
    trainer.resume_or_load(resume)
    trainer.train()
    comm.synchronize()
    speck_filter = {}
    if validated and (out_dir / BEST_CHECKPOINT).is_file():
        # the instance list's minimum component size, chosen on validation and stored in the best checkpoint
        speck_filter = calibrate_checkpoint(cfg, manifest, out_dir / BEST_CHECKPOINT)
    best = trainer.best()
    return {"best_val_dice": best["value"] if validated else trainer.early_stopping.best, "best_epoch": best["epoch"],
            "epochs": trainer.iter // trainer.iters_per_epoch, "iterations": trainer.iter,
            "stopped_early": trainer.early_stopping.should_stop, "best_checkpoint": str(out_dir / BEST_CHECKPOINT),
            "speck_filter": speck_filter}


def build_seg_trainer(cfg: Any, manifest: Any, device: torch.device, resume: bool = False) -> Tuple[EpochTrainer, bool]:
    """The trainer of a segmentation config (LinkNet, smp) with its hooks, and whether it validates (an empty validation split:
    selection and early stopping on the training loss instead)."""
    tasks, world = tasks_of(cfg), comm.get_world_size()
    datasets = build_seg_datasets(cfg, manifest)
    per_proc = max(1, cfg.SOLVER.IMS_PER_BATCH // world)
    drop_last = len(datasets["train"]) > per_proc * world  # avoid a batch of 1 for BatchNorm
    train_loader = _loader(datasets["train"], per_proc, True, cfg.DATALOADER.NUM_WORKERS, cfg.SEED, drop_last,
                           epoch_images=cfg.SOLVER.EPOCH_IMAGES)

    def start_epoch(epoch: int) -> None:  # the augmentation stream and the order of each epoch, from the seed
        datasets["train"].set_epoch(epoch)
        train_loader.sampler.sampler.generator.manual_seed(cfg.SEED * 100003 + epoch)

    data = EpochLoader(train_loader, cfg.SOLVER.MAX_ITERS_PER_EPOCH, start_epoch)
    net = build_seg_model(cfg, device)
    if cfg.MODEL.INIT_WEIGHTS and not (resume and (Path(cfg.OUTPUT_DIR) / "last_checkpoint").is_file()):
        init_from_checkpoint(net, cfg.MODEL.INIT_WEIGHTS, device)
    logger.info("%s: %.2f M parameters, tasks %s, %d train / %d val images, %d iterations per epoch, device %s, "
                "%d process(es)", cfg.MODEL.NAME, count_parameters(net) / 1e6, tasks, len(datasets["train"]),
                len(datasets["val"]), data.iters_per_epoch, device, world)
    loss_fn = build_loss(cfg)
    optimizer = build_optimizer(cfg.SOLVER, net.parameters())
    clip_gradients(optimizer, cfg.SOLVER.GRAD_CLIP)
    amp = bool(cfg.SOLVER.AMP) and device.type == "cuda"
    trainer = EpochTrainer(
        net, lambda logits, b: loss_fn(logits, b["masks"].to(device, non_blocking=True), b["valid"].to(device, non_blocking=True)),
        data, optimizer, build_scheduler(cfg.SOLVER, optimizer), max_epochs=cfg.SOLVER.MAX_EPOCHS,
        output_dir=cfg.OUTPUT_DIR, device=device, amp=amp,
        metadata={"tasks": tasks, "cfg": cfg.dump(), "model_name": cfg.MODEL.NAME})
    if len(datasets["val"]):
        val_loader = _loader(datasets["val"], cfg.TEST.IMS_PER_BATCH, False, 0, cfg.SEED)
        metric, eval_period = selection_metric(tasks), cfg.TEST.EVAL_PERIOD

        def evaluate() -> Dict[str, Any]:
            results = validate(net, val_loader, tasks, device, cfg.TEST.THRESHOLD, amp)
            logger.info("epoch %d/%d: validation %s %.4f", trainer.epoch, trainer.max_epochs, metric,
                        results[metric.split("/")[0]]["dice"])
            return results
    else:
        logger.warning("validation split is empty: selecting and early-stopping on the training loss instead")
        metric, eval_period = "train/neg_loss", 1

        def evaluate() -> Dict[str, Any]:
            return {"train": {"neg_loss": -_epoch_loss(trainer)}}

    trainer.register_hooks(trainer.build_hooks(
        evaluate, metric, eval_period=eval_period, patience=cfg.EARLY_STOP.PATIENCE, min_delta=cfg.EARLY_STOP.MIN_DELTA,
        early_stop=cfg.EARLY_STOP.ENABLED, best_state=lambda: trainer.best_state(metric)))
    return trainer, bool(len(datasets["val"]))


def _epoch_loss(trainer: EpochTrainer) -> float:
    """Mean training loss of the epoch just ended (the main process's event storage: the mean over the
    processes of each step), the same number on every process."""
    mean = math.nan
    if comm.is_main_process():
        values = [v for v, _ in trainer.storage.history("total_loss").values()[-trainer.iters_per_epoch:]]
        mean = float(np.mean(values)) if values else math.nan
    return float(comm.all_gather(mean)[0])


def evaluate_semseg(cfg: Any, manifest: Any, weights: Optional[str] = None, split: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
    """Score ``weights`` on a split at the ORIGINAL resolution; writes one folder per task.

    ``<OUTPUT_DIR>/inference/spine_<task>_<split>/semantic_metrics.json`` and
    ``semantic_per_image.csv``, the same files (same metric code) as the Mask R-CNN evaluator.
    """
    split = split or cfg.TEST.SPLIT
    weights = weights or cfg.MODEL.WEIGHTS or str(Path(cfg.OUTPUT_DIR) / BEST_CHECKPOINT)
    device = init_from_env(cfg.MODEL.DEVICE)
    predictor = SemSegPredictor(cfg, weights=weights, device=device)
    tasks = predictor.tasks
    view = get_task(tasks[0]).view
    samples = [s for s in manifest.select(split=split, view=view) if any(s.masks.get(t) for t in tasks)]
    mine = samples[comm.get_rank():: comm.get_world_size()]
    rows: Dict[str, List[Dict[str, Any]]] = {t: [] for t in tasks}

    for s in progress_bar(mine, desc=f"evaluating {split}", leave=False, disable=not comm.is_main_process()):
        image = read_image(s.image)
        pred = predictor.predict_masks(image)
        for t in tasks:
            if s.masks.get(t):
                table = ScoreTable()
                table.add(s.key, pred[t], read_mask(s.masks[t], shape=image.shape), patient_id=s.patient_id, label=s.label)
                rows[t].extend(table.rows)
    gathered = comm.all_gather(rows)
    results: Dict[str, Dict[str, Any]] = {}
    if comm.is_main_process():
        ck = predictor.checkpoint_info
        for t in tasks:
            table = ScoreTable()
            for part in gathered:
                table.extend(part[t])
            meta = {
                "dataset": f"spine_{t}_{split}", "split": split, "task": t, "checkpoint": str(weights),
                "checkpoint_epoch": ck.get("epoch"), "threshold": cfg.TEST.THRESHOLD, "seed": cfg.SEED,
                "split_seed": cfg.SPINE.SPLIT_SEED, "model": cfg.MODEL.NAME, "input_size": [cfg.INPUT.HEIGHT, cfg.INPUT.WIDTH],
                "resolution": "original image size (probabilities resized back, bilinear)",
            }
            results[t] = write_scores(table, Path(cfg.OUTPUT_DIR) / "inference" / f"spine_{t}_{split}", meta)
            logger.info("%s %s: dice %.4f jaccard %.4f tpr %.4f (%d images)", t, split, results[t]["dice"],
                        results[t]["jaccard"], results[t]["tpr"], results[t]["counts"]["images"])
    comm.synchronize()
    return results

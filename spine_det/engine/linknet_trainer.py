"""Training loop of the LinkNet baseline, as the report describes it and a bit more.

The report: negative soft Dice loss, 90:10 train/validation split of the
training patients, up to 200 epochs, a checkpoint whenever validation Dice
improves, early stopping and an LR scheduler. Added here: AMP on CUDA, DDP via
torchrun, exact resume (``last_checkpoint.pth`` holds model, optimiser,
scheduler, AMP scaler, epoch, best score, early-stopping state and RNG states),
a progress bar (spine_det.utils.progress) and ``metrics.jsonl``.

Validation Dice is measured per image at the *network* resolution on the
letterbox content (cheap, every epoch); the test-set figures of
:func:`evaluate_linknet` are measured at the original resolution against the
original mask files.

The generic pieces (early stopping, optimiser/scheduler builders, checkpoint
and RNG helpers, the metrics log) are shared with the classifier trainer.
"""
from __future__ import annotations

import json
import logging
import math
import random
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

from spine_det.config.linknet import tasks_of
from spine_det.data.layout import nested_subset
from spine_det.data.seg_dataset import SegmentationDataset, collate_letterbox
from spine_det.engine import distributed as du
from spine_det.evaluation.metrics import ScoreTable
from spine_det.evaluation.score_files import write_scores
from spine_det.modeling.linknet import build_seg_model, count_parameters
from spine_det.modeling.losses import build_loss
from spine_det.tasks import get_task
from spine_det.utils.checkpoint_io import (CheckpointError, load_plain, restore_training_state, rng_state,  # noqa: F401
                                          save_plain, set_rng_state)
from spine_det.utils.fileio import atomic_write_text
from spine_det.utils.provenance import provenance

logger = logging.getLogger(__name__)

LAST_CHECKPOINT = "last_checkpoint.pth"
BEST_CHECKPOINT = "model_best.pth"
METRICS_LOG = "metrics.jsonl"


# --------------------------------------------------------------------------- generic pieces


class EarlyStopping:
    """Stop when the monitored score has not improved by ``min_delta`` for ``patience`` checks.

    Modelled on mmengine's EarlyStoppingHook (monitor, rule, delta, patience);
    its state goes into the checkpoint so a resumed run stops when the original would.
    """

    def __init__(self, patience: int, min_delta: float = 0.0, mode: str = "max", enabled: bool = True) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.patience, self.min_delta, self.mode, self.enabled = int(patience), float(min_delta), mode, enabled
        self.best: Optional[float] = None
        self.bad_checks = 0
        self.should_stop = False

    def improved(self, score: float) -> bool:
        if self.best is None:
            return not math.isnan(score)
        return score > self.best + self.min_delta if self.mode == "max" else score < self.best - self.min_delta

    def step(self, score: float) -> bool:
        """Record a score; returns True when it is an improvement."""
        better = self.improved(score)
        if better:
            self.best, self.bad_checks = float(score), 0
        else:
            self.bad_checks += 1
            if self.enabled and self.bad_checks >= self.patience:
                self.should_stop = True
        return better

    def state_dict(self) -> Dict[str, Any]:
        return {"best": self.best, "bad_checks": self.bad_checks, "should_stop": self.should_stop}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best, self.bad_checks, self.should_stop = state["best"], int(state["bad_checks"]), bool(state["should_stop"])


def build_optimizer(solver: Any, params) -> torch.optim.Optimizer:
    name = solver.OPTIMIZER.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=solver.BASE_LR, weight_decay=solver.WEIGHT_DECAY)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=solver.BASE_LR, weight_decay=solver.WEIGHT_DECAY)
    if name == "sgd":
        return torch.optim.SGD(params, lr=solver.BASE_LR, momentum=solver.MOMENTUM, weight_decay=solver.WEIGHT_DECAY, nesterov=True)
    raise ValueError(f"unknown SOLVER.OPTIMIZER {solver.OPTIMIZER!r}; expected adam, adamw or sgd")


def build_scheduler(solver: Any, optimizer: torch.optim.Optimizer):
    """ReduceLROnPlateau on the validation score (mode max), cosine over MAX_EPOCHS, or None."""
    name = solver.SCHEDULER.lower()
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=solver.PLATEAU_FACTOR, patience=solver.PLATEAU_PATIENCE, min_lr=solver.MIN_LR
        )
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, solver.MAX_EPOCHS), eta_min=solver.MIN_LR)
    if name == "none":
        return None
    raise ValueError(f"unknown SOLVER.SCHEDULER {solver.SCHEDULER!r}; expected plateau, cosine or none")


def scheduler_step(scheduler, score: Optional[float]) -> None:
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        if score is not None and not math.isnan(score):
            scheduler.step(score)
    else:
        scheduler.step()


def continue_schedule(scheduler, start_epoch: int, max_epochs: int) -> bool:
    """After a resume at ``start_epoch``: a cosine schedule planned to end at another epoch than
    ``max_epochs`` (SOLVER.MAX_EPOCHS changed since the checkpoint, e.g. a finished run given more
    epochs) is planned again, from the learning rate the run has reached down to its MIN_LR at
    ``max_epochs``. The LR never climbs again: torch's CosineAnnealingLR stepped past its T_max is
    periodic, so the old plan would raise it back towards BASE_LR. A finished run (at MIN_LR) thus
    trains its extra epochs at MIN_LR. An unchanged horizon (an interrupted run) is left exactly as it
    was; other schedulers have no horizon. Returns True when the schedule was planned again."""
    if not isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR) or start_epoch >= max_epochs:
        return False
    planned_end = start_epoch - scheduler.last_epoch + scheduler.T_max  # one step per epoch since it was built
    if planned_end == max_epochs:
        return False
    lrs = [float(g["lr"]) for g in scheduler.optimizer.param_groups]
    scheduler.base_lrs = lrs
    scheduler.T_max = max_epochs - start_epoch
    scheduler.last_epoch = 0
    scheduler._last_lr = list(lrs)
    logger.info("cosine schedule planned for %d epochs, now %d: continues from lr %.2e (epoch %d) down to %.2e at "
                "epoch %d", planned_end, max_epochs, lrs[0], start_epoch, scheduler.eta_min, max_epochs)
    return True


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def save_checkpoint(path: Path, obj: Dict[str, Any]) -> None:
    """torch.save atomically (main process only), as plain data that ``weights_only=True`` reads."""
    if not du.is_main_process():
        return
    save_plain(path, obj)


def load_checkpoint(path: Path | str, map_location: Any = "cpu") -> Dict[str, Any]:
    """Our own checkpoints, read with ``weights_only=True`` (config as YAML text, RNG states as
    tensors): a planted pickle is refused (:class:`CheckpointError`), never run."""
    ck = load_plain(path, map_location=map_location)
    if not isinstance(ck, dict) or "model" not in ck:
        raise CheckpointError(f"{path}: not a spine_det checkpoint (no 'model' entry)")
    return ck


class MetricsLog:
    """``metrics.jsonl``: one JSON line per epoch, rewritten atomically (kept across resume); with
    :meth:`attach_tensorboard`, the same numbers as TensorBoard scalars in event files beside it
    (as Detectron2 writes them for Mask R-CNN)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lines: List[str] = []
        self.writer = None
        self.tag_prefix = ""
        if self.path.is_file():
            self.lines = [ln for ln in self.path.read_text(encoding="utf-8").splitlines() if ln.strip()]

    def attach_tensorboard(self, first_epoch: int = 1, tag_prefix: str = "", log_dir: Optional[Path] = None) -> None:
        """Also write every numeric field as a scalar (step = epoch) to event files in ``log_dir``
        (default: the log's folder; one writer per folder, TensorBoard's purge is per folder);
        ``first_epoch`` > 1 on resume hides the events of epochs the checkpoint does not include."""
        if not du.is_main_process():
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # pragma: no cover - tensorboard is a dependency
            logger.warning("tensorboard is not installed: no event files (metrics.jsonl only)")
            return
        self.tag_prefix = tag_prefix
        self.writer = SummaryWriter(str(log_dir or self.path.parent), purge_step=first_epoch if first_epoch > 1 else None,
                                    filename_suffix=f".{self.path.stem}")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def truncate(self, completed: int) -> None:
        """Keep the lines of the first ``completed`` epochs (those the resumed checkpoint includes)."""
        self.lines = [ln for ln in self.lines if json.loads(ln).get("epoch", 10**9) <= completed]

    def append(self, record: Dict[str, Any]) -> None:
        """One epoch's line, stamped with the spine_det version (and commit) that wrote it."""
        record = {**record, **provenance()}
        self.lines.append(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()}))
        if du.is_main_process():
            atomic_write_text(self.path, "\n".join(self.lines) + "\n")
        if self.writer is not None and "epoch" in record:
            for k, v in _scalars(record):
                self.writer.add_scalar(self.tag_prefix + k, v, int(record["epoch"]))
            self.writer.flush()

    def records(self) -> List[Dict[str, Any]]:
        return [json.loads(ln) for ln in self.lines]


def _scalars(record: Dict[str, Any], prefix: str = ""):
    """(tag, value) of every finite number in a metrics record, nested dicts as ``a/b``."""
    for k, v in record.items():
        if k == "epoch" or isinstance(v, bool):
            continue
        if isinstance(v, dict):
            yield from _scalars(v, f"{prefix}{k}/")
        elif isinstance(v, (int, float)) and math.isfinite(v):
            yield f"{prefix}{k}", float(v)


def current_lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def _device_of(cfg: Any) -> torch.device:
    return du.init_from_env(cfg.MODEL.DEVICE)


# --------------------------------------------------------------------------- LinkNet


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
def validate(model: torch.nn.Module, loader: DataLoader, tasks: Sequence[str], device: torch.device, threshold: float, amp: bool) -> Dict[str, Any]:
    """Per-image Dice at network resolution on the letterbox content; gathered over ranks."""
    model.eval()
    rows: Dict[str, List[Dict[str, Any]]] = {t: [] for t in tasks}
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
    gathered = du.all_gather_object(rows)
    per_task: Dict[str, float] = {}
    for t in tasks:
        table = ScoreTable()
        seen = set()
        for part in gathered:  # DistributedSampler pads with repeats: keep one row per image
            for r in part[t]:
                if r["image_id"] not in seen:
                    seen.add(r["image_id"])
                    table.extend([r])
        per_task[t] = table.summary()["dice"] if table.rows else math.nan
    vals = [v for v in per_task.values() if not math.isnan(v)]
    return {"dice": float(np.mean(vals)) if vals else math.nan, "per_task": per_task}


def _loader(ds, batch: int, train: bool, workers: int, seed: int, drop_last: bool = False, epoch_images: int = 0) -> DataLoader:
    if du.get_world_size() > 1:
        if epoch_images > 0:
            raise ValueError("SOLVER.EPOCH_IMAGES is not supported with several processes; set it to 0")
        sampler = DistributedSampler(ds, shuffle=train, seed=seed, drop_last=False)
    elif train:
        g = torch.Generator()
        g.manual_seed(seed)
        # num_samples > len(ds) without replacement: whole reshuffled passes, then a partial one
        sampler = RandomSampler(ds, generator=g, num_samples=epoch_images if epoch_images > 0 else None)
    else:
        sampler = SequentialSampler(ds)
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
    from spine_det.modeling.families.linknet import KEY
    from spine_det.modeling.registry import require_family

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


def train_linknet(cfg: Any, manifest: Any, resume: bool = False) -> Dict[str, Any]:
    """Train on the manifest's train split, select on val; returns a summary (best score, epochs run)."""
    from spine_det.engine.preflight import check_seg_model_name

    check_seg_model_name(cfg.MODEL.NAME)  # before config.yaml is written
    device = _device_of(cfg)
    rank, world = du.get_rank(), du.get_world_size()
    out_dir = Path(cfg.OUTPUT_DIR)
    if du.is_main_process():
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "config.yaml", cfg.dump())
    seed_everything(cfg.SEED + rank)
    tasks = tasks_of(cfg)
    datasets = build_seg_datasets(cfg, manifest)
    per_proc = max(1, cfg.SOLVER.IMS_PER_BATCH // world)
    drop_last = len(datasets["train"]) > per_proc * world  # avoid a batch of 1 for BatchNorm
    train_loader = _loader(datasets["train"], per_proc, True, cfg.DATALOADER.NUM_WORKERS, cfg.SEED, drop_last,
                           epoch_images=cfg.SOLVER.EPOCH_IMAGES)
    val_loader = _loader(datasets["val"], cfg.TEST.IMS_PER_BATCH, False, 0, cfg.SEED) if len(datasets["val"]) else None
    if val_loader is None:
        logger.warning("validation split is empty: selecting and early-stopping on the training loss instead")

    model = build_seg_model(cfg, device)
    resuming = resume and (out_dir / LAST_CHECKPOINT).is_file()
    if cfg.MODEL.INIT_WEIGHTS and not resuming:
        init_from_checkpoint(model, cfg.MODEL.INIT_WEIGHTS, device)
    if du.is_main_process():
        logger.info("%s: %.2f M parameters, tasks %s, %d train / %d val images, device %s, %d process(es)",
                    cfg.MODEL.NAME, count_parameters(model) / 1e6, tasks, len(datasets["train"]), len(datasets["val"]), device, world)
    ddp_model: torch.nn.Module = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    loss_fn = build_loss(cfg)
    optimizer = build_optimizer(cfg.SOLVER, model.parameters())
    scheduler = build_scheduler(cfg.SOLVER, optimizer)
    amp = bool(cfg.SOLVER.AMP) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    early = EarlyStopping(cfg.EARLY_STOP.PATIENCE, cfg.EARLY_STOP.MIN_DELTA, "max", cfg.EARLY_STOP.ENABLED)
    log = MetricsLog(out_dir / METRICS_LOG)
    start_epoch, best_epoch = 0, -1

    last = out_dir / LAST_CHECKPOINT
    if resume and last.is_file():
        ck = load_checkpoint(last, map_location=device)
        restore_training_state(ck, model, optimizer, scheduler, scaler, early)
        start_epoch, best_epoch = int(ck["epoch"]), int(ck.get("best_epoch", -1))
        continue_schedule(scheduler, start_epoch, cfg.SOLVER.MAX_EPOCHS)  # more (or fewer) epochs: no LR climb
        if world == ck.get("world_size", 1) and ck.get("rng"):
            set_rng_state(ck["rng"][rank] if isinstance(ck["rng"], list) else ck["rng"])
        log.truncate(start_epoch)
        logger.info("resumed from %s at epoch %d (best val dice %s)", last, start_epoch, early.best)
    elif resume:
        logger.info("--resume: no %s yet, starting from scratch", last)
    else:
        log.lines = []
    log.attach_tensorboard(first_epoch=start_epoch + 1)

    epoch = start_epoch
    for epoch in range(start_epoch, cfg.SOLVER.MAX_EPOCHS):
        if early.should_stop:
            break
        t0 = time.perf_counter()
        ddp_model.train()
        datasets["train"].set_epoch(epoch)
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch)
        elif isinstance(train_loader.sampler, RandomSampler):
            train_loader.sampler.generator.manual_seed(cfg.SEED * 100003 + epoch)
        total, n = 0.0, 0
        from spine_det.utils.progress import progress as progress_bar

        n_iter = len(train_loader) if cfg.SOLVER.MAX_ITERS_PER_EPOCH <= 0 else min(len(train_loader), cfg.SOLVER.MAX_ITERS_PER_EPOCH)
        bar = progress_bar(total=n_iter, desc=f"epoch {epoch + 1}/{cfg.SOLVER.MAX_EPOCHS}", leave=False, disable=not du.is_main_process(), dynamic_ncols=True)
        steps = 0
        for it, batch in enumerate(train_loader):
            if it >= n_iter:
                break
            image = batch["image"].to(device, non_blocking=True)
            target = batch["masks"].to(device, non_blocking=True)
            valid = batch["valid"].to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, enabled=amp):
                logits = ddp_model(image)
            loss = loss_fn(logits.float(), target, valid)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch + 1}, iteration {it + 1}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.SOLVER.GRAD_CLIP > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.SOLVER.GRAD_CLIP)
            scaler.step(optimizer)
            scaler.update()
            total += float(loss.item()) * image.shape[0]
            n += image.shape[0]
            bar.set_postfix(loss=f"{total / max(n, 1):.4f}", lr=f"{current_lr(optimizer):.2e}")
            steps += 1
            bar.update(1)
        bar.close()
        train_loss = du.all_reduce_mean(total / max(n, 1), device)

        val: Dict[str, Any] = {"dice": math.nan, "per_task": {}}
        evaluated = val_loader is not None and ((epoch + 1) % max(1, cfg.TEST.EVAL_PERIOD) == 0 or epoch + 1 == cfg.SOLVER.MAX_EPOCHS)
        if evaluated:
            val = validate(ddp_model, val_loader, tasks, device, cfg.TEST.THRESHOLD, amp)
            score = val["dice"]
        elif val_loader is None:
            score, evaluated = -train_loss, True
        else:
            score = math.nan
        lr = current_lr(optimizer)
        improved = False
        if evaluated:
            improved = early.step(score)
            scheduler_step(scheduler, score)
        elif scheduler is not None and not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step()
        if improved:
            best_epoch = epoch + 1
            save_checkpoint(out_dir / BEST_CHECKPOINT, {
                "model": model.state_dict(), "epoch": epoch + 1, "score": score, "metric": "val_dice",
                "tasks": tasks, "cfg": cfg.dump(), "model_name": cfg.MODEL.NAME,
            })
        elapsed = time.perf_counter() - t0
        log.append({
            "epoch": epoch + 1, "loss": train_loss, "val_dice": val["dice"], "val_dice_per_task": val["per_task"],
            "lr": lr, "time_s": round(elapsed, 3), "best_val_dice": early.best, "improved": improved,
            "iters": steps,  # optimizer steps this epoch: the cost table reads them, no re-derivation
        })
        if du.is_main_process():
            logger.info("epoch %d/%d loss %.4f val dice %.4f lr %.2e %.1fs%s", epoch + 1, cfg.SOLVER.MAX_EPOCHS, train_loss,
                        val["dice"], lr, elapsed, " *best*" if improved else "")
        rngs = du.all_gather_object(rng_state())
        save_checkpoint(last, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict(), "epoch": epoch + 1, "best_epoch": best_epoch,
            "early_stop": early.state_dict(), "rng": rngs if world > 1 else rngs[0], "world_size": world,
            "tasks": tasks, "cfg": cfg.dump(), "model_name": cfg.MODEL.NAME,
        })
        du.synchronize()
        if early.should_stop and du.is_main_process():
            logger.info("early stopping at epoch %d: no val dice gain > %g for %d evaluations", epoch + 1,
                        cfg.EARLY_STOP.MIN_DELTA, cfg.EARLY_STOP.PATIENCE)
    log.close()
    speck_filter = {}
    if val_loader is not None and (out_dir / BEST_CHECKPOINT).is_file():
        # the instance list's minimum component size, chosen on validation and stored in the best checkpoint
        from spine_det.engine.component_calibration import calibrate_checkpoint

        speck_filter = calibrate_checkpoint(cfg, manifest, out_dir / BEST_CHECKPOINT)
    return {"best_val_dice": early.best, "best_epoch": best_epoch, "epochs": len(log.lines), "stopped_early": early.should_stop,
            "best_checkpoint": str(out_dir / BEST_CHECKPOINT), "speck_filter": speck_filter}


def evaluate_linknet(cfg: Any, manifest: Any, weights: Optional[str] = None, split: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
    """Score ``weights`` on a split at the ORIGINAL resolution; writes one folder per task.

    ``<OUTPUT_DIR>/inference/spine_<task>_<split>/semantic_metrics.json`` and
    ``semantic_per_image.csv``, the same files (same metric code) as the Mask R-CNN evaluator.
    """
    from spine_det.data.io import read_image, read_mask
    from spine_det.engine.linknet_predictor import LinkNetPredictor

    split = split or cfg.TEST.SPLIT
    weights = weights or cfg.MODEL.WEIGHTS or str(Path(cfg.OUTPUT_DIR) / BEST_CHECKPOINT)
    device = _device_of(cfg)
    predictor = LinkNetPredictor(cfg, weights=weights, device=device)
    tasks = predictor.tasks
    view = get_task(tasks[0]).view
    samples = [s for s in manifest.select(split=split, view=view) if any(s.masks.get(t) for t in tasks)]
    mine = samples[du.get_rank():: du.get_world_size()]
    rows: Dict[str, List[Dict[str, Any]]] = {t: [] for t in tasks}
    from spine_det.utils.progress import progress as progress_bar

    for s in progress_bar(mine, desc=f"evaluating {split}", leave=False, disable=not du.is_main_process()):
        image = read_image(s.image)
        pred = predictor.predict_masks(image)
        for t in tasks:
            if s.masks.get(t):
                table = ScoreTable()
                table.add(s.key, pred[t], read_mask(s.masks[t], shape=image.shape), patient_id=s.patient_id, label=s.label)
                rows[t].extend(table.rows)
    gathered = du.all_gather_object(rows)
    results: Dict[str, Dict[str, Any]] = {}
    if du.is_main_process():
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
    du.synchronize()
    return results

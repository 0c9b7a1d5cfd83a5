"""Training and test scoring of the vertebra-landmark family, on the package's one epoch engine.

The loop, hooks and run folder are :class:`spine_det.engine.epoch_trainer.EpochTrainer`'s (as LinkNet's:
``metrics.json``, ``model_best.pth`` chosen on validation, early stopping, the per-epoch LR schedule,
``--resume``); this module gives it the data (:class:`spine_det.data.landmark_dataset.LandmarkDataset`),
the network and the loss:

* the centre heatmap: CenterNet's penalty-reduced focal loss (alpha 2, beta 4), over the number of vertebrae;
* the centre offset and the corners relative to the centre: L1 at each vertebra's centre cell, weighted
  ``LANDMARK.OFFSET_WEIGHT`` and ``LANDMARK.CORNER_WEIGHT``;
* with ``LANDMARK.LEVEL_WEIGHT`` > 0, the level number (C7 = 0 .. L5 = 17): L1 at the centre cells of the
  vertebrae whose level the dataset names.

Validation decodes each validation film and scores the drawn quadrilaterals against the drawn true ones at
network resolution (Dice, ``<task>/dice``, the selection metric; vertebrae found at IoU >= 0.5,
``<task>/detected``; with levels, ``<task>/level_error``, the mean absolute error of the predicted level
number against the nearest true vertebra's). The test figures of :func:`evaluate_landmark` are the shared ScoreTable's at the
film's own resolution against its mask file (``semantic_metrics.json``, as every family writes), plus the
vertebrae found per film against its instance label map (``instance_metrics.json``).
"""
from __future__ import annotations

import functools
import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Optional

import spine_det.compat  # noqa: F401  (shims before detectron2)
import numpy as np
import torch
from detectron2.evaluation.evaluator import inference_context
from detectron2.utils import comm
from torch.utils.data import DataLoader, RandomSampler

from spine_det.config.landmark import landmark_task
from spine_det.data.io import read_image, read_label_map, read_mask
from spine_det.data.landmark_dataset import LandmarkDataset, samples_with_corners
from spine_det.data.layout import nested_subset
from spine_det.engine.distributed import init_from_env
from spine_det.engine.epoch_trainer import EpochLoader, EpochTrainer, RankShard, seed_everything, setup_run_logger
from spine_det.engine.landmark_predictor import LandmarkPredictor, load_landmark_checkpoint, quad_box_mask
from spine_det.engine.predictor import CheckpointError
from spine_det.engine.solver import build_optimizer, build_scheduler, clip_gradients
from spine_det.evaluation.instance_quality import match_instances, summarise
from spine_det.evaluation.metrics import ScoreTable
from spine_det.evaluation.score_files import write_scores
from spine_det.modeling.families.landmark import KEY
from spine_det.modeling.landmark_net import build_landmark_net
from spine_det.modeling.landmark_targets import (CORNERS, HEATMAP, LEVEL, OFFSET, REG_CORNERS, REG_LEVEL, REG_OFFSET,
                                                 encode_quads, quad_centres)
from spine_det.modeling.semseg import count_parameters
from spine_det.utils.fileio import atomic_write_json, atomic_write_text
from spine_det.utils.progress import progress as progress_bar

__all__ = ["BEST_CHECKPOINT", "landmark_loss", "build_landmark_datasets", "train_landmark", "evaluate_landmark",
           "label_map_of_quads"]

logger = logging.getLogger(__name__)

BEST_CHECKPOINT = "model_best.pth"
FINAL_CHECKPOINT = "model_final.pth"
EXPECTED_VERTEBRAE = {"ap_vertebra": 17}  # AASCE: T1-L5 on every film


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 2.0, beta: float = 4.0) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss of heatmap logits (N, 1, h, w) against Gaussians (1 at centres),
    summed and divided by the number of centres (at least 1)."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = -(torch.log(p) * (1 - p).pow(alpha) * pos).sum()
    neg_loss = -(torch.log(1 - p) * p.pow(alpha) * (1 - target).pow(beta) * (1 - pos)).sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1.0)


def landmark_loss(out: torch.Tensor, batch: Dict[str, Any], offset_weight: float = 1.0,
                  corner_weight: float = 0.1, level_weight: float = 0.0) -> torch.Tensor:
    """Focal heatmap loss + weighted L1 of the centre offset, the corners and (``level_weight`` > 0, a network
    with the level channel) the level number at the centre cells."""
    device = out.device
    heat = batch["heatmap"].to(device, non_blocking=True)
    reg = batch["regression"].to(device, non_blocking=True)
    w = batch["weight"].to(device, non_blocking=True).unsqueeze(1)
    n = w.sum().clamp(min=1.0)
    l_heat = focal_loss(out[:, HEATMAP], heat)
    l_off = ((out[:, OFFSET] - reg[:, REG_OFFSET]).abs() * w).sum() / n
    l_corner = ((out[:, CORNERS] - reg[:, REG_CORNERS]).abs() * w).sum() / n
    total = l_heat + offset_weight * l_off + corner_weight * l_corner
    if level_weight > 0 and out.shape[1] > LEVEL.start:
        target = reg[:, REG_LEVEL]
        known = w * torch.isfinite(target).float()
        err = (out[:, LEVEL] - torch.nan_to_num(target)).abs() * known
        total = total + level_weight * err.sum() / known.sum().clamp(min=1.0)
    return total


def _encoder(cfg: Any, stride: int):
    out_hw = (-(-int(cfg.INPUT.HEIGHT) // stride), -(-int(cfg.INPUT.WIDTH) // stride))
    return functools.partial(encode_quads, out_hw=out_hw, stride=stride, sigma_fraction=float(cfg.LANDMARK.SIGMA_FRACTION),
                             min_sigma=float(cfg.LANDMARK.MIN_SIGMA))


def build_landmark_datasets(cfg: Any, manifest: Any, stride: int) -> Dict[str, LandmarkDataset]:
    """Train (augmented) and val datasets: the films of the task's view that have vertebra corners."""
    task = landmark_task(cfg)
    view = "ap" if task.startswith("ap_") else "lat"
    encode = _encoder(cfg, stride)
    out = {}
    for split, aug in (("train", cfg.AUG), ("val", None)):
        samples = samples_with_corners(manifest.select(split=split, view=view))
        if split == "train" and cfg.DATALOADER.TRAIN_SUBSET > 0:
            samples = nested_subset(samples, cfg.DATALOADER.TRAIN_SUBSET, cfg.SEED)
        out[split] = LandmarkDataset(samples, (cfg.INPUT.HEIGHT, cfg.INPUT.WIDTH), encode, aug=aug,
                                     in_channels=cfg.MODEL.IN_CHANNELS, clahe=cfg.INPUT.CLAHE, seed=cfg.SEED,
                                     resize=cfg.INPUT.RESIZE)
    if len(out["train"]) == 0:
        raise ValueError(f"no training films of view {view!r} with vertebra corners (landmarks.json or the phantom's "
                         f"ground_truth.json) in {manifest.root}")
    return out


def label_map_of_quads(quads: np.ndarray, shape) -> np.ndarray:
    """int32 label map of quadrilaterals (k = k-th; a later one over an earlier)."""
    lab = np.zeros(tuple(int(v) for v in shape), np.int32)
    for k, q in enumerate(np.asarray(quads).reshape(-1, 4, 2), 1):
        c = quad_box_mask(q, lab.shape)
        if c is not None:
            y0, x0, m = c
            lab[y0:y0 + m.shape[0], x0:x0 + m.shape[1]][m] = k
    return lab


@torch.no_grad()
def validate(predictor: LandmarkPredictor, ds: LandmarkDataset) -> Dict[str, float]:
    """Dice (drawn quadrilaterals vs drawn truth), vertebrae found (IoU >= 0.5) and, with levels, the level
    number's absolute error (against the true vertebra with the nearest centre) per validation film, at
    network resolution; means over the films."""
    table, found, true, level_err = ScoreTable(), [], [], []
    mine = range(comm.get_rank(), len(ds), comm.get_world_size())
    with inference_context(predictor.model):
        for i in mine:
            img, gt_quads, _ = ds.load(i)
            peaks = predictor.decode_network(img)
            pred = [p.quad for p in peaks]
            p_lab = label_map_of_quads(np.array(pred).reshape(-1, 4, 2), img.shape)
            true_levels = ds.levels(i)
            if peaks and len(gt_quads) and np.isfinite([p.level for p in peaks]).any():
                gc = quad_centres(gt_quads)
                for p in peaks:
                    k = int(np.argmin(np.linalg.norm(gc - quad_centres(p.quad[None])[0], axis=1)))
                    if np.isfinite(p.level) and np.isfinite(true_levels[k]):
                        level_err.append(abs(p.level - true_levels[k]))
            g_lab = label_map_of_quads(gt_quads, img.shape)
            table.add(i, p_lab > 0, g_lab > 0)
            m = match_instances(g_lab, p_lab)
            found.append(m.detected)
            true.append(m.gt)
    rows = [r for part in comm.all_gather(table.rows) for r in part]
    found = [v for part in comm.all_gather(found) for v in part]
    true = [v for part in comm.all_gather(true) for v in part]
    level_err = [v for part in comm.all_gather(level_err) for v in part]
    whole = ScoreTable()
    whole.extend(rows)
    s = whole.summary() if rows else {}
    out = {"dice": float(s.get("dice", math.nan)), "detected": float(np.mean(found)) if found else math.nan,
           "all_detected": float(np.mean([f >= t > 0 for f, t in zip(found, true)])) if found else math.nan}
    if level_err:
        out["level_error"] = float(np.mean(level_err))
    return out


def train_landmark(cfg: Any, manifest: Any, resume: bool = False) -> Dict[str, Any]:
    """Train on the manifest's train split, select on val (Dice of the drawn quadrilaterals); a summary."""
    task = landmark_task(cfg)
    device = init_from_env(cfg.MODEL.DEVICE)
    out_dir = Path(cfg.OUTPUT_DIR)
    if comm.is_main_process():
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "config.yaml", cfg.dump())
    setup_run_logger(cfg.OUTPUT_DIR)
    seed_everything(cfg.SEED + comm.get_rank())
    net = build_landmark_net(cfg).to(device)
    if cfg.MODEL.INIT_WEIGHTS and not (resume and (out_dir / "last_checkpoint").is_file()):
        init_from_checkpoint(net, cfg.MODEL.INIT_WEIGHTS)
    datasets = build_landmark_datasets(cfg, manifest, net.stride)
    world = comm.get_world_size()
    per_proc = max(1, cfg.SOLVER.IMS_PER_BATCH // world)
    g = torch.Generator()
    g.manual_seed(cfg.SEED)
    sampler = RankShard(RandomSampler(datasets["train"], generator=g,
                                      num_samples=cfg.SOLVER.EPOCH_IMAGES if cfg.SOLVER.EPOCH_IMAGES > 0 else None))
    loader = DataLoader(datasets["train"], batch_size=per_proc, sampler=sampler, num_workers=cfg.DATALOADER.NUM_WORKERS,
                        drop_last=len(datasets["train"]) > per_proc * world, persistent_workers=cfg.DATALOADER.NUM_WORKERS > 0)

    def start_epoch(epoch: int) -> None:
        datasets["train"].set_epoch(epoch)
        g.manual_seed(cfg.SEED * 100003 + epoch)

    data = EpochLoader(loader, cfg.SOLVER.MAX_ITERS_PER_EPOCH, start_epoch)
    logger.info("landmark: %.2f M parameters, task %s, %d train / %d val films, %d iterations per epoch, device %s",
                count_parameters(net) / 1e6, task, len(datasets["train"]), len(datasets["val"]), data.iters_per_epoch, device)
    optimizer = build_optimizer(cfg.SOLVER, net.parameters())
    clip_gradients(optimizer, cfg.SOLVER.GRAD_CLIP)
    loss = functools.partial(landmark_loss, offset_weight=float(cfg.LANDMARK.OFFSET_WEIGHT),
                             corner_weight=float(cfg.LANDMARK.CORNER_WEIGHT), level_weight=float(cfg.LANDMARK.LEVEL_WEIGHT))
    trainer = EpochTrainer(net, loss, data, optimizer, build_scheduler(cfg.SOLVER, optimizer),
                           max_epochs=cfg.SOLVER.MAX_EPOCHS, output_dir=cfg.OUTPUT_DIR, device=device,
                           amp=bool(cfg.SOLVER.AMP) and device.type == "cuda",
                           metadata={"tasks": [task], "cfg": cfg.dump(), "model_name": KEY})
    predictor = LandmarkPredictor(cfg, model=net, device=device)
    if len(datasets["val"]):
        metric = f"{task}/dice"

        def evaluate() -> Dict[str, Any]:
            r = validate(predictor, datasets["val"])
            net.train()
            logger.info("epoch %d/%d: validation %s %.4f, vertebrae found %.2f per film, all found %.2f%s",
                        trainer.epoch, trainer.max_epochs, metric, r["dice"], r["detected"], r["all_detected"],
                        f", level error {r['level_error']:.2f}" if "level_error" in r else "")
            return {task: r}
    else:
        logger.warning("validation split is empty: selecting and early-stopping on the training loss instead")
        metric = "train/neg_loss"

        def evaluate() -> Dict[str, Any]:
            values = [v for v, _ in trainer.storage.history("total_loss").values()[-trainer.iters_per_epoch:]]
            return {"train": {"neg_loss": -float(np.mean(values)) if values else math.nan}}

    trainer.register_hooks(trainer.build_hooks(
        evaluate, metric, eval_period=cfg.TEST.EVAL_PERIOD, patience=cfg.EARLY_STOP.PATIENCE,
        min_delta=cfg.EARLY_STOP.MIN_DELTA, early_stop=cfg.EARLY_STOP.ENABLED, best_state=lambda: trainer.best_state(metric)))
    trainer.resume_or_load(resume)
    trainer.train()
    comm.synchronize()
    best = trainer.best()
    return {"best_val_dice": best["value"], "best_epoch": best["epoch"], "epochs": trainer.iter // trainer.iters_per_epoch,
            "iterations": trainer.iter, "stopped_early": trainer.early_stopping.should_stop,
            "best_checkpoint": str(out_dir / BEST_CHECKPOINT)}


def init_from_checkpoint(net: torch.nn.Module, path: str) -> None:
    """Start from another landmark checkpoint's weights (``MODEL.INIT_WEIGHTS``, e.g. one trained on the
    phantom): every tensor whose name and shape match."""
    ck = load_landmark_checkpoint(path)
    own = net.state_dict()
    take = {k: v for k, v in ck["model"].items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not take:
        raise CheckpointError(f"{path}: no tensor matches this landmark network")
    net.load_state_dict(take, strict=False)
    logger.info("initialised %d of %d tensors from %s", len(take), len(own), path)


def evaluate_landmark(cfg: Any, manifest: Any, weights: Optional[str] = None, split: Optional[str] = None) -> Dict[str, Any]:
    """Score ``weights`` on a split at the films' own resolution: ``<OUTPUT_DIR>/inference/spine_<task>_<split>/``
    ``semantic_metrics.json`` + ``semantic_per_image.csv`` (the shared ScoreTable, as every family) and
    ``instance_metrics.json`` (vertebrae found per film, IoU >= 0.5 one-to-one, against the instance label map)."""
    split = split or cfg.TEST.SPLIT
    weights = weights or cfg.MODEL.WEIGHTS or str(Path(cfg.OUTPUT_DIR) / BEST_CHECKPOINT)
    device = init_from_env(cfg.MODEL.DEVICE)
    predictor = LandmarkPredictor(cfg, weights=weights, device=device)
    task = predictor.task
    samples = [s for s in manifest.select(split=split, view=task.split("_")[0]) if s.masks.get(task)]
    mine = samples[comm.get_rank():: comm.get_world_size()]
    rows: List[Dict[str, Any]] = []
    matches = []
    for s in progress_bar(mine, desc=f"evaluating {split}", leave=False, disable=not comm.is_main_process()):
        image = read_image(s.image)
        pred = predictor(image)[task]
        table = ScoreTable()
        table.add(s.key, pred.mask, read_mask(s.masks[task], shape=image.shape), patient_id=s.patient_id, label=s.label)
        rows.extend(table.rows)
        inst = s.instance_maps.get(task) if getattr(s, "instance_maps", None) else None
        if inst:
            matches.append(match_instances(read_label_map(inst, shape=image.shape), pred.label_map()))
    rows = [r for part in comm.all_gather(rows) for r in part]
    matches = [m for part in comm.all_gather(matches) for m in part]
    results: Dict[str, Any] = {}
    if comm.is_main_process():
        table = ScoreTable()
        table.extend(rows)
        folder = Path(cfg.OUTPUT_DIR) / "inference" / f"spine_{task}_{split}"
        meta = {"dataset": f"spine_{task}_{split}", "split": split, "task": task, "checkpoint": str(weights),
                "checkpoint_epoch": predictor.checkpoint_info.get("epoch"), "threshold": predictor.threshold,
                "seed": cfg.SEED, "split_seed": cfg.SPINE.SPLIT_SEED, "model": KEY,
                "input_size": [cfg.INPUT.HEIGHT, cfg.INPUT.WIDTH],
                "resolution": "original image size (quadrilaterals drawn in film pixels)"}
        results[task] = write_scores(table, folder, meta)
        if matches:
            inst_summary = summarise(matches, EXPECTED_VERTEBRAE.get(task, 0))
            atomic_write_json(folder / "instance_metrics.json", {**meta, **inst_summary})
            results[task]["instances"] = inst_summary
            logger.info("%s %s: vertebrae found %.2f per film, all found in %.1f %% of films, %.2f false positives",
                        task, split, inst_summary["detected_per_image"], 100 * inst_summary["images_with_all_detected"],
                        inst_summary["false_positives_per_image"])
        logger.info("%s %s: dice %.4f jaccard %.4f tpr %.4f (%d images)", task, split, results[task]["dice"],
                    results[task]["jaccard"], results[task]["tpr"], results[task]["counts"]["images"])
    comm.synchronize()
    return results

"""Train the Normal/Damaged classifiers (one per view) and pick the view strategy on validation.

As in the report: a ResNet50 on AP images and another on LAT images, each
checkpointed at its best validation accuracy (or AUC: ``EARLY_STOP.METRIC``);
on validation, "AP only", "LAT only" and "average of the two probabilities"
are compared and the most accurate is kept (:func:`select_view_strategy`).
Test metrics of all three are written to
``<OUTPUT_DIR>/classification_metrics.json`` with the selection.

Beyond the report, the network sees the mask-free spine crop
(``INPUT.CROP``, :mod:`spine_det.data.spine_crop`) rather than the whole
radiograph: a fracture is the height loss of one vertebra, a few pixels once a
whole X-ray is shrunk to network size. The crop needs only the image, so
inference needs no segmentation.

Validation set (``VAL.MODE``):

* ``balanced`` (default, like the report's 50 Damaged / 50 Normal): from the
  Training patients (the manifest's train + val splits), ``k`` patients of each
  label are drawn with ``random.Random(SPINE.SPLIT_SEED)`` from the sorted patient
  ids, where ``k = min(VAL.PER_CLASS, floor(VAL.MAX_FRACTION * n_smaller_label))``
  (at least 1). Both views of a patient go to the same side. The test split is
  never touched.
* ``manifest``: the manifest's own val split (seeded, stratified 10%).

Each view trains on Detectron2's loop (:class:`spine_det.engine.epoch_trainer.EpochTrainer`, the engine of
every family) in its own run folder ``OUTPUT_DIR/<view>/`` (``model_best.pth``, ``model_final.pth``,
``last_checkpoint``, ``metrics.json``, TensorBoard events with ``<view>/accuracy`` ... per iteration);
``OUTPUT_DIR`` holds ``config.yaml``, ``log.txt`` and ``classification_metrics.json``.
"""
from __future__ import annotations

import logging
import math
import random
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import spine_det.compat  # noqa: F401  (shims before detectron2)
import numpy as np
import torch
from detectron2.evaluation.evaluator import inference_context
from detectron2.utils import comm
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, WeightedRandomSampler

from spine_det.data.io import DataError, read_image
from spine_det.data.seg_dataset import Letterbox, ViewImageDataset, letterbox_image
from spine_det.data.spine_crop import CROP_MODES, crop_spine
from spine_det.engine.distributed import init_from_env
from spine_det.engine.epoch_trainer import (EpochLoader, EpochTrainer, RankShard, refuse_epoch_loop_checkpoint,
                                            seed_everything, setup_run_logger)
from spine_det.engine.semseg_trainer import load_checkpoint
from spine_det.engine.solver import build_optimizer, build_scheduler
from spine_det.evaluation.classification import (
    STRATEGIES,
    binary_classification_metrics,
    combine_views,
    select_view_strategy,
)
from spine_det.modeling.classifier import build_classifier, describe_backbone, predict_probs
from spine_det.tasks import LABELS, VIEWS
from spine_det.utils.fileio import atomic_write_json, atomic_write_text
from spine_det.utils.provenance import provenance

logger = logging.getLogger(__name__)

METRICS_FILE = "classification_metrics.json"
VAL_METRICS = ("accuracy", "roc_auc", "sensitivity", "specificity")


def view_dir(cfg: Any, view: str) -> Path:
    """The run folder of one view's model."""
    return Path(cfg.OUTPUT_DIR) / view


def best_checkpoint(cfg: Any, view: str) -> Path:
    """``OUTPUT_DIR/<view>/model_best.pth``, or ``OUTPUT_DIR/model_best_<view>.pth`` of a run folder written
    before issue 31 (still read by --eval-only)."""
    new, old = view_dir(cfg, view) / "model_best.pth", Path(cfg.OUTPUT_DIR) / f"model_best_{view}.pth"
    return old if old.is_file() and not new.is_file() else new


def balanced_val_patients(patients: Sequence[Tuple[str, str]], per_class: int, max_fraction: float, seed: int) -> List[str]:
    """Patient ids of a label-balanced validation set (see module docstring for the rule)."""
    by_label: Dict[str, List[str]] = {lab: sorted(p for p, l in patients if l == lab) for lab in LABELS}
    smaller = min(len(v) for v in by_label.values())
    if smaller < 2:
        raise ValueError(f"a balanced validation set needs >= 2 training patients of each label, got "
                         f"{ {k: len(v) for k, v in by_label.items()} }")
    k = max(1, min(int(per_class), int(math.floor(max_fraction * smaller))))
    rng = random.Random(seed)
    out: List[str] = []
    for lab in LABELS:
        ids = list(by_label[lab])
        rng.shuffle(ids)
        out.extend(sorted(ids[:k]))
    return out


def split_patients(cfg: Any, manifest: Any) -> Dict[str, List[Any]]:
    """{"train", "val", "test"} -> ViewSamples, per the VAL.MODE rule."""
    if not manifest.labelled:
        raise DataError(manifest.root, "the classifier needs every patient in a Normal/ or Damaged/ folder; this "
                                       "dataset has unlabelled patients (segmentation only)")
    test = manifest.select(split=cfg.TEST.SPLIT)
    training = [s for s in manifest.samples if s.split in ("train", "val")]
    if cfg.VAL.MODE == "manifest":
        return {"train": [s for s in training if s.split == "train"], "val": [s for s in training if s.split == "val"], "test": test}
    if cfg.VAL.MODE != "balanced":
        raise ValueError(f"unknown VAL.MODE {cfg.VAL.MODE!r}; expected 'balanced' or 'manifest'")
    patients = list({s.patient_id: s.label for s in training}.items())
    val_ids = set(balanced_val_patients(patients, cfg.VAL.PER_CLASS, cfg.VAL.MAX_FRACTION, cfg.SPINE.SPLIT_SEED))
    return {"train": [s for s in training if s.patient_id not in val_ids], "val": [s for s in training if s.patient_id in val_ids], "test": test}


class SpineCropDataset(ViewImageDataset):
    """:class:`ViewImageDataset` on the mask-free spine crop (:func:`crop_spine`) instead of the whole X-ray.

    The crop is taken at full resolution, then letterboxed to the network size,
    so the vertebrae get the pixels a whole-image resize would spend on ribs,
    soft tissue and background. Train, validation and test use the same crop.
    """

    def __init__(self, samples: Sequence[Any], size: Tuple[int, int], crop: str, crop_width: float,
                 crop_rows: Sequence[float], *args: Any, **kwargs: Any) -> None:
        if crop not in CROP_MODES:
            raise ValueError(f"unknown INPUT.CROP {crop!r}; expected one of {CROP_MODES}")
        self.crop, self.crop_width, self.crop_rows = crop, float(crop_width), (float(crop_rows[0]), float(crop_rows[1]))
        super().__init__(samples, size, *args, **kwargs)

    def _load(self, i: int) -> np.ndarray:
        img = crop_spine(read_image(self.samples[i].image), self.crop, self.crop_width, self.crop_rows)
        return letterbox_image(img, Letterbox.fit(img.shape, self.size, self.resize))


def _dataset(cfg: Any, samples: Sequence[Any], train: bool) -> ViewImageDataset:
    return SpineCropDataset(samples, (cfg.INPUT.HEIGHT, cfg.INPUT.WIDTH), cfg.INPUT.CROP, cfg.INPUT.CROP_WIDTH,
                            cfg.INPUT.CROP_ROWS, cfg.INPUT.RESIZE, cfg.AUG if train else None, cfg.MODEL.IN_CHANNELS,
                            cfg.DATALOADER.CACHE, cfg.SEED)


def _loader(ds: ViewImageDataset, batch: int, train: bool, workers: int, seed: int, sampler_kind: str = "random") -> DataLoader:
    """Training: a seeded random (or class-balanced) draw, each process taking its share (:class:`RankShard`);
    evaluation: in order, shared out."""
    if train:
        g = torch.Generator()
        g.manual_seed(seed)
        if sampler_kind == "balanced":
            y = ds.labels()
            counts = np.bincount(y, minlength=2).astype(np.float64)
            weights = torch.as_tensor(1.0 / np.maximum(counts[y], 1.0), dtype=torch.double)
            sampler = WeightedRandomSampler(weights, num_samples=len(ds), replacement=True, generator=g)
        elif sampler_kind == "random":
            sampler = RandomSampler(ds, generator=g)
        else:
            raise ValueError(f"unknown DATALOADER.SAMPLER {sampler_kind!r}; expected 'random' or 'balanced'")
    else:
        sampler = SequentialSampler(ds)
    world = comm.get_world_size()
    drop_last = train and len(ds) > batch * world
    return DataLoader(ds, batch_size=batch, sampler=RankShard(sampler, pad=train), num_workers=workers if train else 0,
                      drop_last=drop_last, persistent_workers=train and workers > 0)


def validation_probs(net: torch.nn.Module, loader: DataLoader, device: torch.device, amp: bool) -> Tuple[np.ndarray, np.ndarray]:
    """P(Damaged) and dataset indices of the loader's images, each process predicting its share, gathered."""
    with inference_context(net):
        parts = comm.all_gather(predict_probs(net, loader, device, amp))
    return np.concatenate([p for p, _ in parts]), np.concatenate([i for _, i in parts]).astype(int)


def selection_score(m: Dict[str, Any], metric: str) -> float:
    """Report: keep the most accurate, AUC breaking ties (small validation sets tie often);
    ``EARLY_STOP.METRIC`` auc swaps the two."""
    auc = 0.0 if math.isnan(m["roc_auc"]) else m["roc_auc"]
    return m["accuracy"] + 1e-3 * auc if metric == "accuracy" else auc + 1e-3 * m["accuracy"]


def train_view(cfg: Any, view: str, splits: Dict[str, List[Any]], device: torch.device, resume: bool = False) -> Dict[str, Any]:
    """Train one view's model in ``OUTPUT_DIR/<view>/``; ``model_best.pth`` there at the best validation score
    (EARLY_STOP.METRIC). With ``resume`` training continues from the checkpoint ``last_checkpoint`` names there
    (a finished view is not retrained)."""
    out_dir = view_dir(cfg, view)
    refuse_epoch_loop_checkpoint([Path(cfg.OUTPUT_DIR) / f"last_checkpoint_{view}.pth"], out_dir, resume)
    seed_everything(cfg.SEED + comm.get_rank())
    train_ds = _dataset(cfg, [s for s in splits["train"] if s.view == view], True)
    val_ds = _dataset(cfg, [s for s in splits["val"] if s.view == view], False)
    if len(train_ds) == 0 or len(val_ds) == 0:
        raise ValueError(f"no {view} images in the train ({len(train_ds)}) or val ({len(val_ds)}) split")
    metric = cfg.EARLY_STOP.METRIC
    if metric not in ("accuracy", "auc"):
        raise ValueError(f"unknown EARLY_STOP.METRIC {metric!r}; expected 'accuracy' or 'auc'")
    net = build_classifier(cfg).to(device)
    label = describe_backbone(cfg, net.imagenet_init)
    y_train = train_ds.labels()
    logger.info("%s classifier %s: %d train (%d Damaged) / %d val images", view, label, len(train_ds), int(y_train.sum()), len(val_ds))
    loader = _loader(train_ds, max(1, cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size()), True, cfg.DATALOADER.NUM_WORKERS,
                     cfg.SEED, cfg.DATALOADER.SAMPLER)

    def start_epoch(epoch: int) -> None:  # the augmentation stream and the draw of each epoch, from the seed
        train_ds.set_epoch(epoch)
        loader.sampler.sampler.generator.manual_seed(cfg.SEED * 100003 + epoch)

    optimizer = build_optimizer(cfg.SOLVER, net.parameters())
    amp = bool(cfg.SOLVER.AMP) and device.type == "cuda"
    trainer = EpochTrainer(net, _loss(cfg, y_train, device), EpochLoader(loader, 0, start_epoch), optimizer,
                           build_scheduler(cfg.SOLVER, optimizer), max_epochs=cfg.SOLVER.MAX_EPOCHS, output_dir=str(out_dir),
                           device=device, amp=amp, metadata={"view": view, "backbone": label, "cfg": cfg.dump()})
    val_loader, y_val = _loader(val_ds, cfg.SOLVER.IMS_PER_BATCH, False, 0, cfg.SEED), val_ds.labels()
    scores: Dict[int, Dict[str, Any]] = {}  # iteration -> the validation figures (the best one goes into model_best)

    def evaluate() -> Dict[str, Any]:
        p_val, idx = validation_probs(net, val_loader, device, amp)
        m = binary_classification_metrics(y_val[idx], p_val, cfg.TEST.THRESHOLD)
        scores[trainer.iter] = m
        logger.info("%s epoch %d/%d val acc %.3f auc %.3f", view, trainer.epoch, trainer.max_epochs, m["accuracy"], m["roc_auc"])
        return {view: {**{k: m[k] for k in VAL_METRICS}, "score": selection_score(m, metric)}}

    def best_state() -> Dict[str, Any]:  # what model_best.pth says beside the weights
        state = trainer.best_state(f"{view}/score")
        return {**state, "val": scores[trainer.storage.latest()[f"{view}/score"][1]]}

    trainer.register_hooks(trainer.build_hooks(
        evaluate, f"{view}/score", patience=cfg.EARLY_STOP.PATIENCE, min_delta=cfg.EARLY_STOP.MIN_DELTA,
        early_stop=cfg.EARLY_STOP.ENABLED, best_state=best_state))
    trainer.resume_or_load(resume)
    trainer.train()
    comm.synchronize()
    return {"checkpoint": str(out_dir / "model_best.pth"), "best_epoch": trainer.best()["epoch"],
            "backbone": label, "seconds": round(trainer.seconds(), 1)}


def _loss(cfg: Any, y_train: np.ndarray, device: torch.device):
    """BCE on the logit, the classes balanced in the loss when the training set is not (the balanced sampler
    already does), targets smoothed by SOLVER.LABEL_SMOOTHING (y * (1 - eps) + eps / 2)."""
    n_pos, n_neg = int(y_train.sum()), int(len(y_train) - y_train.sum())
    balanced = cfg.DATALOADER.SAMPLER == "balanced"
    pos_weight = torch.tensor([1.0 if balanced or not n_pos else n_neg / n_pos], device=device)
    bce = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    eps = float(cfg.SOLVER.LABEL_SMOOTHING)

    def loss(logits: torch.Tensor, batch: Dict[str, Any]) -> torch.Tensor:
        y = batch["label"].to(device)
        return bce(logits.reshape(-1), y * (1.0 - eps) + 0.5 * eps)

    return loss


def patient_probs(cfg: Any, view: str, samples: Sequence[Any], patients: Sequence[str], device: torch.device) -> np.ndarray:
    """P(Damaged) of each patient from the view's best model (NaN where the patient lacks the view)."""
    ck = load_checkpoint(best_checkpoint(cfg, view))
    c = cfg.clone()
    c.defrost()
    c.MODEL.PRETRAINED = False
    model = build_classifier(c).to(device)
    model.load_state_dict(ck["model"])
    view_samples = [s for s in samples if s.view == view]
    ds = _dataset(cfg, view_samples, False)
    p, idx = validation_probs(model, _loader(ds, cfg.SOLVER.IMS_PER_BATCH, False, 0, cfg.SEED), device, False)
    by_patient = {view_samples[i].patient_id: float(v) for i, v in zip(idx, p)}
    return np.array([by_patient.get(pid, math.nan) for pid in patients])


def _trained_view(cfg: Any, view: str) -> Dict[str, Any]:
    """What train_view returns, read back from a finished run's checkpoints (--eval-only); a run folder of
    the epoch loop before issue 31 (``model_best_<view>.pth``) too."""
    best = best_checkpoint(cfg, view)
    ck = load_checkpoint(best)
    pointer, old_last = view_dir(cfg, view) / "last_checkpoint", Path(cfg.OUTPUT_DIR) / f"last_checkpoint_{view}.pth"
    seconds = math.nan
    if pointer.is_file() and (pointer.parent / pointer.read_text().strip()).is_file():
        seconds = float(load_checkpoint(pointer.parent / pointer.read_text().strip()).get("trainer", {}).get("seconds", math.nan))
    elif old_last.is_file():
        seconds = float(load_checkpoint(old_last).get("seconds", math.nan))
    return {"checkpoint": str(best), "best_epoch": int(ck.get("epoch", -1)), "backbone": ck.get("backbone", "?"),
            "seconds": round(seconds, 1)}


def train_classifier(cfg: Any, manifest: Any, resume: bool = False, eval_only: bool = False) -> Dict[str, Any]:
    """Train both views (``resume``: continue each from ``OUTPUT_DIR/<view>/last_checkpoint``; ``eval_only``:
    train nothing, use ``OUTPUT_DIR/<view>/model_best.pth``), select the strategy on validation, score all
    strategies on test; write the JSON (main process)."""
    device = init_from_env(cfg.MODEL.DEVICE)
    out_dir = Path(cfg.OUTPUT_DIR)
    if comm.is_main_process():
        out_dir.mkdir(parents=True, exist_ok=True)
        if not eval_only:
            atomic_write_text(out_dir / "config.yaml", cfg.dump())
    setup_run_logger(cfg.OUTPUT_DIR)
    splits = split_patients(cfg, manifest)
    views = [v for v in cfg.VIEWS if v in VIEWS]
    if eval_only:
        trained = {v: _trained_view(cfg, v) for v in views}
    else:
        trained = {v: train_view(cfg, v, splits, device, resume=resume) for v in views}

    result: Dict[str, Any] = {"backbone": {v: trained[v]["backbone"] for v in views}, "views_trained": views,
                              "val_mode": cfg.VAL.MODE, "seed": cfg.SEED, "split_seed": cfg.SPINE.SPLIT_SEED,
                              "threshold": cfg.TEST.THRESHOLD, "checkpoints": {v: trained[v]["checkpoint"] for v in views},
                              "best_epochs": {v: trained[v]["best_epoch"] for v in views},
                              "train_seconds": {v: trained[v]["seconds"] for v in views}}
    # one trained view: only its own strategy ("ap" / "average" would repeat it under another name)
    strategies = STRATEGIES if all(v in views for v in VIEWS) else tuple(views)
    for split in ("val", "test"):
        samples = splits[split]
        pats = list(dict.fromkeys(s.patient_id for s in samples))
        lab = {s.patient_id: s.label for s in samples}
        y = np.array([LABELS.index(lab[p]) for p in pats])
        probs = {v: patient_probs(cfg, v, samples, pats, device) if v in views else np.full(len(pats), math.nan) for v in VIEWS}
        if split == "val":
            selected, val_acc = select_view_strategy(probs["ap"], probs["lat"], y, cfg.TEST.THRESHOLD, strategies)
            result["selected"] = selected
            result["selection"] = {"rule": "highest validation accuracy; ties: higher ROC-AUC, then average > ap > lat",
                                   "val_accuracy": val_acc}
        combos = combine_views(probs["ap"], probs["lat"])
        result[split] = {
            "patients": len(pats), "damaged": int(y.sum()), "normal": int(len(y) - y.sum()),
            **{k: binary_classification_metrics(y, combos[k], cfg.TEST.THRESHOLD) for k in strategies},
        }
    result["test_selected"] = result["test"][result["selected"]]
    if comm.is_main_process():
        atomic_write_json(out_dir / METRICS_FILE, {**result, **provenance()})
    t = result["test_selected"]
    logger.info("selected on validation: %s; test accuracy %.3f sensitivity %.3f specificity %.3f AUC %.3f (%d patients)",
                result["selected"], t["accuracy"], t["sensitivity"], t["specificity"], t["roc_auc"], t["n"])
    return result

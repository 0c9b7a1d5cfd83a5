"""LinkNet (ResNet18 encoder, the report's baseline) as a model family.

Trained by ``spine_det.tools.train_linknet`` (epochs, early stopping, ``metrics.jsonl``); predicts with
:class:`spine_det.engine.linknet_predictor.LinkNetPredictor` (letterboxed input, sigmoid per task).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Dict, List, Optional

from spine_det.modeling.families._common import shipped_config
from spine_det.modeling.registry import MODEL_FAMILIES, ModelSpec

KEY = "linknet"


def recognizes(data: Any) -> bool:
    """The LinkNet trainer stores its network's name and its config text beside the weights."""
    return isinstance(data, dict) and "model_name" in data and "cfg" in data


def config_file(task: str) -> Path:
    return shipped_config(f"linknet/{task}.yaml")


def iters_per_epoch(out_dir: Path, n_train: int) -> Optional[int]:
    """Iterations per epoch from the run's ``config.yaml`` (batch, epoch cap) and the train split size."""
    p = Path(out_dir) / "config.yaml"
    if not p.is_file() or n_train <= 0:
        return None
    import yaml

    cfg = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    solver = cfg.get("SOLVER", {})
    b = max(1, int(solver.get("IMS_PER_BATCH", 1)))
    n = n_train // b if n_train > b else math.ceil(n_train / b)
    cap = int(solver.get("MAX_ITERS_PER_EPOCH", 0) or 0)
    return min(n, cap) if cap > 0 else n


def curves_from_metrics(out_dir: Path, iters: Optional[int] = None) -> Dict[str, Any]:
    """Loss and validation Dice per epoch from the trainer's ``metrics.jsonl``; s/iter from epoch times."""
    from spine_det.benchmark.cost import read_jsonl

    recs = read_jsonl(Path(out_dir) / "metrics.jsonl")
    loss = [(r["epoch"], r["loss"]) for r in recs if r.get("loss") is not None]
    dice = [(r["epoch"], r["val_dice"]) for r in recs if r.get("val_dice") is not None]
    n_iter = sum(int(r["iters"]) for r in recs if r.get("iters")) or ((iters or 0) * len(recs))
    t = sum(float(r.get("train_time_s", r.get("time_s", 0.0)) or 0.0) for r in recs)
    return {
        "x_label": "epoch", "loss": loss, "val_dice": dice,
        "s_per_iter": t / n_iter if n_iter and t else None, "iterations": n_iter or None, "epochs": len(recs),
        "s_per_iter_note": "" if any("train_time_s" in r for r in recs) else "epoch time incl. validation",
    }


def read_curves(out_dir: Path, task: str, n_train: int) -> Dict[str, Any]:
    return curves_from_metrics(out_dir, iters_per_epoch(out_dir, n_train))


def network_input(predictor: Any, image: Any) -> List[int]:
    return [int(predictor.cfg.INPUT.HEIGHT), int(predictor.cfg.INPUT.WIDTH)]


def flops(predictor: Any, image: Any) -> Optional[float]:
    """GFLOPs of the network on one letterboxed input (its size does not depend on the image)."""
    import torch

    from spine_det.benchmark.cost import gflops

    cfg = predictor.cfg
    x = torch.zeros(1, int(cfg.MODEL.IN_CHANNELS), int(cfg.INPUT.HEIGHT), int(cfg.INPUT.WIDTH), device=predictor.device)
    return gflops(predictor.model, (x,))


SPEC = MODEL_FAMILIES.register(ModelSpec(
    key=KEY,
    label="LinkNet",
    description="LinkNet with a ResNet18 encoder, soft-Dice loss, one sigmoid per task (the report's baseline)",
    train_module="spine_det.tools.train_linknet",
    config_file=config_file,
    predictor="spine_det.engine.linknet_predictor:LinkNetPredictor",
    load_config="spine_det.config.linknet:load_linknet_config",
    profile_files="spine_det.config.linknet:linknet_profile_files",
    recognizes=recognizes,
    checkpoints=("model_best.pth",),
    read_curves=read_curves,
    flops=flops,
    flops_input=network_input,
    order=10,
), replace=True)

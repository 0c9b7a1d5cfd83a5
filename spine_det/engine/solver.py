"""Optimiser and learning-rate schedule of the LinkNet/smp and classifier trainers (``SOLVER.*``).

The schedule is stepped once per epoch (:class:`spine_det.engine.hooks.EpochLRScheduler`): a cosine over
``MAX_EPOCHS``, or ``ReduceLROnPlateau`` on the validation score, as these trainers have always done.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable, Optional

import torch

__all__ = ["build_optimizer", "build_scheduler", "clip_gradients", "continue_schedule"]

logger = logging.getLogger(__name__)


def build_optimizer(solver: Any, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """``SOLVER.OPTIMIZER``: adam, adamw or sgd (Nesterov) at ``BASE_LR`` with ``WEIGHT_DECAY``."""
    name = solver.OPTIMIZER.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=solver.BASE_LR, weight_decay=solver.WEIGHT_DECAY)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=solver.BASE_LR, weight_decay=solver.WEIGHT_DECAY)
    if name == "sgd":
        return torch.optim.SGD(params, lr=solver.BASE_LR, momentum=solver.MOMENTUM, weight_decay=solver.WEIGHT_DECAY, nesterov=True)
    raise ValueError(f"unknown SOLVER.OPTIMIZER {solver.OPTIMIZER!r}; expected adam, adamw or sgd")


def clip_gradients(optimizer: torch.optim.Optimizer, max_norm: float) -> None:
    """Clip the gradient norm to ``max_norm`` right before each ``optimizer.step()`` (a step pre-hook, as
    Detectron2 clips inside the optimiser's step). Under AMP, ``GradScaler.step`` unscales the gradients before
    it calls ``step``, so the norm is the true one; a step the scaler skips (inf/NaN) is not clipped."""
    if max_norm <= 0:
        return
    params = [p for g in optimizer.param_groups for p in g["params"]]

    def clip(_optimizer: torch.optim.Optimizer, _args: Any, _kwargs: Any) -> None:
        torch.nn.utils.clip_grad_norm_(params, max_norm)

    optimizer.register_step_pre_hook(clip)


def build_scheduler(solver: Any, optimizer: torch.optim.Optimizer) -> Optional[torch.optim.lr_scheduler.LRScheduler]:
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


def continue_schedule(scheduler: Any, start_epoch: int, max_epochs: int) -> bool:
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

"""Training hooks shared by every family's trainer (Detectron2's :class:`HookBase`).

* :class:`SpineBestCheckpointer`: ``model_best.pth`` at the best validation value, safe to resume;
* :class:`EarlyStopping`: ends a run whose validation value stopped improving;
* :class:`EpochEvalHook`, :class:`EpochLRScheduler`, :class:`EpochCheckpointer`: Detectron2's
  ``EvalHook``, ``LRScheduler``, ``PeriodicCheckpointer`` and ``PeriodicWriter`` at epoch ends, for the trainers whose data come
  in epochs (:mod:`spine_det.engine.epoch_trainer`).

A hook ends a run early by lowering ``trainer.max_iter`` to the next iteration: the hooks after it in the same
step (checkpointer, writers) then treat this iteration as the last, and the trainer stops before the next one
(:class:`spine_det.engine.epoch_trainer.EpochTrainer`).
"""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional

import spine_det.compat  # noqa: F401  (shims before detectron2)
import torch
from detectron2.engine.hooks import BestCheckpointer, EvalHook, HookBase, LRScheduler, PeriodicCheckpointer, PeriodicWriter

from spine_det.engine.solver import continue_schedule
from spine_det.utils.fileio import atomic_write_json

__all__ = ["EarlyStopping", "EpochCheckpointer", "EpochEvalHook", "EpochLRScheduler", "EpochWriter",
           "SpineBestCheckpointer", "new_value"]

logger = logging.getLogger(__name__)


def new_value(trainer: Any, key: str, seen: int) -> Optional[tuple]:
    """``(value, iteration)`` of ``key`` in the trainer's event storage when it was put there after
    iteration ``seen`` (a new evaluation), else None."""
    latest = trainer.storage.latest().get(key)
    if latest is None or latest[1] <= seen:
        return None
    return float(latest[0]), int(latest[1])


class SpineBestCheckpointer(BestCheckpointer):
    """Detectron2's BestCheckpointer, made safe to resume.

    * the best value so far is kept in ``<prefix>.json`` and restored when a run resumes,
      so a resumed run does not overwrite a better ``model_best.pth`` with a worse one;
    * ``model_best.pth`` is written atomically and does not move the ``last_checkpoint``
      tag (which ``--resume`` follows) away from the latest periodic checkpoint;
    * ``extra_state()`` (optional) adds entries to it, e.g. the epoch and the validation figures;
    * ``min_delta``: a better value must beat the best by more than this (the early-stopping rule's delta).
    """

    def __init__(self, eval_period: int, checkpointer: Any, val_metric: str, mode: str = "max",
                 file_prefix: str = "model_best", extra_state: Optional[Callable[[], Dict[str, Any]]] = None,
                 min_delta: float = 0.0) -> None:
        super().__init__(eval_period, checkpointer, val_metric, mode, file_prefix)
        self._extra_state = extra_state
        self._checked: Optional[int] = None  # the iteration whose value was compared last
        if min_delta:
            delta = float(min_delta)
            self._compare = (lambda a, b: a > b + delta) if mode == "max" else (lambda a, b: a < b - delta)

    def after_train(self) -> None:
        if self.trainer.iter > self.trainer.start_iter:  # not when a resumed run had nothing left to train
            super().after_train()

    def _state_file(self) -> Path:
        return Path(self._checkpointer.save_dir) / f"{self._file_prefix}.json"

    def before_train(self) -> None:
        f = self._state_file()
        if self.trainer.start_iter > 0 and f.is_file():
            state = json.loads(f.read_text())
            if state.get("metric") == self._val_metric and state.get("value") is not None:
                self.best_metric, self.best_iter = float(state["value"]), int(state["iteration"])
                logger.info("Resumed best %s = %.5f @ iteration %d", self._val_metric, self.best_metric, self.best_iter)

    def _save_best(self, value: float, iteration: int) -> None:
        ckpt = self._checkpointer
        if not ckpt.save_dir or not ckpt.save_to_disk:
            return
        save_dir = Path(ckpt.save_dir)
        tag = save_dir / "last_checkpoint"
        old_tag = tag.read_text() if tag.is_file() else None
        tmp_name = f".{self._file_prefix}.tmp"
        extra = self._extra_state() if self._extra_state is not None else {}
        ckpt.save(tmp_name, iteration=iteration, **extra)
        os.replace(save_dir / f"{tmp_name}.pth", save_dir / f"{self._file_prefix}.pth")
        if old_tag is not None:
            tag.write_text(old_tag)
        elif tag.is_file():
            tag.unlink()
        atomic_write_json(self._state_file(), {"metric": self._val_metric, "value": value, "iteration": iteration})

    def _best_checking(self) -> None:
        metric_tuple = self.trainer.storage.latest().get(self._val_metric)
        if metric_tuple is None:
            logger.warning("Validation metric %s was not computed: model_best is not updated", self._val_metric)
            return
        value, iteration = metric_tuple
        if math.isnan(value) or math.isinf(value) or iteration == self._checked:
            return
        self._checked = iteration  # after_train sees the last value again when a hook ended the run early
        if self.best_metric is None or self._compare(value, self.best_metric):
            previous = self.best_metric
            self.best_metric, self.best_iter = value, iteration
            self._save_best(value, iteration)
            logger.info(
                "Saved %s.pth: %s = %.5f @ iteration %d (previous best %s)",
                self._file_prefix, self._val_metric, value, iteration,
                "none" if previous is None else f"{previous:.5f}",
            )
        else:
            logger.info(
                "Not saving: %s = %.5f, best %.5f @ iteration %d", self._val_metric, value, self.best_metric, self.best_iter
            )


class EarlyStopping(HookBase):
    """End training when ``metric`` has not improved by ``min_delta`` for ``patience`` evaluations in a row.

    mmengine's EarlyStoppingHook rule (monitor, rule, delta, patience), for every family: it reads each new
    value of ``metric`` from the event storage (whichever hook evaluated), so it must come after the
    evaluation hook. With ``enabled`` False it only counts. Its state goes into the checkpoint (the trainer's
    hook states), so a resumed run stops when the original would; it lowers ``trainer.max_iter`` to end the
    run (module docstring).
    """

    def __init__(self, metric: str, patience: int, min_delta: float = 0.0, mode: str = "max", enabled: bool = True) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.metric, self.patience, self.min_delta, self.mode = metric, int(patience), float(min_delta), mode
        self.enabled = bool(enabled)
        self.best: Optional[float] = None
        self.bad_checks = 0
        self.should_stop = False
        self._seen = -1

    def improved(self, score: float) -> bool:
        if math.isnan(score):
            return False
        if self.best is None:
            return True
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

    def _end_run(self) -> None:
        self.trainer.max_iter = min(self.trainer.max_iter, self.trainer.iter + 1)

    def before_train(self) -> None:
        self._seen = self.trainer.start_iter - 1
        if self.should_stop:  # resumed from a run that had stopped: it stays stopped
            logger.info("early stopping: the run had stopped at iteration %d; nothing to train", self.trainer.start_iter)
            self.trainer.max_iter = self.trainer.start_iter

    def after_step(self) -> None:
        new = new_value(self.trainer, self.metric, self._seen)
        if new is None:
            return
        score, self._seen = new
        self.step(score)
        if self.should_stop:
            logger.info("early stopping after iteration %d: no %s gain > %g for %d evaluations", self.trainer.iter + 1,
                        self.metric, self.min_delta, self.patience)
            self._end_run()

    def state_dict(self) -> Dict[str, Any]:
        return {"best": self.best, "bad_checks": self.bad_checks, "should_stop": self.should_stop}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.best, self.bad_checks, self.should_stop = state["best"], int(state["bad_checks"]), bool(state["should_stop"])


class EpochEvalHook(EvalHook):
    """Detectron2's EvalHook after every ``period``-th epoch and after the last epoch.

    The last evaluation runs in ``after_step`` like the others (Detectron2 runs it in ``after_train``), so the
    hooks after it (best checkpoint, early stopping, learning rate, the final checkpoint) see every
    evaluation the same way. Must be registered on every process (the evaluation gathers over them)."""

    def __init__(self, iters_per_epoch: int, period_epochs: int, eval_function: Callable[[], Dict[str, Any]]) -> None:
        super().__init__(max(1, int(period_epochs)) * int(iters_per_epoch), eval_function)
        self._iters_per_epoch, self._period_epochs = int(iters_per_epoch), max(1, int(period_epochs))

    def after_step(self) -> None:
        done = self.trainer.iter + 1
        if done % self._iters_per_epoch:
            return
        if (done // self._iters_per_epoch) % self._period_epochs == 0 or done >= self.trainer.max_iter:
            self._do_eval()

    def after_train(self) -> None:
        del self._func  # Detectron2's: the function may hold the trainer


class EpochLRScheduler(LRScheduler):
    """Detectron2's LRScheduler hook, the torch scheduler stepped once per epoch as these trainers always have:
    a cosine (or any scheduler without a metric) at each epoch end, ReduceLROnPlateau with each new value of
    ``metric``. ``lr`` goes to the event storage every iteration. On resume a cosine planned for another
    number of epochs is planned again from the LR reached (:func:`spine_det.engine.solver.continue_schedule`)."""

    def __init__(self, iters_per_epoch: int, max_epochs: int, metric: str, optimizer: Any = None, scheduler: Any = None) -> None:
        super().__init__(optimizer, scheduler)
        self._iters_per_epoch, self._max_epochs, self._metric = int(iters_per_epoch), int(max_epochs), metric
        self._seen = -1

    @property
    def scheduler(self) -> Any:
        return self._scheduler

    def before_train(self) -> None:
        super().before_train()
        self._seen = self.trainer.start_iter - 1
        if self.trainer.start_iter > 0:
            continue_schedule(self.scheduler, self.trainer.start_iter // self._iters_per_epoch, self._max_epochs)

    def after_step(self) -> None:
        lr = self._optimizer.param_groups[self._best_param_group_id]["lr"]
        self.trainer.storage.put_scalar("lr", lr, smoothing_hint=False)
        if self.scheduler is None:
            return
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            new = new_value(self.trainer, self._metric, self._seen)
            if new is not None:
                self._seen = new[1]
                if not math.isnan(new[0]):
                    self.scheduler.step(new[0])
        elif (self.trainer.iter + 1) % self._iters_per_epoch == 0:
            self.scheduler.step()

    def state_dict(self) -> Dict[str, Any]:
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        if self.scheduler is not None and state_dict:
            self.scheduler.load_state_dict(state_dict)


class EpochCheckpointer(PeriodicCheckpointer):
    """Detectron2's PeriodicCheckpointer hook that keeps one periodic checkpoint (the latest, which
    ``--resume`` follows) and follows ``trainer.max_iter`` when a hook lowers it (early stopping). At the last
    iteration ``model_final.pth`` is written instead of a periodic checkpoint, which it would repeat, and the
    periodic one goes."""

    def __init__(self, checkpointer: Any, period: int, file_prefix: str = "model") -> None:
        super().__init__(checkpointer, period, max_to_keep=1, file_prefix=file_prefix)

    def before_train(self) -> None:
        super().before_train()
        resumed = self.checkpointer.get_checkpoint_file() if self.checkpointer.has_checkpoint() else ""
        if Path(resumed).name.startswith(f"{self.file_prefix}_0"):  # a periodic one: superseded by the next
            self.recent_checkpoints = [resumed]

    def after_step(self) -> None:
        self.max_iter = self.trainer.max_iter
        iteration = self.trainer.iter
        if iteration < self.max_iter - 1:
            self.step(iteration)
            return
        self.checkpointer.save(f"{self.file_prefix}_final", iteration=iteration)
        for f in self.recent_checkpoints:
            if self.path_manager.exists(f) and not f.endswith(f"{self.file_prefix}_final.pth"):
                self.path_manager.rm(f)
        self.recent_checkpoints = []


class EpochWriter(PeriodicWriter):
    """Detectron2's PeriodicWriter, also at every epoch end: the writers keep only each scalar's latest value,
    so an epoch's validation figures must be written before the next epoch's replace them."""

    def __init__(self, writers: list, iters_per_epoch: int, period: int = 20) -> None:
        super().__init__(writers, period)
        self._iters_per_epoch = int(iters_per_epoch)

    def after_step(self) -> None:
        done = self.trainer.iter + 1
        if done % self._iters_per_epoch == 0 or done % self._period == 0 or done >= self.trainer.max_iter:
            for writer in self._writers:
                writer.write()

"""The training engine of the families whose data come in epochs (LinkNet and the smp networks, the
classifier): Detectron2's :class:`TrainerBase` running :class:`SimpleTrainer` steps (:class:`AMPTrainer` with
AMP) and hooks, as Mask R-CNN's ``DefaultTrainer`` does. The loop is Detectron2's; an epoch is
``iters_per_epoch`` iterations of an :class:`EpochLoader`, so ``MAX_EPOCHS`` epochs are
``MAX_EPOCHS * iters_per_epoch`` iterations, and the epoch is logged beside the iteration.

A run folder then holds what a Mask R-CNN run's does: ``log.txt`` (Detectron2's ``setup_logger``:
:func:`setup_run_logger`), ``metrics.json`` (one line per written iteration), TensorBoard event files (the same
scalars, iteration axis), ``last_checkpoint`` naming the checkpoint ``--resume`` continues from (the latest
epoch's ``model_<iter>.pth`` while training, ``model_final.pth`` at the end) and ``model_best.pth``
(+ ``model_best.json``); the family writes ``config.yaml``.

Multi-process: under ``detectron2.engine.launch`` (:mod:`spine_det.engine.launch`) or torchrun
(:func:`spine_det.engine.distributed.init_from_env`) the network is wrapped in DistributedDataParallel, each
process draws its share of every epoch (:class:`RankShard`), and the hooks that write run on the main process.
"""
from __future__ import annotations

import json
import logging
import random
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import spine_det.compat  # noqa: F401  (shims before detectron2)
import numpy as np
import torch
from detectron2.engine import hooks as d2_hooks
from detectron2.engine.train_loop import AMPTrainer, HookBase, SimpleTrainer, TrainerBase
from detectron2.utils import comm
from detectron2.utils.events import CommonMetricPrinter, TensorboardXWriter
from torch.utils.data import DataLoader, Sampler

from spine_det.engine.checkpointer import PlainCheckpointer
from spine_det.engine.hooks import (EarlyStopping, EpochCheckpointer, EpochEvalHook, EpochLRScheduler, EpochWriter,
                                    SpineBestCheckpointer)
from spine_det.engine.writers import StampedJSONWriter, trim_metrics_json
from spine_det.utils.logs import setup_logging
from spine_det.utils.checkpoint_io import CheckpointError, rng_state, set_rng_state
from spine_det.utils.errors import UserError

__all__ = ["EpochLoader", "EpochTrainer", "RankShard", "TrainingModel", "refuse_epoch_loop_checkpoint",
           "seed_everything", "setup_run_logger"]

logger = logging.getLogger(__name__)

WRITE_PERIOD = 20  # iterations between metrics.json / TensorBoard / console lines, Detectron2's default


def setup_run_logger(output_dir: str) -> None:
    """``OUTPUT_DIR/log.txt`` (``log.txt.rank<k>`` for the other processes) through Detectron2's
    ``setup_logger``, for the loggers Mask R-CNN's setup names (fvcore, detectron2, spine_det). The tool's
    ``default_setup`` has done this already in the launching process; :func:`setup_logging` replaces what
    it set up, so every record reaches log.txt and the console once (a worker process starts afresh)."""
    setup_logging(output_dir, comm.get_rank())


def seed_everything(seed: int) -> None:
    """Python's, numpy's and torch's global generators from one seed (each process passes SEED + rank)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class RankShard(Sampler):
    """This process's share of another sampler's indices: every process draws the same sequence (the same
    seeded generator) and takes every ``world``-th index from its rank on. ``pad`` repeats the first indices
    so that every process gets as many (training: the same number of steps everywhere). One process: the
    sampler itself."""

    def __init__(self, sampler: Sampler, pad: bool = True, rank: Optional[int] = None, world: Optional[int] = None) -> None:
        self.sampler, self.pad = sampler, pad
        self.rank = comm.get_rank() if rank is None else rank
        self.world = comm.get_world_size() if world is None else world

    def __iter__(self) -> Iterator[int]:
        idx = list(self.sampler)
        if self.pad and self.world > 1:
            idx += idx[: (-len(idx)) % self.world]
        return iter(idx[self.rank:: self.world])

    def __len__(self) -> int:
        n = len(self.sampler)
        if self.pad:
            return (n + self.world - 1) // self.world  # ceil: every rank pads to the same length
        return len(range(self.rank, n, self.world))


class EpochLoader:
    """Batches of a DataLoader epoch after epoch, endlessly (SimpleTrainer takes the next one each step).

    ``iters_per_epoch`` batches make an epoch (all of the loader's, or ``max_iters`` > 0 of them);
    ``on_epoch(epoch)`` runs before each epoch's first batch is drawn (re-seeding the sampler, the augmentation
    stream). Iteration starts at :attr:`epoch`, read when the first batch is asked for, so a resumed trainer
    sets it after building the loader."""

    def __init__(self, loader: DataLoader, max_iters: int = 0, on_epoch: Optional[Callable[[int], None]] = None) -> None:
        self.loader, self.on_epoch = loader, on_epoch
        self.iters_per_epoch = min(len(loader), max_iters) if max_iters > 0 else len(loader)
        if self.iters_per_epoch <= 0:
            raise ValueError("the training loader has no batch: too few training images for SOLVER.IMS_PER_BATCH")
        self.epoch = 0

    def __iter__(self) -> Iterator[Any]:
        while True:
            if self.on_epoch is not None:
                self.on_epoch(self.epoch)
            for i, batch in enumerate(self.loader):
                yield batch
                if i + 1 >= self.iters_per_epoch:
                    break
            self.epoch += 1


class TrainingModel(torch.nn.Module):
    """A network and its loss as one module that returns the loss of a batch: the model Detectron2's
    SimpleTrainer trains. ``loss(logits, batch)`` is computed in float32 outside autocast."""

    def __init__(self, net: torch.nn.Module, loss: Callable[[torch.Tensor, Dict[str, Any]], torch.Tensor],
                 device: torch.device) -> None:
        super().__init__()
        self.net, self.loss, self.device = net, loss, device

    def forward(self, batch: Dict[str, Any]) -> torch.Tensor:
        logits = self.net(batch["image"].to(self.device, non_blocking=True))
        with torch.autocast(device_type=self.device.type, enabled=False):
            return self.loss(logits.float(), batch)


class _RunEnded(BaseException):
    """Raised before the step after the one a hook made the last (:meth:`EpochTrainer.before_step`). A
    BaseException so that TrainerBase.train lets it through without logging it as a failure; its ``finally``
    still runs every hook's ``after_train``."""


class EpochTrainer(TrainerBase):
    """Detectron2's TrainerBase with a SimpleTrainer (AMPTrainer when ``amp``) step, over an
    :class:`EpochLoader`: what ``DefaultTrainer`` is for Mask R-CNN, for networks that return logits.

    ``net`` is the bare network (checkpointed, evaluated); training runs it through DistributedDataParallel
    when there are several processes. ``metadata`` goes into every checkpoint (the config text, the tasks or
    the view: what predict reads back)."""

    def __init__(self, net: torch.nn.Module, loss: Callable[[torch.Tensor, Dict[str, Any]], torch.Tensor],
                 data: EpochLoader, optimizer: torch.optim.Optimizer, scheduler: Any, *, max_epochs: int,
                 output_dir: str, device: torch.device, amp: bool = False, metadata: Optional[Dict[str, Any]] = None) -> None:
        super().__init__()
        self.net, self.data, self.optimizer, self.scheduler = net, data, optimizer, scheduler
        if comm.get_world_size() > 1:
            net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
        model = TrainingModel(net, loss, device)
        self._trainer = (AMPTrainer(model, data, optimizer, grad_scaler=torch.amp.GradScaler("cuda")) if amp
                         else SimpleTrainer(model, data, optimizer))
        self.iters_per_epoch, self.max_epochs = data.iters_per_epoch, int(max_epochs)
        self.start_iter, self.max_iter = 0, self.max_epochs * self.iters_per_epoch
        self.output_dir = str(output_dir)
        if comm.is_main_process():
            Path(self.output_dir).mkdir(parents=True, exist_ok=True)
        self.metadata = dict(metadata or {})
        self.checkpointer = PlainCheckpointer(self.net, self.output_dir, trainer=weakref.proxy(self), metadata=self.metadata)
        self.seconds_before, self._started = 0.0, time.perf_counter()

    @property
    def epoch(self) -> int:
        """Epochs completed after the current iteration."""
        return (self.iter + 1) // self.iters_per_epoch

    def build_hooks(self, evaluate: Callable[[], Dict[str, Any]], metric: str, *, eval_period: int = 1, mode: str = "max",
                    patience: int = 10, min_delta: float = 0.0, early_stop: bool = True,
                    best_state: Optional[Callable[[], Dict[str, Any]]] = None) -> List[Optional[HookBase]]:
        """The hooks, in Detectron2's order: timer, evaluation (every ``eval_period`` epochs and the last),
        best checkpoint, early stopping, learning rate, periodic checkpoint (every epoch), all on ``metric``
        (the writers come with :meth:`train`)."""
        ipe, main = self.iters_per_epoch, comm.is_main_process()
        best = PlainCheckpointer(self.net, self.output_dir, metadata=self.metadata)  # weights and metadata only
        self.early_stopping = EarlyStopping(metric, patience, min_delta, mode, enabled=early_stop)
        return [
            d2_hooks.IterationTimer(),
            EpochEvalHook(ipe, eval_period, evaluate),
            SpineBestCheckpointer(ipe * max(1, eval_period), best, metric, mode, extra_state=best_state,
                                  min_delta=min_delta) if main else None,
            self.early_stopping,
            EpochLRScheduler(ipe, self.max_epochs, metric, self.optimizer, self.scheduler),
            EpochCheckpointer(self.checkpointer, ipe) if main else None,
        ]

    def best_state(self, metric: str) -> Dict[str, Any]:
        """What ``model_best.pth`` says beside the weights: the epoch, the score and the metric it was chosen on
        (called by the best-checkpoint hook right after the evaluation)."""
        value, iteration = self.storage.latest()[metric]
        return {"epoch": (iteration + 1) // self.iters_per_epoch, "score": float(value), "metric": metric}

    def best(self) -> Dict[str, Any]:
        """The best value and its epoch from ``model_best.json`` (None / -1 before any)."""
        f = Path(self.output_dir) / "model_best.json"
        state = json.loads(f.read_text()) if f.is_file() else {}
        it = state.get("iteration")
        return {"value": state.get("value"), "epoch": (int(it) + 1) // self.iters_per_epoch if it is not None else -1}

    def build_writers(self) -> list:
        """Detectron2's default writers (console, ``metrics.json`` with the version stamp, TensorBoard). On
        resume the lines and events of iterations the checkpoint does not include are dropped."""
        out = Path(self.output_dir)
        trim_metrics_json(out / "metrics.json", self.start_iter)
        return [CommonMetricPrinter(self.max_iter), StampedJSONWriter(str(out / "metrics.json")),
                TensorboardXWriter(self.output_dir, purge_step=self.start_iter if self.start_iter > 0 else None)]

    def resume_or_load(self, resume: bool = True) -> None:
        """With ``resume``, continue from the checkpoint ``last_checkpoint`` names (model, optimiser, schedule,
        early stopping, RNG); otherwise start at iteration 0 with the network as built."""
        if not (resume and self.checkpointer.has_checkpoint()):
            if resume:
                logger.info("--resume: no checkpoint in %s yet, starting from scratch", self.output_dir)
            return
        target = self.checkpointer.get_checkpoint_file()
        if not Path(target).is_file():
            raise CheckpointError(f"{Path(self.output_dir) / 'last_checkpoint'} names {target}, which does not exist; "
                                  "fix or delete that file to resume from another checkpoint (or start without --resume)")
        self.checkpointer.load(target)
        self.start_iter = self.iter + 1
        self.data.epoch = self.start_iter // self.iters_per_epoch
        logger.info("resumed from %s at epoch %d (iteration %d)", target, self.data.epoch, self.start_iter)

    def train(self) -> None:
        """Detectron2's loop from ``start_iter`` to ``max_iter`` (or until a hook ends the run)."""
        if comm.is_main_process():
            self.register_hooks([EpochWriter(self.build_writers(), self.iters_per_epoch, period=WRITE_PERIOD)])
        self._started = time.perf_counter()
        try:
            super().train(self.start_iter, self.max_iter)
        except _RunEnded:
            pass

    def before_step(self) -> None:
        if self.iter >= self.max_iter:  # a hook lowered max_iter: the last step is done
            raise _RunEnded
        super().before_step()

    def run_step(self) -> None:
        self._trainer.iter = self.iter
        self._trainer.run_step()
        if comm.is_main_process():
            self.storage.put_scalar("epoch", (self.iter + 1) / self.iters_per_epoch, smoothing_hint=False)

    def seconds(self) -> float:
        """Training time so far, over every session of a resumed run."""
        return self.seconds_before + time.perf_counter() - self._started

    def state_dict(self) -> Dict[str, Any]:
        ret = super().state_dict()
        ret["_trainer"] = self._trainer.state_dict()
        ret.update(iters_per_epoch=self.iters_per_epoch, epoch=self.epoch, seconds=self.seconds(),
                   world_size=comm.get_world_size(), rng=rng_state())
        return ret

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        if int(state.get("iters_per_epoch", self.iters_per_epoch)) != self.iters_per_epoch:
            raise UserError(f"--resume: the checkpoint's run had {state['iters_per_epoch']} iterations per epoch, this "
                            f"config gives {self.iters_per_epoch} (SOLVER.IMS_PER_BATCH, SOLVER.EPOCH_IMAGES, "
                            "SOLVER.MAX_ITERS_PER_EPOCH or DATALOADER.TRAIN_SUBSET changed); restore them or train "
                            "into a new OUTPUT_DIR")
        super().load_state_dict(state)
        self._trainer.load_state_dict(state["_trainer"])
        self.seconds_before = float(state.get("seconds", 0.0))
        if state.get("rng") is not None and state.get("world_size", 1) == comm.get_world_size() == 1:
            set_rng_state(state["rng"])  # one process: the resumed run draws what the original would have


def refuse_epoch_loop_checkpoint(old_files: Sequence[Path], run_dir: Path, resume: bool, hint: str = "") -> None:
    """``old_files`` (``last_checkpoint.pth`` ...) are what the epoch loops before issue 31 wrote; this engine
    cannot resume them. With ``resume`` and no ``run_dir/last_checkpoint`` of this engine: one line naming what
    to do; without ``resume``: a warning that the old files stay beside the new ones."""
    old = [Path(f) for f in old_files if Path(f).is_file()]
    if not old or (Path(run_dir) / "last_checkpoint").is_file():
        return
    if resume:
        raise UserError(f"{old[0]} was written by the epoch loop of an older spine_det, which this version cannot "
                        f"resume; train into a new OUTPUT_DIR{hint} (or start again here without --resume)")
    logger.warning("%s: files of an older spine_det run (%s) stay beside this run's", old[0].parent,
                   ", ".join(f.name for f in old))

"""The engine of the epoch-fed trainers on a toy network (no data set): Detectron2's loop, epochs as
iterations, the shared hooks (early stopping ends the run as reaching MAX_EPOCHS does), resume, the run folder."""
from __future__ import annotations

import json

import pytest
import torch

import spine_det.compat  # noqa: F401  (shims before detectron2)
from spine_det.engine.epoch_trainer import EpochLoader, EpochTrainer
from spine_det.engine.solver import build_scheduler


class _Solver:
    SCHEDULER, MAX_EPOCHS, MIN_LR, PLATEAU_FACTOR, PLATEAU_PATIENCE = "cosine", 6, 0.0, 0.5, 1


def _trainer(out, scores, max_epochs=6, patience=2, scheduler="cosine"):
    """A linear model on 4 fixed batches per epoch; validation returns the next of ``scores``."""
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    batches = [{"image": torch.randn(2, 3), "y": torch.randn(2, 1)} for _ in range(4)]
    seen_epochs = []
    data = EpochLoader(batches, on_epoch=seen_epochs.append)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    solver = _Solver()
    solver.SCHEDULER, solver.MAX_EPOCHS = scheduler, max_epochs
    trainer = EpochTrainer(net, lambda logits, b: ((logits - b["y"]) ** 2).mean(), data, opt, build_scheduler(solver, opt),
                           max_epochs=max_epochs, output_dir=str(out), device=torch.device("cpu"),
                           metadata={"model_name": "toy", "cfg": "", "tasks": ["t"]})
    it = iter(scores)
    trainer.register_hooks(trainer.build_hooks(lambda: {"t": {"dice": next(it)}}, "t/dice", patience=patience,
                                               min_delta=0.01))
    return trainer, seen_epochs


def _dice_lines(out):
    return [(r["iteration"], r["epoch"], r["t/dice"]) for r in map(json.loads, (out / "metrics.json").read_text().splitlines())
            if "t/dice" in r]


def test_epochs_are_iterations_and_the_run_folder_is_detectron2s(tmp_path):
    out = tmp_path / "run"
    trainer, epochs = _trainer(out, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    trainer.resume_or_load(resume=False)
    trainer.train()
    assert trainer.iter == trainer.max_iter == 24 and epochs == [0, 1, 2, 3, 4, 5]
    assert _dice_lines(out) == [(4 * e - 1, float(e), pytest.approx(0.1 * e)) for e in range(1, 7)]
    assert (out / "last_checkpoint").read_text() == "model_final.pth" and not list(out.glob("model_0*.pth"))
    assert json.loads((out / "model_best.json").read_text())["iteration"] == 23
    final = torch.load(out / "model_final.pth", weights_only=True)
    assert final["iteration"] == 23 and final["trainer"]["epoch"] == 6 and final["model_name"] == "toy"
    assert final["trainer"]["hooks"]["EpochLRScheduler"]["last_epoch"] == 6  # cosine stepped once per epoch
    best = torch.load(out / "model_best.pth", weights_only=True)
    assert set(best) >= {"model", "iteration", "model_name", "spine_det_version"} and "trainer" not in best


def test_early_stopping_ends_the_run_like_its_last_epoch_and_stays_stopped(tmp_path):
    out = tmp_path / "run"
    # best at epoch 2, then two evaluations without a gain > 0.01: stop after epoch 4 of 6
    trainer, _ = _trainer(out, [0.5, 0.6, 0.605, 0.59])
    trainer.resume_or_load(resume=False)
    trainer.train()
    assert trainer.early_stopping.should_stop and trainer.iter == trainer.max_iter == 16
    assert [e for _, e, _ in _dice_lines(out)] == [1.0, 2.0, 3.0, 4.0]
    assert (out / "last_checkpoint").read_text() == "model_final.pth"  # written at the last step it ran
    assert json.loads((out / "model_best.json").read_text())["iteration"] == 7  # 0.605 is no gain > 0.01
    assert torch.load(out / "model_final.pth", weights_only=True)["trainer"]["hooks"]["EarlyStopping"]["should_stop"]

    again, epochs = _trainer(out, [], max_epochs=8)  # resumed with more epochs: the stopped run stays stopped
    again.resume_or_load(resume=True)
    assert again.start_iter == 16
    again.train()
    assert epochs == [] and again.iter == 16


def test_resume_continues_where_the_checkpoint_left_off(tmp_path):
    out = tmp_path / "run"
    first, _ = _trainer(out, [0.1, 0.2, 0.3], max_epochs=3, scheduler="plateau")
    first.resume_or_load(resume=False)
    first.train()
    more, epochs = _trainer(out, [0.4, 0.35], max_epochs=5, scheduler="plateau")
    more.resume_or_load(resume=True)
    assert more.start_iter == 12 and more.early_stopping.best == pytest.approx(0.3)
    more.train()
    assert epochs == [3, 4] and [e for _, e, _ in _dice_lines(out)] == [1.0, 2.0, 3.0, 4.0, 5.0]
    lines = [json.loads(ln) for ln in (out / "metrics.json").read_text().splitlines()]
    assert len({r["iteration"] for r in lines}) == len(lines)  # each iteration once
    assert json.loads((out / "model_best.json").read_text())["iteration"] == 15

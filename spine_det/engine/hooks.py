"""Training hooks: keep the checkpoint with the best validation metric, across resumes."""
from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import spine_det.compat  # noqa: F401  (shims before detectron2)
from detectron2.engine.hooks import BestCheckpointer

from spine_det.utils.fileio import atomic_write_json

logger = logging.getLogger(__name__)


class SpineBestCheckpointer(BestCheckpointer):
    """Detectron2's BestCheckpointer, made safe to resume.

    * the best value so far is kept in ``<prefix>.json`` and restored when a run resumes,
      so a resumed run does not overwrite a better ``model_best.pth`` with a worse one;
    * ``model_best.pth`` is written atomically and does not move the ``last_checkpoint``
      tag (which ``--resume`` follows) away from the latest periodic checkpoint.
    """

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
        ckpt.save(tmp_name, iteration=iteration)
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
        if math.isnan(value) or math.isinf(value):
            return
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

"""A toy model family in one module (plus its config): the proof that adding a family needs nothing else.

``tests/test_registry.py`` puts this folder on :mod:`spine_det.modeling.families`' search path, the
way a module dropped into that package is found, and nothing else in the package names it. The model:
foreground = pixels brighter than a threshold; "training" writes the configured threshold as the
checkpoint (a text file). Its parts are real callables, not ``"module:attr"`` references: a module
outside the package may import the engine directly.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from fvcore.common.config import CfgNode

from spine_det.engine.predictor import SegmentationPredictor, TaskPrediction
from spine_det.modeling.registry import MODEL_FAMILIES, BenchmarkAdapter, ModelFamily

KEY = "toy_thresh"
CONFIGS = Path(__file__).resolve().parent / "configs" / KEY


class ToyPredictor(SegmentationPredictor):
    """Foreground = pixels above a threshold read from the 'checkpoint' (a text file)."""

    def __init__(self, threshold: int, tasks: Sequence[str] = ("lat_vertebra",)) -> None:
        self.threshold = threshold
        self.tasks = list(tasks)
        self.model = torch.nn.Conv2d(1, 1, 3)  # 10 parameters, for the cost columns

    @classmethod
    def from_checkpoint(cls, checkpoint: str, config_file: Optional[str] = None, device: str = "cpu",
                        score_threshold: Optional[float] = None) -> "ToyPredictor":
        t = int(Path(checkpoint).read_text())
        return cls(int(round(255 * score_threshold)) if score_threshold is not None else t)

    def __call__(self, image: np.ndarray) -> Dict[str, TaskPrediction]:
        return {t: TaskPrediction(mask=np.asarray(image) > self.threshold) for t in self.tasks}


def load_config(config_file: Optional[str], profile: str, opts: List[str]) -> CfgNode:
    cfg = CfgNode({"SPINE": {"TASKS": []}, "TOY": {"THRESHOLD": 128, "START": "zero"}, "SEED": 0, "OUTPUT_DIR": "",
                   "MODEL": {"DEVICE": "cpu"}})
    if config_file:
        cfg.merge_from_file(str(config_file))
    cfg.merge_from_list(list(opts))
    return cfg


def main(argv: Optional[List[str]] = None) -> int:
    """The trainer: writes the configured threshold as OUTPUT_DIR/toy.ckpt."""
    p = argparse.ArgumentParser()
    p.add_argument("--config-file")
    p.add_argument("opts", nargs=argparse.REMAINDER)
    args, _ = p.parse_known_args(argv)
    cfg = load_config(args.config_file, "full", [o for o in args.opts if o not in ("--resume", "--eval-only")])
    Path(cfg.OUTPUT_DIR).mkdir(parents=True, exist_ok=True)
    (Path(cfg.OUTPUT_DIR) / "toy.ckpt").write_text(str(cfg.TOY.THRESHOLD))
    return 0


def benchmark_args(group: Any) -> None:
    group.add_argument("--toy-thresh-start", default="zero")


@MODEL_FAMILIES.register()
class ToyThreshold(ModelFamily):
    """a test family"""

    key = KEY
    label = "Toy threshold"
    order = 99
    trainer = main
    predictor = ToyPredictor
    load_config = load_config
    checkpoints = ("toy.ckpt",)
    benchmark = BenchmarkAdapter(
        eval_opts=lambda out: ["TOY.EVAL", "1"],
        plan_opts=lambda runs, task, seed, o: ["TOY.START", o.family_args.get("toy_thresh_start", "?")],
        benchmark_args=benchmark_args, header_note=lambda o: ("Toy start", o.family_args.get("toy_thresh_start")),
        read_curves=lambda out, task, n: {"x_label": "step", "loss": [(1, 0.5)], "val_dice": [], "iterations": 1},
        flops=lambda predictor, image: (0.25, list(image.shape)))

    def config_file(self, task: str) -> Path:
        return CONFIGS / f"{task}.yaml"

    def recognizes(self, data: Any) -> bool:
        return isinstance(data, dict) and "toy_threshold" in data


if __name__ == "__main__":
    sys.exit(main())

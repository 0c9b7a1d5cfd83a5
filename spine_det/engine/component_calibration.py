"""The speck filter of a LinkNet / smp checkpoint, chosen on the validation films and stored in it.

At the end of training the best checkpoint predicts every validation film at its original size (as
``predict`` will), and :func:`spine_det.evaluation.component_filter.choose_min_area` picks, per task,
the minimum component area that maximises instance F1 against the films' ground-truth instances (the
task's instance label map where the data has one, else the mask's components, as ``eval-instances``
reads them). The rules go into the checkpoint as plain data, so ``torch.load(weights_only=True)``
still reads it; :class:`~spine_det.engine.semseg_predictor.SemSegPredictor` applies them.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Tuple

import spine_det.compat  # noqa: F401  (shims before detectron2)
import numpy as np
from detectron2.utils import comm

from spine_det.data.io import read_image, read_label_map, read_mask
from spine_det.engine.distributed import init_from_env
from spine_det.engine.semseg_predictor import SemSegPredictor
from spine_det.evaluation.component_filter import CHECKPOINT_KEY, choose_min_area, component_areas, validation_film
from spine_det.tasks import get_task
from spine_det.utils.checkpoint_io import load_plain, save_plain

logger = logging.getLogger(__name__)


def ground_truth_instances(sample: Any, task: str, shape: Tuple[int, int]) -> np.ndarray:
    """The task's ground-truth instances of one film as a label map (0 = background)."""
    mask = read_mask(sample.masks[task], shape=shape)
    if task in getattr(sample, "instance_maps", {}):
        return read_label_map(sample.instance_maps[task], shape=shape) * mask
    return component_areas(mask)[0]


def choose_on_validation(cfg: Any, manifest: Any, weights: str) -> Dict[str, Dict[str, Any]]:
    """``{task: rule}`` chosen on the manifest's validation films of the config's view (every rank
    predicts its share; all ranks get the result). A task the films cannot decide has a rule without
    a minimum and with its ``reason`` (predict then uses the relative rule and says why)."""
    predictor = SemSegPredictor(cfg, weights=weights, device=init_from_env(cfg.MODEL.DEVICE))
    tasks = predictor.tasks
    view = get_task(tasks[0]).view
    samples = [s for s in manifest.select(split="val", view=view) if any(s.masks.get(t) for t in tasks)]
    films: Dict[str, List[tuple]] = {t: [] for t in tasks}
    for s in samples[comm.get_rank():: comm.get_world_size()]:
        image = read_image(s.image)
        masks = predictor.predict_masks(image)
        for t in tasks:
            if s.masks.get(t):
                films[t].append(validation_film(masks[t], ground_truth_instances(s, t, image.shape)))
    gathered = comm.all_gather(films)
    rules: Dict[str, Dict[str, Any]] = {}
    for t in tasks:
        rule = choose_min_area(f for part in gathered for f in part[t])
        rule["probability_threshold"] = float(predictor.threshold)
        rules[t] = rule
        if rule["min_area_share"] is None:
            logger.warning("%s: no speck minimum chosen: %s; predict falls back to the relative rule", t, rule["reason"])
            continue
        logger.info("%s: components below %.3g of the film's pixels are specks (validation instance F1 %.3f, "
                    "%.3f keeping all; %d of %d components dropped on %d films)", t, rule["min_area_share"],
                    rule["instance_f1"], rule["instance_f1_keeping_all"], rule["dropped_on_validation"],
                    rule["components"], rule["films"])
    return rules


def store_in_checkpoint(path: Path, rules: Dict[str, Dict[str, Any]]) -> None:
    """Add the rules to a checkpoint (main process; atomic, plain data)."""
    if not comm.is_main_process():
        return
    ck = load_plain(path)
    ck[CHECKPOINT_KEY] = rules
    save_plain(path, ck)


def calibrate_checkpoint(cfg: Any, manifest: Any, path: Path) -> Dict[str, Dict[str, Any]]:
    """Choose the speck filter of the checkpoint at ``path`` on validation and store it there."""
    rules = choose_on_validation(cfg, manifest, str(path))
    store_in_checkpoint(Path(path), rules)
    comm.synchronize()
    return rules


__all__ = ["calibrate_checkpoint", "choose_on_validation", "ground_truth_instances", "store_in_checkpoint"]

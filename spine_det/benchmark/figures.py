"""Pictures of the benchmark: per task, test images with ground truth and each model's mask; training curves.

Colours: ground truth green, prediction red, where they agree yellow.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import cv2
import numpy as np

from spine_det.benchmark.cost import _safe
from spine_det.data.io import read_image, read_mask
from spine_det.evaluation.metrics import binary_scores
from spine_det.utils.fileio import atomic_path
from spine_det.utils.overlay import overlay_gt_pred

logger = logging.getLogger(__name__)


def _plt():
    import matplotlib  # lazy: start-up (matplotlib only for figures), and use("Agg") must precede pyplot

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt  # after matplotlib.use("Agg")

    return plt


def _save(fig: Any, path: Path) -> Path:
    plt = _plt()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def overlay_grid(task: str, samples: Sequence[Any], predictions: Mapping[str, Mapping[str, np.ndarray]],
                 out_path: Path, titles: Optional[Mapping[str, str]] = None, max_images: int = 4) -> Optional[Path]:
    """One row per test image: GT alone, then each model's prediction over it, with the image's Dice.

    ``predictions``: ``{model: {sample key: bool mask}}`` (a model missing an image shows '–').
    """
    samples = [s for s in samples if any(s.key in p for p in predictions.values())][:max_images] or list(samples)[:max_images]
    if not samples:
        return None
    plt = _plt()
    models = list(predictions)
    cols = 1 + len(models)
    fig, axes = plt.subplots(len(samples), cols, figsize=(3.2 * cols, 3.6 * len(samples)), squeeze=False)
    for i, s in enumerate(samples):
        img = read_image(s.image)
        gt = read_mask(s.masks[task], shape=img.shape)
        axes[i][0].imshow(overlay_gt_pred(img, gt, None))
        axes[i][0].set_title(f"ground truth\n{s.key}", fontsize=7)
        for j, m in enumerate(models, start=1):
            pred = predictions[m].get(s.key)
            ax = axes[i][j]
            if pred is None:
                ax.imshow(img, cmap="gray")
                ax.set_title(f"{(titles or {}).get(m, m)}\n–", fontsize=8)
            else:
                ax.imshow(overlay_gt_pred(img, gt, pred))
                ax.set_title(f"{(titles or {}).get(m, m)}\nDice {binary_scores(pred, gt)['dice']:.3f}", fontsize=8)
    for ax in np.ravel(axes):
        ax.axis("off")
    fig.suptitle(f"{task}: ground truth green, prediction red, agreement yellow", fontsize=10)
    fig.tight_layout()
    return _save(fig, out_path)


def training_curves(task: str, curves: Mapping[str, Mapping[str, Any]], out_path: Path,
                    titles: Optional[Mapping[str, str]] = None,
                    seed_curves: Optional[Mapping[str, Mapping[int, Mapping[str, Any]]]] = None) -> Optional[Path]:
    """Loss and validation Dice per model (each on its own x axis: epochs for LinkNet, iterations for Mask R-CNN).

    ``seed_curves`` (``{model: {seed: curves}}``): a model trained with several seeds gets one line per
    seed, so that a reader sees whether the validation curve flattens in every run, not in one."""
    runs: Dict[str, Dict[Any, Mapping[str, Any]]] = {}
    for m, c in curves.items():
        by_seed = {k: v for k, v in sorted(((seed_curves or {}).get(m) or {}).items()) if v}
        runs[m] = by_seed if len(by_seed) > 1 else {None: c}
    for m, by_seed in (seed_curves or {}).items():  # a model whose first seed is missing still shows its others
        if m not in runs and by_seed:
            runs[m] = dict(sorted(by_seed.items()))
    runs = {m: {k: c for k, c in r.items() if c and (c.get("loss") or c.get("val_dice"))} for m, r in runs.items()}
    runs = {m: r for m, r in runs.items() if r}
    if not runs:
        return None
    plt = _plt()
    fig, axes = plt.subplots(len(runs), 2, figsize=(9, 3.0 * len(runs)), squeeze=False)
    for i, (m, by_seed) in enumerate(runs.items()):
        name = (titles or {}).get(m, m)
        for j, (key, ylabel) in enumerate((("loss", "training loss"), ("val_dice", "validation Dice"))):
            ax = axes[i][j]
            x_label = "step"
            for seed, c in by_seed.items():
                pts = c.get(key) or []
                x_label = c.get("x_label", x_label)
                if pts:
                    x, y = zip(*pts)
                    ax.plot(x, y, marker="." if len(pts) < 50 else None, lw=1.2,
                            label=None if seed is None else f"seed {seed}")
            # where the learning rate drops (the benchmark judges convergence after the last one)
            for k, step in enumerate(sorted({s for c in by_seed.values() for s in c.get("lr_steps") or []})):
                ax.axvline(step, color="0.5", ls=":", lw=1, label="LR drop" if k == 0 and key == "val_dice" else None)
            ax.set_xlabel(x_label)
            ax.set_ylabel(ylabel)
            ax.set_title(f"{name}: {ylabel}", fontsize=9)
            ax.grid(alpha=0.3)
            if key == "val_dice":
                ax.set_ylim(0, 1)
                if ax.get_legend_handles_labels()[1]:
                    ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{task}: training curves" + (", one line per seed" if any(len(r) > 1 for r in runs.values()) else ""),
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, out_path)


def load_predictions(pred_dir: Path, keys: Sequence[str]) -> Dict[str, np.ndarray]:
    """Masks the cost step saved (``<safe key>.png``) for the sample keys that have one."""
    out: Dict[str, np.ndarray] = {}
    for k in keys:
        p = Path(pred_dir) / f"{_safe(k)}.png"
        if p.is_file():
            m = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            if m is not None:
                out[k] = m > 0
    return out


__all__: List[str] = ["overlay_grid", "training_curves", "load_predictions"]

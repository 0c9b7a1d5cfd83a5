"""Every semantic-segmentation network (LinkNet, the smp networks) as a :class:`SegmentationPredictor`: grey
X-ray in, one mask per task out.

The image is letterboxed to the training size, the sigmoid probabilities are
mapped back to the original pixels (bilinear) and thresholded there, so masks
are compared with the original mask files at full resolution. Instances are
the 8-connected components of each mask, scored by their mean probability,
less the specks: components below the minimum area the checkpoint stores (chosen
on validation, :mod:`spine_det.engine.component_calibration`) or, for a checkpoint
without one, the relative rule of :mod:`spine_det.evaluation.component_filter`.
The mask keeps its specks (Dice is unchanged); only the instance list drops them.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch

from spine_det.config.safe import ConfigError, merge_yaml_text
from spine_det.config.semseg import get_semseg_cfg, load_semseg_config, tasks_of
from spine_det.data.seg_dataset import network_image, normalize, unletterbox
from spine_det.engine.predictor import (
    CheckpointError,
    SegmentationPredictor,
    TaskPrediction,
    check_grey_image,
)
from spine_det.evaluation.component_filter import CHECKPOINT_KEY, drop_specks
from spine_det.modeling.registry import require_family
from spine_det.modeling.semseg import build_seg_model
from spine_det.utils.checkpoint_io import load_plain

logger = logging.getLogger(__name__)


def _cfg_from_checkpoint(ck: Dict[str, Any], path: str) -> Any:
    text = ck.get("cfg")
    if not text:
        raise CheckpointError(f"{path}: no config inside the checkpoint; pass --config-file")

    try:
        return merge_yaml_text(get_semseg_cfg(), text, f"{path} (its stored config)")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None


class SemSegPredictor(SegmentationPredictor):
    """``SemSegPredictor(cfg, weights)(grey_uint8) -> {task: TaskPrediction}``."""

    from spine_det.modeling.families.linknet import KEY as family_key

    def __init__(self, cfg: Any, weights: Optional[str] = None, device: Any = "cpu", model: Optional[torch.nn.Module] = None) -> None:
        self.cfg = cfg
        self.tasks: List[str] = tasks_of(cfg)
        self.device = torch.device(device)
        self.threshold = float(cfg.TEST.THRESHOLD)
        self.checkpoint_info: Dict[str, Any] = {}
        self.speck_filter: Dict[str, Dict[str, Any]] = {}  # {task: rule} chosen on validation; {}: relative rule
        if model is None:
            cfg_pre = cfg.clone()
            cfg_pre.defrost()
            cfg_pre.MODEL.PRETRAINED = False  # weights come from the checkpoint
            model = build_seg_model(cfg_pre)
            if weights:
                ck = _load(weights)
                try:
                    model.load_state_dict(ck["model"])
                except RuntimeError as e:
                    raise CheckpointError(f"{weights}: does not fit the config's model ({str(e).splitlines()[0]})") from None
                self.checkpoint_info = {k: ck.get(k) for k in ("epoch", "score", "metric")}
                rules = ck.get(CHECKPOINT_KEY)
                self.speck_filter = {t: r for t, r in rules.items() if isinstance(r, dict)} if isinstance(rules, dict) else {}
        self.model = model.to(self.device).eval()

    @classmethod
    def from_checkpoint(cls, checkpoint: str, config_file: Optional[str] = None, device: str = "cpu",
                        score_threshold: Optional[float] = None) -> "SemSegPredictor":
        ck = _load(checkpoint)
        if config_file:
            cfg = load_semseg_config(config_file)
        else:
            cfg = _cfg_from_checkpoint(ck, checkpoint)
        cfg.defrost()
        if score_threshold is not None:
            cfg.TEST.THRESHOLD = float(score_threshold)
        cfg.freeze()
        return cls(cfg, weights=checkpoint, device=device)

    @torch.no_grad()
    def predict_probs(self, image: np.ndarray) -> np.ndarray:
        """(T, H, W) float32 probabilities at the image's own size."""
        cfg = self.cfg
        net, lb = network_image(check_grey_image(image), (cfg.INPUT.HEIGHT, cfg.INPUT.WIDTH), cfg.INPUT.RESIZE,
                                float(cfg.INPUT.CLAHE))  # as the training dataset does
        x = normalize(net, cfg.MODEL.IN_CHANNELS).unsqueeze(0).to(self.device)
        flip = bool(cfg.TEST.HFLIP)
        if flip:  # the mirror in the same batch; its output is mirrored back, so pixels match exactly
            x = torch.cat([x, x.flip(-1)])
        with torch.autocast(device_type=self.device.type, enabled=self.device.type == "cuda" and bool(cfg.SOLVER.AMP)):
            logits = self.model(x)
        probs = torch.sigmoid(logits.float())
        probs = ((probs[0] + probs[1].flip(-1)) / 2 if flip else probs[0]).cpu().numpy()
        return unletterbox(probs, lb)

    def flop_count_inputs(self, image: np.ndarray) -> Tuple[Any, tuple]:
        """The network on one image's letterboxed input(s) (their size does not depend on the image)."""
        cfg = self.cfg
        n = 2 if cfg.TEST.HFLIP else 1  # the test-time flip runs the network twice per image
        x = torch.zeros(n, int(cfg.MODEL.IN_CHANNELS), int(cfg.INPUT.HEIGHT), int(cfg.INPUT.WIDTH), device=self.device)
        return self.model, (x,)

    def predict_masks(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        probs = self.predict_probs(image)
        return {t: probs[i] >= self.threshold for i, t in enumerate(self.tasks)}

    def __call__(self, image: np.ndarray) -> Dict[str, TaskPrediction]:
        probs = self.predict_probs(image)
        out: Dict[str, TaskPrediction] = {}
        for i, t in enumerate(self.tasks):
            mask = probs[i] >= self.threshold
            instances, dropped = drop_specks(_components(mask, probs[i]), mask.shape, self.speck_filter.get(t))
            out[t] = TaskPrediction(mask=mask, instances=instances, component_filter=dropped)
        return out


def _components(mask: np.ndarray, prob: np.ndarray) -> List[Dict[str, Any]]:
    """Every 8-connected component of ``mask``: box, area and mean probability (best first)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    sums = np.bincount(labels.ravel(), weights=prob.ravel().astype(np.float64), minlength=n)  # one pass, not one per component
    inst = []
    for k in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[k])
        inst.append({"score": round(float(sums[k] / area), 4), "bbox": [x, y, w, h], "area": area})
    inst.sort(key=lambda d: -d["score"])
    return inst


def _load(path: str) -> Dict[str, Any]:
    """A segmentation checkpoint (LinkNet's or an smp network's), read with ``weights_only=True`` (a planted
    pickle is refused, never run)."""
    ck = load_plain(path)
    require_family(ck, SemSegPredictor.family_key, path)
    if not isinstance(ck, dict) or "model" not in ck:
        raise CheckpointError(f"{path}: not a spine_det segmentation checkpoint (no 'model' entry)")
    return ck

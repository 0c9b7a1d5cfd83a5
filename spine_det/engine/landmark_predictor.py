"""The vertebra-landmark network as a :class:`SegmentationPredictor`: grey film in, up to 17 quadrilaterals
out, each drawn as one instance mask.

The film is letterboxed as in training, the stride-4 maps are decoded (:func:`decode_maps`: 3 x 3 peak
NMS, top-k, score threshold) and the corners mapped back to film pixels. Each instance dict carries its
``quad`` (TL, TR, BL, BR, film pixels), so ``spine-det predict`` writes the corners into
``<task>_instances.json`` and the Cobb route (``spine-det measure-cobb --source quads``) takes them as
they are; the instance masks (filled quadrilaterals) and their union are what the evaluator scores.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch

from spine_det.config.landmark import get_landmark_cfg, landmark_task, load_landmark_config
from spine_det.config.safe import ConfigError, merge_yaml_text
from spine_det.data.landmark_dataset import quads_to_film
from spine_det.data.seg_dataset import network_image, normalize
from spine_det.engine.predictor import BoxMasks, CheckpointError, SegmentationPredictor, TaskPrediction, check_grey_image
from spine_det.modeling.families.landmark import KEY
from spine_det.modeling.landmark_net import build_landmark_net
from spine_det.modeling.landmark_targets import CORNERS, HEATMAP, OFFSET, decode_maps
from spine_det.modeling.registry import require_family
from spine_det.utils.checkpoint_io import load_plain

__all__ = ["LandmarkPredictor", "quad_box_mask", "load_landmark_checkpoint"]

logger = logging.getLogger(__name__)


def load_landmark_checkpoint(path: str) -> Dict[str, Any]:
    """A landmark checkpoint read with ``weights_only=True``; another family's is named in one line."""
    ck = load_plain(path)
    require_family(ck, KEY, path)
    if not isinstance(ck, dict) or "model" not in ck:
        raise CheckpointError(f"{path}: not a spine_det landmark checkpoint (no 'model' entry)")
    return ck


def quad_box_mask(quad: np.ndarray, shape: Tuple[int, int]) -> Optional[Tuple[int, int, np.ndarray]]:
    """(y0, x0, bool crop) of a filled quadrilateral (TL, TR, BL, BR; sub-pixel corners) inside an image of
    ``shape``, or None when nothing of it falls inside."""
    h, w = int(shape[0]), int(shape[1])
    poly = np.asarray(quad, dtype=np.float64).reshape(4, 2)[[0, 1, 3, 2]]
    x0, y0 = max(0, int(np.floor(poly[:, 0].min()))), max(0, int(np.floor(poly[:, 1].min())))
    x1, y1 = min(w, int(np.ceil(poly[:, 0].max())) + 1), min(h, int(np.ceil(poly[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    crop = np.zeros((y1 - y0, x1 - x0), np.uint8)
    shift = 4
    pts = np.round((poly - (x0, y0)) * (1 << shift)).astype(np.int32)
    cv2.fillPoly(crop, [pts], 1, lineType=cv2.LINE_8, shift=shift)
    if not crop.any():
        return None
    return y0, x0, crop.astype(bool)


class LandmarkPredictor(SegmentationPredictor):
    """``LandmarkPredictor(cfg, weights)(grey_uint8) -> {task: TaskPrediction}`` with instance masks."""

    family_key = KEY

    def __init__(self, cfg: Any, weights: Optional[str] = None, device: Any = "cpu",
                 model: Optional[torch.nn.Module] = None) -> None:
        self.cfg = cfg
        self.task = landmark_task(cfg)
        self.tasks: List[str] = [self.task]
        self.device = torch.device(device)
        self.threshold = float(cfg.LANDMARK.SCORE_THRESHOLD)
        self.checkpoint_info: Dict[str, Any] = {}
        if model is None:
            cfg_pre = cfg.clone()
            cfg_pre.defrost()
            cfg_pre.MODEL.PRETRAINED = False  # weights come from the checkpoint
            model = build_landmark_net(cfg_pre)
            if weights:
                ck = load_landmark_checkpoint(weights)
                try:
                    model.load_state_dict(ck["model"])
                except RuntimeError as e:
                    raise CheckpointError(f"{weights}: does not fit the config's model ({str(e).splitlines()[0]})") from None
                self.checkpoint_info = {k: ck.get(k) for k in ("epoch", "score", "metric")}
        self.model = model.to(self.device).eval()

    @classmethod
    def from_checkpoint(cls, checkpoint: str, config_file: Optional[str] = None, device: str = "cpu",
                        score_threshold: Optional[float] = None) -> "LandmarkPredictor":
        if config_file:
            cfg = load_landmark_config(config_file)
        else:
            text = load_landmark_checkpoint(checkpoint).get("cfg")
            if not text:
                raise CheckpointError(f"{checkpoint}: no config inside the checkpoint; pass --config-file")
            try:
                cfg = merge_yaml_text(get_landmark_cfg(), text, f"{checkpoint} (its stored config)")
            except ConfigError as e:
                raise CheckpointError(str(e)) from None
        cfg.defrost()
        if score_threshold is not None:
            cfg.LANDMARK.SCORE_THRESHOLD = float(score_threshold)
        cfg.freeze()
        return cls(cfg, weights=checkpoint, device=device)

    @torch.no_grad()
    def raw_maps(self, net_image: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(heatmap probabilities (h, w), regression (10, h, w)) of one letterboxed network image."""
        x = normalize(net_image, self.cfg.MODEL.IN_CHANNELS).unsqueeze(0).to(self.device)
        out = self.model(x)[0].float()
        heat = torch.sigmoid(out[HEATMAP][0]).cpu().numpy()
        reg = torch.cat([out[OFFSET], out[CORNERS]]).cpu().numpy()
        return heat, reg

    def decode_network(self, net_image: np.ndarray) -> List[Tuple[float, np.ndarray]]:
        """(score, quad in network pixels) of one letterboxed network image, best first."""
        heat, reg = self.raw_maps(net_image)
        return decode_maps(heat, reg, self.model.stride, int(self.cfg.LANDMARK.MAX_INSTANCES), self.threshold)

    def predict_quads(self, image: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """((N, 4, 2) corners in film pixels, TL TR BL BR; (N,) scores), best first."""
        cfg = self.cfg
        net, lb = network_image(check_grey_image(image), (cfg.INPUT.HEIGHT, cfg.INPUT.WIDTH), cfg.INPUT.RESIZE,
                                float(cfg.INPUT.CLAHE))
        found = self.decode_network(net)
        if not found:
            return np.zeros((0, 4, 2)), np.zeros((0,))
        return quads_to_film(np.stack([q for _, q in found]), lb), np.array([s for s, _ in found])

    def flop_count_inputs(self, image: np.ndarray) -> Tuple[Any, tuple]:
        x = torch.zeros(1, int(self.cfg.MODEL.IN_CHANNELS), int(self.cfg.INPUT.HEIGHT), int(self.cfg.INPUT.WIDTH),
                        device=self.device)
        return self.model, (x,)

    def predict_masks(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        return {t: p.mask for t, p in self(image).items()}

    def __call__(self, image: np.ndarray) -> Dict[str, TaskPrediction]:
        quads, scores = self.predict_quads(image)
        shape = image.shape[:2]
        crops, instances = [], []
        for q, s in zip(quads, scores):
            c = quad_box_mask(q, shape)
            if c is None:
                continue
            y0, x0, m = c
            crops.append(c)
            instances.append({"score": round(float(s), 4), "bbox": [x0, y0, int(m.shape[1]), int(m.shape[0])],
                              "area": int(m.sum()), "quad": [[round(float(v), 2) for v in p] for p in q]})
        masks = BoxMasks(shape, crops)
        return {self.task: TaskPrediction(mask=masks.union(), instances=instances, instance_masks=masks)}

"""The vertebra-landmark network as a :class:`SegmentationPredictor`: grey film in, up to 17 quadrilaterals
out, each drawn as one instance mask.

The film is letterboxed as in training, the stride-4 maps are decoded (:func:`decode_maps`: 3 x 3 peak
NMS, top-k, score threshold) and the corners mapped back to film pixels. Each instance dict carries its
``quad`` (TL, TR, BL, BR, film pixels) and, from a network with the level channel, its ``level_number`` (C7 = 0,
T1 = 1, ..., L5 = 17; the post-processing's hint), so ``spine-det predict`` writes them into
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
from spine_det.modeling.landmark_targets import HEATMAP, LEVEL, OFFSET, Peak, decode_maps
from spine_det.modeling.registry import require_family
from spine_det.utils.checkpoint_io import load_plain

__all__ = ["LandmarkPredictor", "checkpoint_has_levels", "merge_mirrored_peaks", "unmirror_quad", "quad_box_mask", "load_landmark_checkpoint"]

logger = logging.getLogger(__name__)


def load_landmark_checkpoint(path: str) -> Dict[str, Any]:
    """A landmark checkpoint read with ``weights_only=True``; another family's is named in one line."""
    ck = load_plain(path)
    require_family(ck, KEY, path)
    if not isinstance(ck, dict) or "model" not in ck:
        raise CheckpointError(f"{path}: not a spine_det landmark checkpoint (no 'model' entry)")
    return ck


def checkpoint_has_levels(ck: Dict[str, Any]) -> bool:
    """Whether a landmark checkpoint's head has the level channel (older checkpoints have 11 outputs)."""
    last = ck.get("model", {}).get("head.1.weight")  # LandmarkNet.head[-1], the 1 x 1 output convolution
    return last is not None and int(last.shape[0]) > LEVEL.start


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


def unmirror_quad(quad: np.ndarray, width: int) -> np.ndarray:
    """A quadrilateral found on the mirrored image (``width`` px wide) in the image's own pixels: x -> width - 1 - x,
    and left and right corners swapped back (TL <-> TR, BL <-> BR)."""
    q = np.asarray(quad, dtype=np.float64).reshape(4, 2).copy()
    q[:, 0] = width - 1 - q[:, 0]
    return q[[1, 0, 3, 2]]


def merge_mirrored_peaks(direct: List[Peak], mirrored: List[Peak], max_instances: int, threshold: float) -> List[Peak]:
    """The test-time flip's answer: each vertebra of the direct pass paired with the mirrored pass's nearest one
    (centres closer than half the vertebra's height, best scores first, one-to-one) and averaged (score,
    corners, level number); a vertebra only one pass found keeps half its score, as if the other said 0.
    Then the score threshold and the top ``max_instances`` again."""
    def centre(p: Peak) -> np.ndarray:
        return p.quad.mean(axis=0)

    def height(p: Peak) -> float:
        q = p.quad
        return 0.5 * float(np.linalg.norm(q[2] - q[0]) + np.linalg.norm(q[3] - q[1]))

    free = list(range(len(mirrored)))
    out: List[Peak] = []
    for a in direct:
        best, best_d = None, 0.5 * height(a)
        for j in free:
            d = float(np.linalg.norm(centre(mirrored[j]) - centre(a)))
            if d < best_d:
                best, best_d = j, d
        if best is None:
            out.append(a._replace(score=a.score / 2))
            continue
        free.remove(best)
        b = mirrored[best]
        levels = [v for v in (a.level, b.level) if np.isfinite(v)]
        out.append(Peak((a.score + b.score) / 2, (a.quad + b.quad) / 2, float(np.mean(levels)) if levels else float("nan")))
    out += [mirrored[j]._replace(score=mirrored[j].score / 2) for j in free]
    out = [p for p in out if p.score >= threshold]
    return sorted(out, key=lambda p: -p.score)[: max(0, int(max_instances))]


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
            ck = load_landmark_checkpoint(weights) if weights else None
            model = build_landmark_net(cfg_pre, levels=checkpoint_has_levels(ck) if ck else None)
            if ck is not None:
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
        """(heatmap probabilities (h, w), regression (10 or 11 with levels, h, w)) of one letterboxed network image."""
        x = normalize(net_image, self.cfg.MODEL.IN_CHANNELS).unsqueeze(0).to(self.device)
        out = self.model(x)[0].float()
        heat = torch.sigmoid(out[HEATMAP][0]).cpu().numpy()
        return heat, out[OFFSET.start:].cpu().numpy()  # the regression layout: OFFSET, CORNERS (and LEVEL) in order

    def decode_network(self, net_image: np.ndarray) -> List[Peak]:
        """(score, quad in network pixels, level number) of one letterboxed network image, best first; with
        ``TEST.HFLIP`` the film and its mirror, merged (:func:`merge_mirrored_peaks`)."""
        k = int(self.cfg.LANDMARK.MAX_INSTANCES)
        heat, reg = self.raw_maps(net_image)
        if not bool(self.cfg.TEST.HFLIP):
            return decode_maps(heat, reg, self.model.stride, k, self.threshold)
        # each pass down to half the threshold: a vertebra one pass sees at 0.5 and the other at 0.15 averages 0.33
        direct = decode_maps(heat, reg, self.model.stride, 2 * k, self.threshold / 2)
        heat_m, reg_m = self.raw_maps(np.ascontiguousarray(net_image[:, ::-1]))
        mirrored = [p._replace(quad=unmirror_quad(p.quad, net_image.shape[1]))
                    for p in decode_maps(heat_m, reg_m, self.model.stride, 2 * k, self.threshold / 2)]
        return merge_mirrored_peaks(direct, mirrored, k, self.threshold)

    def predict_quads(self, image: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """((N, 4, 2) corners in film pixels, TL TR BL BR; (N,) scores; (N,) level numbers, NaN without the
        level channel), best first."""
        cfg = self.cfg
        net, lb = network_image(check_grey_image(image), (cfg.INPUT.HEIGHT, cfg.INPUT.WIDTH), cfg.INPUT.RESIZE,
                                float(cfg.INPUT.CLAHE))
        found = self.decode_network(net)
        if not found:
            return np.zeros((0, 4, 2)), np.zeros((0,)), np.zeros((0,))
        return (quads_to_film(np.stack([p.quad for p in found]), lb), np.array([p.score for p in found]),
                np.array([p.level for p in found]))

    def flop_count_inputs(self, image: np.ndarray) -> Tuple[Any, tuple]:
        n = 2 if self.cfg.TEST.HFLIP else 1  # the test-time flip runs the network twice per film
        x = torch.zeros(n, int(self.cfg.MODEL.IN_CHANNELS), int(self.cfg.INPUT.HEIGHT), int(self.cfg.INPUT.WIDTH),
                        device=self.device)
        return self.model, (x,)

    def predict_masks(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        return {t: p.mask for t, p in self(image).items()}

    def __call__(self, image: np.ndarray) -> Dict[str, TaskPrediction]:
        quads, scores, levels = self.predict_quads(image)
        shape = image.shape[:2]
        crops, instances = [], []
        for q, s, lv in zip(quads, scores, levels):
            c = quad_box_mask(q, shape)
            if c is None:
                continue
            y0, x0, m = c
            crops.append(c)
            inst = {"score": round(float(s), 4), "bbox": [x0, y0, int(m.shape[1]), int(m.shape[0])],
                    "area": int(m.sum()), "quad": [[round(float(v), 2) for v in p] for p in q]}
            if np.isfinite(lv):
                inst["level_number"] = round(float(lv), 3)
            instances.append(inst)
        masks = BoxMasks(shape, crops)
        return {self.task: TaskPrediction(mask=masks.union(), instances=instances, instance_masks=masks)}

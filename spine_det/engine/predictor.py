"""Predictors: one grey X-ray in, one binary mask (and instances) per task out.

A common interface so tools/predict.py and the comparison run Mask R-CNN and
LinkNet the same way. A predictor is registered in :data:`PREDICTORS` under a
short name (``@register_predictor("linknet")``) and built with ``from_checkpoint(checkpoint, config_file=None,
device="cpu", score_threshold=None)``; LinkNet registers ``"linknet"`` in
``spine_det/engine/linknet_predictor.py`` (imported lazily by
:func:`build_predictor`).
"""
from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from fvcore.common.registry import Registry

from spine_det.utils.checkpoint_io import CheckpointError  # noqa: F401  (re-exported: one line naming the file)

logger = logging.getLogger(__name__)

PREDICTORS = Registry("PREDICTORS")
PREDICTORS.__doc__ = """Segmentation predictors by name ("maskrcnn", "linknet")."""

# Modules that register predictors, imported on first use of their name.
_LAZY_MODULES = {"linknet": "spine_det.engine.linknet_predictor"}


def register_predictor(name: str):
    """Class decorator: register a predictor under a short name (``"maskrcnn"``, ``"linknet"``)."""

    def deco(cls):
        PREDICTORS._do_register(name, cls)  # fvcore's register() would use the class name
        cls.registry_name = name
        return cls

    return deco


class UnknownPredictorError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class TaskPrediction:
    """The prediction for one task on one image."""

    mask: np.ndarray  # bool (H, W) at the input image's size
    instances: List[Dict[str, Any]] = field(default_factory=list)  # {"score", "bbox" [x, y, w, h], "area"}
    # (N, H, W) bool, one mask per entry of ``instances`` (Mask R-CNN only): touching vertebrae
    # stay apart here, while ``mask`` merges them.
    instance_masks: Optional[np.ndarray] = None

    def label_map(self) -> np.ndarray:
        """uint16 (H, W): 0 background, k = instance k (1-based, ``instances`` order); where
        instances overlap the higher score wins. Without instance masks: connected components."""
        if self.instance_masks is None:
            import cv2

            return cv2.connectedComponents(self.mask.astype(np.uint8), connectivity=8)[1].astype(np.uint16)
        if len(self.instance_masks) >= np.iinfo(np.uint16).max:
            raise ValueError(f"{len(self.instance_masks)} instances do not fit a uint16 label map")
        out = np.zeros(self.mask.shape, np.uint16)
        order = np.argsort([-float(d.get("score", 0.0)) for d in self.instances], kind="stable")
        for k in order[::-1]:  # lowest score first, so the highest is painted last
            out[self.instance_masks[k]] = k + 1
        return out


class SegmentationPredictor:
    """Base class: ``predictor(grey_uint8_hw) -> {task: TaskPrediction}``."""

    tasks: List[str] = []

    def __call__(self, image: np.ndarray) -> Dict[str, TaskPrediction]:
        raise NotImplementedError

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str,
        config_file: Optional[str] = None,
        device: str = "cpu",
        score_threshold: Optional[float] = None,
    ) -> "SegmentationPredictor":
        raise NotImplementedError


def check_grey_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"predictors take a 2-D uint8 grey image, got {image.dtype} {image.shape}")
    return image


def get_predictor_class(name: str):
    """Class registered under ``name``, importing its module on first use."""
    if name not in PREDICTORS and name in _LAZY_MODULES:
        try:
            importlib.import_module(_LAZY_MODULES[name])
        except ModuleNotFoundError as e:
            raise UnknownPredictorError(f"predictor {name!r} is not available ({e})") from None
    if name not in PREDICTORS:
        known = sorted({*(k for k, _ in PREDICTORS), *_LAZY_MODULES})
        raise UnknownPredictorError(f"unknown predictor {name!r}; expected one of {known}")
    return PREDICTORS.get(name)


def build_predictor(name: str, checkpoint: str, **kwargs: Any) -> SegmentationPredictor:
    """``build_predictor("maskrcnn", "output/.../model_best.pth")``; kwargs go to ``from_checkpoint``."""
    if not Path(checkpoint).is_file():
        raise CheckpointError(f"checkpoint not found: {checkpoint}")
    return get_predictor_class(name).from_checkpoint(checkpoint, **kwargs)


# -- Mask R-CNN -------------------------------------------------------------------------


def find_config_for_checkpoint(checkpoint: str | Path) -> Path:
    """``config.yaml`` that default_setup wrote beside the checkpoint (OUTPUT_DIR)."""
    p = Path(checkpoint).resolve().parent / "config.yaml"
    if not p.is_file():
        raise CheckpointError(f"{checkpoint}: no config.yaml beside it; pass --config-file")
    return p


def load_model_weights(model, checkpoint: str | Path, config_name: str = "the config", data: Any = None) -> None:
    """Load a spine_det checkpoint, failing clearly when it does not fit the model.

    Detectron2's checkpointer only warns about shape mismatches (it is made for
    fine-tuning); a trained model evaluated with the wrong config must fail.
    """
    from spine_det.utils.checkpoint_io import load_plain, require_kind

    checkpoint = str(checkpoint)
    if not Path(checkpoint).is_file():
        raise CheckpointError(f"checkpoint not found: {checkpoint}")
    if not checkpoint.endswith(".pth"):  # a model-zoo .pkl (pickle): only the known, downloaded files
        from spine_det.engine.checkpointer import SafeDetectionCheckpointer

        SafeDetectionCheckpointer(model).load(checkpoint)
        return
    if data is None:
        data = load_plain(checkpoint)  # weights_only=True: a planted pickle is refused, never run
    require_kind(data, "maskrcnn", checkpoint)
    state = data.get("model", data) if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{checkpoint}: no model weights inside")
    own = model.state_dict()
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape)
    ]
    missing = [k for k in own if k not in state]
    if mismatched or missing:
        heads = [m for m in mismatched if "predictor" in m]
        detail = (heads or mismatched)[0] if mismatched else f"{len(missing)} weights missing, e.g. {missing[0]}"
        hint = " (NUM_CLASSES / SPINE.TASKS differ?)" if heads else " (another config or profile?)"
        raise CheckpointError(f"{checkpoint} does not match {config_name}{hint}: {detail}")
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)


@register_predictor("maskrcnn")
class MaskRCNNPredictor(SegmentationPredictor):
    """Detectron2 Mask R-CNN as a semantic predictor (instances with score ≥ threshold, pasted)."""

    def __init__(self, cfg, model=None, score_threshold: Optional[float] = None) -> None:
        import spine_det.compat  # noqa: F401
        from detectron2.data import transforms as T
        from detectron2.modeling import build_model

        from spine_det.config import spine_tasks

        self.cfg = cfg
        self.tasks = spine_tasks(cfg)
        if score_threshold is None:  # < 0 in the config: the one tuned on val (OUTPUT_DIR/thresholds.json)
            from spine_det.evaluation.thresholds import score_threshold_for

            score_threshold = score_threshold_for(cfg, self.tasks)
        self.score_threshold = float(score_threshold)
        self.model = model if model is not None else build_model(cfg)
        self.model.eval()
        self.resize = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
        self.input_format = cfg.INPUT.FORMAT

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str,
        config_file: Optional[str] = None,
        device: str = "cpu",
        score_threshold: Optional[float] = None,
        opts: Sequence[str] = (),
    ) -> "MaskRCNNPredictor":
        from spine_det.config import get_spine_cfg

        from spine_det.utils.checkpoint_io import load_plain, require_kind

        if not Path(checkpoint).is_file():
            raise CheckpointError(f"checkpoint not found: {checkpoint}")
        data = None
        if str(checkpoint).endswith(".pth"):  # read first: a LinkNet/classifier file gets its own message
            data = load_plain(checkpoint)
            require_kind(data, "maskrcnn", checkpoint)
        config_file = str(config_file or find_config_for_checkpoint(checkpoint))
        cfg = get_spine_cfg(config_file, opts=["MODEL.DEVICE", device, "MODEL.WEIGHTS", str(checkpoint), *opts])
        if cfg.SPINE.EVAL.SCORE_THRESHOLD < 0:  # tuned thresholds are saved beside the checkpoint
            cfg.OUTPUT_DIR = str(Path(checkpoint).resolve().parent)
        cfg.freeze()
        pred = cls(cfg, score_threshold=score_threshold)
        load_model_weights(pred.model, checkpoint, config_name=config_file, data=data)
        from spine_det.evaluation.thresholds import with_tuned_mask_threshold

        pred.model = with_tuned_mask_threshold(cfg, pred.model)  # as the evaluator does (no-op unless tuned)
        return pred

    def predict_instances(self, image: np.ndarray):
        """Detectron2 ``Instances`` (CPU) at the image's size."""
        import torch

        from spine_det.data.mapper import grey_to_model_format

        grey = check_grey_image(image)
        h, w = grey.shape
        x = self.resize.get_transform(grey).apply_image(grey)
        x = grey_to_model_format(x, self.input_format)
        tensor = torch.as_tensor(np.ascontiguousarray(x.transpose(2, 0, 1)))
        with torch.no_grad():
            out = self.model([{"image": tensor, "height": h, "width": w}])[0]
        return out["instances"].to("cpu")

    def __call__(self, image: np.ndarray) -> Dict[str, TaskPrediction]:
        from spine_det.evaluation.metrics import paste_instances

        inst = self.predict_instances(image)
        shape = image.shape[:2]
        result: Dict[str, TaskPrediction] = {}
        for c, task in enumerate(self.tasks):
            sel = (inst.pred_classes == c) & (inst.scores >= self.score_threshold)
            sub = inst[sel]
            if len(sub):
                mask = paste_instances(sub.pred_masks, sub.scores, self.score_threshold, shape)
            else:
                mask = np.zeros(shape, dtype=bool)
            inst_masks = sub.pred_masks.bool().numpy() if len(sub) else np.zeros((0, *shape), dtype=bool)
            boxes = sub.pred_boxes.tensor.numpy() if len(sub) else np.zeros((0, 4))
            areas = sub.pred_masks.flatten(1).sum(1).tolist() if len(sub) else []
            instances = [
                {
                    "score": round(float(s), 5),
                    "bbox": [round(float(b[0]), 2), round(float(b[1]), 2), round(float(b[2] - b[0]), 2), round(float(b[3] - b[1]), 2)],
                    "area": int(a),
                }
                for s, b, a in zip(sub.scores.tolist() if len(sub) else [], boxes, areas)
            ]
            result[task] = TaskPrediction(mask=mask, instances=instances, instance_masks=inst_masks)
        return result

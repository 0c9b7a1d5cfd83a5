"""Predictors: one grey X-ray in, one binary mask (and instances) per task out.

A common interface so ``spine_det.tools.predict`` and the benchmark run every model family the same
way. Each family's :class:`~spine_det.modeling.registry.ModelSpec` names its predictor class (a
:class:`SegmentationPredictor` built with ``from_checkpoint(checkpoint, config_file=None, device="cpu",
score_threshold=None)``); :func:`build_predictor` looks the family up in the registry, which imports
the class on first use. This module names no family's predictor module, so nothing imports back here
in a circle.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from spine_det.config import get_spine_cfg, spine_tasks
from spine_det.modeling.registry import UnknownModelError as UnknownPredictorError  # noqa: F401  (old name)
from spine_det.modeling.registry import get_family, require_family
from spine_det.utils.checkpoint_io import CheckpointError  # noqa: F401  (re-exported: one line naming the file)
from spine_det.utils.checkpoint_io import load_plain

logger = logging.getLogger(__name__)


class BoxMasks:
    """N instance masks of an (H, W) image, each stored as the crop of its box.

    Behaves as the (N, H, W) bool array it stands for (``len``, ``[k]`` gives one full mask,
    ``np.asarray`` stacks them), but holds only the boxes' pixels: 100 vertebrae of an
    8000 x 8000 radiograph are ~50 MB instead of 6.4 GB.
    """

    def __init__(self, shape: Sequence[int], crops: Sequence[tuple]) -> None:
        self.image_shape = (int(shape[0]), int(shape[1]))
        self.crops = list(crops)  # (y0, x0, bool (h, w))

    def __len__(self) -> int:
        return len(self.crops)

    @property
    def shape(self) -> tuple:
        return (len(self.crops), *self.image_shape)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for _, _, c in self.crops)

    def paint(self, out: np.ndarray, k: int, value: Any) -> None:
        """``out[mask k] = value`` without building the full mask."""
        y0, x0, c = self.crops[k]
        out[y0:y0 + c.shape[0], x0:x0 + c.shape[1]][c] = value

    def area(self, k: int) -> int:
        return int(np.count_nonzero(self.crops[k][2]))

    def union(self) -> np.ndarray:
        out = np.zeros(self.image_shape, bool)
        for k in range(len(self)):
            self.paint(out, k, True)
        return out

    def __getitem__(self, k: int) -> np.ndarray:
        out = np.zeros(self.image_shape, bool)
        self.paint(out, k, True)
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        a = np.stack([self[k] for k in range(len(self))]) if len(self) else np.zeros(self.shape, bool)
        return a if dtype is None else a.astype(dtype)


@dataclass
class TaskPrediction:
    """The prediction for one task on one image."""

    mask: np.ndarray  # bool (H, W) at the input image's size
    instances: List[Dict[str, Any]] = field(default_factory=list)  # {"score", "bbox" [x, y, w, h], "area"}
    # (N, H, W) bool, one mask per entry of ``instances`` (Mask R-CNN only; a :class:`BoxMasks`
    # from the predictor): touching vertebrae stay apart here, while ``mask`` merges them.
    instance_masks: Optional[Any] = None
    # Semantic models: which components left ``instances`` as specks, and by what rule (the JSON's
    # "component_filter"; spine_det.evaluation.component_filter). None: nothing was filtered.
    component_filter: Optional[Dict[str, Any]] = None

    def label_map(self) -> np.ndarray:
        """uint16 (H, W): 0 background, k = instance k (1-based, ``instances`` order); where
        instances overlap the higher score wins. Without instance masks: connected components."""
        if self.instance_masks is None:
            import cv2  # lazy: start-up (cv2; this module stays light)

            return cv2.connectedComponents(self.mask.astype(np.uint8), connectivity=8)[1].astype(np.uint16)
        if len(self.instance_masks) >= np.iinfo(np.uint16).max:
            raise ValueError(f"{len(self.instance_masks)} instances do not fit a uint16 label map")
        out = np.zeros(self.mask.shape, np.uint16)
        order = np.argsort([-float(d.get("score", 0.0)) for d in self.instances], kind="stable")
        for k in order[::-1]:  # lowest score first, so the highest is painted last
            if isinstance(self.instance_masks, BoxMasks):
                self.instance_masks.paint(out, int(k), k + 1)
            else:
                out[self.instance_masks[k]] = k + 1
        return out


class SegmentationPredictor:
    """Base class: ``predictor(grey_uint8_hw) -> {task: TaskPrediction}``."""

    tasks: List[str] = []
    family_key: Optional[str] = None  # the registry key (set by the family's spec when it resolves the class)

    def __call__(self, image: np.ndarray) -> Dict[str, TaskPrediction]:
        raise NotImplementedError

    def flop_count_inputs(self, image: np.ndarray) -> Optional[Tuple[Any, tuple]]:
        """``(module, inputs)``: one forward pass of the network on ``image`` as this predictor feeds it,
        in a form fvcore's FLOP counter can trace (the benchmark's GFLOPs column); None: cannot say."""
        return None

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
    """The predictor class of the model family ``name`` (imported on first use)."""
    return get_family(name).predictor_class()


def build_predictor(name: str, checkpoint: str, **kwargs: Any) -> SegmentationPredictor:
    """``build_predictor(<family key>, "output/.../model_best.pth")``; kwargs go to ``from_checkpoint``
    (``config_file``, ``device``, ``score_threshold``). The keys are those of
    :mod:`spine_det.modeling.registry` (``spine_det.modeling.registry.family_keys()``)."""
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
    checkpoint = str(checkpoint)
    if not Path(checkpoint).is_file():
        raise CheckpointError(f"checkpoint not found: {checkpoint}")
    if not checkpoint.endswith(".pth"):  # a model-zoo .pkl (pickle): only the known, downloaded files
        # lazy: start-up (torch/Detectron2; this module stays light)
        from spine_det.engine.checkpointer import SafeDetectionCheckpointer

        SafeDetectionCheckpointer(model).load(checkpoint)
        return
    if data is None:
        data = load_plain(checkpoint)  # weights_only=True: a planted pickle is refused, never run
    require_family(data, MaskRCNNPredictor.family_key, checkpoint)
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


class MaskRCNNPredictor(SegmentationPredictor):
    """Detectron2 Mask R-CNN as a semantic predictor (instances with score ≥ threshold, pasted)."""

    from spine_det.modeling.families.maskrcnn import KEY as family_key

    def __init__(self, cfg, model=None, score_threshold: Optional[float] = None) -> None:
        import spine_det.compat  # noqa: F401  (shims before detectron2; lazy: start-up, this module stays light)
        from detectron2.data import transforms as T
        from detectron2.modeling import build_model

        self.cfg = cfg
        self.tasks = spine_tasks(cfg)
        if score_threshold is None:  # < 0 in the config: the one tuned on val (thresholds.json beside the checkpoint)
            from spine_det.evaluation.thresholds import score_threshold_for  # lazy: loads Detectron2 (start-up)

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
        if not Path(checkpoint).is_file():
            raise CheckpointError(f"checkpoint not found: {checkpoint}")
        data = None
        if str(checkpoint).endswith(".pth"):  # read first: a LinkNet/classifier file gets its own message
            data = load_plain(checkpoint)
            require_family(data, MaskRCNNPredictor.family_key, checkpoint)
        config_file = str(config_file or find_config_for_checkpoint(checkpoint))
        cfg = get_spine_cfg(config_file, opts=["MODEL.DEVICE", device, "MODEL.WEIGHTS", str(checkpoint), *opts])
        if cfg.SPINE.EVAL.SCORE_THRESHOLD < 0:  # tuned thresholds are saved beside the checkpoint
            cfg.SPINE.EVAL.THRESHOLDS_DIR = str(Path(checkpoint).resolve().parent)
        cfg.freeze()
        pred = cls(cfg, score_threshold=score_threshold)
        load_model_weights(pred.model, checkpoint, config_name=config_file, data=data)

        from spine_det.evaluation.thresholds import with_tuned_mask_threshold  # lazy: loads Detectron2 (start-up)

        pred.model = with_tuned_mask_threshold(cfg, pred.model)  # as the evaluator does (no-op unless tuned)
        return pred

    def _network_input(self, image: np.ndarray):
        """The image as the network sees it: resized to INPUT.MIN/MAX_SIZE_TEST, (C, H, W) in INPUT.FORMAT."""
        from spine_det.data.mapper import grey_to_model_tensor

        return grey_to_model_tensor(self.resize.get_transform(image).apply_image(image), self.input_format)

    def _model_input(self, grey: np.ndarray) -> dict:
        """One input dict of the model for a grey film; with the spine strip on it carries the film for the
        second pass."""
        import torch  # lazy: start-up (torch/Detectron2; this module stays light)

        x = {"image": self._network_input(grey), "height": grey.shape[0], "width": grey.shape[1]}
        if self.cfg.SPINE.INPUT.STRIP.ENABLED:
            x["film"] = torch.as_tensor(np.ascontiguousarray(grey))
        return x

    def flop_count_inputs(self, image: np.ndarray) -> Tuple[Any, tuple]:
        """Mask R-CNN's inference as a module from an image tensor to tensors, so fvcore's tracer can run
        it (Detectron2's own ``FlopCountAnalysis`` goes through ``detectron2.export``, which imports
        caffe2 in v0.6)."""
        import torch  # lazy: start-up (torch/Detectron2; this module stays light)

        class _Inference(torch.nn.Module):
            def __init__(self, m: Any) -> None:
                super().__init__()
                self.m = m

            def forward(self, image: torch.Tensor):
                inst = self.m.inference([{"image": image}], do_postprocess=False)[0]
                out = [inst.pred_boxes.tensor, inst.scores]
                if inst.has("pred_masks"):
                    out.append(inst.pred_masks)
                return tuple(out)

        return _Inference(self.model).eval(), (self._network_input(check_grey_image(image)),)

    def predict_instances(self, image: np.ndarray):
        """Detectron2 ``Instances`` (CPU) at the image's size."""
        import torch  # lazy: start-up (torch/Detectron2; this module stays light)

        grey = check_grey_image(image)
        with torch.no_grad():
            out = self.model([self._model_input(grey)])[0]
        return out["instances"].to("cpu")

    def predict_raw(self, image: np.ndarray):
        """Detectron2 ``Instances`` (CPU) with boxes at the image's size but masks still the mask
        head's M x M probabilities (``pred_masks`` (N, 1, M, M)): what :func:`detector_postprocess`
        does, except pasting every mask at full size at once."""
        import torch  # lazy: start-up (torch/Detectron2; this module stays light)

        grey = check_grey_image(image)
        h, w = grey.shape
        base = getattr(self.model, "model", self.model)  # the tuned-mask-threshold wrapper holds the model
        with torch.no_grad():
            raw = base.inference([self._model_input(grey)], do_postprocess=False)[0].to("cpu")
        from detectron2.structures import Instances  # lazy: start-up (torch/Detectron2; this module stays light)

        boxes = raw.pred_boxes.clone()
        boxes.scale(w / raw.image_size[1], h / raw.image_size[0])
        boxes.clip((h, w))
        out = Instances((h, w), **{k: v for k, v in raw.get_fields().items() if k != "pred_boxes"})
        out.pred_boxes = boxes
        return out[boxes.nonempty()]

    def _paste_one(self, probs, box, shape) -> tuple:
        """(y0, x0, bool crop) of one M x M mask pasted into its box (as Detectron2 pastes on CPU)."""
        from detectron2.layers.mask_ops import _do_paste_mask  # lazy: start-up (torch/Detectron2; this module stays light)

        m, (sy, sx) = _do_paste_mask(probs[None, None], box[None], shape[0], shape[1], skip_empty=True)
        thr = float(getattr(self.model, "mask_threshold", 0.5))
        return int(sy.start), int(sx.start), (m[0] >= thr).numpy()

    def __call__(self, image: np.ndarray) -> Dict[str, TaskPrediction]:
        inst = self.predict_raw(image)
        shape = image.shape[:2]
        result: Dict[str, TaskPrediction] = {}
        for c, task in enumerate(self.tasks):
            sel = (inst.pred_classes == c) & (inst.scores >= self.score_threshold)
            sub = inst[sel]
            boxes_t = sub.pred_boxes.tensor
            # one instance at a time: never (N, H, W) full-size masks in memory
            inst_masks = BoxMasks(shape, [self._paste_one(sub.pred_masks[k, 0], boxes_t[k], shape) for k in range(len(sub))])
            mask = inst_masks.union()
            boxes = boxes_t.numpy() if len(sub) else np.zeros((0, 4))
            areas = [inst_masks.area(k) for k in range(len(sub))]
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

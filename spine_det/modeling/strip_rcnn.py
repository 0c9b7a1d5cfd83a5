"""``SpineStripRCNN``: Mask R-CNN that looks at the film twice, the second time at the spine strip.

Pass 1 is the ordinary whole-film inference at ``INPUT.MIN/MAX_SIZE_TEST``. Its boxes scoring at least
``SPINE.INPUT.STRIP.SCORE_THRESHOLD`` give the strip's columns (:func:`spine_det.data.spine_strip.strip_columns`,
every row kept); pass 2 runs the same network on that strip resized to a long side of
``SPINE.INPUT.STRIP.LONG_SIDE_TEST`` and its detections, mapped back to the film's pixels, are the answer.
Without a pass-1 box the whole film is pass 2's strip. Training is Detectron2's (the mapper feeds whole
films and strips, :class:`spine_det.data.mapper.SpineDatasetMapper`); the weights are GeneralizedRCNN's,
so any Mask R-CNN checkpoint of the package loads.

Inputs carry the film itself (``"film"``: (H, W) uint8, added by the mapper and the predictor when the
strip is on). Outputs are in the film's frame with the mask head's M x M masks (``do_postprocess=False``)
or pasted at ``height`` x ``width`` as usual: the evaluator, ``predict`` and the Cobb route see one film.
Registered in Detectron2's ``META_ARCH_REGISTRY`` on import.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np
import torch

import spine_det.compat  # noqa: F401  (shims before detectron2)
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.structures import Boxes, Instances

from spine_det.data.mapper import grey_to_model_tensor
from spine_det.data.spine_strip import ResizeLongSide, strip_boxes_to_film, strip_columns

__all__ = ["SpineStripRCNN"]


@META_ARCH_REGISTRY.register()
class SpineStripRCNN(GeneralizedRCNN):
    """GeneralizedRCNN with a second inference pass on the spine strip (see the module docstring)."""

    @configurable
    def __init__(self, *, strip_margin: float, strip_long_side: int, strip_score: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.strip_margin = float(strip_margin)
        self.strip_resize = ResizeLongSide([int(strip_long_side)], is_train=False)
        self.strip_score = float(strip_score)

    @classmethod
    def from_config(cls, cfg) -> Dict:
        ret = super().from_config(cfg)
        strip = cfg.SPINE.INPUT.STRIP
        ret.update(strip_margin=strip.MARGIN, strip_long_side=strip.LONG_SIDE_TEST, strip_score=strip.SCORE_THRESHOLD)
        return ret

    def inference(self, batched_inputs: List[Dict], detected_instances=None, do_postprocess: bool = True):
        if detected_instances is not None or not all("film" in x for x in batched_inputs):
            return super().inference(batched_inputs, detected_instances, do_postprocess)
        results = [self.strip_inference(x) for x in batched_inputs]
        if do_postprocess:
            return GeneralizedRCNN._postprocess(results, batched_inputs, [r.image_size for r in results])
        return results

    def strip_columns_for(self, x: Dict) -> tuple:
        """Pass 1: ``(x0, x1)`` of the strip in the film's columns (the whole width without a box)."""
        film_h, film_w = x["film"].shape[-2:]
        coarse = super().inference([{"image": x["image"]}], do_postprocess=False)[0]
        in_h, in_w = coarse.image_size
        boxes = coarse.pred_boxes.tensor[coarse.scores >= self.strip_score].detach().cpu().numpy().astype(np.float64)
        boxes *= np.array([film_w / in_w, film_h / in_h, film_w / in_w, film_h / in_h])
        return strip_columns(boxes, (film_h, film_w), self.strip_margin) or (0, int(film_w))

    def strip_inference(self, x: Dict) -> Instances:
        """Both passes for one input: Instances in the film's frame with M x M masks."""
        film = x["film"]
        film = film.cpu().numpy() if isinstance(film, torch.Tensor) else np.asarray(film)
        film_h, film_w = film.shape[-2:]
        x0, x1 = self.strip_columns_for(x)
        strip = np.ascontiguousarray(film[:, x0:x1])
        resized = self.strip_resize.get_transform(strip).apply_image(strip)
        fine = super().inference([{"image": grey_to_model_tensor(resized, self.input_format)}], do_postprocess=False)[0]
        fine_h, fine_w = fine.image_size
        boxes = strip_boxes_to_film(fine.pred_boxes.tensor.detach().cpu().numpy(), x0, (fine_w / (x1 - x0), fine_h / film_h))
        out = Instances((int(film_h), int(film_w)))
        out.pred_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32, device=fine.pred_boxes.tensor.device))
        out.pred_boxes.clip(out.image_size)
        for name, value in fine.get_fields().items():
            if name != "pred_boxes":
                out.set(name, value)
        return out

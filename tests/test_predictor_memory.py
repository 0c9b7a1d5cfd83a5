"""Mask R-CNN prediction pastes one instance at a time: same masks as Detectron2's postprocess,
without its (N, H, W) full-size array."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_box_cropped_pasting_matches_detectron2_and_stays_small(tmp_path):
    import spine_det.compat  # noqa: F401  (shims before detectron2)
    from detectron2.modeling import build_model

    from spine_det.config import get_spine_cfg
    from spine_det.engine.predictor import BoxMasks, MaskRCNNPredictor
    from spine_det.evaluation.metrics import paste_instances

    torch.manual_seed(0)
    cfg = get_spine_cfg(CONFIGS / "lat_vertebra.yaml", profile="cpu",
                        opts=["MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0", "MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu",
                              "INPUT.MIN_SIZE_TEST", "160", "INPUT.MAX_SIZE_TEST", "224"])  # small net input: fast
    cfg.freeze()
    pred = MaskRCNNPredictor(cfg, model=build_model(cfg), score_threshold=0.0)
    rng = np.random.default_rng(0)
    image = (rng.random((900, 700)) * 255).astype(np.uint8)
    image[200:700, 250:450] = 230  # something box-like to detect
    new = pred(image)["lat_vertebra"]
    full = pred.predict_instances(image)  # Detectron2's own postprocess: (N, H, W) at once
    n = len(full)
    assert n >= 10 and len(new.instances) == n
    assert isinstance(new.instance_masks, BoxMasks) and new.instance_masks.shape == (n, 900, 700)
    assert np.array_equal(np.asarray(new.instance_masks), full.pred_masks.numpy())
    assert np.array_equal(new.mask, paste_instances(full.pred_masks, full.scores, 0.0, (900, 700)))
    assert [d["area"] for d in new.instances] == full.pred_masks.flatten(1).sum(1).tolist()
    # what it holds: the boxes' pixels, not N full-size masks
    assert new.instance_masks.nbytes < n * 900 * 700 / 4
    # the label map from crops equals the one from full masks
    from spine_det.engine.predictor import TaskPrediction

    dense = TaskPrediction(mask=new.mask, instances=new.instances, instance_masks=full.pred_masks.numpy())
    assert np.array_equal(new.label_map(), dense.label_map())

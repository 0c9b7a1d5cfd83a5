"""Dev: mean ap_vertebra Dice of one checkpoint on a root's Test/ films over its post-processing settings,
from one prediction per film: Mask R-CNN over paste score x mask thresholds, LinkNet over probability
thresholds, with and without the test-time flip.

    python dev/sweep_real_ap.py CHECKPOINT ROOT      # ROOT/Test/<film>/AP/{AP.jpg,Ap_Vertebra.png}, or a phantom root

Use it on a selection root (dev/selection_root.py: real training films), not on the test films.
"""
import argparse
from pathlib import Path

import numpy as np

from spine_det.data.io import read_image, read_mask
from spine_det.engine.predictor import build_predictor
from spine_det.evaluation.metrics import binary_scores
from spine_det.modeling.registry import checkpoint_family
from spine_det.utils.checkpoint_io import load_plain

SCORES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
MASKS = (0.4, 0.5, 0.6)
PROBS = (0.3, 0.4, 0.5, 0.6, 0.7)

ap = argparse.ArgumentParser()
ap.add_argument("checkpoint")
ap.add_argument("root", type=Path)
a = ap.parse_args()
family = checkpoint_family(load_plain(a.checkpoint))
films = sorted(p.parent for p in [*(a.root / "Test").glob("*/AP/AP.jpg"), *(a.root / "Test").glob("*/*/AP/AP.jpg")])
dice = {}
if family == "maskrcnn":
    import spine_det.compat  # noqa: F401  (before any detectron2 import)
    from detectron2.layers.mask_ops import _do_paste_mask

    pred = build_predictor(family, a.checkpoint, score_threshold=0.0)
else:
    pred = build_predictor(family, a.checkpoint)
    pred.cfg.defrost()
for d in films:
    img = read_image(d / "AP.jpg")
    gt = read_mask(d / "Ap_Vertebra.png", shape=img.shape)
    h, w = img.shape
    if family == "maskrcnn":
        inst = pred.predict_raw(img)
        pasted = [(float(inst.scores[k]), *_do_paste_mask(inst.pred_masks[k, 0][None, None], inst.pred_boxes.tensor[k][None], h, w,
                                                          skip_empty=True)) for k in range(len(inst))]
        for s in SCORES:
            for m in MASKS:
                out = np.zeros((h, w), bool)
                for score, probs, (sy, sx) in pasted:
                    if score >= s:
                        out[sy, sx] |= probs[0].numpy() >= m
                dice.setdefault(f"score {s} mask {m}", []).append(binary_scores(out, gt)["dice"])
    else:
        for flip in (False, True):
            pred.cfg.TEST.HFLIP = flip
            p = pred.predict_probs(img)[0]
            for t in PROBS:
                dice.setdefault(f"flip {flip} prob {t}", []).append(binary_scores(p >= t, gt)["dice"])
print(f"{a.checkpoint} on {len(films)} films of {a.root}")
for k, v in dice.items():
    print(f"  {k}: Dice {np.mean(v):.4f}")

"""Dev: the Dice a perfect network could reach at a given input size - each real mask letterboxed to the
network (as training targets are), pasted back at 0.5 and scored against itself.

    python dev/resolution_ceiling.py REAL_ROOT [--split Test] [--size 256 192] [--size 640 224]
"""
import argparse
from pathlib import Path

import numpy as np

from spine_det.data.io import read_mask
from spine_det.data.seg_dataset import Letterbox, letterbox_mask, unletterbox
from spine_det.evaluation.metrics import binary_scores

ap = argparse.ArgumentParser()
ap.add_argument("root", type=Path)
ap.add_argument("--split", default="Test")
ap.add_argument("--size", type=int, nargs=2, action="append")
a = ap.parse_args()
files = sorted((a.root / a.split).glob("*/AP/Ap_Vertebra.png"))
for hw in a.size or [[256, 192]]:
    d = []
    for f in files:
        g = read_mask(f)
        lb = Letterbox.fit(g.shape, hw)
        back = unletterbox(letterbox_mask(g, lb).astype(np.float32), lb) >= 0.5
        d.append(binary_scores(back, g)["dice"])
    print(f"input {hw[0]}x{hw[1]}: ceiling mean Dice {np.mean(d):.3f} over {len(d)} masks")

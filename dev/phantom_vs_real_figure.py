"""Dev: the README figure - new phantom AP radiographs beside real AP films, all at the same height.

    python dev/phantom_vs_real_figure.py REAL_DIR OUT.png [--n 4] [--height 360] [--seed 0]

REAL_DIR: a folder of real AP films (*.jpg). Only a small downscaled montage is written; real films
that are research-use only must not be committed at full size or as derived data.
"""
import argparse
import glob
from pathlib import Path

import cv2
import numpy as np

from spine_det.data.phantom import generate_patient

ap = argparse.ArgumentParser()
ap.add_argument("real_dir", type=Path)
ap.add_argument("out", type=Path)
ap.add_argument("--n", type=int, default=4)
ap.add_argument("--height", type=int, default=360)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
H = a.height


def tile(g):
    return cv2.resize(g, (max(int(round(g.shape[1] * H / g.shape[0])), 1), H), interpolation=cv2.INTER_AREA)


def label(t, text):
    t = t.copy()
    cv2.putText(t, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 255, 3, cv2.LINE_AA)
    cv2.putText(t, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 0, 1, cv2.LINE_AA)
    return t


ph, i = [], 0
while len(ph) < a.n:  # full-spine fields, like the real films
    p = generate_patient(i, a.seed, 1024, "Normal")
    i += 1
    if p.gt["ap_field"] == "full":
        ph.append(label(tile(p.grey("ap")), "phantom"))
rng = np.random.default_rng(a.seed)
files = sorted(glob.glob(str(a.real_dir / "*.jpg")))
real = [label(tile(cv2.imread(f, cv2.IMREAD_GRAYSCALE)), "real") for f in rng.choice(files, a.n, replace=False)]
gap = np.full((H, 6), 255, np.uint8)
row = []
for t in ph + [np.full((H, 14), 255, np.uint8)] + real:
    row += [t, gap]
img = np.concatenate(row[:-1], 1)
ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
a.out.parent.mkdir(parents=True, exist_ok=True)
a.out.write_bytes(buf.tobytes())
print(a.out, img.shape, len(buf) // 1024, "KB")

"""Dev: phantom LAT films beside real lateral films, all at the same height (issue 33 item 4).

    python dev/lat_phantom_vs_real_figure.py REAL_DIR OUT.png [--n 4] [--height 360] [--seed 0] [--field lumbar]

REAL_DIR: a folder of real lateral films (any image format the package reads). Phantom films are generated
here (seed, 1024 px) from the first patients whose LAT field is ``--field`` (``any``: no filter), so the
picture follows whatever renderer the checkout has. Only a small downscaled montage is written; real films
that are research-use only must not be committed at full size or as derived data.
"""
import argparse
from pathlib import Path

import cv2
import numpy as np

from spine_det.data.io import IMAGE_SUFFIXES, read_image
from spine_det.data.phantom import film_kind, generate_patient

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("real_dir", type=Path)
ap.add_argument("out", type=Path)
ap.add_argument("--n", type=int, default=4)
ap.add_argument("--height", type=int, default=360)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--field", default="any", help="phantom LAT film kind to show (full, thoracolumbar, lumbar, ...; any)")
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
while len(ph) < a.n and i < 200:
    p = generate_patient(i, a.seed, 1024, "Normal" if i % 2 == 0 else "Damaged")
    i += 1
    if a.field in ("any", film_kind(p.gt, "lat")):
        ph.append(label(tile(p.images["lat"][..., 0]), f"phantom {film_kind(p.gt, 'lat')}"))
files = sorted(f for f in a.real_dir.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
pick = np.random.default_rng(a.seed).choice(len(files), min(a.n, len(files)), replace=False)
real = [label(tile(read_image(files[k])), "real") for k in sorted(pick)]
gap = np.full((H, 6), 255, np.uint8)
row = []
for t in ph + [np.full((H, 14), 255, np.uint8)] + real:
    row += [t, gap]
img = np.concatenate(row[:-1], 1)
ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 9])
a.out.parent.mkdir(parents=True, exist_ok=True)
a.out.write_bytes(buf.tobytes())
print(a.out, img.shape, len(buf) // 1024, "KB")

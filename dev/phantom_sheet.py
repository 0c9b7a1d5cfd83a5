"""Dev: a sheet of phantom radiographs of one view, raw and with that view's masks outlined, for eyeballing.

    python dev/phantom_sheet.py --view ap --n 8 --out phantom_sheet.png
    python dev/phantom_sheet.py --view lat --per-field 2 --out results/phantom/lat_fields.png

``--per-field K`` picks the first K patients (seed 0) of each field of view (full, thoracolumbar, lumbar;
for LAT also the lumbar flexion and extension films) instead of the first ``--n``.
"""
import argparse
import time

import cv2
import numpy as np

from spine_det.data.phantom import FILM_KINDS, film_kind, generate_patient
from spine_det.data.phantom.preview import COLOURS
from spine_det.tasks import tasks_of_view

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--view", choices=("ap", "lat"), default="ap")
ap.add_argument("--n", type=int, default=8, help="patients (without --per-field)")
ap.add_argument("--per-field", type=int, default=0,
                help="patients per kind of film (field of view; for LAT also flexion, extension), in FILM_KINDS order")
ap.add_argument("--size", type=int, default=512, help="image height the phantom is made at")
ap.add_argument("--height", type=int, default=600, help="tile height in the sheet")
ap.add_argument("--out", default="phantom_sheet.png")
args = ap.parse_args()

t0, made, picked = time.perf_counter(), 0, []
kinds = FILM_KINDS[args.view]
want = {f: args.per_field for f in kinds} if args.per_field else None

while (want and any(want.values())) or (not want and len(picked) < args.n):
    p = generate_patient(made, 0, args.size, "Normal" if made % 2 == 0 else "Damaged")
    made += 1
    fld = film_kind(p.gt, args.view)
    if want is None or want[fld] > 0:
        picked.append(p)
        if want:
            want[fld] -= 1
if want:
    picked.sort(key=lambda p: kinds.index(film_kind(p.gt, args.view)))
tiles = []
for p in picked:
    img = p.images[args.view][..., 0]
    ov = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    for task in tasks_of_view(args.view):
        cs, _ = cv2.findContours((p.masks[task.name] > 0).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(ov, cs, -1, COLOURS[task.name], 1)
    for t in (cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), ov):
        tiles.append(cv2.resize(t, (int(t.shape[1] * args.height / t.shape[0]), args.height), interpolation=cv2.INTER_AREA))
    levels = [lv["name"] for lv in p.gt[args.view + "_levels"]]
    print(p.patient_id, film_kind(p.gt, args.view), img.shape, f"{levels[0]}-{levels[-1]} ({len(levels)})",
          [c["cobb_deg"] for c in p.gt["scoliosis"]])
print(f"{made / (time.perf_counter() - t0):.2f} patients/s at {args.size} (both views, all masks)")
cv2.imwrite(args.out, np.concatenate(tiles, 1), [cv2.IMWRITE_JPEG_QUALITY, 85])  # the quality is for .jpg

"""Dev: a sheet of phantom AP (and LAT) radiographs with the AP vertebra masks outlined, for eyeballing."""
import sys
import time

import cv2
import numpy as np

from spine_det.data.phantom import generate_patient

n = int(sys.argv[1]) if len(sys.argv) > 1 else 8
size = int(sys.argv[2]) if len(sys.argv) > 2 else 512
out = sys.argv[3] if len(sys.argv) > 3 else "phantom_sheet.png"
H = 600
tiles, t0 = [], time.perf_counter()
for i in range(n):
    p = generate_patient(i, 0, size, "Normal" if i % 2 == 0 else "Damaged")
    img = p.images["ap"][..., 0]
    ov = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    cs, _ = cv2.findContours((p.masks["ap_vertebra"] > 0).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(ov, cs, -1, (0, 200, 0), 1)
    for t in ([cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), ov] if i < 4 else [cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)]):
        tiles.append(cv2.resize(t, (int(t.shape[1] * H / t.shape[0]), H), interpolation=cv2.INTER_AREA))
    print(i, p.gt["ap_field"], img.shape, len(p.gt["ap_levels"]), [c["cobb_deg"] for c in p.gt["scoliosis"]])
print(f"{n / (time.perf_counter() - t0):.2f} patients/s at {size}")
cv2.imwrite(out, np.concatenate(tiles, 1))

"""Dev: turn rough four-corner vertebral-body annotations of real lateral films into a scorable data root.

    python dev/lat_quads_to_root.py FILMS_DIR QUADS_DIR OUT_ROOT [--split Test]

QUADS_DIR holds ``<film stem>.json``: a list of bodies, each four [x, y] corners in film pixels. For every
film with a quads file this writes ``OUT_ROOT/<split>/<film stem>/LAT/LAT.png`` (the film, grey) and
``Lat_Vertebra.png`` (the filled quadrilaterals), the package's unlabelled-patient layout, so that
``dev/score_real_lat.py`` and the package's scan read it (the scan wants one Training/ patient, so the
first film is also written there; a transfer score reads Test/ only). Real films and masks stay out of the
repository.
"""
import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from spine_det.data.io import read_image

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("films", type=Path)
ap.add_argument("quads", type=Path)
ap.add_argument("out", type=Path)
ap.add_argument("--split", default="Test")
a = ap.parse_args()
for i, q in enumerate(sorted(a.quads.glob("*.json"))):
    film = next(f for f in a.films.iterdir() if f.stem == q.stem)
    g = read_image(film)
    m = np.zeros(g.shape, np.uint8)
    bodies = json.loads(q.read_text())
    for b in bodies:
        cv2.fillPoly(m, [np.round(np.array(b, float)).astype(np.int32)], 255)
    for split in (a.split, "Training") if i == 0 and a.split != "Training" else (a.split,):
        d = a.out / split / q.stem / "LAT"
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / "LAT.png"), g)
        cv2.imwrite(str(d / "Lat_Vertebra.png"), m)
    print(q.stem, g.shape, len(bodies), "bodies")

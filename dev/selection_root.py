"""Dev: a data root whose Test/ holds N seeded real *training* films (symlinks), so that
``spine-det benchmark --transfer-root OUT`` scores phantom-trained models on films that no model trains
on, while the real test films stay unseen until a choice is made.

    python dev/selection_root.py REAL_ROOT OUT [--n 128] [--seed 0]

REAL_ROOT is the imported AASCE root (Training/<film>/AP/...). OUT gets Test/ (the N films) and Training/
(20 more: the reader wants a training split). Nothing is written inside REAL_ROOT.
"""
import argparse
import os
import random
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("real_root", type=Path)
ap.add_argument("out", type=Path)
ap.add_argument("--n", type=int, default=128)
ap.add_argument("--seed", type=int, default=0)
a = ap.parse_args()
films = sorted(p.name for p in (a.real_root / "Training").iterdir() if (p / "AP").is_dir())
random.Random(a.seed).shuffle(films)
if a.out.resolve().is_relative_to(a.real_root.resolve()):
    raise SystemExit("OUT must lie outside REAL_ROOT")
for folder, names in (("Test", films[: a.n]), ("Training", films[a.n: a.n + 20])):
    (a.out / folder).mkdir(parents=True, exist_ok=True)
    for name in names:
        link = a.out / folder / name
        if not link.exists():
            os.symlink((a.real_root / "Training" / name).resolve(), link)
print(f"{a.out}: Test/ {min(a.n, len(films))} and Training/ {len(films[a.n: a.n + 20])} of {len(films)} training films (seed {a.seed})")

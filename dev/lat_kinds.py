"""Dev: mean test Dice of phantom LAT units per kind of film (full spine, thoracolumbar, lumbar, flexion, extension).

    python dev/lat_kinds.py DATA_ROOT RUN_DIR [RUN_DIR ...]

DATA_ROOT is the phantom the units were scored on; each RUN_DIR is a unit's folder (it holds
``inference/<dataset>/semantic_per_image.csv``, written by the semantic evaluator). The kind comes from each
patient's ``ground_truth.json`` (``lat_posture`` when the film is bent, else ``lat_field``).
"""
import argparse
import collections
import csv
import json
from pathlib import Path

from spine_det.data.phantom import FILM_KINDS, film_kind

KINDS = FILM_KINDS["lat"]

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("data_root", type=Path)
ap.add_argument("runs", type=Path, nargs="+")
args = ap.parse_args()

print("| unit | all | " + " | ".join(KINDS) + " |")
print("|---|---|" + "---|" * len(KINDS))
for run in args.runs:
    found = sorted(run.glob("inference/*_test/semantic_per_image.csv"))
    if not found:
        raise SystemExit(f"{run}: no inference/*_test/semantic_per_image.csv")
    by = collections.defaultdict(list)
    with open(found[0], newline="") as f:
        for row in csv.DictReader(f):
            patient = row.get("patient_id") or row["image_id"].rsplit("/", 1)[0]  # LinkNet's csv / Mask R-CNN's
            gt = json.loads((args.data_root / patient / "ground_truth.json").read_text(encoding="utf-8"))
            by[film_kind(gt, "lat")].append(float(row["dice"]))
    every = [d for v in by.values() for d in v]
    cells = [f"{sum(by[k]) / len(by[k]):.3f} ({len(by[k])})" if by[k] else "–" for k in KINDS]
    print(f"| {'/'.join(run.resolve().parts[-4:])} | {sum(every) / len(every):.3f} ({len(every)}) | " + " | ".join(cells) + " |")

"""Validation Dice per evaluation of Mask R-CNN runs side by side (e.g. random vs phantom init on real films).

    python dev/init_curves.py --task ap_vertebra --out curves.png \
        --run "phantom init, seed 0=output/aasce_ph/runs/maskrcnn/ap_vertebra" \
        --points "random init, seed 0=250:0.00,500:0.02,750:0.60,1000:0.70"

``--run LABEL=FOLDER`` reads ``<task>/dice`` from the run's Detectron2 ``metrics.json``; ``--points
LABEL=IT:DICE,...`` draws figures recorded elsewhere (a committed table) as dashed lines.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List, Optional, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def run_curve(folder: Path, task: str) -> List[Tuple[int, float]]:
    key = f"{task}/dice"
    pts = {}
    for line in (folder / "metrics.json").read_text().splitlines():
        d = json.loads(line)
        if key in d:
            pts[int(d["iteration"]) + (1 if int(d["iteration"]) % 10 == 9 else 0)] = float(d[key])
    return sorted(pts.items())


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="ap_vertebra")
    ap.add_argument("--run", action="append", default=[], help="LABEL=run folder with metrics.json")
    ap.add_argument("--points", action="append", default=[], help="LABEL=IT:DICE,IT:DICE,...")
    ap.add_argument("--title", default="Mask R-CNN on 48 real validation films (AASCE), cpu profile")
    ap.add_argument("--out", required=True, type=Path)
    a = ap.parse_args(argv)
    fig, axis = plt.subplots(figsize=(7, 4))
    for spec in a.run:
        label, folder = spec.split("=", 1)
        its, dice = zip(*run_curve(Path(folder), a.task))
        axis.plot(its, dice, "o-", label=label)
    for spec in a.points:
        label, pts = spec.split("=", 1)
        its, dice = zip(*[(int(p.split(":")[0]), float(p.split(":")[1])) for p in pts.split(",")])
        axis.plot(its, dice, "s--", label=label)
    axis.set_xlabel("iteration")
    axis.set_ylabel("validation Dice")
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.set_title(a.title, fontsize=10)
    axis.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=110)
    print(f"-> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

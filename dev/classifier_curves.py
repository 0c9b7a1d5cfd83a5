"""Training curves of classifier runs side by side: loss and validation AUC per epoch, one line per run.

    python dev/classifier_curves.py --view lat --out curves.png "30 epochs, seed 0=RUN_A" "100 epochs, seed 0=RUN_B"

Each RUN is a ``tools/train_classifier.py`` OUTPUT_DIR (reads ``metrics_<view>.jsonl``); the best epoch
(the checkpoint kept) is marked. Shows whether a run stopped before its model started to learn.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def read_curve(run: Path, view: str) -> list:
    """Per-epoch loss and validation figures: ``metrics_<view>.jsonl`` of the epoch loop, or the epoch-end lines of
    ``<view>/metrics.json`` (Detectron2's loop, since issue 31)."""
    path = run / f"metrics_{view}.jsonl"
    if path.is_file():
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    path = run / view / "metrics.json"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (is {run} a train_classifier OUTPUT_DIR that trained {view}?)")
    recs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    best = run / view / "model_best.json"
    best_iter = json.loads(best.read_text())["iteration"] if best.is_file() else None
    return [{"epoch": r["epoch"], "loss": r.get("total_loss"), "val_accuracy": r[f"{view}/accuracy"],
             "val_auc": r[f"{view}/roc_auc"], "improved": r["iteration"] == best_iter}
            for r in recs if f"{view}/accuracy" in r]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="LABEL=OUTPUT_DIR")
    ap.add_argument("--view", default="lat", choices=("ap", "lat"))
    ap.add_argument("--out", required=True, help="picture to write (.png / .jpg)")
    ap.add_argument("--title", default="")
    args = ap.parse_args()

    fig, (ax_loss, ax_auc) = plt.subplots(1, 2, figsize=(11, 3.8))
    for spec in args.runs:
        label, _, run = spec.rpartition("=")
        rows = read_curve(Path(run), args.view)
        ep = [r["epoch"] for r in rows]
        (line,) = ax_loss.plot(ep, [r["loss"] for r in rows], lw=1.2, label=label or run)
        ax_auc.plot(ep, [r["val_auc"] for r in rows], lw=1.2, color=line.get_color(), label=label or run)
        kept = [r for r in rows if r.get("improved")]  # the trainer's own choice (its metric and ties)
        best = kept[-1] if kept else max(rows, key=lambda r: r["val_auc"])
        ax_auc.plot([best["epoch"]], [best["val_auc"]], "o", color=line.get_color(), ms=5)
    ax_loss.set(xlabel="epoch", ylabel="training loss (BCE, label smoothing)", title="training loss")
    ax_auc.set(xlabel="epoch", ylabel="validation ROC-AUC", title="validation AUC (dot: epoch kept)", ylim=(0.3, 1.02))
    ax_auc.axhline(0.5, color="grey", lw=0.6, ls=":")
    ax_auc.legend(fontsize=8, loc="lower right")
    if args.title:
        fig.suptitle(args.title, fontsize=10)
    fig.tight_layout()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    fig.savefig(tmp, dpi=110)
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()

"""Dev: label efficiency of LinkNet on real films, from random init vs from a phantom-trained checkpoint.

    python dev/label_efficiency.py --data-root REAL_ROOT --phantom-checkpoint PHANTOM.pth --out OUT \
        [--sizes 25,50,100,0] [--epochs 4] [--epoch-images 433] [-- KEY VALUE ...]

For every training-set size n (0 = the whole training split) and both starts, one
``tools/train_linknet.py`` run on ``configs/linknet/ap_vertebra.yaml --profile cpu`` with
``DATALOADER.TRAIN_SUBSET n`` (nested seeded subsets: the 25 images are among the 50), the same schedule
for every row (``SOLVER.EPOCH_IMAGES`` images per epoch, ``--epochs`` epochs; smaller sets are
repeated), the best checkpoint on the unchanged validation split, and the package's own test-split
evaluation. Resumable: a finished run (its test metrics exist) is skipped, an interrupted one resumes.
Writes OUT/label_efficiency.{csv,md,png} after every run.
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

TASK = "ap_vertebra"


def run_dir(out: Path, n: int, start: str, seed: int = 0) -> Path:
    return out / (f"n{n or 'all'}-{start}" + (f"-seed{seed}" if seed else ""))


def test_metrics(d: Path) -> dict | None:
    p = d / "inference" / f"spine_{TASK}_test" / "semantic_metrics.json"
    return json.loads(p.read_text()) if p.is_file() else None


def train(args, n: int, start: str) -> None:
    d = run_dir(args.out, n, start, args.seed)
    if test_metrics(d):
        return
    opts = ["DATALOADER.TRAIN_SUBSET", str(n), "SOLVER.EPOCH_IMAGES", str(args.epoch_images),
            "SOLVER.MAX_EPOCHS", str(args.epochs), "SEED", str(args.seed), "OUTPUT_DIR", str(d)] + list(args.opts)
    if start == "phantom":
        opts += ["MODEL.INIT_WEIGHTS", str(args.phantom_checkpoint)]
    cmd = [sys.executable, "-m", "spine_det.tools.train_linknet", "--config-file", f"linknet/{TASK}.yaml",
           "--profile", "cpu", "--data-root", str(args.data_root), "--resume"] + opts
    d.mkdir(parents=True, exist_ok=True)
    print(f"[label-efficiency] n={n or 'all'} start={start} seed={args.seed}: {' '.join(cmd)}", flush=True)
    with open(d.parent / f"{d.name}.log", "a") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)


def validation_dice(d: Path) -> list:
    """The validation Dice of each epoch of a run: ``metrics.jsonl`` of the epoch loop, or ``metrics.json`` of
    Detectron2's loop (LinkNet since issue 31)."""
    if (d / "metrics.jsonl").is_file():
        return [json.loads(x)["val_dice"] for x in (d / "metrics.jsonl").read_text().splitlines() if x.strip()]
    recs = [json.loads(x) for x in (d / "metrics.json").read_text().splitlines() if x.strip()]
    return [r[f"{TASK}/dice"] for r in recs if f"{TASK}/dice" in r]


def collect(args) -> list:
    """One row per finished run (every seed found in OUT)."""
    rows = []
    for n in args.sizes:
        for start in ("random", "phantom"):
            for d in sorted(args.out.glob(run_dir(args.out, n, start).name + "*")):
                m = test_metrics(d) if d.is_dir() else None
                if not m:
                    continue
                seed = int(d.name.rsplit("-seed", 1)[1]) if "-seed" in d.name else 0
                val = validation_dice(d)
                rows.append({"n_train": n or "all", "start": start, "seed": seed, "test_dice": round(m["dice"], 4),
                             "test_jaccard": round(m["jaccard"], 4), "test_tpr": round(m["tpr"], 4),
                             "test_images": m["counts"]["images"], "best_val_dice": round(max(val), 4),
                             "epochs": len(val), "commit": m.get("commit", "")})
    return rows


def summarise(rows: list) -> list:
    """Mean and sample SD of test Dice per (size, start) over seeds (the benchmark's seed_statistics)."""
    from spine_det.benchmark.tables import seed_statistics

    out = []
    for key in dict.fromkeys((r["n_train"], r["start"]) for r in rows):
        per_seed = {r["seed"]: {"dice": r["test_dice"], "jaccard": r["test_jaccard"], "tpr": r["test_tpr"]}
                    for r in rows if (r["n_train"], r["start"]) == key}
        st = seed_statistics(per_seed)
        out.append({"n_train": key[0], "start": key[1], "seeds": st["n"], "mean": st["mean"]["dice"], "sd": st["sd"]["dice"]})
    return out


def write(args, rows: list) -> None:
    out = args.out
    with open(out / "label_efficiency.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = ["| real training images | start | seed | test Dice | Jaccard | TPR | best val Dice | epochs |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['n_train']} | {r['start']} | {r['seed']} | {r['test_dice']:.3f} | {r['test_jaccard']:.3f} | "
              f"{r['test_tpr']:.3f} | {r['best_val_dice']:.3f} | {r['epochs']} |" for r in rows]
    summary = summarise(rows)
    lines += ["", "| real training images | start | seeds | test Dice mean ± sd |", "|---|---|---|---|"]
    lines += [f"| {s['n_train']} | {s['start']} | {s['seeds']} | {s['mean']:.3f} ± {'–' if s['sd'] is None else format(s['sd'], '.3f')} |" for s in summary]
    (out / "label_efficiency.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=120)
    for start, style in (("random", "o--"), ("phantom", "s-")):
        pts = sorted((args.full_n if r["n_train"] == "all" else r["n_train"], r["mean"], r["sd"], r["seeds"])
                     for r in summary if r["start"] == start)
        if pts:
            xs, ys, sds, ns = zip(*pts)
            label = {"random": "random init", "phantom": "phantom pre-trained"}[start] + f" ({max(ns)} seed{'s' * (max(ns) > 1)})"
            ax.errorbar(xs, ys, yerr=[sd or 0 for sd in sds], fmt=style, capsize=3, label=label)
    ax.set_xscale("log")
    ticks = sorted({args.full_n if r["n_train"] == "all" else r["n_train"] for r in summary})
    ax.set_xticks(ticks, [f"{t} (all)" if t == args.full_n else str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("real training films")
    ax.set_ylabel("test Dice (128 real films)")
    ax.set_title("LinkNet ap_vertebra, AASCE 2019 test split", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "label_efficiency.png")
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, required=True)
    ap.add_argument("--phantom-checkpoint", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sizes", default="25,50,100,0", help="training-set sizes; 0 = the whole training split")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0, help="training seed; also draws the nested subsets")
    ap.add_argument("--epoch-images", type=int, default=433, help="images per epoch for every size (default: the full split)")
    ap.add_argument("--full-n", type=int, default=433, help="where 'all' sits on the plot's x axis")
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="extra KEY VALUE config overrides for every run")
    args = ap.parse_args()
    args.sizes = [int(x) for x in args.sizes.split(",")]
    args.opts = [o for o in args.opts if o != "--"]
    args.out.mkdir(parents=True, exist_ok=True)
    for n in args.sizes:
        for start in ("random", "phantom"):
            train(args, n, start)
            rows = collect(args)
            if rows:
                write(args, rows)
    print((args.out / "label_efficiency.md").read_text())


if __name__ == "__main__":
    main()

"""Every registered model family vs an Otsu baseline on the same test images, with the report's figures beside them.

  spine-det benchmark --data-root output/demo/data --out output/demo/results \\
      --tasks lat_vertebra,ap_spinous_process
  spine-det benchmark --profile full --data-root DATA --out output/bench --tasks all

--profile auto (the default) runs every model's cpu profile when no CUDA device is found (or with
--device cpu) and the full profiles on a GPU; the log and results.md say which.

Trains (or reuses finished checkpoints of) one model per registered family
(spine_det.modeling.registry: LinkNet, Mask R-CNN, ...) and task, each a logged,
resumable subprocess of the family's training tool (spine-det train-net, ...; logs stream to
<out>/logs/<unit>.log), scores all with the same metric code, runs the
classifier, and writes results.md / .csv / .json and <out>/figures/. Re-running
skips finished units; --force retrains; --skip-<model> leaves a family out.

--transfer-root scores every trained model on the test split of a second data set as well, in a
table of its own (e.g. trained on the phantom, scored zero-shot on real radiographs):

  spine-det benchmark --data-root output/demo/data --out output/zero_shot --tasks ap_vertebra \
      --transfer-root datasets/aasce --skip-classifier
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional

from spine_det.benchmark import pipeline
from spine_det.benchmark.runner import UnitError, run_logged
from spine_det.benchmark.tables import seg_models
from spine_det.config.profiles import add_profile_argument, resolve_profile
from spine_det.modeling.registry import families, family_keys
from spine_det.tasks import parse_tasks
from spine_det.utils.cli import as_user_error, positive_int, reports_user_errors
from spine_det.utils.errors import UserError
from spine_det.utils.logs import setup_logging
from spine_det.utils.paths import prepare_output

logger = logging.getLogger("spine_det.benchmark")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    specs = families()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="models: " + "; ".join(f"{s.key} = {s.description or s.label}" for s in specs))
    add_profile_argument(p, choices=("auto", "cpu", "full"),
                         help_text="profile passed to every tool: auto (default) = cpu when no CUDA device is found "
                                   "(or --device cpu), else full; the log and results.md say which")
    p.add_argument("--data-root", required=True, help="dataset folder (Training/{Normal,Damaged}/..., optional Test/)")
    p.add_argument("--out", required=True, type=Path, help="output folder (results, records/, runs/, logs/, figures/)")
    p.add_argument("--tasks", default="all", help="comma-separated task names, a view (ap, lat) or all (default)")
    p.add_argument("--seed", type=int, default=0, help="training seed of every model (default 0)")
    p.add_argument("--seeds", default=None, metavar="S1,S2,...",
                   help="train every model's unit once per seed (e.g. 0,1,2) and report mean ± sd "
                        "over them; seed 0 keeps the single-seed folders, others get <task>-seed<k>")
    p.add_argument("--split-seed", type=int, default=0, help="patient split seed (default 0); same for every model")
    p.add_argument("--transfer-root", default=None, metavar="DIR",
                   help="a second dataset folder: every trained model is also scored on its test split "
                        "(nothing of it is trained or tuned on), in a table of its own")
    p.add_argument("--device", default=None, help="cpu / cuda for every tool (default: each profile's choice)")
    p.add_argument("--models", default=None, metavar="KEY,KEY",
                   help="model families to run, by key, or 'all' (default: "
                        + ",".join(s.key for s in specs if s.benchmark.default) + "; the others, e.g. "
                        + ",".join(s.key for s in specs if not s.benchmark.default)[:80] + ", run only when named)")
    for s in specs:
        p.add_argument(f"--skip-{s.key.replace('_', '-')}", dest=f"skip_{s.key}", action="store_true",
                       help=f"do not run {s.label}")
    p.add_argument("--skip-classifier", action="store_true")
    p.add_argument("--force", action="store_true", help="retrain every unit even if finished")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first failed unit (default: go on)")
    p.add_argument("--verbose", action="store_true", help="echo the tools' output to the terminal as well")
    p.add_argument("--make-phantom", type=positive_int, metavar="N", default=None,
                   help="if --data-root does not exist and lies under --out, first generate N phantom patients there")
    p.add_argument("--phantom-size", type=positive_int, default=512, help="image height of --make-phantom (default 512)")
    p.add_argument("--cost-images", type=positive_int, default=8, help="test images timed per model (default 8)")
    p.add_argument("--figure-images", type=positive_int, default=4, help="test images per overlay figure (default 4)")
    family_dests = []
    for s in specs:  # each family's own options (e.g. --maskrcnn-init)
        group = p.add_argument_group(f"{s.label} options")
        before = len(group._group_actions)
        s.benchmark.add_args(group)
        family_dests += [a.dest for a in group._group_actions[before:]]
    for key in [s.key for s in specs] + ["classifier"]:
        p.add_argument(f"--{key.replace('_', '-')}-opts", dest=f"{key}_opts", nargs="*", default=[], metavar="KEY VALUE",
                       help=f"config overrides passed to the {key} tool")
    args = p.parse_args(argv)
    args.family_args = {d: getattr(args, d) for d in family_dests}
    return args


def _under(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


@reports_user_errors
def main(argv: Optional[List[str]] = None) -> int:
    setup_logging()
    args = parse_args(argv)
    with as_user_error(KeyError):
        tasks = parse_tasks(args.tasks)
    data = Path(args.data_root)
    if not data.exists():
        if not (args.make_phantom and _under(data, args.out)):
            hint = (" (add --make-phantom N to generate phantom data there)" if _under(data, args.out)
                    else "; give an existing dataset folder")
            raise UserError(f"data root not found: {data}{hint}")
        cmd = [sys.executable, "-m", "spine_det.tools.make_phantom", "--out", str(data),
               "--patients", str(args.make_phantom), "--seed", str(args.split_seed), "--size", str(args.phantom_size)]
        logger.info("generating %d phantom patients in %s", args.make_phantom, data)
        res = run_logged(cmd, args.out / "logs" / "make_phantom.log", label="make_phantom")
        if res.returncode != 0:
            print(f"error: phantom generation failed; see {args.out / 'logs' / 'make_phantom.log'}", file=sys.stderr)
            return 1
    prepare_output(args.out, data)  # never inside the data root (the data may lie under --out); writable
    transfer = None
    if args.transfer_root:
        transfer = Path(args.transfer_root)
        if not transfer.is_dir():
            raise UserError(f"--transfer-root not found: {transfer}")
        if transfer.resolve() == data.resolve():
            raise UserError("--transfer-root is --data-root; give a second dataset")
        prepare_output(args.out, transfer)  # nothing is written inside that data root either
    seeds = [args.seed]
    if args.seeds:
        try:
            seeds = list(dict.fromkeys(int(s) for s in args.seeds.split(",") if s.strip()))
        except ValueError:
            raise UserError(f"--seeds takes comma-separated integers, got {args.seeds!r}") from None
        if not seeds or any(s < 0 for s in seeds):
            raise UserError(f"--seeds takes non-negative integers, got {args.seeds!r}")
    keys = family_keys()
    models = None
    if args.models:
        models = keys if args.models.strip() == "all" else [k.strip().replace("-", "_") for k in args.models.split(",") if k.strip()]
        unknown = [k for k in models if k not in keys]
        if unknown:
            raise UserError(f"--models: unknown model family {', '.join(unknown)}; registered: {', '.join(keys)}")
    opts = pipeline.BenchmarkOptions(
        data_root=str(data), out=args.out, tasks=tasks, profile=resolve_profile(args.profile, device=args.device),
        seed=seeds[0], seeds=seeds,
        split_seed=args.split_seed, device=args.device,
        skip_models=[k for k in keys if getattr(args, f"skip_{k}", False)], models=models,
        skip_classifier=args.skip_classifier, force=args.force, fail_fast=args.fail_fast, echo=args.verbose,
        cost_images=args.cost_images, figure_images=args.figure_images,
        model_opts={k: list(getattr(args, f"{k}_opts", [])) for k in keys},
        family_args=args.family_args, classifier_opts=args.classifier_opts,
        transfer_root=None if transfer is None else str(transfer),
    )
    try:
        out = pipeline.Benchmark(opts).run()
    except UnitError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    res = out["results"]
    print("\n" + summary_text(res, out["paths"]["md"]))
    return 1 if any(u["status"] == "FAILED" for u in res["units"]) else 0


def _dice_cells(row, models) -> str:
    """One table row's Dice per model: mean ± sd over seeds, the single run's, or –."""
    cells = []
    for m in models:
        s, st = (row.get("models") or {}).get(m), (row.get("seeds") or {}).get(m)
        if st and st.get("n", 0) > 1:
            cells.append(f"{st['mean']['dice']:.4f} ± {st['sd']['dice']:.4f}".rjust(18))
        else:
            cells.append(f"{s['dice']:18.4f}" if s and s.get("dice") is not None else f"{'–':>18s}")
    return f"{row['task']:22s} " + " ".join(cells)


def summary_text(res, md_path) -> str:
    models = seg_models(res)
    lines = ["== benchmark summary ==", f"data: {res['header']['data_summary']}",
             f"profile {res['header']['profile']}, seed(s) {', '.join(map(str, res['header'].get('seeds') or [res['header']['seed']]))}, "
             f"commit {res['header']['git_commit']}", ""]
    lines.append(f"{'task':22s} " + " ".join(f"{label + ' Dice':>18s}" for label in models.values()))
    lines += [_dice_cells(r, models) for r in res["segmentation"]]
    transfer = res.get("transfer")
    if transfer:
        lines.append(f"scored on {transfer['data']} (test split; trained on the data above):")
        lines += [_dice_cells(r, models) for r in transfer.get("rows", [])]
    lines.append("")
    for u in res["units"]:
        w = u.get("wall_s")
        lines.append(f"  {u['unit']:32s} {u['status']:12s} {'' if w is None else f'{w:7.1f} s'}")
    lines.append(f"\ntotal {res.get('total_wall_s', 0):.1f} s; results: {md_path}  (figures in {Path(md_path).parent / 'figures'})")
    return "\n".join(lines)


def invoke_main() -> None:
    """The console entry point: run :func:`main` on ``sys.argv`` and exit with its code."""
    sys.exit(main())


if __name__ == "__main__":
    invoke_main()

"""results.md / results.csv / results.json: our numbers beside the report's, with a header saying what ran.

The report's figures sit in their own columns, every one of them labelled
:data:`~spine_det.benchmark.reported.REPORTED_LABEL`; in the CSV their
``source`` says the same. Nothing of ours is ever written under that label.

The rows come from the benchmark's result records (:mod:`.records`). Each table's metrics are named
once, for the Markdown and the CSV alike: :data:`SEG_METRICS` (a segmentation cell, mean ± sd over
seeds), :data:`COST_COLUMNS` and :data:`CLS_METRICS`; a new column is one entry there.
"""
from __future__ import annotations

import csv
import io
import math
import os
import platform
import time
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

from spine_det.benchmark.curves import LATE_GAIN_TOLERANCE
from spine_det.benchmark.reported import REPORTED_CITATION, REPORTED_LABEL
from spine_det.modeling.registry import families
from spine_det.utils.fileio import atomic_write_json, atomic_write_text
from spine_det.utils.provenance import git_commit
from spine_det.version import __version__

OURS = "this run"
OTSU = "otsu"  # the benchmark's untrained reference column (spine_det.benchmark.baselines), not a model family
FIXED_NAMES = {OTSU: "Otsu threshold", "classifier": "Normal/Damaged classifier"}
CLS_METRICS = ("accuracy", "sensitivity", "specificity", "auc")


# --------------------------------------------------------------------------- models


def model_names() -> Dict[str, str]:
    """Display name of every model key: Otsu, the registered families' labels, the classifier."""
    return {OTSU: FIXED_NAMES[OTSU], **{s.key: s.label for s in families()}, "classifier": FIXED_NAMES["classifier"]}


def seg_models(results: Mapping[str, Any]) -> Dict[str, str]:
    """The segmentation table's model columns of ``results`` (key -> label), Otsu first: the families
    the run recorded in its header, else those present in its rows."""
    names = model_names()
    recorded = results.get("header", {}).get("models")
    if recorded:
        return {OTSU: names[OTSU], **dict(recorded)}
    keys: List[str] = []
    for r in results.get("segmentation", []):
        keys += [k for k in r.get("models", {}) if k not in keys]
    keys = [OTSU] + [k for k in keys if k != OTSU]
    return {k: names.get(k, k) for k in keys}


# --------------------------------------------------------------------------- header


def versions() -> Dict[str, str]:
    """Versions of what the numbers depend on (package metadata: nothing heavy is imported)."""
    out = {"python": platform.python_version()}
    for mod, dists in (("spine_det", ["spine_det", "spine-det"]), ("torch", ["torch"]), ("torchvision", ["torchvision"]),
                       ("detectron2", ["detectron2", "pb1-detectron2"]), ("numpy", ["numpy"]),
                       ("segmentation_models_pytorch", ["segmentation-models-pytorch", "segmentation_models_pytorch"]),
                       ("fvcore", ["fvcore"])):
        v = None
        for d in dists:
            try:
                v = metadata.version(d)
                break
            except metadata.PackageNotFoundError:
                continue
        if v is None:
            v = "installed (no metadata)" if util.find_spec(mod) is not None else "not installed"
        out[mod] = v
    return out


def device_description(device: str = "cpu") -> str:
    import torch  # lazy: start-up (torch/Detectron2; this module stays light)

    if str(device).startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}), {torch.cuda.device_count()} GPU(s)"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"CPU: {cpu}, {cores} core(s) available, torch threads {torch.get_num_threads()}"


def make_header(data_root: str, manifest: Any, tasks: Sequence[str], seed: int, split_seed: int, profile: str,
                device: str = "cpu", test_images: Optional[Mapping[str, int]] = None,
                seeds: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """Everything a reader needs to know what the numbers are of."""
    split_patients = {s: len(manifest.patients(split=s)) for s in ("train", "val", "test")}
    return {
        "seeds": list(seeds or [seed]),
        "data": str(data_root),
        "data_summary": manifest.summary(),
        "split_patients": split_patients,
        "test_images": dict(test_images or {t: len(manifest.select(split="test", task=t)) for t in tasks}),
        "tasks": list(tasks),
        "seed": seed,
        "split_seed": split_seed,
        "profile": profile,
        "git_commit": git_commit(),
        "spine_det_version": __version__,
        "versions": versions(),
        "device": device_description(device),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


# --------------------------------------------------------------------------- formatting


def _f(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


# A segmentation cell's metrics (ScoreTable summary keys), in order: "Dice / Jaccard / TPR"; over several
# seeds the first gets mean ± sd, the others their mean.
SEG_METRICS = ("dice", "jaccard", "tpr")
SEG_METRIC_NAMES = {"dice": "Dice", "jaccard": "Jaccard", "tpr": "TPR"}


def _metric_names() -> str:
    return " / ".join(SEG_METRIC_NAMES.get(m, m) for m in SEG_METRICS)


def _triple(s: Optional[Mapping[str, Any]]) -> str:
    if not s:
        return "–"
    return " / ".join(_f(s.get(m)) for m in SEG_METRICS)


def seed_statistics(per_seed: Mapping[int, Optional[Mapping[str, Any]]]) -> Dict[str, Any]:
    """Mean and sample standard deviation (n - 1) over training seeds of each test-split metric.

    Seeds without a result are listed in ``missing`` and left out of the statistics."""
    done = {int(k): v for k, v in per_seed.items() if v and v.get(SEG_METRICS[0]) is not None}
    out: Dict[str, Any] = {"seeds": sorted(done), "missing": sorted(int(k) for k in per_seed if int(k) not in done),
                           "n": len(done), "values": {}, "mean": {}, "sd": {}}
    for m in SEG_METRICS:
        vals = [float(done[k][m]) for k in sorted(done) if done[k].get(m) is not None]
        out["values"][m] = vals
        out["mean"][m] = sum(vals) / len(vals) if vals else None
        out["sd"][m] = (math.sqrt(sum((v - out["mean"][m]) ** 2 for v in vals) / (len(vals) - 1))
                        if len(vals) > 1 else None)
    return out


def _seeded_triple(single: Optional[Mapping[str, Any]], stats: Optional[Mapping[str, Any]]) -> str:
    """``mean ± sd`` of Dice (then mean Jaccard / TPR) over seeds, or the single run's triple."""
    if not stats or not stats.get("n"):
        return _triple(single)
    mean, sd = stats["mean"], stats["sd"]
    head, *rest = SEG_METRICS
    first = _f(mean.get(head)) + (f" ± {sd[head]:.4f}" if sd.get(head) is not None else "")
    miss = f", {len(stats['missing'])} missing" if stats.get("missing") else ""
    return " / ".join([first, *(_f(mean.get(m)) for m in rest)]) + f" (n={stats['n']}{miss})"


RISING_MARK = " ↗"


def still_rising(gains: Optional[Mapping[Any, Optional[float]]]) -> List[Any]:
    """The seeds whose validation Dice still rose by more than the tolerance late in training (:func:`late_gain`)."""
    return [k for k, g in (gains or {}).items() if g is not None and g > LATE_GAIN_TOLERANCE]


def _dur(s: Optional[float]) -> str:
    if s is None:
        return "–"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


@dataclass(frozen=True)
class Column:
    """One column of a table: its Markdown heading, the key of its value (the CSV's ``metric``) and the
    Markdown cell made from a row."""

    head: str
    key: str
    cell: Callable[[Mapping[str, Any]], str]


def _number(key: str, digits: int = 4) -> Callable[[Mapping[str, Any]], str]:
    return lambda row: _f(row.get(key), digits)


# The cost table after its model and task columns (a family's values come from its first seed's record;
# the classifier and morphometry have the training ones).
COST_COLUMNS = (
    Column("training wall time", "train_wall_s", lambda c: _dur(c.get("train_wall_s"))),
    Column("training CPU time", "train_cpu_s", lambda c: _dur(c.get("train_cpu_s"))),
    Column("s/iter", "s_per_iter", lambda c: _f(c.get("s_per_iter"), 3) + (" ¹" if c.get("s_per_iter_note") else "")),
    Column("iterations", "iterations", _number("iterations")),
    Column("inference images/s", "images_per_s", _number("images_per_s", 2)),
    Column("parameters", "parameters",
           lambda c: "–" if c.get("parameters") is None else f"{c['parameters'] / 1e6:.2f} M"),
    Column("GFLOPs (fvcore, 1 image)", "gflops", _number("gflops", 1)),
    Column("training peak memory (MB)", "train_peak_memory_mb", _number("train_peak_memory_mb", 0)),
    Column("inference peak memory (MB)", "inference_peak_memory_mb", _number("inference_peak_memory_mb", 0)),
)


def _md_table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- writers


def render_markdown(results: Mapping[str, Any]) -> str:
    h = results["header"]
    models = seg_models(results)
    trained = {k: v for k, v in models.items() if k != OTSU}
    out: List[str] = [f"# spine_det benchmark: {' vs '.join(trained.values()) or 'Otsu'} on the same test images", ""]
    sp = h["split_patients"]
    out.append(_md_table(["", ""], [
        ["data", f"`{h['data']}` — {h['data_summary']}"],
        ["split (patients)", f"train {sp['train']} / val {sp['val']} / test {sp['test']} (split seed {h['split_seed']})"],
        ["test images per task", ", ".join(f"{t} {n}" for t, n in h["test_images"].items())],
        ["seed", h["seed"] if len(h.get("seeds") or [h["seed"]]) == 1
         else f"{', '.join(map(str, h['seeds']))} (training seeds; {' / '.join(trained.values())} cells: mean ± sd over them)"],
        ["profile", h["profile"]],
        *([k, v] for k, v in (h.get("notes") or {}).items()),
        ["git commit", h["git_commit"]],
        ["versions", ", ".join(f"{k} {v}" for k, v in h["versions"].items())],
        ["device", h["device"]],
        ["date", h["date"]],
    ]))
    out += ["", "## Segmentation (test split)", "",
            f"{_metric_names()}, mean over test images, all from the same metric code "
            "(`spine_det.evaluation.metrics.ScoreTable`). " + results.get("convention", ""), ""]
    rep = {(r["model"], r["task"]): r for r in results.get("reported", [])}
    with_reported = [k for k in trained if any(m == k for m, _ in rep)]
    head = ["task", "test images", f"{models[OTSU]} (trivial baseline)", *trained.values(),
            *(f"{trained[k]} — {REPORTED_LABEL}" for k in with_reported)]
    rows = []
    for r in results["segmentation"]:
        m = r["models"]
        n = r.get("test_images")
        flag = "" if r.get("same_images", True) else " ⚠ image sets differ"
        st = r.get("seeds") or {}
        rising = {k: still_rising((r.get("late_gain") or {}).get(k)) for k in trained}
        rows.append([r["task"], f"{n}{flag}", _triple(m.get(OTSU)),
                     *(_seeded_triple(m.get(k), st.get(k)) + (RISING_MARK if rising[k] else "") for k in trained),
                     *(_triple(rep.get((k, r["task"]))) for k in with_reported)])
    out.append(_md_table(head, rows))
    if any(still_rising(g) for r in results["segmentation"] for g in (r.get("late_gain") or {}).values()):
        out += ["", f"{RISING_MARK.strip()} not converged: in at least one seed the validation Dice rose by more than "
                f"{LATE_GAIN_TOLERANCE} over the last quarter of its final learning-rate phase (of the whole run when "
                "the schedule has no drop; `figures/<task>_curves.png`); a longer "
                "schedule may change that figure."]
    out += ["", f"Columns marked *{REPORTED_LABEL}* are the figures of {REPORTED_CITATION}. They were measured on the "
            "report's own private dataset (978 patients), not on the data above, and are shown for orientation only; "
            "they are not results of this run.", ""]
    out += transfer_markdown(results.get("transfer"), models, h)

    out += ["## Cost", ""]
    names = {**model_names(), **trained}
    crow = [[names.get(c["model"], c["model"]), c.get("task") or "–", *(col.cell(c) for col in COST_COLUMNS)]
            for c in results.get("cost", [])]
    out.append(_md_table(["model", "task", *(col.head for col in COST_COLUMNS)], crow))
    kinds = sorted({c.get("memory_kind") for c in results.get("cost", []) if c.get("memory_kind")})
    out += ["", "Training time is the wall clock of the tool's process(es) in this benchmark (all resumed attempts); "
            "reused units keep the time of the run that trained them. CPU time (user + system, all threads) does not "
            "depend on what else the machine runs; wall time does. Memory: " + ("; ".join(kinds) or "–") +
            " (training: peak RSS of the training process, from wait4)."]
    if any(c.get("s_per_iter_note") for c in results.get("cost", [])):
        out.append("¹ " + "; ".join(sorted({c["s_per_iter_note"] for c in results["cost"] if c.get("s_per_iter_note")})))
    out.append("")

    cls = results.get("classification")
    out += ["## Classification (Normal / Damaged, test split)", ""]
    if cls and cls.get("rows"):
        out.append(_md_table(["model", *CLS_METRICS, "selected on validation"],
                             [[r["name"], *(_f(r.get(k)) for k in CLS_METRICS), "✓" if r.get("selected") else ""] for r in cls["rows"]]))
        out += ["", f"Test patients: {_f(cls.get('test_patients'))}; backbone: {cls.get('backbone') or '–'}. "
                f"Positive class: Damaged. The report states 85 % validation accuracy with ResNet50 ({REPORTED_LABEL}); "
                "it gives no test figures.", ""]
    else:
        out += [cls.get("note", "not run") if cls else "not run", ""]
    morph = results.get("morphometry")
    if morph:
        out += ["## Morphometry", "", morph.get("markdown") or morph.get("note", ""), ""]

    out += ["## Units", ""]
    out.append(_md_table(["unit", "status", "time this run", "training wall / CPU (all attempts)", "log"],
                         [[u["unit"], u["status"], _dur(u.get("wall_s")),
                           f"{_dur(u.get('train_wall_s'))} / {_dur(u.get('train_cpu_s'))}", u.get("log", "")]
                          for u in results.get("units", [])]))
    out.append("")
    return "\n".join(out)


def transfer_markdown(transfer: Optional[Mapping[str, Any]], models: Mapping[str, str], header: Mapping[str, Any]) -> List[str]:
    """The section of models trained on the benchmark's data and scored on another data set's test split
    (``--transfer-root``): its own table, never a column of the segmentation table."""
    if not transfer:
        return []
    out = [f"## Transfer: trained on `{header['data']}`, scored on `{transfer['data']}` (test split)", "",
           f"{transfer['data']}: {transfer.get('data_summary', '')}. Every model above, as trained and selected on "
           f"`{header['data']}` (checkpoint and thresholds chosen on its validation split), scored on the "
           f"{transfer.get('test_patients', '–')} test patients of this second data set, which no model saw. Otsu "
           f"is computed on these images. {_metric_names()} as above.", ""]
    trained = {k: v for k, v in models.items() if k != OTSU}
    rows = []
    for r in transfer.get("rows", []):
        m, st = r.get("models") or {}, r.get("seeds") or {}
        rows.append([r["task"], r.get("test_images"), _triple(m.get(OTSU)),
                     *(_seeded_triple(m.get(k), st.get(k)) for k in trained)])
    out.append(_md_table(["task", "test images", f"{models[OTSU]} (trivial baseline)", *trained.values()], rows))
    return out + [""]


def csv_rows(results: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Long format: one value per row, ``source`` says whose number it is."""
    ours = f"{OURS} ({results['header']['data']})"
    rows: List[Dict[str, Any]] = []

    def add(section: str, source: str, model: str, task: Any, metric: str, value: Any, label: str = "") -> None:
        if isinstance(value, float) and math.isnan(value):
            value = None
        rows.append({"section": section, "source": source, "label": label, "model": model, "task": task or "",
                     "metric": metric, "value": "" if value is None else value})

    def add_scores(section: str, source: str, row: Mapping[str, Any]) -> None:
        """A table row's scores per model (first seed) and, with several seeds, their mean and sd."""
        for model, s in (row.get("models") or {}).items():
            if s:
                for m in SEG_METRICS:
                    add(section, source, model, row["task"], m, s.get(m))
                add(section, source, model, row["task"], "images", s.get("counts", {}).get("images"))
        for model, st in (row.get("seeds") or {}).items():
            for m in SEG_METRICS:
                add(section, source, model, row["task"], f"{m}_mean_over_seeds", st["mean"].get(m))
                add(section, source, model, row["task"], f"{m}_sd_over_seeds", st["sd"].get(m))
            add(section, source, model, row["task"], "seeds", " ".join(map(str, st["seeds"])))

    for r in results["segmentation"]:
        add_scores("segmentation", ours, r)
        for model, gains in (r.get("late_gain") or {}).items():
            for seed, g in gains.items():
                add("segmentation", ours, model, r["task"], f"val_dice_gain_last_quarter_seed{seed}", g)
    transfer = results.get("transfer") or {}
    for r in transfer.get("rows", []):
        add_scores("transfer", f"{OURS} (trained on {results['header']['data']}, scored on {transfer.get('data')})", r)
    for r in results.get("reported", []):
        for m in SEG_METRICS:
            if m in r:  # the report gives Dice, Jaccard and TPR only
                add("segmentation", r["source"], r["model"], r["task"], m, r[m], REPORTED_LABEL)
    for c in results.get("cost", []):
        for col in COST_COLUMNS:
            add("cost", ours, c["model"], c.get("task"), col.key, c.get(col.key))
    cls = results.get("classification") or {}
    for r in cls.get("rows", []):
        for k in CLS_METRICS:
            add("classification", ours, "classifier", r["name"], k, r.get(k))
    return rows


def render_csv(results: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["section", "source", "label", "model", "task", "metric", "value"])
    w.writeheader()
    w.writerows(csv_rows(results))
    return buf.getvalue()


def write_results(out_dir: Path | str, results: Mapping[str, Any]) -> Dict[str, Path]:
    """Write results.md, results.csv and results.json atomically; returns their paths."""
    out_dir = Path(out_dir)
    paths = {"md": out_dir / "results.md", "csv": out_dir / "results.csv", "json": out_dir / "results.json"}
    atomic_write_text(paths["md"], render_markdown(results))
    atomic_write_text(paths["csv"], render_csv(results))
    atomic_write_json(paths["json"], dict(results))
    return paths

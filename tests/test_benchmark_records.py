"""The benchmark's whole run, with every unit faked (no training, no subprocess): what it keeps on disk and
the tables it writes. The tables are compared with a snapshot (``tests/data/benchmark_fake_run.*``) taken
before the benchmark kept one record per (family, task, seed): the records change how the numbers are
kept, never what the tables say."""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from spine_det.benchmark import pipeline
from spine_det.benchmark.pipeline import Benchmark, BenchmarkOptions
from spine_det.benchmark.runner import UnitError

DATA = Path(__file__).resolve().parent / "data"
TASKS = ["lat_vertebra", "ap_vertebra"]
FAIL = "maskrcnn-ap_vertebra-seed1"  # one unit fails: its seed is left out, the others still count


def _value(*parts) -> float:
    """A stable pseudo-random figure in [0.5, 0.95) for a (model, task, seed, ...) key."""
    h = int(hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:8], 16)
    return round(0.5 + 0.45 * h / 0xFFFFFFFF, 6)


class _Sample(SimpleNamespace):
    pass


class _Manifest:
    """Three test images per task and view, labelled patients with both views."""

    labelled = True

    def __init__(self, name: str) -> None:
        self.name = name

    def summary(self):
        return f"12 patients ({self.name})"

    def patients(self, split=None):
        return [("p", "Normal")] * {"train": 7, "val": 2, "test": 3}.get(split, 12)

    def select(self, split=None, view=None, task=None):
        n = {"train": 7, "val": 2}.get(split, 3)
        return [_Sample(key=f"{self.name}/p{i}/{task or view}", image=f"p{i}.png") for i in range(n)]


def _write_scores(folder: Path, key: tuple, ids) -> dict:
    d = _value(*key)
    s = {"dice": d, "jaccard": round(d * d, 6), "tpr": _value(*key, "tpr"), "counts": {"images": len(ids)}}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "semantic_metrics.json").write_text(json.dumps(s))
    with open(folder / "semantic_per_image.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "dice"])
        w.writerows([i, d] for i in ids)
    return s


def _fake_run_unit(unit, log_dir, force=False, echo=False):
    if unit.name == FAIL:
        raise UnitError(f"{unit.name}: train failed with exit code 1; see {log_dir / (unit.name + '.log')}")
    unit.out_dir.mkdir(parents=True, exist_ok=True)
    log_dir.mkdir(parents=True, exist_ok=True)
    if unit.model == "classifier":
        unit.result_path.write_text(json.dumps({"test": {
            "ap": {"accuracy": 0.7, "sensitivity": 0.6, "specificity": 0.8, "auc": 0.75, "n": 3},
            "lat": {"accuracy": 0.8, "sensitivity": 0.7, "specificity": 0.9, "auc": 0.85, "n": 3},
            "average": {"accuracy": 0.75, "sensitivity": 0.65, "specificity": 0.85, "auc": 0.8, "n": 3},
            "patients": 3}, "selected": "lat", "backbone": {"ap": "resnet18", "lat": "resnet18"}}))
    elif unit.model == "morphometry":
        unit.result_path.write_text(json.dumps({"metrics": {
            "patients": 3, "matched_levels": 40, "true_levels": 51, "height_mae_pct": _value(unit.name, "mae") * 10,
            "grade_kappa_linear": _value(unit.name, "kappa"), "patient_accuracy": 2 / 3, "patient_sensitivity": 0.5,
            "patient_specificity": 1.0, "patient_confusion": [[1, 0], [1, 1]]}}))
    else:
        seed = int(unit.spec.get("seed", unit.spec.get("trained", {}).get("seed", 0)))
        data = "other" if "-on-" in unit.name else "phantom"
        _write_scores(unit.result_path.parent, (unit.model, unit.task, seed, data),
                      [f"{data}/p{i}/{unit.task}" for i in range(3)])
        if "-on-" not in unit.name:
            if unit.model == "maskrcnn":
                (unit.out_dir / "metrics.json").write_text("\n".join(json.dumps(r) for r in [
                    {"iteration": i, "total_loss": 2.0 / (i + 1), "time": 0.5 + 0.01 * seed} for i in range(0, 40, 10)]
                    + [{"iteration": i, f"{unit.task}/dice": _value(unit.name, i)} for i in (9, 19, 29, 39)]))
                (unit.out_dir / "config.yaml").write_text("SOLVER:\n  STEPS: [30]\n  MAX_ITER: 40\n")
                (log_dir / f"{unit.name}.log").write_text("eta: 0:00:01  max_mem: 321M\n")
            else:
                (unit.out_dir / "metrics.jsonl").write_text("\n".join(json.dumps(
                    {"epoch": e, "loss": 1.0 / e, "val_dice": _value(unit.name, e), "iters": 7, "train_time_s": 3.5})
                    for e in range(1, 5)))
        (unit.out_dir / unit.checkpoints[0]).write_bytes(unit.name.encode())
    return {"runs": [{"step": "train", "wall_s": 12.5, "cpu_s": 20.25, "peak_rss_mb": 512.0}],
            "checkpoint": {"sha1": hashlib.sha1(unit.name.encode()).hexdigest()}, "skipped": False}


def _fake_otsu(manifest, tasks, out_root, split="test"):
    return {t: _write_scores(Path(out_root) / t / "inference" / f"spine_{t}_{split}", ("otsu", t, manifest.name),
                             [f"{manifest.name}/p{i}/{t}" for i in range(3)]) for t in tasks}


def _fake_cost(self, unit, stamp):
    return {"images_per_s": _value(unit.name, "ips") * 10, "parameters": 11_000_000 + len(unit.name),
            "gflops": _value(unit.name, "gflops") * 100, "peak_memory_mb": 900.0, "memory_kind": "process peak RSS"}


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    """A two-task, two-seed benchmark of LinkNet and Mask R-CNN with a transfer data set, the classifier and
    morphometry, every unit faked; returns (options, the run's output)."""
    header = pipeline.make_header

    def fixed_header(*a, **k):
        h = header(*a, **k)
        h.update(git_commit="0123456789ab", spine_det_version="0.0.0", versions={"python": "3.11"},
                 device="CPU: test", date="2024-01-01 00:00:00 UTC")
        return h

    def prepare(self):
        self.prepared = SimpleNamespace(manifest=_Manifest("phantom"), manifest_path=tmp_path / "manifest.json")
        self.transfer_prepared = SimpleNamespace(manifest=_Manifest("other"))

    monkeypatch.setattr(pipeline, "run_unit", _fake_run_unit)
    monkeypatch.setattr(pipeline, "run_otsu", _fake_otsu)
    monkeypatch.setattr(pipeline, "make_header", fixed_header)
    monkeypatch.setattr(pipeline.plan, "tool_available", lambda name: True)
    monkeypatch.setattr(Benchmark, "prepare", prepare)
    monkeypatch.setattr(Benchmark, "measure_cost", _fake_cost)
    monkeypatch.setattr(Benchmark, "draw", lambda self: [])
    out = tmp_path / "bench"
    o = BenchmarkOptions(data_root="data/phantom", out=out, tasks=TASKS, seeds=[0, 1], models=["linknet", "maskrcnn"],
                         model_opts={"linknet": ["SOLVER.MAX_EPOCHS", "4"]}, family_args={"maskrcnn_init": "config"},
                         transfer_root=str(tmp_path / "other"))
    Benchmark(o).run()
    return o, out


def _normalised(text: str, tmp: Path) -> str:
    return text.replace(str(tmp), "<tmp>")


def test_fake_run_tables_match_the_snapshot(fake_run, tmp_path):
    _, out = fake_run
    for suffix in ("md", "csv"):
        got = _normalised((out / f"results.{suffix}").read_text(encoding="utf-8"), tmp_path)
        want = (DATA / f"benchmark_fake_run.{suffix}").read_text(encoding="utf-8")
        assert got == want, f"results.{suffix} differs from tests/data/benchmark_fake_run.{suffix}"


def test_fake_run_results_json_matches_the_snapshot(fake_run, tmp_path):
    """results.json keeps its shape for its readers (``spine-det benchmark``'s summary, scripts)."""
    _, out = fake_run
    got = json.loads((out / "results.json").read_text(encoding="utf-8"))
    got.pop("total_wall_s")
    for u in got["units"]:
        u.pop("wall_s", None)
    want = json.loads((DATA / "benchmark_fake_run.json").read_text(encoding="utf-8"))
    assert json.loads(_normalised(json.dumps(got, sort_keys=True), tmp_path)) == want


def test_one_record_per_family_task_and_seed_on_disk(fake_run):
    """Each finished unit (and Otsu per task) left its record; the failed one none; the transfer scores are in."""
    from spine_det.benchmark.records import load_records

    _, out = fake_run
    records = {r.name: r for r in load_records(out / "records")}
    trained = {f"{m}-{t}{s}" for m in ("linknet", "maskrcnn") for t in TASKS for s in ("", "-seed1")} - {FAIL}
    assert set(records) == trained | {f"otsu-{t}" for t in TASKS}
    r = records["maskrcnn-lat_vertebra-seed1"]
    assert (r.family, r.task, r.seed) == ("maskrcnn", "lat_vertebra", 1) and r.scores["counts"]["images"] == 3
    assert r.transfer["dice"] == _value("maskrcnn", "lat_vertebra", 1, "other") and r.curves["x_label"] == "iteration"
    assert r.cost is None and records["maskrcnn-lat_vertebra"].cost["train_peak_memory_mb"] == 321.0  # first seed only
    assert records["otsu-ap_vertebra"].curves is None and records["otsu-ap_vertebra"].transfer is not None


def test_tables_rebuild_from_the_records_on_disk(fake_run):
    """The records are the results: the rows written in results.json come back from the record files alone."""
    from spine_det.benchmark.records import cost_rows, load_records, segmentation_rows, transfer_rows

    o, out = fake_run
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    records = load_records(out / "records")
    columns, images = ["otsu", "linknet", "maskrcnn"], {t: 3 for t in TASKS}
    as_json = lambda v: json.loads(json.dumps(v))  # noqa: E731  (int seed keys become strings, as in results.json)
    assert as_json(segmentation_rows(records, TASKS, columns, [0, 1], images)) == res["segmentation"]
    assert as_json(transfer_rows(records, TASKS, columns, [0, 1], images)) == res["transfer"]["rows"]
    family_costs = [c for c in res["cost"] if c["model"] in columns]
    key = lambda c: (c["model"], c["task"])  # noqa: E731  (file-name order, not the order units ran)
    assert sorted(as_json(cost_rows(records, 0)), key=key) == sorted(family_costs, key=key)


def test_a_failed_unit_leaves_no_record_of_an_earlier_run(tmp_path, monkeypatch, fake_run):
    o, out = fake_run
    stale = out / "records" / f"{FAIL}.json"
    stale.write_text(json.dumps({"family": "maskrcnn", "task": "ap_vertebra", "seed": 1, "scores": {"dice": 0.99}}))
    Benchmark(o).run()  # everything reused or rerun by the fakes; the failing unit fails again
    assert not stale.exists()
    md = (out / "results.md").read_text(encoding="utf-8")
    assert "0.99" not in md and (n := md.count("(n=1)")) == 2, n  # Mask R-CNN ap_vertebra: one seed, both tables


def test_a_new_metric_is_one_entry_per_table(fake_run, monkeypatch):
    """A segmentation metric or a cost column added in one place reaches the Markdown and the CSV."""
    from spine_det.benchmark import tables
    from spine_det.benchmark.records import cost_rows, load_records, segmentation_rows

    _, out = fake_run
    records = load_records(out / "records")
    for r in records:
        r.scores["hd95"] = 4.5
        if r.cost:
            r.cost["energy_j"] = 1234.0
    monkeypatch.setattr(tables, "SEG_METRICS", (*tables.SEG_METRICS, "hd95"))
    monkeypatch.setattr(tables, "SEG_METRIC_NAMES", {**tables.SEG_METRIC_NAMES, "hd95": "HD95"})
    monkeypatch.setattr(tables, "COST_COLUMNS", (*tables.COST_COLUMNS, tables.Column("energy (J)", "energy_j",
                                                                                      lambda c: tables._f(c.get("energy_j"), 0))))
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    res["segmentation"] = segmentation_rows(records, TASKS, ["otsu", "linknet", "maskrcnn"], [0, 1], {t: 3 for t in TASKS})
    res["cost"] = cost_rows(records, 0)
    md, rows = tables.render_markdown(res), tables.csv_rows(res)
    assert "Dice / Jaccard / TPR / HD95, mean over test images" in md and " / 4.5000 (n=2)" in md
    assert "| energy (J) |" in md and "| 1234 |" in md
    assert {r["metric"] for r in rows} >= {"hd95", "hd95_mean_over_seeds", "hd95_sd_over_seeds", "energy_j"}

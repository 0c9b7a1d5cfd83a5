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

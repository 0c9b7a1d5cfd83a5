"""The benchmark's own logic: labels of the report's figures, the Otsu baseline, resume, the header."""
from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from spine_det.benchmark import tables
from spine_det.benchmark.baselines import otsu_predict, otsu_threshold, score_otsu
from spine_det.benchmark.pipeline import classification_table
from spine_det.benchmark.reported import REPORTED_LABEL, RESOURCE, load_reported, reported_rows
from spine_det.benchmark.runner import ProcessResult, Unit, finished_reason, fingerprint, run_unit
from spine_det.evaluation.metrics import ScoreTable, binary_scores


# --------------------------------------------------------------------------- reported figures


def _resource_rows():
    with open(RESOURCE, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_reported_resource_is_read_as_the_report():
    rows = _resource_rows()
    table = load_reported()
    assert len(table) == len(rows) == 16
    for r in rows:
        model = {"LinkNet": "linknet", "Mask R-CNN": "maskrcnn"}[r["model"]]
        s = table[(model, r["task"])]
        assert (s.dice, s.jaccard, s.tpr) == (float(r["dice"]), float(r["jaccard"]), float(r["tpr"]))
        assert s.label == REPORTED_LABEL and "private dataset" in s.source


class _FakeManifest:
    def __init__(self, n_test=3):
        self.n_test = n_test

    def summary(self):
        return "12 patients (train 7 / val 2 / test 3), fake"

    def patients(self, split=None):
        return [("p", "Normal")] * {"train": 7, "val": 2, "test": 3}[split]

    def select(self, split=None, view=None, task=None):
        return [None] * self.n_test


def _results(ours_dice=0.123):
    tasks_ = ["lat_vertebra", "ap_spinous_process"]
    header = tables.make_header("output/demo/data", _FakeManifest(), tasks_, seed=7, split_seed=3, profile="cpu")
    seg = [{"task": t, "test_images": 3, "same_images": True,
            "models": {m: {"dice": ours_dice, "jaccard": ours_dice / 2, "tpr": ours_dice / 3, "counts": {"images": 3}}
                       for m in ("otsu", "linknet", "maskrcnn")}} for t in tasks_]
    return {"header": header, "segmentation": seg, "reported": [r.__dict__ for r in reported_rows(tasks_)],
            "cost": [], "classification": None, "units": []}


def test_tables_label_reported_figures_and_never_as_ours(tmp_path):
    res = _results()
    paths = tables.write_results(tmp_path, res)
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    reported = {(r["model"], r["task"], r["metric"]): r for r in rows if r["label"] == REPORTED_LABEL}
    ours = [r for r in rows if r["section"] == "segmentation" and r["label"] != REPORTED_LABEL]
    # every reported figure is there, labelled, with the report as source
    table = load_reported()
    for t in ("lat_vertebra", "ap_spinous_process"):
        for m in ("linknet", "maskrcnn"):
            for k in ("dice", "jaccard", "tpr"):
                r = reported[(m, t, k)]
                assert float(r["value"]) == getattr(table[(m, t)], k)
                assert "private dataset" in r["source"] and not r["source"].startswith(tables.OURS)
    # our rows carry our numbers only and are never labelled as the report's
    assert ours and all(r["source"].startswith(tables.OURS) for r in ours)
    assert {float(r["value"]) for r in ours if r["metric"] == "dice"} == {0.123}
    md = paths["md"].read_text()
    head = next(line for line in md.splitlines() if line.startswith("| task |"))
    assert head.count(REPORTED_LABEL) == 2  # the two reported columns, and only those
    assert "0.8717 / 0.7808 / 0.8485" in md  # LinkNet lat_vertebra as the report gives it
    js = json.loads(paths["json"].read_text())
    assert all(r["label"] == REPORTED_LABEL for r in js["reported"])


def test_results_md_header_says_what_ran(tmp_path):
    md = tables.write_results(tmp_path, _results())["md"].read_text()
    top = md.split("## Segmentation")[0]
    for needle in ("output/demo/data", "train 7 / val 2 / test 3", "split seed 3", "| seed | 7 |", "| profile | cpu |",
                   "git commit", "torch", "device"):
        assert needle in top, needle
    assert tables.git_commit() in top


# --------------------------------------------------------------------------- Otsu


def test_otsu_threshold_matches_skimage():
    from skimage.filters import threshold_otsu

    rng = np.random.default_rng(0)
    img = np.concatenate([rng.normal(60, 12, 3000), rng.normal(170, 20, 2000)]).clip(0, 255).astype(np.uint8).reshape(50, 100)
    assert abs(otsu_threshold(img) - threshold_otsu(img)) <= 1


def _write_sample(folder: Path, name: str, img: np.ndarray, gt: np.ndarray, task: str):
    folder.mkdir(parents=True, exist_ok=True)
    ip, mp = folder / f"{name}.png", folder / f"{name}_mask.png"
    cv2.imwrite(str(ip), img)
    cv2.imwrite(str(mp), gt.astype(np.uint8) * 255)
    return SimpleNamespace(key=name, image=str(ip), masks={task: str(mp)})


def test_otsu_baseline_scores_what_scoretable_says(tmp_path):
    task = "lat_vertebra"
    img = np.full((40, 60), 40, np.uint8)
    img[10:30, 10:50] = 200  # bright block: Otsu's foreground
    gt = np.zeros_like(img, bool)
    gt[10:30, 10:30] = True  # ground truth: the block's left half
    img2 = np.full((40, 60), 30, np.uint8)
    img2[0:5, 0:5] = 220
    gt2 = np.zeros_like(img2, bool)
    gt2[20:30, 20:30] = True  # disjoint from the bright corner
    samples = [_write_sample(tmp_path, "a", img, gt, task), _write_sample(tmp_path, "b", img2, gt2, task)]
    table = score_otsu(samples, task)
    s = table.summary()
    # block: |P|=800, |G|=400, |P∩G|=400 -> Dice 2/3, Jaccard 1/2, TPR 1; second image all 0
    assert s["dice"] == pytest.approx((2 / 3 + 0) / 2)
    assert s["jaccard"] == pytest.approx(0.25)
    assert s["tpr"] == pytest.approx(0.5)
    ref = ScoreTable()
    ref.add("a", otsu_predict(img), gt)
    ref.add("b", otsu_predict(img2), gt2)
    assert {k: s[k] for k in ("dice", "jaccard", "tpr")} == {k: ref.summary()[k] for k in ("dice", "jaccard", "tpr")}
    assert binary_scores(otsu_predict(img), gt)["dice"] == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- resume


def _unit(tmp_path: Path, script: str = "") -> Unit:
    out = tmp_path / "runs" / "m" / "lat_vertebra"
    cmd = [sys.executable, "-c", script or "raise SystemExit(3)"]
    return Unit(name="m-lat_vertebra", model="linknet", task="lat_vertebra", out_dir=out,
                commands={"train": cmd, "resume": cmd}, checkpoints=["model_best.pth"],
                result="inference/spine_lat_vertebra_test/semantic_metrics.json", spec={"profile": "cpu", "seed": 0})


def _never(*a, **k):
    raise AssertionError("a finished unit must not be run again")


def test_resume_skips_a_finished_unit(tmp_path):
    unit = _unit(tmp_path)
    unit.result_path.parent.mkdir(parents=True)
    (unit.out_dir / "model_best.pth").write_bytes(b"weights")
    unit.result_path.write_text('{"dice": 0.5}')  # written after the checkpoint: a finished unit
    assert finished_reason(unit) is None
    stamp = run_unit(unit, tmp_path / "logs", runner=_never)
    assert stamp["skipped"] and stamp["checkpoint"] == fingerprint(unit.out_dir / "model_best.pth")
    assert run_unit(unit, tmp_path / "logs", runner=_never)["skipped"]  # and again, from its stamp


def test_a_changed_checkpoint_or_spec_reruns(tmp_path):
    unit = _unit(tmp_path)
    unit.result_path.parent.mkdir(parents=True)
    (unit.out_dir / "model_best.pth").write_bytes(b"weights")
    unit.result_path.write_text("{}")
    run_unit(unit, tmp_path / "logs", runner=_never)
    (unit.out_dir / "model_best.pth").write_bytes(b"other weights")  # retrained elsewhere
    assert "changed" in finished_reason(unit)
    unit2 = _unit(tmp_path)
    (unit.out_dir / "model_best.pth").write_bytes(b"weights")
    unit2.spec = {"profile": "full", "seed": 0}
    assert "this run asks" in finished_reason(unit2)
    calls = []

    def fake(cmd, log_path, **kw):
        calls.append(cmd)
        unit.result_path.parent.mkdir(parents=True, exist_ok=True)
        (unit.out_dir / "model_best.pth").write_bytes(b"new weights")
        unit.result_path.write_text('{"dice": 0.9}')
        return ProcessResult(0, 1.5, 100.0)

    stamp = run_unit(unit2, tmp_path / "logs", runner=fake)
    # other settings: the old run is kept beside, untouched, and the unit trains afresh (no resume)
    assert len(calls) == 1 and not stamp["skipped"] and stamp["runs"][-1]["step"] == "train"
    aside = [p for p in unit.out_dir.parent.iterdir() if p.name.startswith("lat_vertebra.before-")]
    assert len(aside) == 1 and (aside[0] / "model_best.pth").read_bytes() == b"weights"
    assert json.loads((aside[0] / "benchmark_unit.json").read_text())["spec"] == unit.spec


def test_result_of_another_checkpoint_is_not_finished(tmp_path):
    unit = _unit(tmp_path)
    unit.result_path.parent.mkdir(parents=True)
    (unit.out_dir / "model_best.pth").write_bytes(b"weights")
    unit.result_path.write_text(json.dumps({"dice": 0.5, "checkpoint": str(unit.out_dir / "model_final.pth")}))
    assert "model_final.pth" in finished_reason(unit)
    unit.result_path.write_text(json.dumps({"dice": 0.5, "checkpoint": str(unit.out_dir / "model_best.pth")}))
    assert finished_reason(unit) is None


def test_run_unit_streams_log_and_stamps(tmp_path):
    unit = _unit(tmp_path)
    out = unit.out_dir
    script = (
        f"import pathlib; o = pathlib.Path({str(out)!r}); o.mkdir(parents=True, exist_ok=True)\n"
        "print('training step 1 of 1', flush=True)\n"
        "(o / 'model_best.pth').write_bytes(b'w')\n"
        "r = o / 'inference/spine_lat_vertebra_test'; r.mkdir(parents=True, exist_ok=True)\n"
        "(r / 'semantic_metrics.json').write_text('{}')\n"
    )
    unit.commands = {"train": [sys.executable, "-c", script]}
    stamp = run_unit(unit, tmp_path / "logs")
    assert not stamp["skipped"] and stamp["runs"][0]["returncode"] == 0 and stamp["runs"][0]["peak_rss_mb"] > 0
    assert "training step 1 of 1" in (tmp_path / "logs" / "m-lat_vertebra.log").read_text()
    assert run_unit(unit, tmp_path / "logs", runner=_never)["skipped"]


def test_failed_unit_raises_naming_its_log(tmp_path):
    from spine_det.benchmark.runner import UnitError

    unit = _unit(tmp_path)  # its command exits 3
    with pytest.raises(UnitError, match=r"m-lat_vertebra.*exit code 3.*m-lat_vertebra\.log"):
        run_unit(unit, tmp_path / "logs")


# --------------------------------------------------------------------------- classification


def test_classification_table_reads_views_and_selection():
    metrics = {"test": {"ap": {"accuracy": 0.7, "sensitivity": 0.6, "specificity": 0.8, "auc": 0.75},
                        "lat": {"accuracy": 0.65, "sensitivity": 0.5, "specificity": 0.8, "auc": 0.7},
                        "average": {"accuracy": 0.72, "sensitivity": 0.66, "specificity": 0.78, "auc": 0.8}},
               "selected": "average"}
    t = classification_table(metrics)
    assert [r["key"] for r in t["rows"]] == ["ap", "lat", "average"]
    assert [r["selected"] for r in t["rows"]] == [False, False, True]
    assert t["rows"][1]["auc"] == 0.7
    assert not math.isnan(t["rows"][2]["accuracy"])


def test_morphometry_from_predictions_unit_speaks_the_tools_arguments(tmp_path, capsys):
    """The unit's two commands parse with predict.py's and eval_morphometry.py's own parsers, write to
    the folder the other reads, and a retrained model (other checkpoint bytes) changes the spec."""
    import importlib

    from spine_det.benchmark import plan

    ck = tmp_path / "model_best.pth"
    ck.write_bytes(b"weights-1")
    unit = plan.morphometry_from_predictions_unit("maskrcnn", ck, tmp_path / "runs", str(tmp_path / "data"), 3)
    assert unit.commands["train"][1:3] == ["-m", "spine_det.tools.predict"]
    assert unit.commands["eval"][1:3] == ["-m", "spine_det.tools.eval_morphometry"]
    pred_argv, eval_argv = unit.commands["train"][3:], unit.commands["eval"][3:]
    ev = importlib.import_module("spine_det.tools.eval_morphometry")
    e = ev.build_parser().parse_args(eval_argv)
    assert e.source == "maskrcnn" and e.split == "test" and e.seed == 3
    # predict builds its parser inside main(): parse by running it up to the checkpoint check
    predict_main = importlib.import_module("spine_det.tools.predict").main
    assert predict_main(pred_argv) == 2  # it parsed, then refused the fake files in one line
    err = capsys.readouterr().err
    assert "checkpoint" in err or "data" in err
    p_out = pred_argv[pred_argv.index("--output") + 1]
    assert Path(p_out) == e.pred_dir and pred_argv[pred_argv.index("--split") + 1] == "all"
    ck.write_bytes(b"weights-2")
    again = plan.morphometry_from_predictions_unit("maskrcnn", ck, tmp_path / "runs", str(tmp_path / "data"), 3)
    assert again.spec != unit.spec


def test_a_unit_spec_follows_the_config_files_it_reads(tmp_path, monkeypatch):
    """Editing a task's profile file makes that task's units unfinished (their spec changes), and only theirs."""
    import shutil

    from spine_det import CONFIG_DIR
    from spine_det.benchmark import plan
    from spine_det.config import paths
    from spine_det.modeling.registry import get_family

    configs = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, configs)
    monkeypatch.setattr(paths, "config_dir", lambda: configs)
    monkeypatch.setattr(plan, "config_dir", lambda: configs)

    def specs(profile="cpu"):
        args = (tmp_path / "runs", str(tmp_path / "data"), profile, 0, 0)
        return {(f"{m}_unit", t): plan.training_unit(get_family(m), t, *args).spec for m in ("maskrcnn", "linknet")
                for t in ("lat_anterior_line", "lat_vertebra")}

    before = specs()
    line = before[("maskrcnn_unit", "lat_anterior_line")]["configs"]
    assert {"lat_anterior_line.yaml", "Base-SpineMaskRCNN.yaml", "profiles/cpu.yaml",
            "profiles/cpu/lat_anterior_line.yaml"} == set(line)
    assert "linknet/profiles/cpu/lat_anterior_line.yaml" in before[("linknet_unit", "lat_anterior_line")]["configs"]
    assert not any("profiles" in k for k in specs("full")[("maskrcnn_unit", "lat_vertebra")]["configs"])

    task_profile = configs / "profiles" / "cpu" / "lat_anterior_line.yaml"
    task_profile.write_text("# a comment changes no setting\n" + task_profile.read_text())
    assert specs() == before
    task_profile.write_text(task_profile.read_text() + "\nSOLVER:\n  MAX_ITER: 7\n")
    after = specs()
    assert after[("maskrcnn_unit", "lat_anterior_line")] != before[("maskrcnn_unit", "lat_anterior_line")]
    assert {k: v for k, v in after.items() if k != ("maskrcnn_unit", "lat_anterior_line")} == \
           {k: v for k, v in before.items() if k != ("maskrcnn_unit", "lat_anterior_line")}

    # a profile file with a _BASE_ (one file shared by two task leaves): the base is hashed too
    shared = configs / "profiles" / "cpu" / "Base-Lines.yaml"
    shared.write_text("SOLVER:\n  MAX_ITER: 9\n")
    task_profile.write_text('_BASE_: "Base-Lines.yaml"\n')
    with_base = specs()[("maskrcnn_unit", "lat_anterior_line")]["configs"]
    assert "profiles/cpu/Base-Lines.yaml" in with_base
    shared.write_text("SOLVER:\n  MAX_ITER: 10\n")
    assert specs()[("maskrcnn_unit", "lat_anterior_line")]["configs"] != with_base


def test_seed_statistics_mean_and_sample_sd_against_numpy():
    import numpy as np

    per_seed = {0: {"dice": 0.80, "jaccard": 0.67, "tpr": 0.9}, 1: {"dice": 0.86, "jaccard": 0.75, "tpr": 0.8},
                2: {"dice": 0.83, "jaccard": 0.71, "tpr": 0.85}, 5: None}
    st = tables.seed_statistics(per_seed)
    assert st["seeds"] == [0, 1, 2] and st["missing"] == [5] and st["n"] == 3
    for m in ("dice", "jaccard", "tpr"):
        vals = [per_seed[k][m] for k in (0, 1, 2)]
        assert st["mean"][m] == pytest.approx(np.mean(vals))
        assert st["sd"][m] == pytest.approx(np.std(vals, ddof=1))
    one = tables.seed_statistics({3: {"dice": 0.5, "jaccard": 0.3, "tpr": 0.7}})
    assert one["n"] == 1 and one["sd"]["dice"] is None


def test_several_seeds_get_their_own_units_and_the_table_says_mean_and_sd(tmp_path):
    from spine_det.benchmark import plan
    from spine_det.modeling.registry import get_family

    units = [plan.training_unit(get_family("linknet"), "lat_vertebra", tmp_path, str(tmp_path), "cpu", s, 0)
             for s in (0, 1, 2)]
    assert [u.out_dir.name for u in units] == ["lat_vertebra", "lat_vertebra-seed1", "lat_vertebra-seed2"]
    assert len({u.name for u in units}) == 3 and [u.spec["seed"] for u in units] == [0, 1, 2]
    assert all(str(s) in u.commands["train"] for u, s in zip(units, (0, 1, 2)))
    res = _results()
    res["header"]["seeds"] = [0, 1, 2]
    stats = tables.seed_statistics({0: {"dice": 0.80, "jaccard": 0.7, "tpr": 0.9}, 1: {"dice": 0.86, "jaccard": 0.7, "tpr": 0.9},
                                    2: {"dice": 0.83, "jaccard": 0.7, "tpr": 0.9}})
    for r in res["segmentation"]:
        r["seeds"] = {"maskrcnn": stats}
    paths = tables.write_results(tmp_path, res)
    md = paths["md"].read_text()
    assert "0.8300 ± 0.0300 / 0.7000 / 0.9000 (n=3)" in md
    assert "training seeds" in md.split("## Segmentation")[0]
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    sd = [r for r in rows if r["metric"] == "dice_sd_over_seeds" and r["model"] == "maskrcnn"]
    assert sd and float(sd[0]["value"]) == pytest.approx(0.03)


def test_late_gain_tells_a_rising_curve_from_a_flat_one():
    from spine_det.benchmark.curves import LATE_GAIN_TOLERANCE, late_gain

    rising = [(100, 0.1), (200, 0.3), (300, 0.4), (400, 0.5), (500, 0.55), (600, 0.6)]
    assert late_gain(rising) == pytest.approx(0.6 - 0.5)  # cut at 475: best of 500/600 vs best of 100-400
    flat = [(1, 0.5), (2, 0.7), (3, 0.72), (4, 0.71), (5, 0.73), (6, 0.72), (7, 0.72), (8, 0.725)]
    g = late_gain(flat)
    assert g == pytest.approx(0.725 - 0.73) and g < LATE_GAIN_TOLERANCE
    assert late_gain([(5, 0.4), (1, 0.1), (3, 0.2)]) == pytest.approx(0.4 - 0.2)  # order does not matter
    assert late_gain([]) is None and late_gain([(1, 0.5)]) is None
    assert late_gain([(1, 0.5), (1, 0.6)]) is None  # one step: nothing before the cut


def test_late_gain_judges_the_final_learning_rate_phase():
    """A drop at 600 of 800 lifts the curve inside the last quarter; after it the curve is flat."""
    from spine_det.benchmark.curves import LATE_GAIN_TOLERANCE, late_gain

    curve = [(99, 0.35), (199, 0.72), (299, 0.67), (399, 0.63), (499, 0.76), (599, 0.78), (699, 0.81), (799, 0.82)]
    assert late_gain(curve) == pytest.approx(0.82 - 0.78) and late_gain(curve) > LATE_GAIN_TOLERANCE
    assert late_gain(curve, lr_steps=[600]) == pytest.approx(0.82 - 0.81)  # 699 vs 799, both after the drop
    rising_after = curve[:-1] + [(799, 0.86)]
    assert late_gain(rising_after, lr_steps=[600]) == pytest.approx(0.86 - 0.81)  # still learning: flagged
    # one point after the drop: nothing to judge the phase by, the whole run is judged and the jump counts
    assert late_gain(curve[:-1], lr_steps=[600]) == pytest.approx(late_gain(curve[:-1]))
    assert late_gain(curve, lr_steps=[900]) == pytest.approx(late_gain(curve))  # a step after the end: ignored


def test_detectron2_lr_steps_come_from_the_runs_config(tmp_path):
    import yaml

    from spine_det.benchmark.curves import detectron2_curves, detectron2_lr_steps

    assert detectron2_lr_steps(tmp_path) == []
    solver = {"LR_SCHEDULER_NAME": "WarmupMultiStepLR", "STEPS": [600, 900], "MAX_ITER": 800, "GAMMA": 0.1}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"SOLVER": solver}))
    assert detectron2_lr_steps(tmp_path) == [600]  # 900 is past the end
    assert detectron2_curves(tmp_path, "lat_anterior_line")["lr_steps"] == [600]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"SOLVER": {**solver, "LR_SCHEDULER_NAME": "WarmupCosineLR"}}))
    assert detectron2_lr_steps(tmp_path) == []


def test_table_flags_a_model_still_learning_in_any_seed(tmp_path):
    res = _results()
    for r in res["segmentation"]:
        r["late_gain"] = {"maskrcnn": {0: 0.001, 1: 0.15, 2: None}, "linknet": {0: -0.01}}
    paths = tables.write_results(tmp_path, res)
    md = paths["md"].read_text()
    seg = md.split("## Segmentation")[1].split("## Cost")[0]
    rows = [line for line in seg.splitlines() if line.startswith("| ") and not line.startswith("| task")]
    assert rows and all(line.count("↗") == 1 for line in rows)
    head = [c.strip() for c in seg.splitlines()[next(i for i, l in enumerate(seg.splitlines()) if l.startswith("| task"))].split("|")]
    for line in rows:
        cells = [c.strip() for c in line.split("|")]
        assert cells[head.index("Mask R-CNN")].endswith("↗") and not cells[head.index("LinkNet")].endswith("↗")
    assert "not converged" in seg
    csv_rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert {r["metric"] for r in csv_rows if r["model"] == "maskrcnn" and "gain" in r["metric"]} == \
        {"val_dice_gain_last_quarter_seed0", "val_dice_gain_last_quarter_seed1", "val_dice_gain_last_quarter_seed2"}
    for r in res["segmentation"]:
        r["late_gain"] = {"maskrcnn": {0: 0.01}}
    assert "↗" not in tables.render_markdown(res)


def test_maskrcnn_from_linknet_opts_name_the_checkpoint_and_its_hash(tmp_path):
    from types import SimpleNamespace

    from spine_det.benchmark import plan
    from spine_det.benchmark.runner import file_sha1
    from spine_det.modeling.families.maskrcnn import linknet_init_opts
    from spine_det.modeling.registry import get_family

    spec = get_family("maskrcnn")
    with pytest.raises(FileNotFoundError, match="LinkNet unit"):
        linknet_init_opts(tmp_path, "ap_vertebra", 0)
    # only --maskrcnn-init linknet asks for them
    assert spec.benchmark.unit_opts(tmp_path, "ap_vertebra", 0, SimpleNamespace(family_args={"maskrcnn_init": "config"})) == []
    ck = tmp_path / "linknet" / "ap_vertebra-seed2" / "model_best.pth"
    ck.parent.mkdir(parents=True)
    ck.write_bytes(b"weights")
    opts = spec.benchmark.unit_opts(tmp_path, "ap_vertebra", 2, SimpleNamespace(family_args={"maskrcnn_init": "linknet"}))
    pairs = dict(zip(opts[::2], opts[1::2]))
    assert pairs["MODEL.WEIGHTS"] == str(ck) and pairs["MODEL.RESNETS.NORM"] == "FrozenBN"
    assert pairs["SPINE.INIT_CHECKPOINT_SHA1"] == file_sha1(ck)[:12]
    unit = plan.training_unit(spec, "ap_vertebra", tmp_path, str(tmp_path), "cpu", 2, 0, opts=opts)
    ck.write_bytes(b"retrained")  # a new LinkNet: the Mask R-CNN unit built from it has another spec
    unit2 = plan.training_unit(spec, "ap_vertebra", tmp_path, str(tmp_path), "cpu", 2, 0,
                               opts=linknet_init_opts(tmp_path, "ap_vertebra", 2))
    assert unit.spec != unit2.spec


def test_maskrcnn_init_from_a_checkpoint_path_starts_every_layer_from_it(tmp_path):
    """--maskrcnn-init PATH (e.g. the phantom-trained unit): MODEL.WEIGHTS, every stage trained, the file's hash
    in the unit's spec; anything that is not a Mask R-CNN state dict, or no file, is refused before training."""
    import argparse
    from types import SimpleNamespace

    import torch

    from spine_det.benchmark import plan
    from spine_det.benchmark.runner import file_sha1
    from spine_det.modeling.families.maskrcnn import init_choice
    from spine_det.modeling.registry import get_family

    spec = get_family("maskrcnn")
    ck = tmp_path / "phantom" / "model_best.pth"
    ck.parent.mkdir()
    torch.save({"model": {"backbone.bottom_up.stem.conv1.weight": torch.zeros(1)}, "iteration": 999}, ck)
    assert init_choice("config") == "config" and init_choice("linknet") == "linknet"
    assert init_choice(str(ck)) == str(ck.resolve())
    with pytest.raises(argparse.ArgumentTypeError, match="not found"):
        init_choice(str(tmp_path / "nope.pth"))
    options = SimpleNamespace(family_args={"maskrcnn_init": str(ck)})
    opts = spec.benchmark.unit_opts(tmp_path, "ap_vertebra", 0, options)
    pairs = dict(zip(opts[::2], opts[1::2]))
    assert pairs == {"MODEL.WEIGHTS": str(ck.resolve()), "MODEL.BACKBONE.FREEZE_AT": "0",
                     "SPINE.INIT_CHECKPOINT_SHA1": file_sha1(ck)[:12]}
    assert "model_best.pth" in spec.benchmark.note(options)[1]
    unit = plan.training_unit(spec, "ap_vertebra", tmp_path, str(tmp_path), "cpu", 0, 0, opts=opts)
    torch.save({"model": {"backbone.bottom_up.stem.conv1.weight": torch.ones(1)}}, ck)  # retrained starting point
    unit2 = plan.training_unit(spec, "ap_vertebra", tmp_path, str(tmp_path), "cpu", 0, 0,
                               opts=spec.benchmark.unit_opts(tmp_path, "ap_vertebra", 0, options))
    assert unit.spec != unit2.spec
    torch.save({"state_dict": {"encoder.conv1.weight": torch.zeros(1)}}, ck)  # e.g. a LinkNet
    with pytest.raises(ValueError, match="not a Detectron2 Mask R-CNN checkpoint"):
        spec.benchmark.unit_opts(tmp_path, "ap_vertebra", 0, options)


# --------------------------------------------------------------------------- transfer (a second data set)


def test_transfer_unit_scores_the_trained_checkpoint_on_the_other_data_and_writes_elsewhere(tmp_path):
    from spine_det.benchmark import plan
    from spine_det.modeling.registry import get_family

    spec = get_family("maskrcnn")
    real = tmp_path / "real"
    real.mkdir()
    trained = plan.training_unit(spec, "ap_vertebra", tmp_path / "runs", str(tmp_path / "phantom"), "cpu", 1, 0,
                                 opts=["SOLVER.MAX_ITER", "9"])
    trained.out_dir.mkdir(parents=True)
    ck = trained.out_dir / "model_best.pth"
    ck.write_bytes(b"weights")
    unit = plan.transfer_unit(spec, trained, str(real), tmp_path / "runs" / "transfer-real")
    cmd = unit.commands["eval"]
    assert list(unit.commands) == ["eval"] and "--eval-only" in cmd  # never trains
    assert cmd[cmd.index("--data-root") + 1] == str(real) and cmd[-2:] == ["MODEL.WEIGHTS", str(ck)]
    assert cmd[cmd.index("--config-file") + 1] == trained.commands["train"][trained.commands["train"].index("--config-file") + 1]
    assert "SOLVER.MAX_ITER" in cmd  # the same options: the model sees the input it was trained at
    out = Path(cmd[cmd.index("OUTPUT_DIR") + 1])
    assert out == unit.out_dir == tmp_path / "runs" / "transfer-real" / "maskrcnn" / "ap_vertebra-seed1"
    assert not out.is_relative_to(trained.out_dir) and unit.name == "maskrcnn-ap_vertebra-seed1-on-real"
    assert unit.checkpoint_path() == ck.resolve() and unit.spec["trained"] == trained.spec

    # finished once its result names the checkpoint; retraining the model scores it again
    def fake(cmd, log_path, **kw):
        unit.result_path.parent.mkdir(parents=True, exist_ok=True)
        unit.result_path.write_text(json.dumps({"dice": 0.4, "checkpoint": str(ck)}))
        return ProcessResult(0, 0.1, 10.0)

    assert not run_unit(unit, tmp_path / "logs", runner=fake)["skipped"]
    assert run_unit(unit, tmp_path / "logs", runner=_never)["skipped"]
    assert ck.read_bytes() == b"weights" and not (trained.out_dir / "inference").exists()  # the trained run untouched
    ck.write_bytes(b"retrained")
    assert "changed" in finished_reason(unit)


def test_transfer_table_is_its_own_section_and_csv_source(tmp_path):
    res = _results()
    res["header"]["seeds"] = [0, 1]
    stats = tables.seed_statistics({0: {"dice": 0.50, "jaccard": 0.3, "tpr": 0.6}, 1: {"dice": 0.56, "jaccard": 0.4, "tpr": 0.7}})
    res["transfer"] = {"data": "datasets/aasce", "data_summary": "609 patients", "test_patients": 128, "rows": [
        {"task": "ap_vertebra", "test_images": 128, "models": {"otsu": {"dice": 0.2, "jaccard": 0.1, "tpr": 0.9},
                                                            "linknet": {"dice": 0.50, "jaccard": 0.3, "tpr": 0.6}},
         "seeds": {"linknet": stats}}]}
    paths = tables.write_results(tmp_path, res)
    md = paths["md"].read_text()
    seg, rest = md.split("## Transfer", 1)
    assert "0.5300 ± 0.0424" not in seg and "0.5300 ± 0.0424 / 0.3500 / 0.6500 (n=2)" in rest.split("## Cost")[0]
    assert "`output/demo/data`, scored on `datasets/aasce`" in rest and "128 test patients" in rest
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    moved = [r for r in rows if r["section"] == "transfer"]
    assert moved and all("scored on datasets/aasce" in r["source"] for r in moved)
    assert {float(r["value"]) for r in moved if r["metric"] == "dice" and r["model"] == "otsu"} == {0.2}
    assert "## Transfer" not in tables.render_markdown(_results())  # no second data set, no section

"""The whole benchmark: data -> Otsu -> one unit per registered model family, task and seed -> cost ->
classifier -> tables, figures.

The model families come from :mod:`spine_det.modeling.registry` (in their ``order``); nothing here
names one. What a unit gives is kept as one result record per (family, task, seed) (:mod:`.records`,
written to ``records/`` when the unit finishes); every table and figure is built from the list of records.

Every step is resumable: finished units are reused (see :mod:`.runner`), the
cost of a unit is re-measured only when its checkpoint changed, Otsu is cheap
and recomputed, and the tables are rewritten (atomically) after every unit so
an interrupted run still leaves readable, partial results.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from spine_det.benchmark import cost as cost_mod
from spine_det.benchmark import figures, plan
from spine_det.benchmark.baselines import otsu_predict, run_otsu
from spine_det.benchmark.records import (RECORDS_DIR, RecordStore, ResultRecord, cost_rows, segmentation_rows,
                                         training_curves, transfer_rows)
from spine_det.benchmark.reported import reported_rows
from spine_det.benchmark.runner import (Unit, UnitError, run_logged, run_unit, train_cpu_s, train_peak_rss_mb,
                                        train_wall_s)
from spine_det.benchmark.tables import OTSU, make_header, model_names, write_results
from spine_det.data.io import read_image
from spine_det.data.prepare import prepare_dataset
from spine_det.engine.predictor import build_predictor
from spine_det.evaluation.metrics import ScoreTable
from spine_det.modeling.registry import ModelFamily, families, get_family, unit_dir
from spine_det.utils.fileio import atomic_write_json

logger = logging.getLogger(__name__)


@dataclass
class BenchmarkOptions:
    data_root: str
    out: Path
    tasks: List[str]
    profile: str = "cpu"
    seed: int = 0
    seeds: List[int] = field(default_factory=list)  # several training seeds (first = ``seed``); empty: [seed]
    split_seed: int = 0
    device: Optional[str] = None  # None: each tool's config decides
    skip_models: List[str] = field(default_factory=list)  # family keys not to run
    models: Optional[List[str]] = None  # family keys to run; None: every family whose benchmark adapter says default
    skip_classifier: bool = False
    force: bool = False
    fail_fast: bool = False
    echo: bool = False
    cost_images: int = 8
    figure_images: int = 4
    model_opts: Dict[str, List[str]] = field(default_factory=dict)  # family key -> its tool's KEY VALUE overrides
    # the families' own benchmark options (BenchmarkAdapter.benchmark_args), by argparse dest
    family_args: Dict[str, Any] = field(default_factory=dict)
    classifier_opts: List[str] = field(default_factory=list)
    # another data set (e.g. real radiographs) on whose test split every trained model is also scored,
    # untouched by training, checkpoint selection and threshold tuning; None: no transfer table
    transfer_root: Optional[str] = None

    def model_families(self) -> List[ModelFamily]:
        """The registered families this benchmark runs (not skipped), in order."""
        chosen = [s for s in families() if (s.key in self.models if self.models is not None else s.benchmark.default)]
        return [s for s in chosen if s.key not in self.skip_models]


def _cost_device(opts: BenchmarkOptions) -> str:
    if opts.device:
        return opts.device
    if opts.profile == "cpu":
        return "cpu"
    import torch  # lazy: start-up (torch/Detectron2; this module stays light)

    return "cuda" if torch.cuda.is_available() else "cpu"


def _read_json(path: Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _test_images(manifest: Any, tasks: List[str]) -> Dict[str, int]:
    return {t: len(manifest.select(split="test", task=t)) for t in tasks}


_CLS_NAMES = {"ap": "AP model", "lat": "LAT model", "average": "average of AP and LAT", "avg": "average of AP and LAT"}


def classification_table(metrics: Dict[str, Any]) -> Dict[str, Any]:
    """Rows (AP, LAT, average) of the classifier's ``classification_metrics.json``, test split when present.

    Tolerant of where the writer puts them: top level or under ``"test"``;
    the selected one is named by ``"selected"`` (a name or ``{"name": ...}``).
    """
    src = metrics.get("test") if isinstance(metrics.get("test"), dict) else metrics
    selected = metrics.get("selected") or metrics.get("selected_on_val") or src.get("selected")
    if isinstance(selected, dict):
        selected = selected.get("name") or selected.get("model")
    rows = []
    for key, name in _CLS_NAMES.items():
        d = next((v for k, v in src.items() if isinstance(v, dict) and k.lower() == key), None)
        if d is None or (key == "avg" and any(r["key"] == "average" for r in rows)):
            continue
        vals = {m: d.get(m, d.get(m.upper())) for m in ("accuracy", "sensitivity", "specificity")}
        vals["auc"] = d.get("auc", d.get("roc_auc", d.get("AUC")))
        rows.append({"key": key, "name": name, **vals, "n": d.get("n"),
                     "confusion_matrix": d.get("confusion_matrix"),
                     "selected": isinstance(selected, str) and selected.lower() in (key, name.lower())})
    backbone = metrics.get("backbone")
    if isinstance(backbone, dict):
        backbone = ", ".join(f"{k}: {v}" for k, v in backbone.items())
    return {"rows": rows, "selected": selected, "backbone": backbone,
            "test_patients": src.get("patients"), "raw": metrics}


def morph_source_name(source: str) -> str:
    """What a morphometry source is, in words: ground truth, or a family's lat_vertebra masks."""
    if source == "gt":
        return "ground-truth masks"
    try:
        return f"{get_family(source).label} lat_vertebra masks"
    except KeyError:
        return source


def morphometry_markdown(m: Dict[str, Any], source: str = "gt") -> str:
    def f(x: Any, p: int = 2) -> str:
        return "–" if x is None or (isinstance(x, float) and x != x) else f"{x:.{p}f}"

    return (f"From {morph_source_name(source)} of the test patients ({m.get('patients', '–')} patients, "
            f"{m.get('matched_levels', '–')}/{m.get('true_levels', '–')} levels matched): height MAE "
            f"{f(m.get('height_mae_pct'))} % of the true height, Genant grade kappa {f(m.get('grade_kappa_linear'), 3)}, "
            f"patient call accuracy {f(m.get('patient_accuracy'), 3)} (sensitivity {f(m.get('patient_sensitivity'), 3)}, "
            f"specificity {f(m.get('patient_specificity'), 3)}).")


class Benchmark:
    """Runs the units of one benchmark and assembles its results."""

    def __init__(self, opts: BenchmarkOptions) -> None:
        self.o = opts
        self.out = Path(opts.out)
        self.runs_dir = self.out / "runs"
        self.log_dir = self.out / "logs"
        self.units: List[Dict[str, Any]] = []  # the units table: status, time and log of every unit run
        # one record per (family, task, seed), Otsu's included: scores, curves, cost, transfer scores
        self.records = RecordStore(self.out / RECORDS_DIR)
        self.other_costs: List[Dict[str, Any]] = []  # the cost table's rows of the classifier and morphometry
        self.classification: Optional[Dict[str, Any]] = None
        self.morphometry: Optional[Dict[str, Any]] = None
        self.prepared = None
        self.transfer_prepared = None

    # -- steps -------------------------------------------------------------------------
    def prepare(self) -> None:
        self.prepared = prepare_dataset(self.o.data_root, seed=self.o.split_seed, convert=False)
        logger.info("data: %s", self.prepared.manifest.summary())
        missing = [t for t in self.o.tasks if not self.prepared.manifest.select(split="test", task=t)]
        if missing:
            logger.warning("no test images with masks for %s: their rows stay empty", ", ".join(missing))
        if self.o.transfer_root:
            self.transfer_prepared = prepare_dataset(self.o.transfer_root, seed=self.o.split_seed, convert=False)
            logger.info("transfer data: %s", self.transfer_prepared.manifest.summary())
            missing = [t for t in self.o.tasks if not self.transfer_prepared.manifest.select(split="test", task=t)]
            if missing:
                logger.warning("the transfer data set has no test images with masks for %s: not scored there",
                               ", ".join(missing))

    @property
    def transfer_dir(self) -> Path:
        """``runs/transfer-<name>``: where models trained here are scored on the transfer data set."""
        return self.runs_dir / f"transfer-{plan.transfer_name(str(self.o.transfer_root))}"

    def transfer_tasks(self) -> List[str]:
        """The tasks with test images in the transfer data set (none without one)."""
        if self.transfer_prepared is None:
            return []
        return [t for t in self.o.tasks if self.transfer_prepared.manifest.select(split="test", task=t)]

    @property
    def manifest(self):
        return self.prepared.manifest

    @property
    def classifier_offered(self) -> bool:
        """The classifier (and the morphometry call) need labelled patients with both views."""
        m = self.manifest
        return m.labelled and all(m.select(view=v) for v in ("ap", "lat"))

    def run_otsu(self) -> None:
        t0 = time.perf_counter()
        res = run_otsu(self.manifest, self.o.tasks, self.runs_dir / OTSU)
        for t, s in res.items():
            result = self.runs_dir / OTSU / t / "inference" / f"spine_{t}_test" / "semantic_metrics.json"
            self.records.put(ResultRecord(OTSU, t, self.seeds[0], scores=s, result_file=str(result)))
        self.units.append({"unit": OTSU, "status": "computed", "wall_s": time.perf_counter() - t0, "log": ""})
        if self.transfer_tasks():
            t0 = time.perf_counter()
            for t, s in run_otsu(self.transfer_prepared.manifest, self.transfer_tasks(), self.transfer_dir / OTSU).items():
                self.records.update(OTSU, t, self.seeds[0], transfer=s)
            self.units.append({"unit": f"{OTSU}-on-{plan.transfer_name(str(self.o.transfer_root))}", "status": "computed",
                               "wall_s": time.perf_counter() - t0, "log": ""})

    @property
    def model_keys(self) -> List[str]:
        """The table's model columns: Otsu, then every family this benchmark runs."""
        return [OTSU, *(s.key for s in self.o.model_families())]

    @property
    def seeds(self) -> List[int]:
        """Training seeds, the first one (``--seed``) first; every segmentation unit runs once per seed."""
        return list(dict.fromkeys(self.o.seeds or [self.o.seed]))

    def seg_units(self, model: Optional[str] = None) -> List[Unit]:
        """One unit per family (in registry order), task and seed (or only ``model``'s). A family's
        ``plan_opts`` may depend on an earlier family's checkpoint (Mask R-CNN from LinkNet): build a
        family's units when its turn comes, so that the checkpoint's hash is in their spec."""
        o = self.o
        units = []
        for spec in o.model_families():
            if model is not None and spec.key != model:
                continue
            for t in o.tasks:
                for seed in self.seeds:
                    opts = spec.benchmark.unit_opts(self.runs_dir, t, seed, o) + list(o.model_opts.get(spec.key, []))
                    units.append(plan.training_unit(spec, t, self.runs_dir, o.data_root, o.profile, seed, o.split_seed,
                                                    o.device, opts))
        return units

    def run_transfer(self, trained: Unit) -> None:
        """Score a trained unit's checkpoint on the transfer data set's test split (its own unit)."""
        unit = plan.transfer_unit(get_family(trained.model), trained, str(self.o.transfer_root), self.transfer_dir)
        logger.info("%s: scoring on %s", trained.name, self.o.transfer_root)
        if self.run_one(unit) is None:
            return
        seed = int(trained.spec["seed"])  # as transfer_unit reads it: every training unit's spec holds its seed
        self.records.update(trained.model, str(trained.task), seed, transfer=_read_json(unit.result_path) or {})

    def run_one(self, unit: Unit, i: Optional[int] = None, n: Optional[int] = None) -> Optional[Dict[str, Any]]:
        """Run (or reuse) one unit and record it in the units table; its stamp, None when it failed."""
        if i is not None:
            logger.info("[%d/%d] %s", i, n, unit.name)
        t0 = time.perf_counter()
        try:
            stamp = run_unit(unit, self.log_dir, force=self.o.force, echo=self.o.echo)
        except UnitError as e:
            logger.error("%s", e)
            self.units.append({"unit": unit.name, "status": "FAILED", "wall_s": time.perf_counter() - t0,
                               "log": str(self.log_dir / f"{unit.name}.log"), "error": str(e)})
            if self.o.fail_fast:
                raise
            return None
        self.units.append({"unit": unit.name, "status": "reused" if stamp.get("skipped") else "ran",
                           "wall_s": time.perf_counter() - t0, "train_wall_s": train_wall_s(stamp),
                           "train_cpu_s": train_cpu_s(stamp), "log": str(self.log_dir / f"{unit.name}.log")})
        return stamp

    def collect_seg(self, unit: Unit, stamp: Dict[str, Any]) -> None:
        """The record of a finished training unit: test scores, training curves and, for the first seed
        (whose curves, cost and overlays the tables and figures show), its cost."""
        task = unit.task
        assert task is not None
        seed = int(unit.spec.get("seed", self.o.seed))
        family = get_family(unit.model)
        n_train = len(self.manifest.select(split="train", task=task))
        curves = family.benchmark.curves(unit.out_dir, task, n_train)
        cost = self.unit_cost(unit, stamp, family, curves) if seed == self.seeds[0] else None
        self.records.put(ResultRecord(unit.model, task, seed, scores=_read_json(unit.result_path) or {},
                                      result_file=str(unit.result_path), curves=curves, cost=cost))

    def unit_cost(self, unit: Unit, stamp: Dict[str, Any], family: ModelFamily, curves: Dict[str, Any]) -> Dict[str, Any]:
        """The cost table's values of a trained unit: training time and memory, s/iter, inference cost."""
        c = self.measure_cost(unit, stamp)
        train_mem = train_peak_rss_mb(stamp)
        tool_mem = family.benchmark.train_peak_memory_mb(self.log_dir / f"{unit.name}.log")  # e.g. Detectron2's max_mem
        return {
            "train_wall_s": train_wall_s(stamp), "train_cpu_s": train_cpu_s(stamp),
            "s_per_iter": curves.get("s_per_iter"), "s_per_iter_note": curves.get("s_per_iter_note", ""),
            "iterations": curves.get("iterations"), "images_per_s": c.get("images_per_s"),
            "parameters": c.get("parameters"), "gflops": c.get("gflops"),
            "train_peak_memory_mb": tool_mem if tool_mem else train_mem,
            "inference_peak_memory_mb": c.get("peak_memory_mb"), "memory_kind": c.get("memory_kind"),
            "cost_error": c.get("error"),
        }

    def measure_cost(self, unit: Unit, stamp: Dict[str, Any]) -> Dict[str, Any]:
        """Inference cost in a fresh process; cached per checkpoint hash."""
        path = unit.out_dir / cost_mod.COST_FILE
        sha = (stamp.get("checkpoint") or {}).get("sha1")
        old = _read_json(path)
        asked = {"images": self.o.cost_images, "keep": self.o.figure_images}
        if old and sha and old.get("checkpoint_sha1") == sha and old.get("requested") == asked and not self.o.force:
            return old
        ck = unit.checkpoint_path()
        if ck is None or self.prepared is None or self.prepared.manifest_path is None:
            return {"error": "no checkpoint"}
        cmd = [sys.executable, "-m", "spine_det.benchmark.cost", "--model", unit.model, "--checkpoint", str(ck),
               "--task", str(unit.task), "--manifest", str(self.prepared.manifest_path), "--device", _cost_device(self.o),
               "--images", str(self.o.cost_images), "--keep", str(self.o.figure_images), "--out", str(unit.out_dir)]
        logger.info("%s: measuring inference cost", unit.name)
        res = run_logged(cmd, self.log_dir / f"{unit.name}-cost.log", label=f"{unit.name} cost")
        data = _read_json(path) if res.returncode == 0 else None
        if not data:
            logger.error("%s: cost measurement failed; see %s", unit.name, self.log_dir / f"{unit.name}-cost.log")
            return {"error": f"cost step failed (exit {res.returncode})"}
        data["checkpoint_sha1"] = sha
        data["wall_s"] = round(res.wall_s, 3)
        atomic_write_json(path, data)
        return data

    def run_classifier(self, i: int, n: int) -> None:
        if not plan.tool_available("train_classifier"):
            self.classification = {"note": "not run: spine_det.tools.train_classifier is not in this installation"}
            self.units.append({"unit": "classifier", "status": "missing tool", "wall_s": None, "log": ""})
            return
        o = self.o
        unit = plan.classifier_unit(self.runs_dir, o.data_root, o.profile, o.seed, o.split_seed, o.device, o.classifier_opts)
        stamp = self.run_one(unit, i, n)
        if stamp is None:
            self.classification = {"note": f"failed: see {self.log_dir / 'classifier.log'}"}
            return
        self.classification = classification_table(_read_json(unit.result_path) or {})
        self.other_costs.append({"model": "classifier", "task": None, "train_wall_s": train_wall_s(stamp),
                                 "train_cpu_s": train_cpu_s(stamp), "train_peak_memory_mb": train_peak_rss_mb(stamp)})

    def run_morphometry(self, i: int, n: int) -> None:
        """The morphometry patient call from ground-truth masks and, where this benchmark trained a
        ``lat_vertebra`` model, from its predicted masks; one classification row per source."""
        if not plan.tool_available("eval_morphometry"):
            return
        units = [("gt", plan.morphometry_unit(self.runs_dir, self.o.data_root, self.o.split_seed))]
        for spec in self.o.model_families():
            ck = self.runs_dir / spec.key / "lat_vertebra" / spec.checkpoints[0]
            if "lat_vertebra" in self.o.tasks and ck.is_file():
                units.append((spec.key, plan.morphometry_from_predictions_unit(
                    spec.key, ck, self.runs_dir, self.o.data_root, self.o.split_seed, self.o.device)))
        self.morphometry = {"sources": {}}
        for source, unit in units:
            try:
                stamp = self.run_one(unit, i, n)
            except Exception as e:  # noqa: BLE001  (one failed source must not lose the others)
                logger.error("%s failed: %s", unit.name, e)
                stamp = None
            if stamp is None:
                why = ("it needs the phantom's ground_truth.json" if source == "gt"
                       else "predicting the LAT images or fitting on them failed; it also needs ground_truth.json")
                self.morphometry["sources"][source] = {
                    "note": f"failed ({why}): see {self.log_dir / (unit.name + '.log')}"}
                continue
            m = (_read_json(unit.result_path) or {}).get("metrics", {})
            self.morphometry["sources"][source] = {"metrics": m, "markdown": morphometry_markdown(m, source)}
            if source != "gt":
                self.other_costs.append({"model": f"morphometry ({morph_source_name(source)})", "task": "lat_vertebra",
                                         "train_wall_s": train_wall_s(stamp), "train_cpu_s": train_cpu_s(stamp),
                                         "train_peak_memory_mb": train_peak_rss_mb(stamp)})
            row = {"key": f"morphometry_{source}" if source != "gt" else "morphometry",
                   "name": f"morphometry patient call ({morph_source_name(source)}, rule fitted on train)",
                   "accuracy": m.get("patient_accuracy"), "sensitivity": m.get("patient_sensitivity"),
                   "specificity": m.get("patient_specificity"), "auc": None, "selected": False,
                   "confusion_matrix": m.get("patient_confusion")}
            if self.classification is None or "rows" not in self.classification:
                self.classification = {"rows": [], "note": (self.classification or {}).get("note")}
            self.classification["rows"].append(row)
        self.morphometry["markdown"] = "\n\n".join(
            v.get("markdown") or f"{morph_source_name(k)}: {v.get('note')}" for k, v in self.morphometry["sources"].items())

    # -- results -----------------------------------------------------------------------
    def results(self) -> Dict[str, Any]:
        """Everything results.md/csv/json say, the tables' rows built from the list of records."""
        records = list(self.records)
        rows = segmentation_rows(records, self.o.tasks, self.model_keys, self.seeds,
                                 _test_images(self.manifest, self.o.tasks))

        conv = "Convention: " + ScoreTable().summary()["convention"] + "."
        header = make_header(self.o.data_root, self.manifest, self.o.tasks, self.o.seed, self.o.split_seed,
                             self.o.profile, _cost_device(self.o), seeds=self.seeds)
        header["models"] = {s.key: s.label for s in self.o.model_families()}
        header["notes"] = dict(n for n in (s.benchmark.note(self.o) for s in self.o.model_families()) if n)
        for s in self.o.model_families():  # a row's settings beyond its config: the --<key>-opts overrides
            if self.o.model_opts.get(s.key):
                header["notes"][f"{s.label} options"] = "`" + " ".join(map(str, self.o.model_opts[s.key])) + "`"
        return {
            "header": header,
            "convention": conv,
            "segmentation": rows,
            "transfer": self.transfer_results(),
            "reported": [r.__dict__ for r in reported_rows(self.o.tasks)],
            "cost": cost_rows(records, self.seeds[0]) + self.other_costs,
            "classification": self.classification,
            "morphometry": self.morphometry,
            "units": self.units,
        }

    def transfer_results(self) -> Optional[Dict[str, Any]]:
        """The transfer table: every trained model on the transfer data set's test split (None without one)."""
        if self.transfer_prepared is None:
            return None
        m = self.transfer_prepared.manifest
        rows = transfer_rows(list(self.records), self.transfer_tasks(), self.model_keys, self.seeds,
                             _test_images(m, self.transfer_tasks()))
        return {"data": str(self.o.transfer_root), "data_summary": m.summary(),
                "test_patients": len(m.patients(split="test")), "rows": rows}

    def write(self) -> Dict[str, Path]:
        return write_results(self.out, self.results())

    def draw(self) -> List[Path]:
        out = []
        fig_dir = self.out / "figures"
        for t in self.o.tasks:
            samples = self.manifest.select(split="test", task=t)
            keys = [s.key for s in samples]
            preds: Dict[str, Dict[str, Any]] = {}

            chosen = samples[: self.o.figure_images]
            preds[OTSU] = {s.key: otsu_predict(read_image(s.image)) for s in chosen}
            for spec in self.o.model_families():
                d = self.runs_dir / spec.key / t / cost_mod.PRED_DIR
                if d.is_dir():
                    preds[spec.key] = figures.load_predictions(d, keys)
            names = model_names()
            try:
                p = figures.overlay_grid(t, chosen, preds, fig_dir / f"{t}_overlays.png", names, self.o.figure_images)
                if p:
                    out.append(p)
                first, every = training_curves(list(self.records), t, self.seeds[0])
                p = figures.training_curves(t, first, fig_dir / f"{t}_curves.png", names, seed_curves=every)
                if p:
                    out.append(p)
            except Exception as e:  # noqa: BLE001  (a picture must not lose the tables)
                logger.error("figures for %s failed: %s: %s", t, type(e).__name__, e)
        for t in self.transfer_tasks():
            try:
                p = self.draw_transfer(t, fig_dir)
                if p:
                    out.append(p)
            except Exception as e:  # noqa: BLE001
                logger.error("transfer figure for %s failed: %s: %s", t, type(e).__name__, e)
        return out

    def draw_transfer(self, task: str, fig_dir: Path) -> Optional[Path]:
        """``<task>_on_<name>_overlays.png``: the first seed's models on the transfer data set's first test
        images (predicted here, with the same checkpoints and thresholds as its table)."""
        samples = self.transfer_prepared.manifest.select(split="test", task=task)[: self.o.figure_images]
        images = {s.key: read_image(s.image) for s in samples}
        preds: Dict[str, Dict[str, Any]] = {OTSU: {k: otsu_predict(img) for k, img in images.items()}}
        for spec in self.o.model_families():
            ck = unit_dir(self.runs_dir, spec.key, task, self.seeds[0]) / spec.checkpoints[0]
            record = self.records.get(spec.key, task, self.seeds[0])
            if record is not None and record.transfer is not None and ck.is_file():
                predictor = build_predictor(spec.key, str(ck), device=_cost_device(self.o))
                preds[spec.key] = {k: predictor(img)[task].mask for k, img in images.items()}
        name = plan.transfer_name(str(self.o.transfer_root))
        return figures.overlay_grid(task, samples, preds, fig_dir / f"{task}_on_{name}_overlays.png", model_names(),
                                    self.o.figure_images)

    def run(self) -> Dict[str, Any]:
        t0 = time.perf_counter()
        self.prepare()
        self.run_otsu()
        self.write()
        specs = self.o.model_families()
        # counted, not built: a family's units are built when its turn comes (it may start from another's)
        n = len(specs) * len(self.o.tasks) * len(self.seeds) + (0 if self.o.skip_classifier or not self.classifier_offered else 2)
        i = 0
        for spec in specs:
            why = spec.available()
            try:
                units = self.seg_units(spec.key) if why is None else []
            except FileNotFoundError as e:  # e.g. the checkpoint another family was to start from
                why = str(e)
            if why is not None:
                logger.error("%s: not run (%s)", spec.label, why)
                self.units.append({"unit": spec.key, "status": "FAILED", "wall_s": None, "log": "", "error": why})
                n -= len(self.o.tasks) * len(self.seeds)
                if self.o.fail_fast:
                    raise UnitError(f"{spec.label}: {why}")
                continue
            for unit in units:
                i += 1
                stamp = self.run_one(unit, i, n)
                if stamp is not None:
                    self.collect_seg(unit, stamp)
                    if unit.task in self.transfer_tasks():
                        self.run_transfer(unit)
                else:  # an earlier run's record of this unit is no result of this one
                    self.records.discard(unit.model, str(unit.task), int(unit.spec["seed"]))
                self.write()
        if not self.o.skip_classifier and self.classifier_offered:
            self.run_classifier(n - 1, n)
            self.write()
            self.run_morphometry(n, n)
        elif self.o.skip_classifier:
            self.classification = {"note": "skipped (--skip-classifier)"}
        else:
            self.classification = {"note": "not offered: the dataset has no Normal/Damaged labels or lacks a view"}
        paths = self.write()
        figs = self.draw()
        res = self.results()
        res["total_wall_s"] = time.perf_counter() - t0
        res["figures"] = [str(p) for p in figs]
        write_results(self.out, res)
        return {"results": res, "paths": paths, "figures": figs}

"""The benchmark's units, built from the tools' command lines.

Each unit is a subprocess ``python -m spine_det.tools.<name>``, so the runner needs to know only
their arguments (kept here, in one place). A model family's training unit is built from its
:class:`~spine_det.modeling.registry.ModelFamily` and its benchmark adapter (:func:`training_unit`), the same
for every family.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

from spine_det.benchmark.runner import Unit, file_sha1
from spine_det.config.paths import config_dir, resolve_config_file
from spine_det.config.profiles import profile_files
from spine_det.modeling.registry import ModelFamily, seed_suffix, unit_dir  # noqa: F401  (seed_suffix: its old home)

TOOLS_PACKAGE = "spine_det.tools"


def tool_module(name: str) -> str:
    """``spine_det.tools.<name>`` (``name`` with or without ``.py``)."""
    return f"{TOOLS_PACKAGE}.{name[:-3] if name.endswith('.py') else name}"


def tool_command(name: str, python: str = sys.executable) -> List[str]:
    """argv prefix that runs a tool of the package: ``python -m spine_det.tools.<name>``."""
    return [python, "-m", tool_module(name)]


def tool_available(name: str) -> bool:
    """Whether this installation has the tool ``spine_det.tools.<name>``."""
    try:
        return importlib.util.find_spec(tool_module(name)) is not None
    except (ImportError, ValueError):
        return False


def config_digest(config_file: Path, profile_yamls: Sequence[Path]) -> Dict[str, str]:
    """sha1 of the settings in each YAML file a unit reads (``config_file``, the profile files its tool
    merges, and the ``_BASE_`` chain of each), for its spec: changing one makes the unit unfinished, so a
    re-run does not reuse a model trained under the old settings. The parsed YAML is hashed, so
    editing a comment retrains nothing."""
    root = config_dir().resolve()
    digest: Dict[str, str] = {}

    def add(f: Path) -> Optional[str]:
        parsed = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        name = str(f.resolve().relative_to(root)) if f.resolve().is_relative_to(root) else str(f)
        digest[name] = hashlib.sha1(json.dumps(parsed, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return parsed.get("_BASE_") if isinstance(parsed, dict) else None

    seen: List[Path] = []
    for start in [Path(config_file), *map(Path, profile_yamls)]:
        f: Optional[Path] = start
        while f is not None and f not in seen:  # the file and its _BASE_ chain (profile files may have one too)
            seen.append(f)
            base = add(f)
            f = (f.parent / base) if base else None
    return digest


def _profile_arg(profile: str) -> Optional[str]:
    """The profile whose YAML files the classifier merges (none for ``full``), for its config digest."""
    return None if profile == "full" else profile


def _tool_argv(spec: ModelFamily, task: str, data_root: str, profile: str, out: Path, seed: int, split_seed: int,
               device: Optional[str], python: str) -> Tuple[List[str], List[str], Path]:
    """(tool and data part, KEY VALUE part, config file) of a family's command line on one task and seed."""
    config = resolve_config_file(spec.config_file(task))
    base = [python, "-m", spec.train_module, "--config-file", str(config), "--data-root", str(data_root),
            "--profile", profile]
    common = ["OUTPUT_DIR", str(out), "SEED", str(seed), "SPINE.SPLIT_SEED", str(split_seed)]
    if device:
        common += ["MODEL.DEVICE", device]
    return base, common, config


def training_unit(spec: ModelFamily, task: str, runs_dir: Path, data_root: str, profile: str, seed: int,
                  split_seed: int, device: Optional[str] = None, opts: Sequence[str] = (),
                  python: str = sys.executable) -> Unit:
    """One model family on one task and seed: ``python -m <spec.train_module>`` (train, ``--resume``,
    ``--eval-only`` scoring test), in ``runs/<key>/<task>[-seed<k>]``. ``opts`` go last (the family's
    ``plan_opts`` and the user's ``--<key>-opts``)."""
    out = unit_dir(runs_dir, spec.key, task, seed)
    base, common, config = _tool_argv(spec, task, data_root, profile, out, seed, split_seed, device, python)
    common += list(opts)
    return Unit(
        name=f"{spec.key}-{task}{seed_suffix(seed)}", model=spec.key, task=task, out_dir=out,
        commands={
            "train": base + common,
            "resume": base + ["--resume"] + common,
            "eval": base + ["--eval-only"] + common + spec.benchmark.eval_command_opts(out),
        },
        checkpoints=list(spec.checkpoints), result=f"inference/spine_{task}_test/semantic_metrics.json",
        spec={"profile": profile, "seed": seed, "split_seed": split_seed, "data_root": str(Path(data_root).resolve()),
              "opts": list(opts), "device": device, "configs": config_digest(config, spec.benchmark.profile_yamls(config, profile))},
        done_markers=list(spec.benchmark.done_markers),
    )


def transfer_name(transfer_root: str) -> str:
    """A file-safe name of a transfer data set: its folder's name (``datasets/aasce`` -> ``aasce``)."""
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(transfer_root).resolve().name)
    return name.strip("._") or "data"


def transfer_unit(spec: ModelFamily, trained: Unit, transfer_root: str, transfer_dir: Path,
                  python: str = sys.executable) -> Unit:
    """Score ``trained``'s checkpoint on the test split of another data set (e.g. a phantom-trained model
    on real radiographs): the family's ``--eval-only`` with ``--data-root transfer_root``, writing to
    ``transfer_dir/<key>/<task>[-seed<k>]``, never into the trained run. Profile, split seed, device and
    options are read from ``trained.spec``, so the model sees the input it was trained at; ``MODEL.WEIGHTS``
    (last) is the trained checkpoint, and tuned thresholds are read beside it. Nothing of
    ``transfer_root`` is trained on or tuned on. The checkpoint's hash is in the stamp: a retrained model
    is scored again."""
    assert trained.task is not None
    seed = int(trained.spec["seed"])
    ck = trained.checkpoint_path() or trained.out_dir / trained.checkpoints[0]
    out = unit_dir(transfer_dir, spec.key, trained.task, seed)
    split_seed = int(trained.spec["split_seed"])
    base, common, _ = _tool_argv(spec, trained.task, transfer_root, trained.spec["profile"], out, seed, split_seed,
                                 trained.spec.get("device"), python)
    cmd = (base + ["--eval-only"] + common + list(trained.spec.get("opts", [])) + spec.benchmark.eval_command_opts(trained.out_dir)
           + ["MODEL.WEIGHTS", str(ck)])
    return Unit(
        name=f"{spec.key}-{trained.task}{seed_suffix(seed)}-on-{transfer_name(transfer_root)}", model=spec.key,
        task=trained.task, out_dir=out, commands={"eval": cmd},
        checkpoints=[str(ck.resolve())],  # absolute: the trained run's file, outside this unit's folder
        result=trained.result,
        spec={"transfer_root": str(Path(transfer_root).resolve()), "split_seed": split_seed, "trained": trained.spec},
    )


def classifier_unit(runs_dir: Path, data_root: str, profile: str, seed: int, split_seed: int,
                    device: Optional[str] = None, opts: Sequence[str] = (), python: str = sys.executable) -> Unit:
    """The Normal/Damaged classifier (AP, LAT, average): ``spine_det.tools.train_classifier``."""
    out = runs_dir / "classifier"
    config = resolve_config_file("classifier/Base-Classifier.yaml")  # the tool's default config
    # always named: the tool's own default (auto) may differ from the benchmark's choice
    base = [*tool_command("train_classifier", python), "--data-root", str(data_root), "--profile", profile]
    common = ["OUTPUT_DIR", str(out), "SEED", str(seed), "SPINE.SPLIT_SEED", str(split_seed)]
    if device:
        common += ["MODEL.DEVICE", device]
    common += list(opts)
    return Unit(
        name="classifier", model="classifier", task=None, out_dir=out,
        commands={"train": base + common},  # the tool has no --resume: an unfinished run starts again
        checkpoints=["lat/model_best.pth", "ap/model_best.pth", "model_best_lat.pth", "model_best_ap.pth", "model_best.pth"],
        result="classification_metrics.json",
        spec={"profile": profile, "seed": seed, "split_seed": split_seed, "data_root": str(Path(data_root).resolve()),
              "opts": list(opts), "device": device,
              "configs": config_digest(config, profile_files(config, _profile_arg(profile),
                                                             config_dir() / "classifier" / "profiles"))},
    )


def morphometry_unit(runs_dir: Path, data_root: str, split_seed: int, python: str = sys.executable) -> Unit:
    """Morphometry's Normal/Damaged call from ground-truth masks, fitted on train, scored on test:
    ``spine_det.tools.eval_morphometry`` (needs the phantom's ground_truth.json files). The fitted
    ``morphometry_config.json`` plays the checkpoint."""
    out = runs_dir / "morphometry"
    cmd = [*tool_command("eval_morphometry", python), "--data-root", str(data_root), "--split", "test",
           "--out", str(out), "--seed", str(split_seed), "--quiet"]
    return Unit(
        name="morphometry", model="morphometry", task=None, out_dir=out, commands={"train": cmd},
        checkpoints=["morphometry_config.json"], result="morphometry_metrics.json",
        spec={"split_seed": split_seed, "data_root": str(Path(data_root).resolve()), "source": "gt"},
    )


def morphometry_from_predictions_unit(model: str, checkpoint: Path, runs_dir: Path, data_root: str, split_seed: int,
                                      device: Optional[str] = None, python: str = sys.executable) -> Unit:
    """Morphometry from one model's ``lat_vertebra`` predictions: ``spine_det.tools.predict`` on every LAT
    image (train too: the pad and the patient rule are fitted on train, as from ground truth), then
    ``spine_det.tools.eval_morphometry --source <model>`` scored on test. The model checkpoint's hash is in
    the spec, so a retrained model re-runs the unit."""

    out = runs_dir / f"morphometry_{model}"
    preds = out / "predictions"
    predict = [*tool_command("predict", python), "--model", model, "--checkpoint", str(checkpoint),
               "--data-root", str(data_root), "--split", "all", "--view", "lat", "--seed", str(split_seed),
               "--output", str(preds)]
    if device:
        predict += ["--device", device]
    evaluate = [*tool_command("eval_morphometry", python), "--data-root", str(data_root), "--split", "test",
                "--source", model, "--pred-dir", str(preds), "--out", str(out), "--seed", str(split_seed), "--quiet"]
    return Unit(
        name=f"morphometry-{model}", model="morphometry", task="lat_vertebra", out_dir=out,
        commands={"train": predict, "eval": evaluate},
        checkpoints=["morphometry_config.json"], result="morphometry_metrics.json",
        spec={"split_seed": split_seed, "data_root": str(Path(data_root).resolve()), "source": model,
              "model_checkpoint": {"file": str(checkpoint), "sha1": file_sha1(checkpoint)}},
    )

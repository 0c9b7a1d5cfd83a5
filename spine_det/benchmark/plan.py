"""The benchmark's units, built from the tools' command lines.

Each unit is a subprocess of a ``tools/*.py`` entry point, so the runner
needs to know only their arguments (kept here, in one place).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from spine_det import CONFIG_DIR, PROJECT_ROOT
from spine_det.benchmark.runner import Unit, file_sha1
from spine_det.config.linknet import profile_files as yacs_profile_files
from spine_det.config.maskrcnn import profile_files as maskrcnn_profile_files

TOOLS = PROJECT_ROOT / "tools"


def tool(name: str) -> Path:
    return TOOLS / name


def config_digest(config_file: Path, profile_yamls: Sequence[Path]) -> Dict[str, str]:
    """sha1 of the settings in each YAML file a unit reads (``config_file``, its ``_BASE_`` chain and
    the profile files its tool merges), for its spec: changing one makes the unit unfinished, so a
    re-run does not reuse a model trained under the old settings. The parsed YAML is hashed, so
    editing a comment retrains nothing."""
    import hashlib
    import json

    import yaml

    root = CONFIG_DIR.resolve()
    digest: Dict[str, str] = {}

    def add(f: Path) -> Optional[str]:
        parsed = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        name = str(f.resolve().relative_to(root)) if f.resolve().is_relative_to(root) else str(f)
        digest[name] = hashlib.sha1(json.dumps(parsed, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return parsed.get("_BASE_") if isinstance(parsed, dict) else None

    f: Optional[Path] = Path(config_file)
    seen: List[Path] = []
    while f is not None and f not in seen:  # the _BASE_ chain
        seen.append(f)
        base = add(f)
        f = (f.parent / base) if base else None
    for p in profile_yamls:
        add(p)
    return digest


def seed_suffix(seed: int) -> str:
    """Folder / unit-name suffix of a training seed: none for seed 0 (the runs of a single-seed
    benchmark keep their names), ``-seed<k>`` otherwise, so several seeds never share a folder."""
    return "" if int(seed) == 0 else f"-seed{int(seed)}"


def _profile_arg(profile: str) -> Optional[str]:
    """The ``--profile`` the LinkNet and classifier tools get (none for ``full``)."""
    return None if profile == "full" else profile


def linknet_init_opts(runs_dir: Path, task: str, seed: int) -> List[str]:
    """Mask R-CNN opts that start its R18 backbone from this benchmark's LinkNet of the same task and seed
    (spine_det.modeling.backbone_init): MODEL.WEIGHTS, FrozenBN, LinkNet's pixel statistics. The
    checkpoint's hash goes in too, so a retrained LinkNet retrains the Mask R-CNN that started from it."""
    from spine_det.modeling.backbone_init import linknet_pixel_stats

    ck = runs_dir / "linknet" / f"{task}{seed_suffix(seed)}" / "model_best.pth"
    if not ck.is_file():
        raise FileNotFoundError(f"Mask R-CNN from LinkNet: {ck} is missing (the LinkNet unit of {task} failed or was "
                                f"skipped)")
    mean, std = linknet_pixel_stats()
    return ["MODEL.WEIGHTS", str(ck), "MODEL.RESNETS.NORM", "FrozenBN",
            "MODEL.PIXEL_MEAN", str([round(v, 4) for v in mean]), "MODEL.PIXEL_STD", str([round(v, 4) for v in std]),
            "SPINE.INIT_CHECKPOINT_SHA1", file_sha1(ck)[:12]]


def maskrcnn_unit(task: str, runs_dir: Path, data_root: str, profile: str, seed: int, split_seed: int,
                  device: Optional[str] = None, opts: Sequence[str] = (), python: str = sys.executable) -> Unit:
    """Mask R-CNN on one task: ``tools/train_net.py`` (train, ``--resume``, ``--eval-only`` on test)."""
    out = runs_dir / "maskrcnn" / f"{task}{seed_suffix(seed)}"
    config = CONFIG_DIR / f"{task}.yaml"
    base = [python, str(tool("train_net.py")), "--config-file", str(config),
            "--data-root", str(data_root), "--profile", profile]
    common = ["OUTPUT_DIR", str(out), "SEED", str(seed), "SPINE.SPLIT_SEED", str(split_seed)]
    if device:
        common += ["MODEL.DEVICE", device]
    common += list(opts)
    ckpts = ["model_best.pth", "model_final.pth"]
    best = out / "model_best.pth"
    final = out / "model_final.pth"
    # eval-only scores whichever checkpoint the unit will be judged by (best, else final)
    weights = str(best if best.is_file() or not final.is_file() else final)
    return Unit(
        name=f"maskrcnn-{task}{seed_suffix(seed)}", model="maskrcnn", task=task, out_dir=out,
        commands={
            "train": base + common,
            "resume": base + ["--resume"] + common,
            "eval": base + ["--eval-only"] + common + ["MODEL.WEIGHTS", weights, "SPINE.EVAL.SPLITS", "('test',)"],
        },
        checkpoints=ckpts, result=f"inference/spine_{task}_test/semantic_metrics.json",
        spec={"profile": profile, "seed": seed, "split_seed": split_seed, "data_root": str(Path(data_root).resolve()),
              "opts": list(opts), "device": device, "configs": config_digest(config, maskrcnn_profile_files(config, profile))},
        done_markers=["model_final.pth"],
    )


def linknet_unit(task: str, runs_dir: Path, data_root: str, profile: str, seed: int, split_seed: int,
                 device: Optional[str] = None, opts: Sequence[str] = (), python: str = sys.executable) -> Unit:
    """LinkNet on one task: ``tools/train_linknet.py`` (its ``--resume`` is exact; ``--eval-only`` scores test)."""
    out = runs_dir / "linknet" / f"{task}{seed_suffix(seed)}"
    config = CONFIG_DIR / "linknet" / f"{task}.yaml"
    base = [python, str(tool("train_linknet.py")), "--config-file", str(config), "--data-root", str(data_root)]
    if _profile_arg(profile):
        base += ["--profile", profile]
    common = ["OUTPUT_DIR", str(out), "SEED", str(seed), "DATA.SEED", str(split_seed)]
    if device:
        common += ["MODEL.DEVICE", device]
    common += list(opts)
    return Unit(
        name=f"linknet-{task}{seed_suffix(seed)}", model="linknet", task=task, out_dir=out,
        commands={
            "train": base + common,
            "resume": base + ["--resume"] + common,
            "eval": base + ["--eval-only"] + common,
        },
        checkpoints=["model_best.pth"], result=f"inference/spine_{task}_test/semantic_metrics.json",
        spec={"profile": profile, "seed": seed, "split_seed": split_seed, "data_root": str(Path(data_root).resolve()),
              "opts": list(opts), "device": device,
              "configs": config_digest(config, yacs_profile_files(config, _profile_arg(profile)))},
    )


def classifier_unit(runs_dir: Path, data_root: str, profile: str, seed: int, split_seed: int,
                    device: Optional[str] = None, opts: Sequence[str] = (), python: str = sys.executable) -> Unit:
    """The Normal/Damaged classifier (AP, LAT, average): ``tools/train_classifier.py``."""
    out = runs_dir / "classifier"
    config = CONFIG_DIR / "classifier" / "Base-Classifier.yaml"  # the tool's default config
    base = [python, str(tool("train_classifier.py")), "--data-root", str(data_root)]
    if _profile_arg(profile):
        base += ["--profile", profile]
    common = ["OUTPUT_DIR", str(out), "SEED", str(seed), "DATA.SEED", str(split_seed)]
    if device:
        common += ["MODEL.DEVICE", device]
    common += list(opts)
    return Unit(
        name="classifier", model="classifier", task=None, out_dir=out,
        commands={"train": base + common},  # the tool has no --resume: an unfinished run starts again
        checkpoints=["model_best_lat.pth", "model_best_ap.pth", "model_best.pth"],
        result="classification_metrics.json",
        spec={"profile": profile, "seed": seed, "split_seed": split_seed, "data_root": str(Path(data_root).resolve()),
              "opts": list(opts), "device": device,
              "configs": config_digest(config, yacs_profile_files(config, _profile_arg(profile),
                                                                  CONFIG_DIR / "classifier" / "profiles"))},
    )


def morphometry_unit(runs_dir: Path, data_root: str, split_seed: int, python: str = sys.executable) -> Unit:
    """Morphometry's Normal/Damaged call from ground-truth masks, fitted on train, scored on test:
    ``tools/eval_morphometry.py`` (needs the phantom's ground_truth.json files). The fitted
    ``morphometry_config.json`` plays the checkpoint."""
    out = runs_dir / "morphometry"
    cmd = [python, str(tool("eval_morphometry.py")), "--data-root", str(data_root), "--split", "test",
           "--out", str(out), "--seed", str(split_seed), "--quiet"]
    return Unit(
        name="morphometry", model="morphometry", task=None, out_dir=out, commands={"train": cmd},
        checkpoints=["morphometry_config.json"], result="morphometry_metrics.json",
        spec={"split_seed": split_seed, "data_root": str(Path(data_root).resolve()), "source": "gt"},
    )


def morphometry_from_predictions_unit(model: str, checkpoint: Path, runs_dir: Path, data_root: str, split_seed: int,
                                      device: Optional[str] = None, python: str = sys.executable) -> Unit:
    """Morphometry from one model's ``lat_vertebra`` predictions: ``tools/predict.py`` on every LAT
    image (train too: the pad and the patient rule are fitted on train, as from ground truth), then
    ``tools/eval_morphometry.py --source <model>`` scored on test. The model checkpoint's hash is in
    the spec, so a retrained model re-runs the unit."""

    out = runs_dir / f"morphometry_{model}"
    preds = out / "predictions"
    predict = [python, str(tool("predict.py")), "--model", model, "--checkpoint", str(checkpoint),
               "--data-root", str(data_root), "--split", "all", "--view", "lat", "--seed", str(split_seed),
               "--output", str(preds)]
    if device:
        predict += ["--device", device]
    evaluate = [python, str(tool("eval_morphometry.py")), "--data-root", str(data_root), "--split", "test",
                "--source", model, "--pred-dir", str(preds), "--out", str(out), "--seed", str(split_seed), "--quiet"]
    return Unit(
        name=f"morphometry-{model}", model="morphometry", task="lat_vertebra", out_dir=out,
        commands={"train": predict, "eval": evaluate},
        checkpoints=["morphometry_config.json"], result="morphometry_metrics.json",
        spec={"split_seed": split_seed, "data_root": str(Path(data_root).resolve()), "source": model,
              "model_checkpoint": {"file": str(checkpoint), "sha1": file_sha1(checkpoint)}},
    )

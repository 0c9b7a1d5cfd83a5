"""nnU-Net v2 (Isensee et al., Nature Methods 2021), the self-configuring baseline, run on a spine_det task.

One run (``spine-det train-nnunet --config-file nnunet/<task>.yaml --data-root DATA``, the family
:mod:`spine_det.modeling.families.nnunet`) does what a user of nnU-Net would do by hand, inside the run's ``OUTPUT_DIR``:

1. **export** the task's images of the manifest to nnU-Net's raw format for 2-D natural images
   (``imagesTr/<case>_0000.png``, ``labelsTr/<case>.png`` with labels 0/1, ``imagesTs/``, a
   ``dataset.json`` with ``file_ending: .png``, one channel ``grey``) under ``OUTPUT_DIR/nnunet/`` —
   never inside the data root;
2. **plan and preprocess** through nnunetv2's Python API (fingerprint, ``ExperimentPlanner``, the
   ``2d`` configuration), with ``nnUNet_raw/preprocessed/results`` pointed at that work folder;
3. **train** nnunetv2's own ``nnUNetTrainer`` on the manifest's train split, validating on its val
   split (written as nnU-Net's ``splits_final.json``, fold 0), for ``NNUNET.EPOCHS`` x
   ``NNUNET.ITERS_PER_EPOCH`` (nnU-Net's 1000 x 250 by default; the cpu profile is a smoke run);
4. **predict** the test images with nnU-Net's sliding-window predictor and **score** them with the
   package's own metrics (:class:`~spine_det.evaluation.metrics.ScoreTable`) at the original
   resolution: ``OUTPUT_DIR/inference/spine_<task>_test/semantic_metrics.json``, as every family.

The trainer is nnunetv2's stock class, so the model folder also works with ``nnUNetv2_predict``.
Its checkpoint is read with ``weights_only=True`` before nnU-Net sees it (a planted pickle is refused,
never run). One task per run (label 1); several overlapping tasks would need nnU-Net's region training.
Needs the optional extra: ``pip install 'spine_det[nnunet]'``.
"""
from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from spine_det.config.nnunet import get_nnunet_cfg, load_nnunet_config, task_of
from spine_det.config.safe import merge_yaml_text
from spine_det.engine.predictor import SegmentationPredictor, TaskPrediction, check_grey_image
from spine_det.modeling.families.nnunet import INSTALL_HINT, KEY, available  # noqa: F401  (re-exported)
from spine_det.utils.checkpoint_io import CheckpointError, load_plain
from spine_det.utils.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from spine_det.utils.provenance import provenance

logger = logging.getLogger(__name__)

ENV_KEYS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
WORK_DIR = "nnunet"  # under OUTPUT_DIR
TRAINER = "nnUNetTrainer"
FOLD = 0
META_FILE = "spine_det_nnunet.json"  # beside nnU-Net's plans.json: task, export size, config
METRICS_LOG = "metrics.jsonl"
CHECKPOINT = "model_final.pth"  # in OUTPUT_DIR: link to nnU-Net's fold_0/checkpoint_final.pth


def resolve_device(name: str) -> Any:
    import torch  # lazy: start-up (torch/Detectron2; this module stays light)

    from spine_det.engine.distributed import check_device

    if name:
        check_device(name, "MODEL.DEVICE")  # one line for tpu / cuda without a GPU, not torch's traceback
    if name in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# --------------------------------------------------------------------------- nnU-Net's folders


def require_nnunet() -> None:
    if available() is not None:
        raise ModuleNotFoundError(INSTALL_HINT)


def bind_paths(work: Path, compile_model: bool = False) -> Dict[str, Path]:
    """Point nnU-Net's ``nnUNet_raw/preprocessed/results`` at ``work``.

    nnunetv2 reads these environment variables once, at import (``nnunetv2.paths``), and its modules
    copy them (``from nnunetv2.paths import nnUNet_raw``): set the variables for modules not imported
    yet and rebind the copies in those already imported, so that one process can run several datasets.
    """
    work = Path(work).resolve()
    paths = {k: work / k.split("_", 1)[1] for k in ENV_KEYS}
    for k, p in paths.items():
        p.mkdir(parents=True, exist_ok=True)
        os.environ[k] = str(p)
    os.environ["nnUNet_compile"] = "t" if compile_model else "f"
    for name, mod in list(sys.modules.items()):
        if name == "nnunetv2" or name.startswith("nnunetv2."):
            for k, p in paths.items():
                if hasattr(mod, k):
                    setattr(mod, k, str(p))
    return paths


def dataset_name(dataset_id: int, task: str) -> str:
    return f"Dataset{int(dataset_id):03d}_spine_{task}"


# --------------------------------------------------------------------------- 1. export


def _scaled(shape: Sequence[int], max_side: int) -> tuple:
    h, w = int(shape[0]), int(shape[1])
    if max_side <= 0 or max(h, w) <= max_side:
        return h, w
    s = max_side / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def _write_png(path: Path, a: np.ndarray) -> None:
    import cv2  # lazy: start-up (cv2; this module stays light)

    ok, buf = cv2.imencode(".png", a)
    if not ok:
        raise OSError(f"could not encode {path}")
    atomic_write_bytes(path, buf.tobytes())


def export_task(manifest: Any, task: str, raw_root: Path, dataset_id: int = 900, max_side: int = 0) -> Dict[str, Any]:
    """Write the task as an nnU-Net raw dataset under ``raw_root``; returns the case lists.

    Train and val cases (the manifest's splits) go to ``imagesTr``/``labelsTr``; test images with a
    mask of the task go to ``imagesTs``. Case ids are ``case_NNNN`` / ``test_NNNN`` (nnU-Net wants
    plain names); ``cases.json`` maps them back to the manifest's image keys.
    """
    import cv2  # lazy: start-up (cv2; this module stays light)

    from spine_det.data.io import read_image, read_mask

    root = Path(raw_root) / dataset_name(dataset_id, task)
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    cases: Dict[str, Dict[str, str]] = {"train": {}, "val": {}, "test": {}}
    n = 0
    for split in ("train", "val"):
        for s in manifest.select(split=split, task=task):
            case = f"case_{n:04d}"
            n += 1
            image = read_image(s.image)
            mask = read_mask(s.masks[task], shape=image.shape)
            h, w = _scaled(image.shape, max_side)
            if (h, w) != image.shape[:2]:
                image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
                mask = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) >= 0.5
            _write_png(root / "imagesTr" / f"{case}_0000.png", image)
            _write_png(root / "labelsTr" / f"{case}.png", mask.astype(np.uint8))
            cases[split][case] = s.key
    for i, s in enumerate(manifest.select(split="test", task=task)):
        case = f"test_{i:04d}"
        image = read_image(s.image)
        h, w = _scaled(image.shape, max_side)
        if (h, w) != image.shape[:2]:
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        _write_png(root / "imagesTs" / f"{case}_0000.png", image)
        cases["test"][case] = s.key
    if not cases["train"]:
        raise ValueError(f"no training images with a {task} mask in the manifest ({manifest.root})")
    atomic_write_json(root / "dataset.json", {
        "name": dataset_name(dataset_id, task),
        "description": f"spine_det task {task}, exported from {Path(manifest.root).name} (split seed {manifest.seed})",
        "channel_names": {"0": "grey"},
        "labels": {"background": 0, task: 1},
        "numTraining": len(cases["train"]) + len(cases["val"]),
        "file_ending": ".png",
        "overwrite_image_reader_writer": "NaturalImage2DIO",
    })
    atomic_write_json(root / "cases.json", cases)
    return {"folder": root, "cases": cases}


def write_splits(preprocessed_dataset: Path, cases: Dict[str, Dict[str, str]]) -> List[Dict[str, List[str]]]:
    """nnU-Net's ``splits_final.json`` with one fold: the manifest's train and val splits.
    With an empty val split nnU-Net validates on the training cases (said in the log)."""
    train, val = sorted(cases["train"]), sorted(cases["val"])
    if not val:
        logger.warning("the manifest has no validation images of this task: nnU-Net validates on the training cases")
        val = train
    splits = [{"train": train, "val": val}]
    atomic_write_json(Path(preprocessed_dataset) / "splits_final.json", splits)
    return splits


# --------------------------------------------------------------------------- 2.-3. plan, preprocess, train


def plan_and_preprocess(cfg: Any, dataset_id: int) -> str:
    """Fingerprint, plan and preprocess (the config's nnU-Net configuration only); returns the plans name."""
    # lazy: optional dependency (nnunet extra)
    from nnunetv2.experiment_planning.plan_and_preprocess_api import (extract_fingerprints, plan_experiments,
                                                                      preprocess)

    n = max(1, int(cfg.NNUNET.NUM_PROCESSES))
    extract_fingerprints([dataset_id], num_processes=n, check_dataset_integrity=False, clean=True, verbose=False)  # our export is well-formed
    plans = plan_experiments([dataset_id], cfg.NNUNET.PLANNER)
    if plans != cfg.NNUNET.PLANS:
        logger.info("planner %s wrote plans %s", cfg.NNUNET.PLANNER, plans)
    preprocess([dataset_id], plans, configurations=(cfg.NNUNET.CONFIGURATION,), num_processes=(n,), verbose=False)
    return plans


def model_folder(cfg: Any) -> Path:
    """nnU-Net's training output folder (holds plans.json, dataset.json, fold_0/)."""
    plans = cfg.NNUNET.PLANS
    return (Path(cfg.OUTPUT_DIR) / WORK_DIR / "results" / dataset_name(cfg.NNUNET.DATASET_ID, task_of(cfg))
            / f"{TRAINER}__{plans}__{cfg.NNUNET.CONFIGURATION}")


def final_checkpoint(cfg: Any) -> Path:
    return model_folder(cfg) / f"fold_{FOLD}" / "checkpoint_final.pth"


def link_checkpoint(out_dir: Path, target: Path) -> Path:
    """``OUTPUT_DIR/model_final.pth``: a relative symbolic link to nnU-Net's final checkpoint, so the run
    has one checkpoint name whatever the task or plans (the benchmark hashes it, ``--checkpoint`` takes it;
    :meth:`NNUNetPredictor.from_checkpoint` follows it to the model folder). Replaced atomically."""
    link = Path(out_dir) / CHECKPOINT
    tmp = link.with_name(f".{link.name}.tmp{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.relpath(Path(target).resolve(), Path(out_dir).resolve()), tmp)
    os.replace(tmp, link)
    return link


def _seed(seed: int) -> None:
    import torch  # lazy: start-up (torch/Detectron2; this module stays light)

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def write_metrics_log(trainer: Any, path: Path, iters_per_epoch: int) -> None:
    """nnU-Net's per-epoch log (train/val loss, pseudo Dice on val patches, epoch time) as ``metrics.jsonl``,
    each line naming the spine_det version that wrote it."""
    log = trainer.logger.local_logger.my_fantastic_logging if hasattr(trainer.logger, "local_logger") \
        else trainer.logger.my_fantastic_logging
    n = min(len(log.get("train_losses", [])), len(log.get("epoch_end_timestamps", [])))
    lines = []
    for e in range(n):
        lines.append(json.dumps({
            "epoch": e + 1, "loss": float(log["train_losses"][e]), "val_loss": float(log["val_losses"][e]),
            "val_dice": float(log["mean_fg_dice"][e]), "val_dice_ema": float(log["ema_fg_dice"][e]),
            "lr": float(log["lrs"][e]), "iters": int(iters_per_epoch),
            "time_s": round(float(log["epoch_end_timestamps"][e] - log["epoch_start_timestamps"][e]), 3),
            **provenance(),
        }))
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def train_nnunet(cfg: Any, manifest: Any, resume: bool = False) -> Dict[str, Any]:
    """Export, plan/preprocess, train; returns a summary with the final checkpoint's path."""
    require_nnunet()

    out = Path(cfg.OUTPUT_DIR)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", cfg.dump())
    task = task_of(cfg)
    final = final_checkpoint(cfg)
    if resume and final.is_file():
        logger.info("--resume: %s exists, training is finished", final)
        return {"checkpoint": str(link_checkpoint(out, final)), "resumed": True}
    paths = bind_paths(out / WORK_DIR, cfg.NNUNET.COMPILE)
    import torch  # lazy: start-up (torch/Detectron2; this module stays light)

    threads = torch.get_num_threads()
    # the planner sets torch's thread count from nnUNet_n_proc_DA (which must then be > 0)
    os.environ["nnUNet_n_proc_DA"] = str(max(1, int(cfg.NNUNET.NUM_PROCESSES)))
    _seed(int(cfg.SEED))
    t0 = time.perf_counter()
    exported = export_task(manifest, task, paths["nnUNet_raw"], cfg.NNUNET.DATASET_ID, int(cfg.NNUNET.MAX_SIDE))
    plans_name = plan_and_preprocess(cfg, int(cfg.NNUNET.DATASET_ID))
    if plans_name != cfg.NNUNET.PLANS:
        raise ValueError(f"NNUNET.PLANNER {cfg.NNUNET.PLANNER} writes plans {plans_name!r}; set NNUNET.PLANS {plans_name}")
    pre = paths["nnUNet_preprocessed"] / dataset_name(cfg.NNUNET.DATASET_ID, task)
    write_splits(pre, exported["cases"])
    prep_s = time.perf_counter() - t0
    torch.set_num_threads(threads)
    os.environ["nnUNet_n_proc_DA"] = str(max(0, int(cfg.NNUNET.NUM_PROCESSES)))  # 0: augmentation in-process

    from batchgenerators.utilities.file_and_folder_operations import load_json  # lazy: optional dependency (nnunet extra)
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    plans = load_json(str(pre / f"{plans_name}.json"))
    conf = cfg.NNUNET.CONFIGURATION
    if int(cfg.NNUNET.BATCH_SIZE) > 0:
        plans["configurations"][conf]["batch_size"] = int(cfg.NNUNET.BATCH_SIZE)
    plans["continue_training"] = bool(resume)  # nnunetv2 >= 2.6 pops it in the trainer
    device = resolve_device(cfg.MODEL.DEVICE)
    trainer = nnUNetTrainer(plans=plans, configuration=conf, fold=FOLD,
                            dataset_json=load_json(str(pre / "dataset.json")), device=device)
    trainer.num_epochs = int(cfg.NNUNET.EPOCHS)
    trainer.num_iterations_per_epoch = int(cfg.NNUNET.ITERS_PER_EPOCH)
    trainer.num_val_iterations_per_epoch = int(cfg.NNUNET.VAL_ITERS_PER_EPOCH)
    latest = Path(trainer.output_folder) / "checkpoint_latest.pth"
    if resume and latest.is_file():
        trainer.load_checkpoint(str(latest))
        logger.info("resumed nnU-Net training from %s (epoch %d)", latest, trainer.current_epoch)
    t1 = time.perf_counter()
    trainer.run_training()
    train_s = time.perf_counter() - t1
    write_metrics_log(trainer, out / METRICS_LOG, trainer.num_iterations_per_epoch)
    atomic_write_json(model_folder(cfg) / META_FILE, {
        "task": task, "max_side": int(cfg.NNUNET.MAX_SIDE), "configuration": conf, "fold": FOLD,
        "split_seed": int(cfg.SPINE.SPLIT_SEED), "seed": int(cfg.SEED), "cfg": cfg.dump(),
    })
    summary = {"checkpoint": str(link_checkpoint(out, final)), "epochs": trainer.num_epochs, "iters_per_epoch": trainer.num_iterations_per_epoch,
               "batch_size": trainer.batch_size, "patch_size": list(trainer.configuration_manager.patch_size),
               "prepare_s": round(prep_s, 1), "train_s": round(train_s, 1), "device": str(device), **provenance()}
    atomic_write_json(out / "train_summary.json", summary)
    logger.info("nnU-Net training done: %s", summary)
    return summary


# --------------------------------------------------------------------------- 4. predict, score


def _components(mask: np.ndarray) -> List[Dict[str, Any]]:
    import cv2  # lazy: start-up (cv2; this module stays light)

    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return [{"score": 1.0, "bbox": [int(v) for v in stats[k][:4]], "area": int(stats[k][4])} for k in range(1, n)]


class NNUNetPredictor(SegmentationPredictor):
    """``NNUNetPredictor.from_checkpoint("…/fold_0/checkpoint_final.pth")(grey_uint8) -> {task: TaskPrediction}``.

    The image is scaled as at export (``NNUNET.MAX_SIDE``), segmented by nnU-Net's sliding-window
    predictor (argmax of its softmax) and the label map is scaled back (nearest) to the image's size.
    Instances are the mask's 8-connected components (score 1: nnU-Net gives no instance scores).
    """

    family_key = KEY

    def __init__(self, model_dir: Path, checkpoint: Dict[str, Any], meta: Dict[str, Any], device: Any = "cpu",
                 mirroring: bool = True, tile_step: float = 0.5) -> None:
        require_nnunet()
        for k in ENV_KEYS:  # prediction needs none of them; set, nnunetv2's import does not warn that they are not
            os.environ.setdefault(k, str(model_dir))
        import torch  # lazy: start-up (torch/Detectron2; this module stays light)
        from batchgenerators.utilities.file_and_folder_operations import load_json
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
        from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
        from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        self.device = torch.device(device) if not isinstance(device, torch.device) else device
        self.tasks = [meta["task"]]
        self.max_side = int(meta.get("max_side", 0))
        self.meta = meta
        dataset_json = load_json(str(model_dir / "dataset.json"))
        plans_manager = PlansManager(load_json(str(model_dir / "plans.json")))
        conf = plans_manager.get_configuration(checkpoint["init_args"]["configuration"])
        net = nnUNetTrainer.build_network_architecture(
            plans_manager, conf, determine_num_input_channels(plans_manager, conf, dataset_json),
            plans_manager.get_label_manager(dataset_json).num_segmentation_heads, enable_deep_supervision=False)
        net.load_state_dict(checkpoint["network_weights"])
        self.predictor = nnUNetPredictor(tile_step_size=float(tile_step), use_gaussian=True, use_mirroring=bool(mirroring),
                                         perform_everything_on_device=self.device.type == "cuda", device=self.device,
                                         verbose=False, verbose_preprocessing=False, allow_tqdm=False)
        self.predictor.manual_initialization(net, plans_manager, conf, [checkpoint["network_weights"]], dataset_json,
                                             checkpoint.get("trainer_name", TRAINER),
                                             checkpoint.get("inference_allowed_mirroring_axes"))
        self.model = net  # for parameter counts
        self.checkpoint_info = {"epoch": checkpoint.get("current_epoch")}

    @classmethod
    def from_checkpoint(cls, checkpoint: str, config_file: Optional[str] = None, device: str = "cpu",
                        score_threshold: Optional[float] = None) -> "NNUNetPredictor":
        """``checkpoint``: nnU-Net's ``fold_<k>/checkpoint_*.pth`` inside a model folder trained here."""
        require_nnunet()
        path = Path(checkpoint).resolve()  # model_final.pth links into nnU-Net's model folder
        model_dir = path.parent.parent
        if not path.is_file():
            raise CheckpointError(f"{path}: no such nnU-Net checkpoint")
        if not (model_dir / "plans.json").is_file() or not (model_dir / "dataset.json").is_file():
            raise CheckpointError(f"{path}: not inside an nnU-Net model folder (no plans.json / dataset.json in {model_dir})")
        meta_p = model_dir / META_FILE
        if config_file:
            cfg = load_nnunet_config(config_file)
            meta = {"task": task_of(cfg), "max_side": int(cfg.NNUNET.MAX_SIDE)}
        elif meta_p.is_file():
            meta = json.loads(meta_p.read_text(encoding="utf-8"))
        else:
            raise CheckpointError(f"{path}: no {META_FILE} beside plans.json (trained elsewhere?); pass --config-file")
        ck = load_plain(path)  # weights_only: refuses a planted pickle
        if not isinstance(ck, dict) or "network_weights" not in ck or "init_args" not in ck:
            raise CheckpointError(f"{path}: not an nnU-Net v2 checkpoint (no network_weights / init_args)")
        mirroring, tile = True, 0.5
        if meta.get("cfg"):
            stored = merge_yaml_text(get_nnunet_cfg(), meta["cfg"], f"{meta_p} (its stored config)")
            mirroring, tile = bool(stored.NNUNET.MIRRORING), float(stored.NNUNET.TILE_STEP)
        return cls(model_dir, ck, meta, device=device, mirroring=mirroring, tile_step=tile)

    def sliding_windows(self, image: np.ndarray) -> int:
        """Forward passes of one patch per image: sliding-window tiles (an image smaller than the patch
        is padded to it) times the mirrored copies of test-time mirroring."""
        # lazy: optional dependency (nnunet extra)
        from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window

        p = self.predictor
        patch = [int(v) for v in p.configuration_manager.patch_size]
        size = [max(a, b) for a, b in zip(_scaled(image.shape, self.max_side), patch)]
        tiles = int(np.prod([len(s) for s in compute_steps_for_sliding_window(size, patch, p.tile_step_size)]))
        axes = p.allowed_mirroring_axes if p.use_mirroring else None
        return tiles * (2 ** len(axes) if axes else 1)

    def flop_count_inputs(self, image: np.ndarray) -> Tuple[Any, tuple]:
        """The network on every patch it runs for ``image`` (one batch of :meth:`sliding_windows` patches),
        so that a FLOP count is per image."""
        import torch  # lazy: start-up (torch/Detectron2; this module stays light)

        patch = [int(v) for v in self.predictor.configuration_manager.patch_size]
        return self.model, (torch.zeros(self.sliding_windows(image), 1, *patch, device=self.device),)

    def predict_masks(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        import cv2  # lazy: start-up (cv2; this module stays light)

        image = check_grey_image(image)
        h, w = _scaled(image.shape, self.max_side)
        x = image if (h, w) == image.shape[:2] else cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        seg = self.predictor.predict_single_npy_array(x.astype(np.float32)[None, None], {"spacing": (999, 1, 1)})
        seg = np.asarray(seg).reshape(h, w).astype(np.uint8)
        if (h, w) != image.shape[:2]:
            seg = cv2.resize(seg, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)
        return {self.tasks[0]: seg == 1}

    def __call__(self, image: np.ndarray) -> Dict[str, Any]:
        return {t: TaskPrediction(mask=m, instances=_components(m)) for t, m in self.predict_masks(image).items()}


def evaluate_nnunet(cfg: Any, manifest: Any, weights: Optional[str] = None, split: Optional[str] = None) -> Dict[str, Any]:
    """Score the checkpoint on a split at the original resolution with the package's ScoreTable:
    ``<OUTPUT_DIR>/inference/spine_<task>_<split>/semantic_metrics.json`` and ``semantic_per_image.csv``."""
    from spine_det.data.io import read_image, read_mask  # lazy: start-up (cv2; this module stays light)
    from spine_det.evaluation.metrics import ScoreTable
    from spine_det.evaluation.score_files import write_scores

    split = split or cfg.TEST.SPLIT
    task = task_of(cfg)
    weights = weights or cfg.MODEL.WEIGHTS or str(Path(cfg.OUTPUT_DIR) / CHECKPOINT)
    bind_paths(Path(cfg.OUTPUT_DIR) / WORK_DIR)
    predictor = NNUNetPredictor.from_checkpoint(weights, device=str(resolve_device(cfg.MODEL.DEVICE)))
    if predictor.tasks != [task]:
        raise ValueError(f"{weights} was trained on {predictor.tasks[0]}, the config asks for {task}")
    table = ScoreTable()
    t0 = time.perf_counter()
    samples = manifest.select(split=split, task=task)
    for s in samples:
        image = read_image(s.image)
        pred = predictor.predict_masks(image)[task]
        table.add(s.key, pred, read_mask(s.masks[task], shape=image.shape), patient_id=s.patient_id, label=s.label)
    meta = {"dataset": f"spine_{task}_{split}", "split": split, "task": task, "checkpoint": str(weights),
            "checkpoint_epoch": predictor.checkpoint_info.get("epoch"), "seed": int(cfg.SEED),
            "split_seed": int(cfg.SPINE.SPLIT_SEED), "model": KEY, "max_side": int(cfg.NNUNET.MAX_SIDE),
            "resolution": "original image size (label map scaled back, nearest)",
            "predict_s_per_image": round((time.perf_counter() - t0) / max(1, len(samples)), 3)}
    res = write_scores(table, Path(cfg.OUTPUT_DIR) / "inference" / f"spine_{task}_{split}", meta)
    logger.info("%s %s: dice %.4f jaccard %.4f tpr %.4f (%d images)", task, split, res["dice"], res["jaccard"],
                res["tpr"], res["counts"]["images"])
    return res

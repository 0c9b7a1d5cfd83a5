"""The public Python API: load a trained model, segment one X-ray.

    from spine_det import Predictor

    predictor = Predictor.from_checkpoint("output/lat_vertebra/model_best.pth")
    result = predictor.predict("scan.dcm")           # a path (PNG/JPEG/TIFF/DICOM) or a numpy image
    mask = result.masks["lat_vertebra"]              # bool (H, W) at the image's own size
    boxes, scores = result.instances["lat_vertebra"].boxes, result.instances["lat_vertebra"].scores
    levels = result.instances["lat_vertebra"].levels  # "T12", "L1", ... per instance (None: dropped)

The model behind it (Mask R-CNN, LinkNet, ...) is told by the checkpoint itself and built through
:func:`spine_det.engine.predictor.build_predictor`, the same path ``spine-det predict`` takes, so
the Python API and the tool give the same masks.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import yaml

from spine_det.config.paths import resolve_config_file
from spine_det.utils.arguments import check_device_name, check_image_array, check_probability
from spine_det.utils.checkpoint_io import KIND_HINTS, CheckpointError, load_plain

logger = logging.getLogger(__name__)

# Importing this module (and so ``spine_det.Predictor``) loads no model or image library (torch, Detectron2,
# OpenCV: tests/test_api.py): the modules that do are imported by the functions that need them.

ImageLike = Union[np.ndarray, str, os.PathLike]


@dataclass
class Instances:
    """The objects found for one task, best score first where the model ranks them.

    ``boxes`` (N, 4) float ``x0, y0, x1, y1`` in pixels (Detectron2's XYXY), ``scores`` (N,),
    ``areas`` (N,) pixels; ``masks`` (N, H, W) bool, one per object, where the model gives them
    (Mask R-CNN: touching vertebrae stay apart here, while the task's mask merges them), else None
    (LinkNet's objects are the connected components of its mask less the specks below the checkpoint's
    minimum size, spine_det.evaluation.component_filter; the mask keeps them). ``levels``: for vertebral bodies
    with instance masks, each object's level (T1..L5) after order-aware post-processing, None where
    it drops the object as off the spine or a duplicate of a level (spine_det.morphometry.levels);
    else None."""

    boxes: np.ndarray
    scores: np.ndarray
    areas: np.ndarray
    masks: Optional[Any] = None
    levels: Optional[List[Optional[str]]] = None

    def __len__(self) -> int:
        return int(self.scores.shape[0])


@dataclass
class Prediction:
    """What :meth:`Predictor.predict` returns for one image: per task a binary mask and its instances."""

    masks: Dict[str, np.ndarray]
    instances: Dict[str, Instances]
    image_shape: tuple
    # The predictor's own per-task output (spine_det.engine.predictor.TaskPrediction), e.g. for label_map().
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def tasks(self) -> List[str]:
        return list(self.masks)

    def label_map(self, task: str) -> np.ndarray:
        """uint16 (H, W): 0 background, k = instance k of ``task`` (1-based, ``instances`` order)."""
        return self.raw[task].label_map()


def _instances(task: str, task_prediction: Any) -> Instances:
    from spine_det.morphometry.levels import name_instance_levels

    named = bool(name_instance_levels(task, task_prediction))
    dets = task_prediction.instances
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (d["bbox"] for d in dets)], np.float32).reshape(-1, 4)
    scores = np.array([d.get("score", 1.0) for d in dets], np.float32)
    areas = np.array([d.get("area", 0) for d in dets], np.int64)
    return Instances(boxes=boxes, scores=scores, areas=areas, masks=task_prediction.instance_masks,
                     levels=[d.get("level") for d in dets] if named else None)


def resolve_device(device: str = "auto") -> str:
    """``"auto"``: CUDA when torch sees a GPU, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` are checked
    (spelling: ValueError naming ``device``; a GPU this machine lacks: DeviceUnavailableError) and returned."""
    device = check_device_name(device, "device")
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    from spine_det.engine.distributed import check_device

    check_device(device)
    return device


def trained_tasks(checkpoint: Union[str, os.PathLike]) -> Optional[Tuple[List[str], str]]:
    """The tasks ``checkpoint`` was trained for, and where that is recorded: the checkpoint's own
    ``tasks`` entry (LinkNet, smp), else the ``config.yaml`` its training wrote beside it (Mask R-CNN),
    else nnU-Net's model-folder record; None when nothing records them."""
    path = Path(checkpoint)
    if path.suffix == ".pth":
        try:
            data = load_plain(path)
        except CheckpointError:
            data = None  # the predictor has already read it; nothing more to learn here
        tasks = data.get("tasks") if isinstance(data, dict) else None
        if isinstance(tasks, (list, tuple)) and tasks and all(isinstance(t, str) for t in tasks):
            return list(tasks), "the checkpoint"
    beside = path.resolve().parent / "config.yaml"
    if beside.is_file():
        try:
            data = yaml.safe_load(beside.read_text(encoding="utf-8"))  # plain YAML: nothing in it runs
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            data = None
        spine = data.get("SPINE") if isinstance(data, dict) else None
        tasks = spine.get("TASKS") if isinstance(spine, dict) else None
        if isinstance(tasks, list) and tasks and all(isinstance(t, str) for t in tasks):
            return list(tasks), str(beside)
    from spine_det.engine.nnunet import META_FILE

    meta = path.resolve().parent.parent / META_FILE
    if meta.is_file():
        try:
            task = json.loads(meta.read_text(encoding="utf-8")).get("task")
        except (OSError, ValueError, AttributeError):
            task = None
        if isinstance(task, str):
            return [task], str(meta)
    return None


def check_config_fits_checkpoint(predictor: Any, checkpoint: Union[str, os.PathLike], config_file: Union[str, os.PathLike]) -> None:
    """CheckpointError in one line when ``config_file`` makes the model segment other tasks than the
    checkpoint was trained for (an ap_vertebra model would write lat_vertebra masks)."""
    recorded = trained_tasks(checkpoint)
    if recorded is not None and list(predictor.tasks) != recorded[0]:
        raise CheckpointError(f"config {config_file} segments {', '.join(predictor.tasks)}, but {checkpoint} was trained for "
                              f"{', '.join(recorded[0])} (recorded in {recorded[1]}); give the config it was trained with, or none")


def load_predictor(checkpoint: Union[str, os.PathLike], config_file: Optional[Union[str, os.PathLike]] = None,
                   device: str = "auto", model: Optional[str] = None, score_threshold: Optional[float] = None,
                   how_to_choose: str = "pass model=<family>", test_flip: Optional[bool] = None) -> "Predictor":
    """The one way ``spine-det predict`` and :meth:`Predictor.from_checkpoint` load a model: the same
    rules for every argument (spine_det.utils.arguments), ``config_file`` resolved as a path or a shipped
    config name, ``device="auto"`` to the GPU when there is one, and a config that contradicts the
    checkpoint's tasks refused; ``test_flip`` (None: the checkpoint's setting) turns the test-time flip
    (``TEST.HFLIP``) on or off for the families that have one (LinkNet, smp, landmark)."""
    from spine_det.engine.predictor import build_predictor

    if score_threshold is not None:
        score_threshold = check_probability(score_threshold, "score_threshold")
    kwargs: Dict[str, Any] = {"device": resolve_device(device)}
    config = None
    if config_file is not None:
        config = resolve_config_file(config_file)
        kwargs["config_file"] = str(config)
    if score_threshold is not None:
        kwargs["score_threshold"] = score_threshold
    name = model or checkpoint_model(checkpoint, how_to_choose=how_to_choose)
    predictor = build_predictor(name, str(checkpoint), **kwargs)
    if config is not None:
        check_config_fits_checkpoint(predictor, checkpoint, config)
    if test_flip is not None:
        cfg = getattr(predictor, "cfg", None)
        if cfg is None or "HFLIP" not in getattr(cfg, "TEST", {}):
            raise ValueError(f"test_flip: the {name} family has no test-time flip (LinkNet, smp and landmark models have)")
        cfg.defrost()
        cfg.TEST.HFLIP = bool(test_flip)
        cfg.freeze()
    return Predictor(predictor, name, checkpoint=Path(checkpoint), config_file=config)


def checkpoint_model(checkpoint: Union[str, os.PathLike], how_to_choose: str = "pass model=<family>") -> str:
    """Which model family wrote ``checkpoint`` (a registry key), read from the file;
    :class:`~spine_det.utils.checkpoint_io.CheckpointError` in one line when it cannot be told or
    is not a segmentation model (``how_to_choose``: what the caller's user should do then)."""
    from spine_det.modeling.registry import checkpoint_family as who_wrote, family_keys, family_of_suffix

    path = Path(checkpoint)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {checkpoint}")
    if path.suffix != ".pth" and family_of_suffix(path.suffix):  # e.g. Detectron2's model-zoo .pkl
        return family_of_suffix(path.suffix)
    kind = who_wrote(load_plain(path))
    if kind is None:
        raise CheckpointError(f"{checkpoint}: cannot tell which model wrote it; {how_to_choose}, "
                              f"one of {', '.join(family_keys())}")
    if kind == "classifier":
        raise CheckpointError(f"{checkpoint}: {KIND_HINTS[kind]}")
    return kind


class Predictor:
    """A trained segmentation model, ready to predict images one at a time.

    Build it with :meth:`from_checkpoint`; :meth:`predict` (or calling it) takes an image and
    returns a :class:`Prediction`."""

    def __init__(self, predictor: Any, model: str, checkpoint: Optional[Path] = None,
                 config_file: Optional[Path] = None) -> None:
        self.predictor = predictor  # a spine_det.engine.predictor.SegmentationPredictor
        self.model = model
        self.checkpoint = checkpoint
        self.config_file = config_file  # None: the one saved with the checkpoint

    @classmethod
    def from_checkpoint(
        cls,
        path: Union[str, os.PathLike],
        config_file: Optional[Union[str, os.PathLike]] = None,
        device: str = "auto",
        model: Optional[str] = None,
        score_threshold: Optional[float] = None,
        test_flip: Optional[bool] = None,
    ) -> "Predictor":
        """Load a checkpoint written by ``spine-det train-net`` / ``train-linknet`` (``model_best.pth``).

        ``config_file``: the model's config (a path, or a shipped config name such as
        ``"lat_vertebra.yaml"``); default: the one saved with the checkpoint; one whose tasks differ
        from the checkpoint's is refused. ``device``: ``"auto"`` (CUDA when available), ``"cpu"``,
        ``"cuda"`` or ``"cuda:N"``. ``model``: the family, read from the checkpoint when not given.
        ``score_threshold``: Mask R-CNN's instance score / LinkNet's probability threshold, in [0, 1]
        (default: the config's, or the one tuned on validation). A value outside these rules is a
        ValueError naming the argument, as ``spine-det predict`` refuses it. ``test_flip``: the image and its
        mirror averaged (True) or not (False) for LinkNet, smp and landmark models; default: the checkpoint's."""
        return load_predictor(path, config_file=config_file, device=device, model=model, score_threshold=score_threshold,
                              test_flip=test_flip)

    @property
    def tasks(self) -> List[str]:
        """The tasks the model segments, e.g. ``["lat_vertebra"]``."""
        return list(self.predictor.tasks)

    @property
    def view(self) -> Optional[str]:
        """The view of the films the model segments: ``"ap"`` or ``"lat"``."""
        from spine_det.data.films import model_view

        return model_view(self.tasks)

    def predict(self, image: ImageLike) -> Prediction:
        """Segment one image: a file path (PNG, JPEG, TIFF or DICOM, read by the package's own
        readers) or a numpy array (grey (H, W), or colour (H, W, 3) in RGB order; 16-bit and float
        images are windowed as files are). Masks come back at the image's own size. A file named like
        a mask or a prediction, an empty array or one without a finite pixel is a ValueError; a film
        whose folder (``AP/``, ``LAT/``) or shape says it is of another view than the model's is
        predicted with a warning (spine_det.data.films)."""
        from spine_det.data.io import read_image, to_grey_uint8

        if isinstance(image, (str, os.PathLike)):
            from spine_det.data.films import folder_view, not_a_film, view_doubt

            what = not_a_film(image)
            if what:
                raise ValueError(f"{image}: named like a {what}, not a film")
            grey = read_image(image)
            doubt = view_doubt(folder_view(image), grey.shape[:2], self.view)
            if doubt:
                logger.warning("%s: may not be a %s film (%s); predicted anyway", image, str(self.view).upper(), doubt)
        else:
            grey = to_grey_uint8(check_image_array(image, "image"))
        out = self.predictor(grey)
        return Prediction(
            masks={t: np.asarray(p.mask, bool) for t, p in out.items()},
            instances={t: _instances(t, p) for t, p in out.items()},
            image_shape=tuple(grey.shape),
            raw=out,
        )

    __call__ = predict

    def __repr__(self) -> str:
        return f"Predictor(model={self.model!r}, tasks={self.tasks})"

"""Model families as registered objects: one :class:`ModelSpec` per family in :data:`MODEL_FAMILIES`.

A *family* (LinkNet, Mask R-CNN, ...) is everything the package needs to know to configure, train,
benchmark and run one kind of segmentation model: its key and table label, its config per task, the
tool that trains it, how to build its predictor from a checkpoint, and how to read its training curves
and cost. The benchmark (plan, pipeline, tables, cost), ``spine_det.tools.predict`` and the
morphometry prediction sources loop over this registry instead of naming models, so adding a model is
one module under :mod:`spine_det.modeling.families` (plus its configs):

    # spine_det/modeling/families/my_unet.py
    from spine_det.modeling.registry import MODEL_FAMILIES, ModelSpec

    MODEL_FAMILIES.register(ModelSpec(key="my_unet", label="My U-Net", ...))

Registration is by import, as in Detectron2 projects: :func:`load_families` imports every module of
:mod:`spine_det.modeling.families` (and of the ``spine_det.model_families`` entry-point group), and
everything that lists families calls it first. A spec is declarative and cheap to import: its parts
(the predictor class, the config loader, the curve readers) are named as ``"module:attr"`` strings
and resolved only when used, like the names in a Detectron2 config. So listing families needs none
of their dependencies, and the family modules import nothing from the layers above ``modeling``
(config, engine, benchmark): those layers call into the registry, never the other way round.

Otsu is not a family: it is the benchmark's fixed, untrained reference column
(:mod:`spine_det.benchmark.baselines`), with no config, checkpoint or predictor to register.
"""
from __future__ import annotations

import importlib
import logging
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from fvcore.common.registry import Registry

logger = logging.getLogger(__name__)

__all__ = ["ModelSpec", "ModelFamilyRegistry", "MODEL_FAMILIES", "UnknownModelError", "checkpoint_family",
           "get_family", "family_keys", "families", "load_families", "require_family", "resolve"]

Resolvable = Union[str, Callable[..., Any]]


def resolve(obj: Resolvable) -> Any:
    """``"package.module:attr"`` -> the attribute (imported now); anything else is returned as is."""
    if not isinstance(obj, str):
        return obj
    module, _, attr = obj.partition(":")
    value: Any = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        value = getattr(value, part)
    return value


def _no_curves(out_dir: Path, task: str, n_train: int) -> Dict[str, Any]:
    return {}


def _no_value(*args: Any, **kwargs: Any) -> None:
    return None


def seed_suffix(seed: int) -> str:
    """Folder / unit-name suffix of a training seed: none for seed 0 (the runs of a single-seed
    benchmark keep their names), ``-seed<k>`` otherwise, so several seeds never share a folder."""
    return "" if int(seed) == 0 else f"-seed{int(seed)}"


def unit_dir(runs_dir: Union[str, Path], key: str, task: str, seed: int = 0) -> Path:
    """Where the benchmark trains family ``key`` on ``task`` with ``seed``: ``runs/<key>/<task>[-seed<k>]``."""
    return Path(runs_dir) / key / f"{task}{seed_suffix(seed)}"


def _always_available() -> Optional[str]:
    return None


def _never(data: Any) -> bool:
    return False


@dataclass(frozen=True)
class ModelSpec:
    """One model family. Only ``key``, ``label``, ``train_module``, ``config_file`` and ``predictor`` are
    required; the rest have defaults that suit a family whose tool follows the shared conventions.

    Training (the benchmark's unit, one per task and seed) runs, in ``runs/<key>/<task>[-seed<k>]/``::

        python -m <train_module> --config-file <config_file(task)> --data-root DATA [--profile P]
            [--resume | --eval-only] OUTPUT_DIR <out> SEED <seed> SPINE.SPLIT_SEED <split seed>
            [MODEL.DEVICE <device>] <--KEY-opts> [<eval_opts(out)> with --eval-only]

    (``spine_det.benchmark.plan.training_unit``) and must leave ``checkpoints[0]`` (or a later fallback) and
    ``<out>/inference/spine_<task>_test/semantic_metrics.json`` (the shared ScoreTable's summary).
    """

    key: str  # "linknet": --model value, runs/<key>/ folder, unit names, result keys
    label: str  # "LinkNet": table column, figure legend
    train_module: str  # "spine_det.tools.train_linknet": launched as ``python -m <train_module>``
    # task name -> the family's default config of that task: a shipped config's name ("linknet/<task>.yaml",
    # found by spine_det.config.paths.resolve_config_file) or a path
    config_file: Callable[[str], Union[str, Path]]
    # the predictor class (a SegmentationPredictor with ``from_checkpoint(checkpoint, config_file=None,
    # device="cpu", score_threshold=None)``), as "module:Class" so that registering imports nothing heavy
    predictor: Resolvable
    description: str = ""  # one line for --help and the README's model list
    # (config_file, profile, opts) -> the final config, as the training tool would build it
    load_config: Optional[Resolvable] = None
    # (config_file, profile) -> the profile YAMLs merged over config_file, in order (hashed by the benchmark)
    profile_files: Optional[Resolvable] = None
    # whether its predictions carry instance masks (TaskPrediction.instance_masks): then predict writes
    # <task>_instances.png and morphometry measures those (touching vertebrae stay apart)
    instance_masks: bool = False
    # a loaded checkpoint (a dict, read as plain data) -> whether this family wrote it: lets a checkpoint
    # given to the wrong model say which one it is, and predict default --model to its writer
    recognizes: Callable[[Any], bool] = _never
    # files in the run folder that are the checkpoint, best first
    checkpoints: Tuple[str, ...] = ("model_best.pth",)
    # file suffixes its checkpoints may have besides ".pth" (Detectron2's model-zoo ".pkl"): a file of
    # such a suffix is told by its name alone
    other_checkpoint_suffixes: Tuple[str, ...] = ()
    # any present: training finished, the unit only evaluates (e.g. Detectron2's model_final.pth)
    done_markers: Tuple[str, ...] = ()
    # out_dir -> extra KEY VALUE opts of the --eval-only command (which checkpoint, which splits)
    eval_opts: Optional[Resolvable] = None
    # (runs_dir, task, seed, benchmark options) -> KEY VALUE opts placed before the user's (e.g. start
    # from another family's checkpoint); called when the unit is built, after earlier families ran
    plan_opts: Optional[Resolvable] = None
    # (out_dir, task, n_train_images) -> {"x_label", "loss": [(x, v)], "val_dice": [(x, v)], "s_per_iter",
    # "iterations", "s_per_iter_note"} from the run's own logs
    read_curves: Resolvable = _no_curves
    # (predictor, grey uint8 image) -> GFLOPs of one forward pass, or None; None: the benchmark counts
    # with fvcore what the predictor's ``flop_count_inputs(image)`` gives
    flops: Optional[Resolvable] = None
    # (predictor, grey uint8 image) -> [height, width] the network sees (with ``flops``)
    flops_input: Optional[Resolvable] = None
    # path of the unit's log -> training peak memory in MB the tool printed (None: the runner's peak RSS)
    train_memory: Resolvable = _no_value
    # argparse group -> None: the family's own options of the benchmark tool (``--<key>-...``); their
    # parsed values reach plan_opts / header_note as ``options.family_args[dest]``
    benchmark_args: Resolvable = _no_value
    # benchmark options -> (row label, text) for the results header (how this family was set up), or None
    header_note: Resolvable = _no_value
    # None when usable, else one line saying why not (a missing optional package): the benchmark skips it
    available: Callable[[], Optional[str]] = _always_available
    # order among families (benchmark units and table columns): lower first; ties by registration
    order: int = 100
    # whether a plain benchmark runs it; the others run when named (``--models``), so installing an
    # optional package never lengthens the demo or changes its table
    benchmark_default: bool = True
    extra: Dict[str, Any] = field(default_factory=dict)  # family-specific facts (free form)

    # -- resolved parts ------------------------------------------------------------------
    def predictor_class(self) -> Any:
        """The predictor class, imported on first use; it learns its family key (``family_key``)."""
        cls = resolve(self.predictor)
        if getattr(cls, "family_key", None) is None:
            cls.family_key = self.key
        return cls

    def build_predictor(self, checkpoint: str, **kwargs: Any) -> Any:
        return self.predictor_class().from_checkpoint(checkpoint, **kwargs)

    def get_config(self, config_file: Optional[Union[str, Path]] = None, profile: str = "full",
                   opts: Sequence[str] = ()) -> Any:
        if self.load_config is None:
            raise NotImplementedError(f"model family {self.key!r} has no config loader")
        return resolve(self.load_config)(config_file, profile, list(opts))

    def profile_yamls(self, config_file: Union[str, Path], profile: str) -> List[Path]:
        return [] if self.profile_files is None else list(resolve(self.profile_files)(config_file, profile))

    def curves(self, out_dir: Path, task: str, n_train: int) -> Dict[str, Any]:
        return resolve(self.read_curves)(out_dir, task, n_train)

    def gflops(self, predictor: Any, image: Any) -> Optional[float]:
        return None if self.flops is None else resolve(self.flops)(predictor, image)

    def gflops_input(self, predictor: Any, image: Any) -> Optional[List[int]]:
        return None if self.flops_input is None else resolve(self.flops_input)(predictor, image)

    def train_peak_memory_mb(self, log_path: Path) -> Optional[float]:
        return resolve(self.train_memory)(log_path)

    def add_benchmark_args(self, group: Any) -> None:
        resolve(self.benchmark_args)(group)

    def benchmark_note(self, options: Any) -> Optional[Tuple[str, str]]:
        return resolve(self.header_note)(options)

    def eval_command_opts(self, out_dir: Path) -> List[str]:
        return [] if self.eval_opts is None else list(resolve(self.eval_opts)(out_dir))

    def unit_opts(self, runs_dir: Path, task: str, seed: int, options: Any) -> List[str]:
        return [] if self.plan_opts is None else list(resolve(self.plan_opts)(runs_dir, task, seed, options))


class UnknownModelError(KeyError):
    """A model key that no registered family has; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


class ModelFamilyRegistry(Registry):
    """fvcore's ``Registry`` of :class:`ModelSpec` by key, in (order, registration) order."""

    def register(self, spec: Optional[ModelSpec] = None, *, replace: bool = False):  # type: ignore[override]
        """``MODEL_FAMILIES.register(ModelSpec(...))``; ``replace=True`` re-registers a key (reloads, tests)."""
        if spec is None:
            return lambda s: self.register(s, replace=replace)
        if not isinstance(spec, ModelSpec):
            raise TypeError(f"MODEL_FAMILIES registers ModelSpec objects, got {type(spec).__name__}")
        if replace:
            self._obj_map.pop(spec.key, None)
        self._do_register(spec.key, spec)
        return spec

    def unregister(self, key: str) -> None:
        self._obj_map.pop(key, None)

    def get(self, key: str) -> ModelSpec:  # type: ignore[override]
        load_families()
        spec = self._obj_map.get(key)
        if spec is None:
            raise UnknownModelError(f"unknown model {key!r}; expected one of {', '.join(self.keys()) or '(none)'}")
        return spec

    def specs(self) -> List[ModelSpec]:
        load_families()
        items = list(self._obj_map.values())
        return sorted(items, key=lambda s: (s.order, items.index(s)))

    def keys(self) -> List[str]:
        return [s.key for s in self.specs()]

    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        return iter([(s.key, s) for s in self.specs()])


MODEL_FAMILIES = ModelFamilyRegistry("MODEL_FAMILIES")
MODEL_FAMILIES.__doc__ = """Model families by key ("linknet", "maskrcnn", ...): see :class:`ModelSpec`."""

FAMILIES_PACKAGE = "spine_det.modeling.families"
ENTRY_POINT_GROUP = "spine_det.model_families"
_loaded = False


def load_families() -> None:
    """Import every module of :mod:`spine_det.modeling.families` (and the ``spine_det.model_families``
    entry points of other installed packages) once, so that their specs are registered. A module that
    fails to import is logged and skipped: one broken family must not hide the others."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    pkg = importlib.import_module(FAMILIES_PACKAGE)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{FAMILIES_PACKAGE}.{info.name}")
        except Exception as e:  # noqa: BLE001
            logger.warning("model family module %s.%s failed to import: %s: %s", FAMILIES_PACKAGE, info.name,
                           type(e).__name__, e)
    try:
        from importlib.metadata import entry_points

        eps = entry_points()
        group = eps.select(group=ENTRY_POINT_GROUP) if hasattr(eps, "select") else eps.get(ENTRY_POINT_GROUP, [])
        for ep in group:
            try:
                ep.load()
            except Exception as e:  # noqa: BLE001
                logger.warning("model family entry point %s failed to load: %s: %s", ep.name, type(e).__name__, e)
    except Exception:  # noqa: BLE001  (no metadata: nothing to load)
        pass


def get_family(key: str) -> ModelSpec:
    """The spec registered under ``key`` (:class:`UnknownModelError` naming the known keys otherwise)."""
    return MODEL_FAMILIES.get(key)


def families(available_only: bool = False) -> List[ModelSpec]:
    """Every registered family, in benchmark order (``available_only``: those whose dependencies import)."""
    specs = MODEL_FAMILIES.specs()
    return [s for s in specs if s.available() is None] if available_only else specs


def family_keys() -> List[str]:
    return MODEL_FAMILIES.keys()


def checkpoint_family(data: Any) -> Optional[str]:
    """Who wrote a loaded checkpoint: a family's key, ``"classifier"``, or None (unknown)."""
    for spec in families():
        try:
            if spec.recognizes(data):
                return spec.key
        except Exception:  # noqa: BLE001  (a reader's guess must not hide the real error)
            continue
    from spine_det.utils.checkpoint_io import checkpoint_kind

    return checkpoint_kind(data)


def same_trainer(key: str) -> List[str]:
    """Families trained by the same tool as ``key`` (smp's networks by the LinkNet trainer): their
    checkpoints share one format, so one's predictor and weight initialisation read the others'."""
    if key not in MODEL_FAMILIES._obj_map:
        return []
    module = MODEL_FAMILIES._obj_map[key].train_module
    return [s.key for s in families() if s.train_module == module]


def family_of_suffix(suffix: str) -> Optional[str]:
    """The one family whose checkpoints may end in ``suffix`` (other than ".pth"), else None."""
    keys = [s.key for s in families() if suffix in s.other_checkpoint_suffixes]
    return keys[0] if len(keys) == 1 else None


def require_family(data: Any, expected: str, path: Any) -> None:
    """CheckpointError naming the right ``--model`` when ``data`` is recognisably another model's checkpoint."""
    from spine_det.utils.checkpoint_io import KIND_HINTS, CheckpointError

    kind = checkpoint_family(data)
    if kind is None or kind == expected or kind in same_trainer(expected):
        return
    if kind in MODEL_FAMILIES._obj_map:
        spec = MODEL_FAMILIES._obj_map[kind]
        tool = spec.train_module.rsplit(".", 1)[-1].replace("_", "-")
        raise CheckpointError(f"{path}: this is a {spec.label} checkpoint; use --model {kind} (spine-det predict) "
                              f"or spine-det {tool}")
    raise CheckpointError(f"{path}: {KIND_HINTS.get(kind, f'this is a {kind} checkpoint')}")

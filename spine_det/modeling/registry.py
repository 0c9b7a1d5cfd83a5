"""Model families as registered objects: one :class:`ModelFamily` per family in :data:`MODEL_FAMILIES`.

A *family* (LinkNet, Mask R-CNN, ...) is what training, prediction, evaluation and the API need to know
of one kind of segmentation model: its key and label, its config per task, the tool that trains it,
its predictor, and how to tell its checkpoints. What only the benchmark needs (unit options, how to
read the tool's logs, a line in the results header, the cost columns) is the family's
:class:`~spine_det.modeling.benchmark_adapter.BenchmarkAdapter`. The benchmark, ``spine-det predict``,
the API and the morphometry sources loop over this registry instead of naming models, so adding a
model is one module under :mod:`spine_det.modeling.families` plus its configs::

    # spine_det/modeling/families/my_unet.py
    from spine_det.modeling.registry import MODEL_FAMILIES, BenchmarkAdapter, ModelFamily

    @MODEL_FAMILIES.register()
    class MyUNet(ModelFamily):
        \"\"\"My U-Net, trained and predicted as LinkNet is (this line is its --help text).\"\"\"

        key = "my_unet"
        label = "My U-Net"
        trainer = "spine_det.tools.train_linknet:main"
        predictor = "spine_det.engine.semseg_predictor:SemSegPredictor"
        load_config = "spine_det.config.semseg:load_semseg_config"
        benchmark = BenchmarkAdapter(read_curves="spine_det.benchmark.curves:epoch_curves")

        def config_file(self, task):
            return f"my_unet/{task}.yaml"

Registration is by import, as in Detectron2 projects: :func:`load_families` imports every module of
:mod:`spine_det.modeling.families` (and of the ``spine_det.model_families`` entry-point group), and
everything that lists families calls it first. Registering checks the family (:meth:`ModelFamily.check`):
required attributes, hooks that take the right arguments, and every ``"module:attr"`` reference found
on disk without importing it (:mod:`spine_det.modeling.references`), so a typo fails when the module is
imported, not when someone first trains the family. The references name the parts in the layers above
``modeling`` (tools, engine, config, benchmark), which import the registry: they are imported only when
used, so listing families needs none of their dependencies. A family whose optional dependency is
missing (``requires``) still registers, and says so in one line when its predictor is asked for.

Otsu is not a family: it is the benchmark's fixed, untrained reference column
(:mod:`spine_det.benchmark.baselines`), with no config, checkpoint or predictor to register.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import pkgutil
import re
from importlib.metadata import entry_points
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from fvcore.common.registry import Registry

from spine_det.modeling.benchmark_adapter import BenchmarkAdapter
from spine_det.modeling.references import BadReferenceError, Reference, check_callable, check_reference, resolve
from spine_det.utils.checkpoint_io import KIND_HINTS, CheckpointError, checkpoint_kind
from spine_det.utils.errors import UserError

logger = logging.getLogger(__name__)

__all__ = ["BenchmarkAdapter", "ModelFamily", "ModelFamilyRegistry", "MODEL_FAMILIES", "FamilyDefinitionError",
           "FamilyUnavailableError", "UnknownModelError", "checkpoint_family", "get_family", "family_keys", "families",
           "load_families", "require_family", "resolve", "seed_suffix", "unit_dir"]

TOOLS_PACKAGE = "spine_det.tools"


def seed_suffix(seed: int) -> str:
    """Folder / unit-name suffix of a training seed: none for seed 0 (the runs of a single-seed
    benchmark keep their names), ``-seed<k>`` otherwise, so several seeds never share a folder."""
    return "" if int(seed) == 0 else f"-seed{int(seed)}"


def unit_dir(runs_dir: Union[str, Path], key: str, task: str, seed: int = 0) -> Path:
    """Where the benchmark trains family ``key`` on ``task`` with ``seed``: ``runs/<key>/<task>[-seed<k>]``."""
    return Path(runs_dir) / key / f"{task}{seed_suffix(seed)}"


class FamilyDefinitionError(TypeError):
    """A family that cannot work as written (a missing attribute, a reference to nothing, a hook that takes
    other arguments); raised when it registers, i.e. when its module is imported."""


class FamilyUnavailableError(UserError):
    """A registered family whose optional dependency is not installed, asked to predict (one line)."""


class UnknownModelError(KeyError):
    """A model key that no registered family has; the message lists the known ones."""

    def __str__(self) -> str:
        return str(self.args[0])


# --------------------------------------------------------------------------- the family

_KEY = re.compile(r"[a-z][a-z0-9_]*\Z")


class ModelFamily:
    """One model family: subclass it, set the attributes, implement :meth:`config_file` (and
    :meth:`recognizes`), and register the class with ``@MODEL_FAMILIES.register()``. The class's
    docstring (first line) is its description in ``--help``.

    Training runs the trainer tool as ``python -m <module of trainer> --config-file <config_file(task)>
    --data-root DATA [--profile P] [--resume | --eval-only] OUTPUT_DIR <out> SEED <seed> ...`` and leaves
    ``checkpoints[0]`` (or a later fallback) and ``<out>/inference/spine_<task>_test/semantic_metrics.json``
    (the shared ScoreTable's summary) in the run folder.
    """

    key: str = ""  # "linknet": --model value, runs/<key>/ folder, unit names, result keys
    label: str = ""  # "LinkNet": table column, figure legend
    order: int = 100  # listing order (benchmark units and table columns, --help): lower first; ties by registration
    # the training tool's ``main(argv)`` ("spine_det.tools.train_linknet:main"); the benchmark runs its module
    trainer: Reference = ""
    # a SegmentationPredictor subclass with ``from_checkpoint(checkpoint, config_file=None, device="cpu",
    # score_threshold=None)``
    predictor: Reference = ""
    # (config_file, profile, opts) -> the final config, as the trainer builds it
    load_config: Optional[Reference] = None
    checkpoints: Tuple[str, ...] = ("model_best.pth",)  # files in a run folder that are the checkpoint, best first
    # file suffixes its checkpoints may have besides ".pth" (Detectron2's model-zoo ".pkl"): a file of such a
    # suffix is told by its name alone
    other_checkpoint_suffixes: Tuple[str, ...] = ()
    # whether its predictions carry instance masks (TaskPrediction.instance_masks): then predict writes
    # <task>_instances.png and morphometry measures those (touching vertebrae stay apart)
    instance_masks: bool = False
    # the tasks it can learn (the landmark family: the vertebra tasks, whose ground truth has corners);
    # () = every task. ``config_file`` of another task raises FileNotFoundError.
    tasks: Tuple[str, ...] = ()
    # optional dependencies: importable top-level module -> the line saying it is missing and how to install it
    requires: Mapping[str, str] = MappingProxyType({})
    extra: Mapping[str, Any] = MappingProxyType({})  # family-specific facts ("register_networks": a reference)
    benchmark: BenchmarkAdapter = BenchmarkAdapter()

    def config_file(self, task: str) -> Union[str, Path]:
        """The family's default config of ``task``: a shipped config's name (``"linknet/<task>.yaml"``,
        found by ``spine_det.config.paths.resolve_config_file``) or a path."""
        raise NotImplementedError

    def recognizes(self, data: Any) -> bool:
        """Whether a loaded checkpoint (a dict, read as plain data) was written by this family: lets a
        checkpoint given to the wrong model say which one it is, and predict default --model to its writer."""
        return False

    # -- derived -------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"<model family {self.key!r}: {type(self).__module__}.{type(self).__qualname__}>"

    @property
    def description(self) -> str:
        """The first line of the family class's own docstring (its label without one)."""
        doc = inspect.cleandoc(type(self).__dict__.get("__doc__") or "")
        return doc.split("\n\n")[0].replace("\n", " ").strip() or self.label

    def reference(self, name: str) -> Any:
        """An attribute as written in the class (a function stays a function: it is not bound as a method)."""
        value = inspect.getattr_static(self, name)
        return value.__func__ if isinstance(value, staticmethod) else value

    @property
    def train_module(self) -> str:
        """The trainer's module: the benchmark runs ``python -m <train_module>``."""
        ref = self.reference("trainer")
        return ref.partition(":")[0] if isinstance(ref, str) else ref.__module__

    @property
    def train_command(self) -> str:
        """How a user runs the trainer: ``spine-det train-linknet`` (a package tool) or ``python -m <module>``."""
        package, _, tool = self.train_module.rpartition(".")
        return f"spine-det {tool.replace('_', '-')}" if package == TOOLS_PACKAGE else f"python -m {self.train_module}"

    def available(self) -> Optional[str]:
        """None when usable, else one line saying which dependency is missing and how to install it."""
        for module, why in self.requires.items():
            if importlib.util.find_spec(module) is None:
                return why
        return None

    def require_available(self) -> None:
        """:class:`FamilyUnavailableError` (one line) when an optional dependency is missing."""
        why = self.available()
        if why is not None:
            raise FamilyUnavailableError(f"model family {self.key!r} ({self.label}) cannot run here: {why}")

    def predictor_class(self) -> Any:
        """The predictor class, imported on first use; it learns its family key (``family_key``)."""
        self.require_available()
        cls = resolve(self.reference("predictor"))
        if getattr(cls, "family_key", None) is None:
            cls.family_key = self.key
        return cls

    def build_predictor(self, checkpoint: str, **kwargs: Any) -> Any:
        return self.predictor_class().from_checkpoint(checkpoint, **kwargs)

    def get_config(self, config_file: Optional[Union[str, Path]] = None, profile: str = "full",
                   opts: Sequence[str] = ()) -> Any:
        """The final config, as the trainer builds it (needs none of the optional dependencies)."""
        load = self.reference("load_config")
        if load is None:
            raise NotImplementedError(f"model family {self.key!r} has no config loader")
        return resolve(load)(config_file, profile, list(opts))

    # -- the checks made when it registers -------------------------------------------------
    def check(self) -> None:
        """:class:`FamilyDefinitionError` (one line) unless the family can work as written."""
        try:
            self._check()
        except (BadReferenceError, TypeError, ValueError) as e:
            raise FamilyDefinitionError(f"model family {self.key or type(self).__qualname__!r} "
                                        f"({type(self).__module__}): {e}") from None

    def _check(self) -> None:
        if not isinstance(self.key, str) or not _KEY.match(self.key):
            raise ValueError(f"key must be lower case letters, digits and '_', got {self.key!r}")
        if not isinstance(self.label, str) or not self.label:
            raise ValueError("label is empty")
        if type(self).config_file is ModelFamily.config_file:
            raise ValueError("it defines no config_file(task)")
        check_callable(self.config_file, 1, "config_file")
        check_callable(self.recognizes, 1, "recognizes")
        if not isinstance(self.requires, Mapping) or not all(isinstance(v, str) for v in self.requires.values()):
            raise ValueError(f"requires maps module names to the line shown when one is missing, got {self.requires!r}")
        optional = tuple(self.requires)
        for name, nargs, required in (("trainer", 1, True), ("predictor", None, True), ("load_config", 3, False)):
            ref = self.reference(name)
            if ref is None or ref == "":
                if required:
                    raise ValueError(f"{name} is not set")
                continue
            try:
                check_reference(ref, nargs, optional)
            except BadReferenceError as e:
                raise BadReferenceError(f"{name}: {e}") from None
        predictor = self.reference("predictor")
        if not isinstance(predictor, str) and not hasattr(predictor, "from_checkpoint"):
            raise ValueError(f"predictor {predictor!r} has no from_checkpoint()")
        for name in ("checkpoints", "other_checkpoint_suffixes"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{name} must be a tuple of strings, got {value!r}")
        if not self.checkpoints:
            raise ValueError("checkpoints is empty")
        if not isinstance(self.benchmark, BenchmarkAdapter):
            raise ValueError(f"benchmark must be a BenchmarkAdapter, got {type(self.benchmark).__name__}")
        self.benchmark.check(optional)
        networks = self.extra.get("register_networks")
        if networks is not None:
            check_reference(networks, 0, optional)


# --------------------------------------------------------------------------- the registry


class ModelFamilyRegistry(Registry):
    """fvcore's ``Registry`` of :class:`ModelFamily` objects by key, listed in (order, registration) order."""

    def register(self, family: Any = None, *, replace: bool = False):  # type: ignore[override]
        """``@MODEL_FAMILIES.register()`` on a :class:`ModelFamily` subclass (or ``register(family)`` with a
        subclass or an instance): checks the family and registers one instance under its key; returns
        what it was given. The same class registered again (a module reloaded) replaces its first
        registration; another family under a taken key is an error unless ``replace=True`` (tests)."""
        if family is None:
            return lambda f: self.register(f, replace=replace)
        instance = family() if isinstance(family, type) and issubclass(family, ModelFamily) else family
        if not isinstance(instance, ModelFamily):
            raise TypeError(f"MODEL_FAMILIES registers ModelFamily subclasses, got {family!r}")
        instance.check()
        old = self._obj_map.get(instance.key)
        if old is not None:
            same = (type(old).__module__, type(old).__qualname__) == (type(instance).__module__, type(instance).__qualname__)
            if not (same or replace):
                raise FamilyDefinitionError(f"model family key {instance.key!r} is taken: {old!r} and {instance!r}")
            self._obj_map.pop(instance.key)
        self._do_register(instance.key, instance)
        return family

    def unregister(self, key: str) -> None:
        self._obj_map.pop(key, None)

    def get(self, key: str) -> ModelFamily:  # type: ignore[override]
        load_families()
        family = self._obj_map.get(key)
        if family is None:
            raise UnknownModelError(f"unknown model {key!r}; expected one of {', '.join(self.keys()) or '(none)'}")
        return family

    def specs(self) -> List[ModelFamily]:
        load_families()
        items = list(self._obj_map.values())
        return sorted(items, key=lambda s: (s.order, items.index(s)))

    def keys(self) -> List[str]:
        return [s.key for s in self.specs()]

    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        return iter([(s.key, s) for s in self.specs()])


MODEL_FAMILIES = ModelFamilyRegistry("MODEL_FAMILIES")
MODEL_FAMILIES.__doc__ = """Model families by key ("linknet", "maskrcnn", ...): see :class:`ModelFamily`."""

FAMILIES_PACKAGE = "spine_det.modeling.families"
ENTRY_POINT_GROUP = "spine_det.model_families"
# module or entry point -> why it registered nothing ("<type>: <message>"), for doctor and the tests
LOAD_ERRORS: Dict[str, str] = {}
_loaded = False


def load_families(reload: bool = False) -> None:
    """Import every module of :mod:`spine_det.modeling.families` (and the ``spine_det.model_families``
    entry points of other installed packages) once, so that their families are registered. A module that
    fails to import (or to register: :class:`FamilyDefinitionError`) is logged and kept in
    :data:`LOAD_ERRORS`: one broken family must not hide the others. ``reload``: look again (a module
    added to the package's path since)."""
    global _loaded
    if _loaded and not reload:
        return
    _loaded = True
    pkg = importlib.import_module(FAMILIES_PACKAGE)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        name = f"{FAMILIES_PACKAGE}.{info.name}"
        try:
            importlib.import_module(name)
            LOAD_ERRORS.pop(name, None)
        except Exception as e:  # noqa: BLE001  (a broken family module must not hide the others)
            LOAD_ERRORS[name] = f"{type(e).__name__}: {e}"
            logger.warning("model family module %s failed to import: %s", name, LOAD_ERRORS[name])
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as e:  # noqa: BLE001
            LOAD_ERRORS[f"entry point {ep.name}"] = f"{type(e).__name__}: {e}"
            logger.warning("model family entry point %s failed to load: %s: %s", ep.name, type(e).__name__, e)


def get_family(key: str) -> ModelFamily:
    """The family registered under ``key`` (:class:`UnknownModelError` naming the known keys otherwise)."""
    return MODEL_FAMILIES.get(key)


def families(available_only: bool = False) -> List[ModelFamily]:
    """Every registered family, in listing order (``available_only``: those whose dependencies are installed)."""
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
    return checkpoint_kind(data)


def same_trainer(key: str) -> List[str]:
    """Families trained by the same tool as ``key`` (LinkNet's and smp's networks by the segmentation trainer): their
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
    kind = checkpoint_family(data)
    if kind is None or kind == expected or kind in same_trainer(expected):
        return
    if kind in MODEL_FAMILIES._obj_map:
        spec = MODEL_FAMILIES._obj_map[kind]
        raise CheckpointError(f"{path}: this is a {spec.label} checkpoint; use --model {kind} (spine-det predict) "
                              f"or {spec.train_command}")
    raise CheckpointError(f"{path}: {KIND_HINTS.get(kind, f'this is a {kind} checkpoint')}")

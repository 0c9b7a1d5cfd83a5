"""What the benchmark needs of a model family beyond training and predicting it: :class:`BenchmarkAdapter`.

A family (:class:`spine_det.modeling.registry.ModelFamily`) holds one as its ``benchmark`` attribute.
Its hooks are callables or ``"module:attr"`` references (:mod:`spine_det.modeling.references`),
checked when the family registers and imported when the benchmark calls them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Dict, List, Optional, Tuple, Union

from spine_det.modeling.references import BadReferenceError, Reference, check_reference, resolve

__all__ = ["BenchmarkAdapter"]

# hook -> how many positional arguments the benchmark calls it with
_ADAPTER_HOOKS = {"plan_opts": 4, "eval_opts": 1, "profile_files": 2, "benchmark_args": 1, "header_note": 1,
                  "read_curves": 3, "train_memory": 1, "flops": 2}


@dataclass(frozen=True)
class BenchmarkAdapter:
    """What the benchmark needs of a family beyond training and predicting it. Every field is optional:
    the defaults suit a family whose tool follows the shared conventions (trained, ``--resume`` and
    ``--eval-only`` by the same command line; see ``spine_det.benchmark.plan.training_unit``).

    The hooks are callables or ``"module:attr"`` references (imported when the benchmark calls them)."""

    # whether a plain benchmark runs it; the others run when named (``--models``), so installing an
    # optional package never lengthens the demo or changes its table
    default: bool = True
    # (runs_dir, task, seed, benchmark options) -> KEY VALUE opts placed before the user's (e.g. start from
    # another family's checkpoint); called when the unit is built, after earlier families ran
    plan_opts: Optional[Reference] = None
    # out_dir -> extra KEY VALUE opts of the --eval-only command (which checkpoint, which splits)
    eval_opts: Optional[Reference] = None
    # any present in the run folder: training finished, the unit only evaluates (e.g. model_final.pth)
    done_markers: Tuple[str, ...] = ()
    # (config_file, profile) -> the profile YAMLs the tool merges over config_file, in order: hashed into
    # the unit's spec, so that editing one retrains the unit
    profile_files: Optional[Reference] = None
    # argparse group -> None: the family's own options of the benchmark tool (``--<key>-...``); their
    # parsed values reach plan_opts / header_note as ``options.family_args[dest]``
    benchmark_args: Optional[Reference] = None
    # benchmark options -> (row label, text) for the results header (how this family was set up), or None
    header_note: Optional[Reference] = None
    # (out_dir, task, n_train_images) -> {"x_label", "loss": [(x, v)], "val_dice": [(x, v)], "s_per_iter",
    # "iterations", "s_per_iter_note", "lr_steps"} from the run's own logs
    read_curves: Optional[Reference] = None
    # path of the unit's log -> training peak memory in MB the tool printed (None: the runner's peak RSS)
    train_memory: Optional[Reference] = None
    # (predictor, grey uint8 image) -> (GFLOPs of one forward pass, [height, width] the network sees);
    # None: fvcore counts what the predictor's ``flop_count_inputs(image)`` gives
    flops: Optional[Reference] = None

    def check(self, optional: Collection[str] = ()) -> None:
        """:class:`BadReferenceError` naming the hook that names nothing or takes other arguments."""
        if not isinstance(self.done_markers, tuple) or not all(isinstance(m, str) for m in self.done_markers):
            raise BadReferenceError(f"done_markers: a tuple of file names, got {self.done_markers!r}")
        for name, nargs in _ADAPTER_HOOKS.items():
            ref = getattr(self, name)
            if ref is not None:
                try:
                    check_reference(ref, nargs, optional)
                except BadReferenceError as e:
                    raise BadReferenceError(f"{name}: {e}") from None

    def _call(self, name: str, *args: Any) -> Any:
        ref = getattr(self, name)
        return None if ref is None else resolve(ref)(*args)

    def unit_opts(self, runs_dir: Path, task: str, seed: int, options: Any) -> List[str]:
        return list(self._call("plan_opts", runs_dir, task, seed, options) or [])

    def eval_command_opts(self, out_dir: Path) -> List[str]:
        return list(self._call("eval_opts", out_dir) or [])

    def profile_yamls(self, config_file: Union[str, Path], profile: str) -> List[Path]:
        return list(self._call("profile_files", config_file, profile) or [])

    def add_args(self, group: Any) -> None:
        self._call("benchmark_args", group)

    def note(self, options: Any) -> Optional[Tuple[str, str]]:
        return self._call("header_note", options)

    def curves(self, out_dir: Path, task: str, n_train: int) -> Dict[str, Any]:
        return self._call("read_curves", out_dir, task, n_train) or {}

    def train_peak_memory_mb(self, log_path: Path) -> Optional[float]:
        return self._call("train_memory", log_path)

    def network_flops(self, predictor: Any, image: Any) -> Optional[Tuple[Optional[float], Optional[List[int]]]]:
        """(GFLOPs, [H, W]) by the family's own counter; None when it has none (the benchmark counts)."""
        return self._call("flops", predictor, image)

"""One setup for every training tool: Detectron2's ``default_argument_parser`` / ``default_setup`` idea.

Each training tool (train-net, train-linknet, train-nnunet, train-classifier) is the same few steps::

    parser = default_argument_parser(__doc__, "train-linknet", config_file=None, ...)  # the shared flags
    args = parse_args_for_training(parser, argv)  # a flag after the overrides: one line; --profile auto resolved
    cfg = load_config_from_args(args, the_family_loader)   # safe YAML, the profile, the overrides
    check_inputs(cfg, args)                   # GPUs, data root, device, cache and output folder
    launch_from_args(train, args, cfg)        # Detectron2's launch: one process, or one per GPU

    def train(args, cfg=None):                # in every process (cfg None: load it, Detectron2's way)
        cfg = load_config(args) if cfg is None else cfg
        default_setup(cfg, args)
        ...                                   # the family's trainer, as before

Nothing is written before :func:`check_inputs` has passed: a missing ``--data-root``, a data root
that is no folder, an unknown device, an output folder inside the data root or one that cannot be
written are each one line (:class:`~spine_det.utils.errors.UserError`, exit status 2). Then, in each
process, :func:`default_setup` locks the output folder (rank 0), sets up the one logging setup
(``log.txt`` through Detectron2's ``setup_logger``), logs the environment, the arguments and the
config, writes ``config.yaml`` and seeds the random generators, as Detectron2's ``default_setup`` does.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any, Callable, List, Optional

import spine_det.compat  # noqa: F401  (shims before detectron2)
import torch
import torch.distributed as dist
from detectron2.utils import comm
from detectron2.utils.collect_env import collect_env_info
from detectron2.utils.env import seed_all_rng

from spine_det.config.paths import resolve_config_file
from spine_det.config.profiles import add_profile_argument, resolve_profile
from spine_det.data.prepare import prepare_dataset
from spine_det.engine.distributed import check_device
from spine_det.engine.launch import launch
from spine_det.engine.preflight import check_cache_dir, check_data_root, check_gpu_count
from spine_det.utils.cli import ArgumentParser, add_data_args, non_negative_int, positive_int
from spine_det.utils.fileio import atomic_write_text
from spine_det.utils.logs import setup_logging
from spine_det.utils.paths import prepare_output, refuse_inside

__all__ = ["check_inputs", "config_overrides", "default_argument_parser",
           "default_setup", "launch_from_args", "setup_run", "load_config_from_args", "parse_args_for_training", "process_rank",
           "write_run_config"]

logger = logging.getLogger(__name__)


def _distributed_epilog(command: str) -> str:
    return f"""
Several processes (Detectron2's launch; one per GPU):
    spine-det {command} --num-gpus 8 --config-file CONFIG --data-root DATA
    (machine 0)$ spine-det {command} --machine-rank 0 --num-machines 2 --dist-url tcp://HOST:PORT ...
    (machine 1)$ spine-det {command} --machine-rank 1 --num-machines 2 --dist-url tcp://HOST:PORT ...
or torchrun (leave --num-gpus 1):
    torchrun --nproc_per_node 8 --no-python spine-det {command} --config-file CONFIG --data-root DATA

Config overrides come last, as KEY VALUE pairs: every flag goes before the first of them.
"""


def default_argument_parser(description: str, command: str, *, config_file: Optional[str] = None,
                            config_help: str = "a YAML file or the name of a shipped config",
                            full_means: str = "the config as written",
                            resume_help: str = "continue the run in OUTPUT_DIR from its last checkpoint",
                            eval_only_help: str = "train nothing: score MODEL.WEIGHTS") -> argparse.ArgumentParser:
    """The flags every training tool takes (Detectron2's ``default_argument_parser`` and spine_det's):
    ``--config-file`` (required unless ``config_file`` is its default), ``--data-root``, ``--cache-dir``,
    ``--output-dir``, ``--profile``, ``--resume``, ``--eval-only``, ``--num-gpus``, ``--num-machines``,
    ``--machine-rank``, ``--dist-url`` and the trailing ``KEY VALUE`` overrides. ``command`` is the tool's
    ``spine-det`` command, for the examples."""
    p = ArgumentParser(description=description, epilog=_distributed_epilog(command),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", metavar="FILE", required=config_file is None, default=config_file,
                   help=config_help + (f" (default {config_file})" if config_file else ""))
    add_data_args(p)  # the data root may also be SPINE.DATA_ROOT, in every family's config
    p.add_argument("--output-dir", metavar="DIR", help="the run folder (or OUTPUT_DIR DIR; default: the config's)")
    add_profile_argument(p, full_means=full_means)
    p.add_argument("--resume", action="store_true", help=resume_help)
    p.add_argument("--eval-only", action="store_true", help=eval_only_help)
    p.add_argument("--num-gpus", type=positive_int, default=1, help="processes (GPUs) per machine (default 1)")
    p.add_argument("--num-machines", type=positive_int, default=1, help="machines in all (default 1)")
    p.add_argument("--machine-rank", type=non_negative_int, default=0, help="this machine's rank (default 0)")
    # Detectron2's port: fixed per user, so that an orphaned process shows up as a port in use
    port = 2**15 + 2**14 + hash(os.getuid() if hasattr(os, "getuid") else 1) % 2**14
    p.add_argument("--dist-url", default=f"tcp://127.0.0.1:{port}",
                   help="the process group's address (default: a local port; 'auto': a free one)")
    p.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE",
                   help="config overrides, after every flag, e.g. SOLVER.BASE_LR 0.001")
    return p


def parse_args_for_training(parser: argparse.ArgumentParser, argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The command line parsed, ``--profile auto`` resolved (and said, on stdout) once for every process
    launch will start. Until the inputs are checked the console shows warnings and errors only: a
    refusal is its one ``error:`` line, and the run's own log begins with :func:`default_setup`."""
    setup_logging(level=logging.WARNING)
    args = parser.parse_args(argv)
    args.profile = resolve_profile(args.profile, report=print)
    return args


def config_overrides(args: argparse.Namespace) -> List[str]:
    """``--data-root``, ``--cache-dir`` and ``--output-dir`` as ``KEY VALUE`` pairs (the shared ``SPINE``
    keys of every family's config), followed by the user's own overrides (the later pair wins)."""
    pre: List[str] = []
    if getattr(args, "data_root", None):
        pre += ["SPINE.DATA_ROOT", str(Path(args.data_root).expanduser().resolve())]
    if getattr(args, "cache_dir", None):
        pre += ["SPINE.CACHE_DIR", args.cache_dir]
    if getattr(args, "output_dir", None):
        pre += ["OUTPUT_DIR", args.output_dir]
    return pre + list(args.opts or [])


def load_config_from_args(args: argparse.Namespace, load: Callable[[str, Optional[str], List[str]], Any]) -> Any:
    """``load(config file, profile, overrides)``: the family's own load chain (safe YAML, the profile, the
    overrides), given the resolved ``--config-file`` and :func:`config_overrides`."""
    return load(str(resolve_config_file(args.config_file)), args.profile, config_overrides(args))


def check_inputs(cfg: Any, args: argparse.Namespace) -> Path:
    """What the run needs, checked once before :func:`launch_from_args` starts any process and before
    anything is written to the run folder: the GPUs ``--num-gpus`` asks for, the data root, ``MODEL.DEVICE``,
    the cache folder, the output folder's place (never inside the data root), the data itself (its scan,
    cached for the run's own processes, finds the patients or says in one line why not: no Training/
    folder, no patients, a bad file with --strict), and last that the output folder can be written (it is
    locked later by rank 0's :func:`default_setup`: a lock held here would shut out a spawned rank 0).
    Returns the output folder."""
    check_gpu_count(args.num_gpus, cfg.MODEL.DEVICE)
    root = check_data_root(cfg.SPINE.DATA_ROOT, "SPINE.DATA_ROOT")
    check_device(cfg.MODEL.DEVICE, "MODEL.DEVICE")
    cache = check_cache_dir(cfg.SPINE.CACHE_DIR, root, "SPINE.CACHE_DIR")
    refuse_inside(cfg.OUTPUT_DIR, root)
    prepare_dataset(root, cache_dir=cache, seed=cfg.SPINE.SPLIT_SEED, convert=False)
    return prepare_output(cfg.OUTPUT_DIR, root, lock=False)


def launch_from_args(main_func: Callable[..., Any], args: argparse.Namespace, *extra: Any) -> Any:
    """``main_func(args, *extra)`` in one process, or in ``--num-gpus`` x ``--num-machines`` processes
    through Detectron2's ``launch`` (:mod:`spine_det.engine.launch`; ``extra``, e.g. the checked config,
    must pickle). Under torchrun (``--num-gpus 1``) each of torchrun's processes runs it once."""
    return launch(main_func, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
                  dist_url=args.dist_url, args=(args, *extra))


def process_rank() -> int:
    """This process's rank: the process group's when there is one (Detectron2's launch), else torchrun's
    ``RANK`` (its group may not be joined yet), else 0."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


def _world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def write_run_config(cfg: Any, output_dir: os.PathLike | str, eval_only: bool = False) -> Path:
    """``config.yaml`` in the run folder, atomically. ``eval_only`` into a folder that holds one: that file
    records how the folder's model was trained and stays; the evaluation's goes to ``config_eval.yaml``."""
    path = Path(output_dir) / "config.yaml"
    if eval_only and path.is_file():
        path = path.with_name("config_eval.yaml")
    atomic_write_text(path, cfg.dump())
    return path


def default_setup(cfg: Any, args: argparse.Namespace) -> logging.Logger:
    """In each process, at the start of the run (Detectron2's ``default_setup``, for every family): rank 0
    prepares and locks the output folder; every rank logs to the console (rank 0) and
    ``OUTPUT_DIR/log.txt`` (rank k: ``log.txt.rank<k>``); the environment, the command line and the
    config are logged; rank 0 writes ``config.yaml`` (:func:`write_run_config`); the random generators are
    seeded with ``SEED + rank`` (``SEED`` < 0: randomly)."""
    rank = process_rank()
    out = Path(cfg.OUTPUT_DIR)
    if rank == 0:  # outside the data root, writable, one writer at a time (ranks > 0 write under its lock)
        prepare_output(out, cfg.SPINE.DATA_ROOT)
    log = setup_logging(out, rank)
    logger.info("Rank of current process: %d. World size: %d", rank, _world_size())
    logger.info("Environment info:\n%s", collect_env_info())
    logger.info("Command line arguments: %s", args)
    logger.info("Running with full config:\n%s", cfg.dump())
    if rank == 0:
        logger.info("Full config saved to %s", write_run_config(cfg, out, getattr(args, "eval_only", False)))
    seed = int(getattr(cfg, "SEED", -1))
    seed_all_rng(None if seed < 0 else seed + rank)
    if not getattr(args, "eval_only", False) and "CUDNN_BENCHMARK" in cfg:
        torch.backends.cudnn.benchmark = bool(cfg.CUDNN_BENCHMARK)
    return log


def setup_run(cfg: Any, args: argparse.Namespace) -> Any:
    """:func:`default_setup`, then the data set every trainer reads: rank 0 scans the data root first (the
    manifest is cached), the other ranks then read that scan. Returns the prepared data set."""
    default_setup(cfg, args)

    def prepare() -> Any:
        return prepare_dataset(cfg.SPINE.DATA_ROOT, cache_dir=cfg.SPINE.CACHE_DIR or None, seed=cfg.SPINE.SPLIT_SEED,
                               convert=False)

    prepared = prepare() if comm.is_main_process() else None
    comm.synchronize()
    if prepared is None:
        prepared = prepare()
    logger.info("data: %s", prepared.manifest.summary())
    return prepared

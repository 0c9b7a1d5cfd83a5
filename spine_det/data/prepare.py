"""One entry point that turns a data root into a manifest and COCO files, cached.

The cache lives outside the data root (the user's data is never written to):
``$SPINE_DET_CACHE`` or ``~/.cache/spine_det``, then ``<root name>-<sha1[:10]>``.
Inside, every split configuration has its own folder::

    <cache>/split-seed0/manifest.json     written once, read everywhere else
    <cache>/split-seed0/coco/spine_*.json converted on first use, refreshed when inputs change

A file lock makes concurrent callers (several tools, DDP ranks) scan and
convert once; every file is written atomically anyway.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Union

from spine_det.data.coco import convert_dataset
from spine_det.data.instances import definitions_tag
from spine_det.data.io import DataError
from spine_det.data.layout import Manifest, scan_dataset
from spine_det.data.validate import CHECKS_VERSION
from spine_det.tasks import TASK_NAMES, parse_tasks
from spine_det.utils.fileio import atomic_write_text
from spine_det.utils.paths import is_within

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the cache is not locked
    fcntl = None

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
CACHE_ENV = "SPINE_DET_CACHE"
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_TEST_FRACTION = 0.2


@dataclass
class PreparedData:
    """Where the prepared data of one data root lives."""

    manifest: Manifest
    cache_dir: Path  # the data root's cache folder
    coco_dir: Path  # folder with spine_<task>_<split>.json and spine_<view>_<split>.json
    manifest_path: Optional[Path] = None  # the manifest.json that was read or written


def default_cache_dir(data_root: PathLike) -> Path:
    """Cache folder of a data root: ``$SPINE_DET_CACHE`` or ``~/.cache/spine_det``, then ``<name>-<sha1[:10]>``."""
    root = Path(data_root).expanduser().resolve()
    base = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "spine_det").expanduser().resolve()
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", root.name).strip("_") or "data"
    digest = hashlib.sha1(str(root).encode("utf-8")).hexdigest()[:10]
    return base / f"{name}-{digest}"


def split_dir_name(seed: int, val_fraction: float, test_fraction: float) -> str:
    """Folder name of one split configuration inside the cache dir."""
    name = f"split-seed{seed}"
    if (val_fraction, test_fraction) != (DEFAULT_VAL_FRACTION, DEFAULT_TEST_FRACTION):
        name += f"-val{val_fraction:g}-test{test_fraction:g}"
    return name


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive inter-process lock on ``path`` (a no-op where fcntl is missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def load_or_scan_manifest(
    data_root: PathLike,
    manifest_path: Path,
    seed: int = 0,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    strict: bool = False,
    rescan: bool = False,
) -> Manifest:
    """Read the manifest if it exists (and matches the data now on disk), else scan once and write it."""
    root = Path(data_root).expanduser().resolve()
    fingerprint_path = manifest_path.with_name("manifest.fingerprint")
    fingerprint = data_fingerprint(root)
    manifest = None
    if manifest_path.is_file() and not rescan:
        try:
            manifest = Manifest.load(manifest_path)
        except DataError as exc:  # an older manifest format: scan again
            logger.info("%s; rescanning", exc)
    if manifest is not None:
        unchanged = fingerprint_path.is_file() and fingerprint_path.read_text().strip() == fingerprint
        if not unchanged:
            logger.info("files under %s changed since %s was written: rescanning", root, manifest_path)
        same = (
            unchanged
            and manifest.checks_version >= CHECKS_VERSION  # scanned with today's checks
            and Path(manifest.root) == root
            and manifest.seed == seed
            and (manifest.val_fraction, manifest.test_fraction) == (val_fraction, test_fraction)
        )
        if same and not (strict and manifest.problems):
            return manifest
        if same and strict:
            p = manifest.problems[0]
            raise DataError(p["file"], p["reason"], p.get("patient"))
    manifest = scan_dataset(root, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction, strict=strict)
    manifest.save(manifest_path)
    atomic_write_text(fingerprint_path, fingerprint + "\n")
    logger.info("wrote %s", manifest_path)
    return manifest


def data_fingerprint(root: Path) -> str:
    """Hash of every file's relative path, size and mtime under ``root``: cheap, and any
    added, removed or rewritten file changes it, so a stale manifest is never reused."""
    h = hashlib.sha1()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            h.update(f"{os.path.relpath(path, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def prepare_dataset(
    data_root: PathLike,
    cache_dir: Optional[PathLike] = None,
    seed: int = 0,
    strict: bool = False,
    tasks: Optional[Sequence[str]] = None,
    rescan: bool = False,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    workers: Optional[int] = None,
    convert: bool = True,
    definitions: Optional[Dict[str, str]] = None,
) -> PreparedData:
    """Scan (once) and convert to COCO (once, refreshed when inputs change); return where it all is.

    Safe to call from many processes at once: a file lock in the cache dir
    serialises the scan and the conversion. ``definitions`` ({task: instance definition},
    :mod:`spine_det.data.instances`) other than the default go to their own ``coco-<hash>``
    folder, so different definitions never overwrite each other.
    """
    root = Path(data_root).expanduser().resolve()
    if not root.is_dir():
        raise DataError(root, "data root is not a folder")
    cache = Path(cache_dir).expanduser().resolve() if cache_dir is not None else default_cache_dir(root)
    if is_within(cache, root):
        raise DataError(cache, f"cache dir lies inside the data root {root}; choose another (--cache-dir or ${CACHE_ENV})")
    split_dir = cache / split_dir_name(seed, val_fraction, test_fraction)
    manifest_path = split_dir / "manifest.json"
    tag = definitions_tag(definitions)
    coco_dir = split_dir / ("coco" if not tag else f"coco-{tag}")
    with file_lock(cache / ".lock"):
        manifest = load_or_scan_manifest(
            root, manifest_path, seed, val_fraction, test_fraction, strict=strict, rescan=rescan
        )
        if convert:
            # the cache's COCO folder follows its manifest (another root given the same --cache-dir replaces both)
            convert_dataset(manifest, coco_dir, tasks=tasks, workers=workers, strict=strict, definitions=definitions,
                            overwrite=True)
    return PreparedData(manifest=manifest, cache_dir=cache, coco_dir=coco_dir, manifest_path=manifest_path)


def task_list(tasks: Optional[Sequence[str]]) -> List[str]:
    """Normalise a tasks argument (None = all)."""
    return list(TASK_NAMES) if not tasks else parse_tasks(list(tasks) if not isinstance(tasks, str) else tasks)

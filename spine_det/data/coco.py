"""A dataset's binary masks → COCO JSON files, one per task (and per view) and split.

The masks are encoded by :mod:`spine_det.data.rle` (exact polygons, else RLE; each 8-connected
component one instance unless :mod:`spine_det.data.instances` defines the pieces otherwise).
Conversion runs in a process pool and skips JSON files whose inputs have not changed.
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import cv2

from spine_det.data.instances import mask_to_instances_as
from spine_det.data.io import DataError, read_label_map, read_mask
from spine_det.data.layout import Manifest, ViewSample
from spine_det.data.rle import label_map_to_instances, mask_to_instances
from spine_det.tasks import SPLITS, TASK_NAMES, VIEWS, get_task, parse_tasks, tasks_of_view
from spine_det.utils.fileio import atomic_path, atomic_write_json
from spine_det.utils.paths import prepare_output
from spine_det.utils.progress import progress as progress_bar

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
CONVERTER_VERSION = 1  # bump when the annotations written for the same masks change
STAMP_FILE = "conversion_stamps.json"
SOURCE_FILE = "conversion_source.json"  # the data root the COCO files of a folder were made from


# --------------------------------------------------------------------------- a dataset


def coco_json_name(name: str, split: str) -> str:
    """File name of a task's or a view's COCO JSON: ``spine_<task|view>_<split>.json``."""
    return f"spine_{name}_{split}.json"


def _convert_sample(args: tuple) -> Tuple[str, Dict[str, Optional[List[dict]]], List[dict]]:
    """Worker: every requested mask of one X-ray → instances (None where the mask is unusable)."""
    sample_dict, tasks, strict = args[:3]
    definitions: Dict[str, str] = args[3] if len(args) > 3 else {}
    s = ViewSample(**sample_dict)
    result: Dict[str, Optional[List[dict]]] = {}
    problems: List[dict] = []
    for task in tasks:
        path = s.masks.get(task)
        if not path:
            result[task] = None
            continue
        try:
            mask = read_mask(path, shape=(s.height, s.width))
            if definitions.get(task):
                result[task] = mask_to_instances_as(mask, definitions[task])
            elif s.instance_maps.get(task):
                labels = read_label_map(s.instance_maps[task], shape=(s.height, s.width))
                result[task] = label_map_to_instances(labels, mask)
            else:
                result[task] = mask_to_instances(mask)
        except DataError as exc:
            err = exc.with_patient(s.patient_id)
            if strict:
                raise err from None
            problems.append(err.as_problem())
            result[task] = None
    return s.key, result, problems


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _file_stamp(path: Optional[str]) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path) if path else None
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns) if st else None


def _fingerprint(
    samples: Sequence[ViewSample], tasks: Sequence[str], stamps: Dict[str, Any], definitions: Optional[Dict[str, str]] = None
) -> str:
    """Hash of everything an output JSON depends on: converter version, samples, mask files' size+mtime."""
    h = hashlib.sha1(f"v{CONVERTER_VERSION}|{','.join(tasks)}".encode())
    defs = {t: definitions[t] for t in tasks if definitions and definitions.get(t)}
    if defs:  # instance definitions other than connected components (spine_det.data.instances)
        h.update(json.dumps(sorted(defs.items())).encode())
    for s in samples:
        item = [s.key, s.image, s.height, s.width, s.split, s.label]
        item += [[t, s.masks.get(t), stamps.get(s.masks.get(t) or "")] for t in tasks]
        item += [[t, p, stamps.get(p)] for t, p in sorted(s.instance_maps.items()) if t in tasks]
        h.update(json.dumps(item).encode())
    return h.hexdigest()


def _outputs(manifest: Manifest, tasks: Sequence[str]) -> List[Tuple[str, str, str, List[str]]]:
    """(file name, name, split, tasks) of every JSON to write: per task, and per view when all its tasks are asked."""
    outs = []
    for split in SPLITS:
        for task in tasks:
            outs.append((coco_json_name(task, split), task, split, [task]))
        for view in VIEWS:
            view_tasks = [t.name for t in tasks_of_view(view)]
            if all(t in tasks for t in view_tasks):
                outs.append((coco_json_name(view, split), view, split, view_tasks))
    return outs


def _build_json(
    name: str,
    split: str,
    tasks: List[str],
    samples: List[ViewSample],
    instances: Dict[str, Dict[str, Optional[List[dict]]]],
    fingerprint: str,
) -> Tuple[dict, int]:
    """COCO dict of one output; images lacking any of its masks are left out (counted)."""
    view = get_task(tasks[0]).view
    images, annotations = [], []
    excluded = 0
    for s in samples:
        per_task = instances.get(s.key, {})
        if any(per_task.get(t) is None for t in tasks):
            excluded += 1
            continue
        image_id = len(images) + 1
        images.append(
            {
                "id": image_id,
                "file_name": s.image,
                "height": s.height,
                "width": s.width,
                "key": s.key,
                "patient_id": s.patient_id,
                "label": s.label,
                "view": s.view,
                "split": s.split,
                "mask_files": {t: s.masks[t] for t in tasks},
            }
        )
        for cat, t in enumerate(tasks, start=1):
            for inst in per_task[t] or []:
                annotations.append(dict(inst, id=len(annotations) + 1, image_id=image_id, category_id=cat))
    categories = [
        {"id": i, "name": get_task(t).class_name, "task": t, "supercategory": view}
        for i, t in enumerate(tasks, start=1)
    ]
    info = {
        "description": f"spine_det {name} ({split})",
        "view": view,
        "tasks": tasks,
        "split": split,
        "converter_version": CONVERTER_VERSION,
        "fingerprint": fingerprint,
    }
    return {"info": info, "images": images, "annotations": annotations, "categories": categories}, excluded


def convert_dataset(
    manifest: Manifest,
    out_dir: PathLike,
    tasks: Optional[Sequence[str]] = None,
    workers: Optional[int] = None,
    strict: bool = False,
    force: bool = False,
    progress: bool = True,
    definitions: Optional[Dict[str, str]] = None,
    overwrite: bool = False,
) -> dict:
    """Write ``spine_<task>_<split>.json`` and ``spine_<view>_<split>.json`` under ``out_dir``.

    Idempotent: outputs whose inputs (samples, mask files' size and mtime,
    converter version) are unchanged are skipped. Masks are converted in a
    process pool (``workers``, default all cores). Every JSON is written
    atomically. ``definitions`` ({task: spec}, see :mod:`spine_det.data.instances`) changes
    what an instance is for some tasks (default: connected components). Returns a summary
    dict (also logged). A folder holds one data root's files (recorded in ``conversion_source.json``):
    converting another root into it is refused unless ``overwrite`` (:func:`_check_source`).
    """
    t0 = time.perf_counter()
    task_list = list(TASK_NAMES) if not tasks else parse_tasks(list(tasks) if not isinstance(tasks, str) else tasks)

    # never inside the data root; writable. Not locked here: the caller holds the lock (the tool's on
    # --out, or prepare_dataset's on the cache, under which many processes convert in turn)
    out = prepare_output(out_dir, manifest.root, lock=False)
    stamp_path = out / STAMP_FILE
    try:
        old_stamps: Dict[str, str] = json.loads(stamp_path.read_text()) if stamp_path.is_file() else {}
    except ValueError:
        old_stamps = {}
    old_stamps = _check_source(out, manifest.root, old_stamps if isinstance(old_stamps, dict) else {}, overwrite)
    file_stamps = {p: _file_stamp(p) for s in manifest.samples
                   for p in list(s.masks.values()) + list(s.instance_maps.values()) if p}

    plan = []
    for fname, name, split, otasks in _outputs(manifest, task_list):
        view = get_task(otasks[0]).view
        samples = manifest.select(split=split, view=view)
        fp = _fingerprint(samples, otasks, file_stamps, definitions)
        fresh = not force and old_stamps.get(fname) == fp and (out / fname).is_file()
        plan.append((fname, name, split, otasks, samples, fp, fresh))
    stale = [p for p in plan if not p[6]]
    summary: Dict[str, Any] = {
        "out_dir": str(out),
        "written": [],
        "up_to_date": [p[0] for p in plan if p[6]],
        "masks_converted": 0,
        "images": 0,
        "instances": 0,
        "polygons": 0,
        "rles": 0,
        "excluded_images": {},
        "problems": [],
        "seconds": 0.0,
    }
    if not stale:
        _record_source(out, manifest.root)  # (folders converted before the record existed)
        logger.info("COCO files in %s are up to date (%d files)", out, len(plan))
        return summary

    # Convert each needed X-ray once, for the union of the tasks its stale outputs need.
    needed: Dict[str, Tuple[ViewSample, set]] = {}
    for _, _, _, otasks, samples, _, _ in stale:
        for s in samples:
            needed.setdefault(s.key, (s, set()))[1].update(otasks)
    jobs = [
        (_sample_dict(s), [t for t in task_list if t in ts], strict, dict(definitions or {})) for s, ts in needed.values()
    ]
    instances: Dict[str, Dict[str, Optional[List[dict]]]] = {}
    n_workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    results = _run_jobs(jobs, n_workers, progress)
    for key, per_task, problems in results:
        instances[key] = per_task
        summary["problems"].extend(problems)
        summary["masks_converted"] += sum(1 for v in per_task.values() if v is not None)
    for p in summary["problems"]:
        logger.warning("skipped: patient %r: %s: %s", p["patient"], p["file"], p["reason"])

    new_stamps = {k: v for k, v in old_stamps.items() if (out / k).is_file()}
    for fname, name, split, otasks, samples, fp, _ in stale:
        coco, excluded = _build_json(name, split, otasks, samples, instances, fp)
        _write_json(out / fname, coco)
        new_stamps[fname] = fp
        summary["written"].append(fname)
        if excluded:
            summary["excluded_images"][fname] = excluded
        if name in TASK_NAMES:  # count each instance once (per-task files)
            summary["images"] += len(coco["images"])
            summary["instances"] += len(coco["annotations"])
            for a in coco["annotations"]:
                summary["polygons" if isinstance(a["segmentation"], list) else "rles"] += 1
    atomic_write_json(stamp_path, new_stamps)
    _record_source(out, manifest.root)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    logger.info(format_summary(summary))
    return summary


def _check_source(out: Path, root: str, old_stamps: Dict[str, str], overwrite: bool) -> Dict[str, str]:
    """The stamps to go on with, once ``out`` is known to hold ``root``'s COCO files or none yet.

    Another data root's conversion there would replace its files one by one (and keep those the new
    root does not have): refused, one line, unless ``overwrite``, which first removes the COCO files
    the earlier conversion wrote (those named in its stamps, nothing else of the folder)."""
    path = out / SOURCE_FILE
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")).get("data_root") if path.is_file() else None
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded is not None and Path(recorded) != Path(root):
        if not overwrite:
            raise DataError(out, f"holds the COCO files of another data root ({recorded}); converting {root} "
                                 "here would replace them: choose another --out, or pass --overwrite")
        ours = [n for n in old_stamps if n.startswith("spine_") and n.endswith(".json") and Path(n).name == n]
        for name in ours:
            (out / name).unlink(missing_ok=True)
        logger.warning("%s: removed %d COCO files of %s (--overwrite); converting %s", out, len(ours), recorded, root)
        old_stamps = {}
    return old_stamps


def _record_source(out: Path, root: str) -> None:
    """Write down (once) which data root the COCO files of ``out`` come from: after a conversion, so
    that a refused (strict) one leaves nothing behind."""
    path = out / SOURCE_FILE
    try:
        if path.is_file() and json.loads(path.read_text(encoding="utf-8")).get("data_root") == str(root):
            return
    except (OSError, ValueError, AttributeError):
        pass
    atomic_write_json(path, {"data_root": str(root)})


def _write_json(path: Path, obj: dict) -> None:
    """Atomic compact JSON (our annotations hold no NaN, so no need to walk them first)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, allow_nan=False, separators=(",", ":"))


def _sample_dict(s: ViewSample) -> dict:
    return {
        "patient_id": s.patient_id,
        "label": s.label,
        "split": s.split,
        "view": s.view,
        "image": s.image,
        "masks": dict(s.masks),
        "height": s.height,
        "width": s.width,
        "instance_maps": dict(s.instance_maps),
    }


def _run_jobs(jobs: list, workers: int, progress: bool) -> list:
    bar = progress_bar(total=len(jobs), desc="masks → COCO", unit="img", disable=not progress, leave=False)
    results = []
    try:
        if workers <= 1 or len(jobs) < 4:
            for job in jobs:
                results.append(_convert_sample(job))
                bar.update(1)
        else:
            # spawn, not fork: forking a process whose threads (cv2, torch) hold locks can hang the
            # workers. Scripts that call this need the usual `if __name__ == "__main__":` guard.
            ctx = mp.get_context("spawn")
            try:
                pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init)
                try:
                    for r in pool.map(_convert_sample, jobs, chunksize=1):
                        results.append(r)
                        bar.update(1)
                finally:  # on an error (strict), do not wait for the rest of the queue
                    pool.shutdown(wait=True, cancel_futures=True)
            except BrokenProcessPool:
                logger.warning("process pool failed to start (no __main__ guard?); converting in this process")
                for job in jobs[len(results) :]:
                    results.append(_convert_sample(job))
                    bar.update(1)
    finally:
        bar.close()
    return results


def format_summary(summary: dict) -> str:
    """Human-readable lines of a :func:`convert_dataset` summary."""
    lines = [
        f"COCO conversion into {summary['out_dir']}: wrote {len(summary['written'])} files, "
        f"{len(summary['up_to_date'])} already up to date; {summary['masks_converted']} masks converted "
        f"into {summary['instances']} instances ({summary['polygons']} polygons, {summary['rles']} RLE) "
        f"in {summary['seconds']} s"
    ]
    if summary["excluded_images"]:
        lines.append(
            "images left out for missing/unreadable masks: "
            + ", ".join(f"{k}: {v}" for k, v in sorted(summary["excluded_images"].items()))
        )
    if summary["problems"]:
        lines.append(f"{len(summary['problems'])} problems (files skipped):")
        lines += [f"  patient {p['patient']!r}: {p['file']}: {p['reason']}" for p in summary["problems"]]
    return "\n".join(lines)

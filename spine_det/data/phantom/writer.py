"""Write a synthetic dataset in the real dataset's folder layout, in parallel and deterministically."""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import cv2
import numpy as np

from spine_det.data.phantom.patient import DEFAULT_LAT_RENDERER, LAT_RENDERERS, SCHEMA_VERSION, generate_patient, patient_id
from spine_det.tasks import VIEW_FOLDER, VIEW_IMAGE_STEM, tasks_of_view
from spine_det.utils.fileio import atomic_write_bytes, atomic_write_json
from spine_det.utils.progress import progress as progress_bar

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]
MARKER = "phantom_manifest.json"  # marks a folder as phantom output (safe to rewrite with the same arguments)
SPLIT_FOLDERS = {"train": "Training", "test": "Test"}
JPEG_QUALITY = 92
PNG_COMPRESSION = 1


def assign_patients(patients: int, seed: int, test_fraction: float) -> List[Tuple[str, str]]:
    """(label, split folder) of every patient: balanced labels, a seeded test share stratified by label."""
    if patients < 1:
        raise ValueError(f"patients must be >= 1, got {patients}")
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED, 0]))
    labels = np.array(["Normal"] * (patients - patients // 2) + ["Damaged"] * (patients // 2))
    labels = labels[rng.permutation(patients)]
    split = np.array([SPLIT_FOLDERS["train"]] * patients, dtype=object)
    for lab in ("Normal", "Damaged"):
        idx = np.flatnonzero(labels == lab)
        n_test = int(round(len(idx) * test_fraction))
        if n_test:
            split[rng.choice(idx, size=n_test, replace=False)] = SPLIT_FOLDERS["test"]
    return [(str(labels[i]), str(split[i])) for i in range(patients)]


def patient_dir(out: Path, index: int, label: str, split: str) -> Path:
    return Path(out) / split / label / patient_id(index)


def write_patient(args: Tuple[str, int, int, int, str, str, str]) -> Dict[str, Any]:
    """Generate patient ``index`` and write its files atomically (runs in a worker process)."""
    out, index, seed, size, label, split, lat_renderer = args
    cv2.setNumThreads(1)
    p = generate_patient(index, seed, size, label, split=split, lat_renderer=lat_renderer)
    root = patient_dir(Path(out), index, label, split)
    for view in ("ap", "lat"):
        vdir = root / VIEW_FOLDER[view]
        vdir.mkdir(parents=True, exist_ok=True)
        ok, buf = cv2.imencode(".jpg", p.images[view], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError(f"JPEG encoding failed for {vdir / (VIEW_IMAGE_STEM[view] + '.jpg')}")
        atomic_write_bytes(vdir / f"{VIEW_IMAGE_STEM[view]}.jpg", buf.tobytes())
        for task in tasks_of_view(view):
            # binary on disk: the drawing's anti-aliased edge (any value > 0) is foreground, as drawn
            binary = (p.masks[task.name] > 0).astype(np.uint8) * 255
            ok, buf = cv2.imencode(".png", binary, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
            if not ok:
                raise RuntimeError(f"PNG encoding failed for {vdir / (task.mask_stem + '.png')}")
            atomic_write_bytes(vdir / f"{task.mask_stem}.png", buf.tobytes())
    atomic_write_json(root / "ground_truth.json", p.gt)
    return {"index": index, "label": label, "split": split, "max_grade": p.gt["max_genant_grade"]}


def _check_out(out: Path, manifest: Dict[str, Any]) -> None:
    """Refuse a non-empty folder unless it is our own previous output made with the same arguments."""
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a folder")
    if not any(out.iterdir()):
        return
    marker = out / MARKER
    if not marker.is_file():
        raise FileExistsError(f"{out}: folder is not empty and is not phantom output; refusing to write into it")
    try:
        old = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise FileExistsError(f"{marker}: unreadable phantom manifest ({e}); refusing to write") from None
    keys = ("schema_version", "patients", "seed", "size", "test_fraction", "lat_renderer")
    old = {"lat_renderer": "painted", **old}  # manifests from before the choice: the painted LAT films
    diff = [k for k in keys if old.get(k) != manifest.get(k)]
    if diff:
        raise FileExistsError(
            f"{out}: holds phantom output made with different {', '.join(diff)}; use a new folder")


def generate_dataset(out: PathLike, patients: int, seed: int, size: int = 1024, test_fraction: float = 0.2,
                     workers: Optional[int] = None, progress: bool = True,
                     lat_renderer: str = DEFAULT_LAT_RENDERER) -> Dict[str, Any]:
    """Write ``patients`` synthetic patients under ``out``; returns a summary dict.

    Every patient depends only on (seed, index, size, lat_renderer), so the files are
    byte-identical whatever ``workers`` is.
    """
    if lat_renderer not in LAT_RENDERERS:
        raise ValueError(f"unknown LAT renderer {lat_renderer!r}; expected one of {sorted(LAT_RENDERERS)}")
    out = Path(out)
    plan = assign_patients(patients, seed, test_fraction)
    manifest = {"generator": "spine_det.data.phantom", "schema_version": SCHEMA_VERSION, "patients": int(patients),
                "seed": int(seed), "size": int(size), "test_fraction": float(test_fraction),
                "lat_renderer": str(lat_renderer),
                "patient_dirs": [str(patient_dir(Path("."), i, lab, sp).as_posix()) for i, (lab, sp) in enumerate(plan)]}
    _check_out(out, manifest)
    out.mkdir(parents=True, exist_ok=True)
    # "complete": false until the last patient is written: a run stopped half-way (Ctrl-C, a full disk)
    # leaves a folder that the dataset scan refuses and a rerun with the same arguments completes.
    atomic_write_json(out / MARKER, {**manifest, "complete": False})
    jobs = [(str(out), i, int(seed), int(size), lab, sp, str(lat_renderer)) for i, (lab, sp) in enumerate(plan)]
    workers = max(1, min(int(workers or os.cpu_count() or 1), len(jobs)))
    t0 = time.perf_counter()

    bar = progress_bar(total=len(jobs), desc="phantom", unit="patient", disable=not progress)
    results = []
    if workers == 1:
        for j in jobs:
            results.append(write_patient(j))
            bar.update()
    else:
        # "spawn", not fork: a child forked from a process whose OpenCV/OpenMP thread pools are already
        # running can deadlock on their locks (seen when phantoms were generated after in-process measuring).
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            for r in ex.map(write_patient, jobs, chunksize=1):
                results.append(r)
                bar.update()
    bar.close()
    atomic_write_json(out / MARKER, {**manifest, "complete": True})
    dt = time.perf_counter() - t0
    summary = {
        "out": str(out), "patients": len(results), "seed": int(seed), "size": int(size), "workers": workers,
        "normal": sum(r["label"] == "Normal" for r in results), "damaged": sum(r["label"] == "Damaged" for r in results),
        "training": sum(r["split"] == "Training" for r in results), "test": sum(r["split"] == "Test" for r in results),
        "seconds": round(dt, 3), "patients_per_s": round(len(results) / dt, 2) if dt > 0 else None,
    }
    logger.info("phantom: %(patients)d patients (%(normal)d Normal, %(damaged)d Damaged; %(training)d Training, "
                "%(test)d Test) at %(size)d px in %(seconds).1fs (%(patients_per_s)s patients/s, %(workers)d workers) "
                "-> %(out)s", summary)
    return summary

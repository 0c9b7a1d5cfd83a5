"""The AASCE 2019 / SpineWeb-16 dataset ("boostnet_labeldata") in the package's own layout.

Source layout (as distributed; a clone of a mirror repository holding the folder works too)::

    boostnet_labeldata/data/{training,test}/<name>.jpg
    boostnet_labeldata/labels/{training,test}/filenames.csv   one image name per row
                                                landmarks.csv   same rows; 136 numbers: x of the 68
                                                                points, then their y, each divided by
                                                                the image's width / height
                                                angles.csv      PT, MT, TL Cobb angles (degrees)

The 68 points are 17 vertebrae (T1..L5 from the top) × 4 corners of the vertebral body in the
order top-left, top-right, bottom-left, bottom-right. :func:`import_aasce` writes::

    <out>/Training/<name stem>/AP/AP.jpg                the radiograph, byte for byte
                               AP/Ap_Vertebra.png       binary mask: every quadrilateral filled
                               AP/Ap_Vertebra_instances.png  16-bit label map, k = k-th vertebra
                                                        as listed (T1..L5 from the top, except in
                                                        28 films whose list is out of order), so
                                                        that two touching or overlapping bodies
                                                        stay two instances
                               AP/landmarks.json        corners in pixels, vertebra names, Cobb
                                                        angles and the source file name
    <out>/Test/...                                      the dataset's own 128 test images
    <out>/aasce_index.csv                               one row per image: folder, split, source

There is no Normal/Damaged label and no lateral view: the reader treats such a dataset as
unlabelled and AP-only (no classifier is offered). The images and labels are for research use
only; nothing derived from them belongs in a repository.

What is checked before a film is imported (a film that fails is skipped with one warning naming it,
listed in ``<out>/aasce_skipped.csv``; ``strict`` refuses the import instead):

* its landmarks are finite fractions of the image size (not NaN / inf, not pixels);
* its image decodes completely (a JPEG cut short is not copied in);
* the CSV row belongs to the image: the dataset ships ``labels/<split>/<name>.mat`` with the same
  corners in pixels, and row × image size must land on them (a ``filenames.csv`` out of step with
  ``landmarks.csv`` puts every mask on another film; without the ``.mat`` files this cannot be
  checked, and the summary says so);
* its mask is not empty.

A name in ``filenames.csv`` that is not a plain file name (absolute, or with folders such as
``../``) refuses the whole import: images are read only from ``data/<split>/``. The output appears
whole or not at all: films are written into a hidden sibling folder renamed to ``out`` at the end;
an import cut short (Ctrl-C, a full disk, a crash) leaves no ``out``, and the next run removes the
sibling it left once its process is gone.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import secrets
import shutil
import signal
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from scipy.io import loadmat

from spine_det.data.io import DataError
from spine_det.data.layout import INSTANCE_MAP_SUFFIX
from spine_det.data.validate import decode_checked
from spine_det.utils.fileio import atomic_path, atomic_write_json, atomic_write_text
from spine_det.utils.progress import progress as progress_bar

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

VERTEBRA_NAMES: Tuple[str, ...] = tuple([f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)])
N_VERTEBRAE = len(VERTEBRA_NAMES)  # 17
CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
ANGLE_NAMES: Tuple[str, ...] = ("PT", "MT", "TL")  # proximal-thoracic, main-thoracic, thoracolumbar/lumbar
SPLIT_FOLDERS = {"training": "Training", "test": "Test"}
LANDMARKS_FILE = "landmarks.json"
INDEX_FILE = "aasce_index.csv"
SKIPPED_FILE = "aasce_skipped.csv"
# Landmarks are fractions of the image size; the real ones lie in [0.002, 1.025]. Far outside: pixels.
NORMALISED_RANGE = (-0.5, 1.5)
# The dataset's <name>.mat corners (pixels) and landmarks.csv x image size agree within 0.04 px on all
# 609 films; a row paired with another film is tens to hundreds of pixels off.
PAIRING_TOLERANCE_PX = 1.0
STAGING_MARK = ".spine_det_import.json"  # inside an import's hidden staging folder: whose it is


@dataclass
class AasceRecord:
    """One radiograph of the source dataset with its labels (corners still normalised)."""

    split: str  # "training" | "test"
    name: str  # the image file name, as in filenames.csv
    image: Path
    landmarks: np.ndarray  # (17, 4, 2) normalised x, y in [0, 1] (some fall slightly outside)
    angles: np.ndarray  # (3,) PT, MT, TL in degrees
    row: int = 0  # 1-based row of the CSVs
    problem: Optional[str] = None  # why the film cannot be imported, found in the CSVs (else None)

    @property
    def folder_name(self) -> str:
        """Patient folder name: the image's stem, which is unique within the dataset."""
        return Path(self.name).stem


def find_label_root(source: PathLike) -> Path:
    """The ``boostnet_labeldata`` folder: ``source`` itself or a folder inside it (a mirror's clone)."""
    src = Path(source).expanduser().resolve()
    if not src.is_dir():
        raise DataError(src, "AASCE source is not a folder (give the boostnet_labeldata folder or a clone holding it)")
    for cand in (src, src / "boostnet_labeldata"):
        if (cand / "labels" / "training" / "landmarks.csv").is_file() and (cand / "data" / "training").is_dir():
            return cand
    raise DataError(src, "no labels/training/landmarks.csv and data/training/ here or in boostnet_labeldata/ "
                         "(expected the AASCE 2019 'boostnet_labeldata' folder)")


def _read_rows(path: Path) -> List[List[str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [row for row in csv.reader(f) if row and any(c.strip() for c in row)]
    except OSError as exc:
        raise DataError(path, f"cannot read ({exc.strerror or exc})") from None


def corners_from_row(values: Sequence[float]) -> np.ndarray:
    """136 numbers (x of 68 points, then their y) -> (17, 4, 2) corners in landmark order."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (4 * N_VERTEBRAE * 2,):
        raise ValueError(f"expected {4 * N_VERTEBRAE * 2} numbers, got {v.size}")
    pts = np.stack([v[: 4 * N_VERTEBRAE], v[4 * N_VERTEBRAE :]], axis=1)  # (68, 2)
    return pts.reshape(N_VERTEBRAE, 4, 2)


def check_plain_name(name: str, listing: Path, row: int) -> str:
    """``name`` if it is a plain file name; DataError otherwise (absolute, a drive, folders, ``..``):
    ``data/<split>/<name>`` must not reach outside the source."""
    posix, windows = PurePosixPath(name.replace("\\", "/")), PureWindowsPath(name)
    if (not name or posix.is_absolute() or windows.is_absolute() or windows.drive or len(posix.parts) != 1
            or name in (".", "..")):
        raise DataError(listing, f"row {row}: {name!r} is not a plain file name (absolute, or with folders); "
                                 "images are read only from data/<split>/ of the source")
    return name


def landmark_problem(corners: np.ndarray, angles: np.ndarray) -> Optional[str]:
    """Why a film's CSV values cannot make its mask (None when they can): NaN / inf values, or
    coordinates that are not fractions of the image size (pixels?)."""
    bad = int(np.count_nonzero(~np.isfinite(corners)))
    if bad:
        return f"{bad} of {corners.size} landmark values are not finite numbers (NaN / inf)"
    lo, hi = float(corners.min()), float(corners.max())
    if lo < NORMALISED_RANGE[0] or hi > NORMALISED_RANGE[1]:
        return (f"landmarks run from {lo:g} to {hi:g}, not fractions of the image size "
                f"(expected about 0..1: pixel coordinates?)")
    if not np.all(np.isfinite(angles)):
        return "angles.csv: a Cobb angle is not a finite number"
    return None


def read_split(label_root: Path, split: str) -> List[AasceRecord]:
    """Every record of one split (``training`` or ``test``), in the CSV's order, checked for shape.

    A name that is not a plain file name, or a row that is not numbers, refuses the split
    (DataError); a row whose values cannot make a mask is kept with its ``problem``."""
    labels = label_root / "labels" / split
    names = [r[0].strip() for r in _read_rows(labels / "filenames.csv")]
    marks = _read_rows(labels / "landmarks.csv")
    angles = _read_rows(labels / "angles.csv")
    if not (len(names) == len(marks) == len(angles)):
        raise DataError(labels, f"filenames.csv / landmarks.csv / angles.csv have {len(names)} / {len(marks)} / "
                                f"{len(angles)} rows; they must match row for row")
    out = []
    for i, (name, lm, an) in enumerate(zip(names, marks, angles)):
        check_plain_name(name, labels / "filenames.csv", i + 1)
        try:
            corners = corners_from_row([float(x) for x in lm])
            ang = np.asarray([float(x) for x in an], dtype=np.float64)
        except ValueError as exc:
            raise DataError(labels / "landmarks.csv", f"row {i + 1} ({name}): {exc}") from None
        if ang.shape != (3,):
            raise DataError(labels / "angles.csv", f"row {i + 1} ({name}): expected 3 angles, got {ang.size}")
        problem = landmark_problem(corners, ang)
        out.append(AasceRecord(split, name, label_root / "data" / split / name, corners, ang, i + 1,
                               f"row {i + 1} of the CSVs: {problem}" if problem else None))
    return out


def quad_polygon(corners: np.ndarray) -> np.ndarray:
    """(4, 2) corners in landmark order (TL, TR, BL, BR) -> polygon order TL, TR, BR, BL."""
    return corners[[0, 1, 3, 2]]


def implausible_vertebrae(corners_px: np.ndarray, max_height_ratio: float = 2.5) -> List[int]:
    """Indices of vertebrae whose four corners cannot be a vertebral body: the polygon TL, TR, BR, BL
    is not convex (corners swapped or misplaced), or its height is over ``max_height_ratio`` times
    the median height of the image's vertebrae. (Two training images of AASCE 2019 have such an
    L5/L4, e.g. bottom corners at the top of the film.)"""
    bad = []
    heights = []
    for quad in corners_px:
        poly = quad_polygon(quad)
        edges = np.roll(poly, -1, axis=0) - poly
        cross = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
        convex = bool(np.all(cross > 0) or np.all(cross < 0))
        heights.append(0.5 * (np.linalg.norm(quad[2] - quad[0]) + np.linalg.norm(quad[3] - quad[1])))
        bad.append(not convex)
    med = float(np.median(heights)) if heights else 0.0
    return [k for k, (b, h) in enumerate(zip(bad, heights)) if b or (med > 0 and h > max_height_ratio * med)]


def rasterise_vertebrae(corners_px: np.ndarray, height: int, width: int, skip: Sequence[int] = ()) -> np.ndarray:
    """16-bit label map: vertebra k (1 = T1) filled as its quadrilateral. Where two bodies overlap,
    the pixel goes to the lower vertebra (drawn later); every vertebra keeps its own label.
    Vertebrae whose index is in ``skip`` (implausible corners) are not drawn."""
    labels = np.zeros((height, width), dtype=np.uint16)
    for k, quad in enumerate(corners_px, start=1):
        if k - 1 in skip:
            continue
        poly = np.round(quad_polygon(quad) * 16).astype(np.int32)  # sub-pixel vertices (shift=4)
        cv2.fillPoly(labels, [poly], color=int(k), lineType=cv2.LINE_8, shift=4)
    return labels


def _write_png(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), array):
            raise DataError(path, "cannot write")


def _pairing(rec: AasceRecord, corners_px: np.ndarray) -> Tuple[str, Optional[str]]:
    """("verified" | "unverified", problem or None): the CSV row against ``<name>.mat`` beside the
    CSVs, which the dataset ships with the same 68 corners in pixels ("p2", x then y per point)."""
    mat = rec.image.parent.parent.parent / "labels" / rec.split / f"{rec.name}.mat"
    if not mat.is_file():
        return "unverified", None
    try:
        p2 = np.asarray(loadmat(str(mat))["p2"], dtype=np.float64)
    except Exception as exc:  # noqa: BLE001  (not a MATLAB file, no p2, ...)
        logger.warning("%s: unreadable (%s); pairing of %s not checked", mat, type(exc).__name__, rec.name)
        return "unverified", None
    ours = corners_px.reshape(-1, 2)
    if p2.shape != ours.shape:
        return "verified", f"{mat.name} holds {p2.shape[0]} points, landmarks.csv row {rec.row} {ours.shape[0]}"
    off = float(np.max(np.abs(p2 - ours)))
    if off > PAIRING_TOLERANCE_PX:
        return "verified", (f"landmarks.csv row {rec.row} does not match {mat.name} (corners up to {off:.0f} px "
                            f"apart): is filenames.csv out of step with landmarks.csv?")
    return "verified", None


def _import_one(args: Tuple[AasceRecord, str]) -> Dict[str, object]:
    """Worker: check one film and write its patient folder; returns its index row, or its problem."""
    cv2.setNumThreads(1)
    rec, out = args
    film = f"{rec.split}/{rec.name}"
    try:
        height, width = decode_checked(rec.image).shape[:2]  # every pixel: a truncated JPEG is refused
    except DataError as exc:
        return {"film": film, "problem": exc.reason}
    corners = rec.landmarks * np.array([width, height], dtype=np.float64)
    pairing, problem = _pairing(rec, corners)
    if problem:
        return {"film": film, "problem": problem}
    outside = int(np.sum((corners[..., 0] < 0) | (corners[..., 0] > width - 1)
                         | (corners[..., 1] < 0) | (corners[..., 1] > height - 1)))
    defective = implausible_vertebrae(corners)
    labels = rasterise_vertebrae(corners, height, width, skip=defective)  # fillPoly clips to the image
    present = sorted(int(k) for k in np.unique(labels) if k)
    if not present:
        return {"film": film, "problem": f"no vertebra falls inside the {width} x {height} image: the mask would be "
                                         "empty"}
    view_dir = Path(out) / SPLIT_FOLDERS[rec.split] / rec.folder_name / "AP"
    view_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(view_dir / "AP.jpg") as tmp:
        shutil.copyfile(rec.image, tmp)
    _write_png(view_dir / "Ap_Vertebra.png", ((labels > 0) * 255).astype(np.uint8))
    _write_png(view_dir / f"Ap_Vertebra{INSTANCE_MAP_SUFFIX}.png", labels)
    info = {
        "source_name": rec.name,
        "split": rec.split,
        "width": width,
        "height": height,
        "vertebrae": list(VERTEBRA_NAMES),
        "corner_order": list(CORNERS),
        "corners": np.round(corners, 3).tolist(),
        "cobb_angles": {k: float(v) for k, v in zip(ANGLE_NAMES, rec.angles)},
        "corners_outside_image": outside,
        "implausible_vertebrae": [VERTEBRA_NAMES[k] for k in defective],
        "vertebrae_in_mask": len(present),
    }
    atomic_write_json(view_dir / LANDMARKS_FILE, info, indent=1)
    return {"folder": f"{SPLIT_FOLDERS[rec.split]}/{rec.folder_name}", "split": rec.split, "source_name": rec.name,
            "width": width, "height": height, "corners_outside_image": outside,
            "implausible_vertebrae": " ".join(VERTEBRA_NAMES[k] for k in defective), "vertebrae_in_mask": len(present),
            "pairing": pairing}


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # a staging folder named after this very process is from an earlier one with its pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _staging_prefix(out: Path) -> str:
    return f".{out.name}.importing-"


def remove_stale_staging(out: Path) -> List[Path]:
    """Remove the staging folders that imports into ``out`` left when cut short (their process is gone);
    returns them. Only folders named like an import's staging for this ``out`` and holding its mark
    naming ``out`` are touched: never another's data, never a running import's."""
    removed = []
    if not out.parent.is_dir():
        return removed
    for d in out.parent.iterdir():
        if not (d.name.startswith(_staging_prefix(out)) and d.is_dir() and not d.is_symlink()):
            continue
        try:
            mark = json.loads((d / STAGING_MARK).read_text(encoding="utf-8"))
            pid, target = int(mark["pid"]), mark["out"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not ours, or cannot tell: leave it
        if target != str(out) or _process_alive(pid):
            continue
        shutil.rmtree(d, ignore_errors=True)
        logger.warning("removed %s, left by an import into %s that was cut short", d, out)
        removed.append(d)
    return removed


def _new_staging(out: Path, source: Path) -> Path:
    """A new hidden folder beside ``out`` (created with the umask's mode, like ``out`` would be), marked."""
    staging = out.parent / f"{_staging_prefix(out)}{os.getpid()}-{secrets.token_hex(3)}"
    staging.mkdir()
    atomic_write_json(staging / STAGING_MARK, {"pid": os.getpid(), "out": str(out), "source": str(source)})
    return staging


def _publish(staging: Path, out: Path) -> None:
    """Rename the finished staging folder to ``out`` (absent, or an empty folder)."""
    (staging / STAGING_MARK).unlink()
    try:
        os.rename(staging, out)
    except OSError as exc:  # out filled meanwhile (another import?), or a file in the way
        raise DataError(out, f"cannot move the import into place ({exc.strerror or exc}); "
                             f"it exists and is not empty now? nothing there was changed") from None


def _csv_text(fields: Sequence[str], rows: Iterable[Dict[str, object]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the main process, which stops the pool and removes the staging."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_workers(jobs: List[Tuple[AasceRecord, str]], workers: int, progress: bool) -> List[Dict[str, object]]:
    """Every job's result; on an error or Ctrl-C the pool is stopped (queued films cancelled) first."""
    pool = (ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint) if workers > 1 and len(jobs) > 1
            else None)
    try:
        it: Iterable = map(_import_one, jobs) if pool is None else pool.map(_import_one, jobs, chunksize=4)
        if progress:
            it = progress_bar(it, total=len(jobs), desc="importing AASCE", unit="image")
        return list(it)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _refused_under_strict(label_root: Path, skipped: Dict[str, object]) -> DataError:
    return DataError(label_root, f"{skipped['film']}: {skipped['problem']} (refused under strict; without it the "
                                 "film is skipped)")


def import_aasce(
    source: PathLike,
    out: PathLike,
    splits: Sequence[str] = ("training", "test"),
    workers: int = 2,
    limit: Optional[int] = None,
    progress: bool = True,
    strict: bool = False,
) -> Dict[str, object]:
    """Write the AASCE dataset at ``source`` into ``out`` in the package's layout; returns a summary.

    ``out`` must be empty or absent (nothing of the user's is overwritten) and must not lie inside
    ``source``. Corners outside the image (a few per dataset) are kept as they are in
    ``landmarks.json`` and clipped only where the mask is drawn; the count goes to the index.
    Vertebrae with implausible corners (:func:`implausible_vertebrae`) are left out of the masks and
    named in ``landmarks.json`` and the index; their corners are kept as given.
    A film that fails a check (module docstring) is skipped with a warning and listed in
    ``aasce_skipped.csv``; with ``strict`` the first one refuses the import (DataError), nothing written.
    ``out`` appears only once complete (written beside it under a hidden name, then renamed).
    ``limit`` imports the first N images of each split (for a quick look).
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 (or None for all), got {limit}")
    label_root = find_label_root(source)
    out_path = Path(out).expanduser().resolve()
    if out_path == label_root or label_root in out_path.parents:
        raise DataError(out_path, f"output lies inside the source {label_root}; choose a folder outside it")
    if out_path.exists() and (not out_path.is_dir() or any(out_path.iterdir())):
        raise DataError(out_path, "output exists and is not an empty folder; give a new one (nothing is overwritten)")
    records: List[AasceRecord] = []
    for split in splits:
        if split not in SPLIT_FOLDERS:
            raise ValueError(f"unknown split {split!r}; expected training and/or test")
        recs = read_split(label_root, split)
        records += recs[:limit] if limit else recs
    missing = [r for r in records if not r.image.is_file()]
    if missing:
        raise DataError(missing[0].image, f"image listed in filenames.csv is missing ({len(missing)} missing in all)")
    names = [(r.split, r.folder_name.lower()) for r in records]
    if len(set(names)) != len(names):
        raise DataError(label_root, "two images share a name (case-insensitively) within one split")
    skipped = [{"film": f"{r.split}/{r.name}", "problem": r.problem} for r in records if r.problem]
    if strict and skipped:
        raise _refused_under_strict(label_root, skipped[0])
    out_path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out_path)
    staging = _new_staging(out_path, label_root)
    try:
        results = _run_workers([(r, str(staging)) for r in records if not r.problem], workers, progress)
        rows = [r for r in results if "problem" not in r]
        skipped += [r for r in results if "problem" in r]
        if strict and skipped:
            raise _refused_under_strict(label_root, skipped[0])
        if not rows:
            raise DataError(label_root, f"no film could be imported ({len(skipped)} skipped; first: "
                                        f"{skipped[0]['film']}: {skipped[0]['problem']})" if skipped else
                            "no film to import")
        for sk in skipped:
            logger.warning("skipped %s: %s", sk["film"], sk["problem"])
        fields = ["folder", "split", "source_name", "width", "height", "corners_outside_image",
                  "implausible_vertebrae", "vertebrae_in_mask"]
        rows.sort(key=lambda r: (r["split"], r["folder"]))
        atomic_write_text(staging / INDEX_FILE, _csv_text(fields, rows))
        if skipped:
            atomic_write_text(staging / SKIPPED_FILE, _csv_text(["film", "problem"], skipped))
        _publish(staging, out_path)
    except BaseException:  # Ctrl-C, a full disk, a bad film under strict: no half-written output
        shutil.rmtree(staging, ignore_errors=True)
        raise
    per_split = {s: sum(1 for r in rows if r["split"] == s) for s in splits}
    verified = sum(1 for r in rows if r["pairing"] == "verified")
    return {
        "out": str(out_path),
        "images": per_split,
        "skipped": len(skipped),
        "skipped_films": skipped,
        "pairing_verified": verified,
        "images_with_corners_outside": sum(1 for r in rows if r["corners_outside_image"]),
        "corners_outside": sum(int(r["corners_outside_image"]) for r in rows),
        "images_with_implausible_vertebrae": sum(1 for r in rows if r["implausible_vertebrae"]),
        "images_missing_a_vertebra_in_mask": sum(1 for r in rows if r["vertebrae_in_mask"] < N_VERTEBRAE),
    }


def read_landmarks(view_dir: PathLike) -> Optional[dict]:
    """``landmarks.json`` of an imported view folder (:func:`read_landmarks_file`), or None without one."""
    path = Path(view_dir) / LANDMARKS_FILE
    return read_landmarks_file(path) if path.is_file() else None


def read_landmarks_file(path: PathLike) -> dict:
    """A ``landmarks.json``: the file's fields, with ``corners`` as an (N, 4, 2) array checked against
    ``vertebrae`` (the one reader of the format; DataError naming the file otherwise)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        info["corners"] = np.asarray(info["corners"], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(path, f"unreadable landmarks file ({type(exc).__name__}: {exc})") from None
    corners = info["corners"]
    if corners.ndim != 3 or corners.shape[1:] != (4, 2):
        raise DataError(path, f"'corners' has shape {corners.shape}, expected (N, 4, 2)")
    names = info.get("vertebrae") or []
    if names and len(names) != len(corners):
        raise DataError(path, f"{len(names)} vertebra names for {len(corners)} corner sets")
    return info


__all__ = [
    "ANGLE_NAMES",
    "AasceRecord",
    "INSTANCE_MAP_SUFFIX",
    "VERTEBRA_NAMES",
    "corners_from_row",
    "find_label_root",
    "implausible_vertebrae",
    "import_aasce",
    "rasterise_vertebrae",
    "read_landmarks",
    "read_landmarks_file",
    "read_split",
]

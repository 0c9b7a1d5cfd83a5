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
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from spine_det.data.io import DataError
from spine_det.data.layout import INSTANCE_MAP_SUFFIX
from spine_det.utils.fileio import atomic_path, atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

VERTEBRA_NAMES: Tuple[str, ...] = tuple([f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)])
N_VERTEBRAE = len(VERTEBRA_NAMES)  # 17
CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
ANGLE_NAMES: Tuple[str, ...] = ("PT", "MT", "TL")  # proximal-thoracic, main-thoracic, thoracolumbar/lumbar
SPLIT_FOLDERS = {"training": "Training", "test": "Test"}
LANDMARKS_FILE = "landmarks.json"
INDEX_FILE = "aasce_index.csv"


@dataclass
class AasceRecord:
    """One radiograph of the source dataset with its labels (corners still normalised)."""

    split: str  # "training" | "test"
    name: str  # the image file name, as in filenames.csv
    image: Path
    landmarks: np.ndarray  # (17, 4, 2) normalised x, y in [0, 1] (some fall slightly outside)
    angles: np.ndarray  # (3,) PT, MT, TL in degrees

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


def read_split(label_root: Path, split: str) -> List[AasceRecord]:
    """Every record of one split (``training`` or ``test``), in the CSV's order, checked for shape."""
    labels = label_root / "labels" / split
    names = [r[0].strip() for r in _read_rows(labels / "filenames.csv")]
    marks = _read_rows(labels / "landmarks.csv")
    angles = _read_rows(labels / "angles.csv")
    if not (len(names) == len(marks) == len(angles)):
        raise DataError(labels, f"filenames.csv / landmarks.csv / angles.csv have {len(names)} / {len(marks)} / "
                                f"{len(angles)} rows; they must match row for row")
    out = []
    for i, (name, lm, an) in enumerate(zip(names, marks, angles)):
        try:
            corners = corners_from_row([float(x) for x in lm])
            ang = np.asarray([float(x) for x in an], dtype=np.float64)
        except ValueError as exc:
            raise DataError(labels / "landmarks.csv", f"row {i + 1} ({name}): {exc}") from None
        if ang.shape != (3,):
            raise DataError(labels / "angles.csv", f"row {i + 1} ({name}): expected 3 angles, got {ang.size}")
        out.append(AasceRecord(split, name, label_root / "data" / split / name, corners, ang))
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
    import cv2

    labels = np.zeros((height, width), dtype=np.uint16)
    for k, quad in enumerate(corners_px, start=1):
        if k - 1 in skip:
            continue
        poly = np.round(quad_polygon(quad) * 16).astype(np.int32)  # sub-pixel vertices (shift=4)
        cv2.fillPoly(labels, [poly], color=int(k), lineType=cv2.LINE_8, shift=4)
    return labels


def _write_png(path: Path, array: np.ndarray) -> None:
    import cv2

    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), array):
            raise DataError(path, "cannot write")


def _import_one(args: Tuple[AasceRecord, str]) -> Dict[str, object]:
    """Worker: write one patient folder; returns its index row."""
    import cv2

    cv2.setNumThreads(1)
    rec, out = args
    from PIL import Image

    try:
        with Image.open(rec.image) as im:
            width, height = im.size
            im.verify()
    except (OSError, SyntaxError) as exc:
        return {"error": f"{rec.image}: unreadable image ({exc})"}
    corners = rec.landmarks * np.array([width, height], dtype=np.float64)
    outside = int(np.sum((corners[..., 0] < 0) | (corners[..., 0] > width - 1)
                         | (corners[..., 1] < 0) | (corners[..., 1] > height - 1)))
    defective = implausible_vertebrae(corners)
    labels = rasterise_vertebrae(corners, height, width, skip=defective)  # fillPoly clips to the image
    present = sorted(int(k) for k in np.unique(labels) if k)
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
            "implausible_vertebrae": " ".join(VERTEBRA_NAMES[k] for k in defective), "vertebrae_in_mask": len(present)}


def import_aasce(
    source: PathLike,
    out: PathLike,
    splits: Sequence[str] = ("training", "test"),
    workers: int = 2,
    limit: Optional[int] = None,
    progress: bool = True,
) -> Dict[str, object]:
    """Write the AASCE dataset at ``source`` into ``out`` in the package's layout; returns a summary.

    ``out`` must be empty or absent (nothing of the user's is overwritten) and must not lie inside
    ``source``. Corners outside the image (a few per dataset) are kept as they are in
    ``landmarks.json`` and clipped only where the mask is drawn; the count goes to the index.
    Vertebrae with implausible corners (:func:`implausible_vertebrae`) are left out of the masks and
    named in ``landmarks.json`` and the index; their corners are kept as given.
    ``limit`` imports the first N images of each split (for a quick look).
    """
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
    out_path.mkdir(parents=True, exist_ok=True)
    rows, errors = [], []
    jobs = [(r, str(out_path)) for r in records]
    it: Iterable = (map(_import_one, jobs) if workers <= 1
                    else ProcessPoolExecutor(max_workers=workers).map(_import_one, jobs, chunksize=4))
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=len(jobs), desc="importing AASCE", unit="image")
    for row in it:
        (errors if "error" in row else rows).append(row)
    for e in errors:
        logger.warning("skipped: %s", e["error"])
    fields = ["folder", "split", "source_name", "width", "height", "corners_outside_image", "implausible_vertebrae",
              "vertebrae_in_mask"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(sorted(rows, key=lambda r: (r["split"], r["folder"])))
    atomic_write_text(out_path / INDEX_FILE, buf.getvalue())
    per_split = {s: sum(1 for r in rows if r["split"] == s) for s in splits}
    return {
        "out": str(out_path),
        "images": per_split,
        "skipped": len(errors),
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

"""What the manifest scan checks in every file, beyond its header.

A header can be intact while the pixels are not (a JPEG cut short by a failed copy decodes in
OpenCV with a grey band and only a warning), and a mask can be a valid PNG while not binary.
The scan therefore decodes every image and mask once (in parallel, :func:`prefetch`), and:

* an image or mask that does not decode completely is a problem (fatal under ``--strict``);
* a mask is checked for values other than ``{0, max}`` (anti-aliasing, JPEG artefacts), for
  being empty, for being foreground everywhere, and for covering more than half the image (larger
  than any spine structure). Each is a named warning with the file.

Mask policy (one rule for every reader, :func:`spine_det.data.io.binarize`): a pixel is foreground when its value
is above half the mask's maximum. Binary masks (0/1, 0/255, 1-bit, bool) are unchanged by it; an
anti-aliased edge is cut at its midpoint instead of being thickened into the next vertebra, and
JPEG noise near 0 no longer becomes specks. The warning counts the pixels the rule decided.

Names: two entries of one folder whose names differ only by case, spaces or punctuation
(``LAT/`` + ``lat/``, ``ID (5)`` + ``ID_(5)``) would share output names, so the scan refuses them,
naming both (:func:`check_name_collisions`).
"""
from __future__ import annotations

import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import tifffile
from PIL import Image, ImageFile

from spine_det.data import io as _io
from spine_det.data.io import DICOM_SUFFIXES, IMAGE_SUFFIXES, TIFF_SUFFIXES, DataError, binarize, mask_values, read_dicom  # noqa: F401
from spine_det.tasks import VIEW_IMAGE_STEM

PathLike = Union[str, os.PathLike]

# Bumped when the scan checks more: a cached manifest of an older scan is scanned again.
CHECKS_VERSION = 1

# Warnings of a mask (kind -> what it means); the kinds are what Manifest.warnings records.
MASK_WARNINGS = {
    "mask_not_binary": "values other than 0 and the maximum (anti-aliasing or JPEG artefacts): thresholded at half the maximum",
    "mask_empty": "no foreground pixel",
    "mask_full": "foreground everywhere (an inverted mask?)",
    "mask_large": "foreground over more than MAX_FOREGROUND_FRACTION of the image: larger than any spine structure",
}
# No structure of the eight tasks covers half a radiograph (a whole-spine vertebra mask is ~10-20 %).
MAX_FOREGROUND_FRACTION = 0.5


@dataclass(frozen=True)
class FileInfo:
    """What a full decode of one file tells: its size and, for masks, its values."""

    height: int
    width: int
    max_value: float = 0.0
    zeros: int = 0  # pixels equal to 0
    at_max: int = 0  # pixels equal to the maximum
    other_fg: int = 0  # pixels neither 0 nor max that the policy makes foreground
    other_bg: int = 0  # ... and background

    @property
    def foreground(self) -> int:
        return self.at_max + self.other_fg if self.max_value > 0 else 0

    def mask_warnings(self) -> List[Tuple[str, str]]:
        """[(kind, detail)] of this file read as a mask."""
        out = []
        n = self.height * self.width
        other = self.other_fg + self.other_bg
        if other:
            out.append(("mask_not_binary",
                        f"{other} of {n} pixels are neither 0 nor {self.max_value:g} (anti-aliasing or JPEG artefacts): "
                        f"foreground above {self.max_value * _io.FOREGROUND_ABOVE:g}: {self.other_fg} of them became "
                        f"foreground, {self.other_bg} background"))
        if self.foreground == 0:
            out.append(("mask_empty", "mask has no foreground pixel"))
        elif self.foreground == n:
            out.append(("mask_full", "mask is foreground everywhere (inverted?)"))
        elif self.foreground > MAX_FOREGROUND_FRACTION * n:
            out.append(("mask_large", f"mask covers {100.0 * self.foreground / n:.0f}% of the image, more than any "
                                      f"spine structure (inverted, or another file?)"))
        return out


# -- decoding -----------------------------------------------------------------------------


def decode_checked(path: PathLike) -> np.ndarray:
    """Every pixel of ``path`` as stored, or :class:`DataError` if it does not decode completely.

    PIL raises on a truncated file where OpenCV returns a partly grey image; TIFF goes through
    tifffile, DICOM through pydicom (as :func:`spine_det.data.io.read_image` does).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(path, "file not found")
    suffix = p.suffix.lower()
    if suffix in DICOM_SUFFIXES:
        return read_dicom(p)
    _io.check_header_pixel_cap(p)  # before decoding: a PNG of a few KB can declare 20000 x 20000 pixels
    if suffix in TIFF_SUFFIXES:
        try:
            return np.asarray(tifffile.imread(str(p)))
        except Exception:  # noqa: BLE001  (fall back to PIL, which reads some TIFFs tifffile does not)
            pass

    if ImageFile.LOAD_TRUNCATED_IMAGES:  # a global some libraries set: would hide truncation
        raise DataError(path, "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; cannot check the file is complete")
    try:
        with Image.open(p) as im:
            im.load()
            a = np.asarray(im)
    except Exception as exc:  # noqa: BLE001  (truncated, corrupt, not an image)
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(path, f"cannot decode the whole image ({msg})") from None
    if a.ndim not in (2, 3) or a.size == 0:
        raise DataError(path, f"unsupported image shape {a.shape}")
    return a


def inspect_array(a: np.ndarray) -> FileInfo:
    """Size and value counts of a decoded image read as a mask."""
    v = mask_values(a)
    h, w = int(v.shape[0]), int(v.shape[1])
    if v.dtype == bool:
        fg = int(np.count_nonzero(v))
        return FileInfo(h, w, 1.0 if fg else 0.0, v.size - fg, fg)
    mx = v.max()
    if not mx > 0:
        return FileInfo(h, w, 0.0, int(np.count_nonzero(v == 0)), 0)
    zeros, at_max = int(np.count_nonzero(v == 0)), int(np.count_nonzero(v == mx))
    other = v.size - zeros - at_max
    cut = mx * _io.FOREGROUND_ABOVE
    other_fg = int(np.count_nonzero((v > cut) & (v != mx))) if other else 0
    return FileInfo(h, w, float(mx), zeros, at_max, other_fg, other - other_fg)


XRAY_STEMS = {stem.upper() for stem in VIEW_IMAGE_STEM.values()}

# -- a memo of full decodes, filled in parallel before the scan walks the folders ----------

_MEMO: Dict[Tuple[str, int, int, bool], Union[FileInfo, DataError]] = {}
_MEMO_LOCK = threading.Lock()


def _key(path: PathLike, values: bool) -> Tuple[str, int, int, bool]:
    st = os.stat(path)
    return (str(Path(path).resolve()), st.st_size, st.st_mtime_ns, values)


def inspect_file(path: PathLike, values: bool = True) -> FileInfo:
    """:class:`FileInfo` of a full decode of ``path`` (memoised on path, size and mtime), or DataError.
    ``values=False`` (X-rays): size only, the value counts a mask needs are skipped."""
    try:
        key = _key(path, values)
    except OSError:
        raise DataError(path, "file not found") from None
    with _MEMO_LOCK:
        hit = _MEMO.get(key)
    if hit is None:
        try:
            a = decode_checked(path)
            hit = inspect_array(a) if values else FileInfo(int(a.shape[0]), int(a.shape[1]))
        except DataError as exc:
            hit = exc
        with _MEMO_LOCK:
            _MEMO[key] = hit
    if isinstance(hit, DataError):
        raise DataError(path, hit.reason)
    return hit


def prefetch(root: PathLike, workers: Optional[int] = None) -> int:
    """Decode every image file under ``root`` once, in parallel threads (PIL and numpy release
    the GIL); later :func:`inspect_file` calls are lookups. Returns the number of files."""
    files = [Path(d) / f for d, _, names in os.walk(root) for f in names
             if Path(f).suffix.lower() in (*IMAGE_SUFFIXES, *DICOM_SUFFIXES)]
    workers = workers or min(8, os.cpu_count() or 1)

    def one(p: Path) -> None:
        try:
            inspect_file(p, values=p.stem.upper() not in XRAY_STEMS)  # a wrong guess only costs a second decode
        except DataError:
            pass  # recorded in the memo; reported where the scan meets the file

    if workers <= 1 or len(files) < 2:
        for p in files:
            one(p)
    else:
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(one, files))
    return len(files)


def clear_memo() -> None:
    with _MEMO_LOCK:
        _MEMO.clear()


def decode_image_checked(path: PathLike) -> Tuple[int, int]:
    """(height, width) of an X-ray that decodes completely; DataError otherwise."""
    info = inspect_file(path, values=False)
    return info.height, info.width


def check_mask(path: PathLike, height: Optional[int] = None, width: Optional[int] = None) -> Tuple[int, int, List[Tuple[str, str]]]:
    """(height, width, [(warning kind, detail)]) of a mask that decodes completely; DataError otherwise.

    The size is returned, not compared, so that the caller reports a size mismatch its own way;
    pass ``height``/``width`` to have it raised here.
    """
    info = inspect_file(path)
    if height is not None and width is not None and (info.height, info.width) != (height, width):
        raise DataError(path, f"mask size {info.width}x{info.height} differs from its image {width}x{height} (WxH)")
    return info.height, info.width, info.mask_warnings()


# -- names --------------------------------------------------------------------------------


def name_key(name: str) -> str:
    """What a file or folder name becomes in output names: case folded, runs of spaces and
    punctuation (other than ``.`` and ``-``) collapsed to one ``_``."""
    return re.sub(r"[^0-9a-z.\-]+", "_", name.casefold()).strip("_")


def check_name_collisions(entries: Iterable[Path]) -> None:
    """DataError naming both entries when two names of one folder share a :func:`name_key`."""
    seen: Dict[str, Path] = {}
    for p in sorted(entries):
        k = name_key(p.name)
        if k in seen:
            raise DataError(
                p, f"clashes with {seen[k]}: the names differ only by case, spaces or punctuation, so their "
                   "outputs would overwrite each other; rename one")
        seen[k] = p


def summarize_warnings(warnings: Sequence[dict]) -> str:
    """``"3 masks not binary, 1 empty"`` (or "")."""
    counts: Dict[str, int] = {}
    for w in warnings:
        counts[w.get("kind", "?")] = counts.get(w.get("kind", "?"), 0) + 1
    names = {"mask_not_binary": "masks not binary", "mask_empty": "empty masks", "mask_full": "all-foreground masks",
             "mask_large": "masks larger than the anatomy"}
    return ", ".join(f"{n} {names.get(k, k)}" for k, n in sorted(counts.items()))

"""Reading X-rays and masks from any of the formats the dataset may come in.

Every reader returns plain numpy arrays (uint8 grey images, bool masks) and
raises :class:`DataError` with one line naming the file, so callers can report
and skip a bad file or stop with ``strict=True``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from spine_det.utils.errors import DataError  # noqa: F401  (defined at the bottom layer; raised and caught as data.io.DataError)

PathLike = Union[str, os.PathLike]

IMAGE_SUFFIXES: Tuple[str, ...] = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".dcm")
DICOM_SUFFIXES: Tuple[str, ...] = (".dcm", ".dicom")
TIFF_SUFFIXES: Tuple[str, ...] = (".tif", ".tiff")

# Robust window used to bring 16-bit / float images to 8 bits.
PERCENTILE_WINDOW: Tuple[float, float] = (0.5, 99.5)


def is_dicom(path: PathLike) -> bool:
    return Path(path).suffix.lower() in DICOM_SUFFIXES


def _to_grey(a: np.ndarray, path: PathLike) -> np.ndarray:
    """Collapse channels (RGB(A) / grey+alpha) to one grey channel."""
    if a.ndim == 2:
        return a
    if a.ndim == 3:
        if a.shape[2] in (1, 2):  # grey, grey + alpha
            return a[:, :, 0]
        if a.shape[2] in (3, 4):
            rgb = a[:, :, :3].astype(np.float64)
            # ITU-R 601 luma, the weights cv2/PIL use; channel order RGB.
            grey = rgb[:, :, 0] * 0.299 + rgb[:, :, 1] * 0.587 + rgb[:, :, 2] * 0.114
            return np.rint(grey).astype(a.dtype) if np.issubdtype(a.dtype, np.integer) else grey
        if a.shape[0] in (3, 4) and a.shape[2] > 4:  # planar TIFF (C, H, W)
            return _to_grey(np.moveaxis(a, 0, -1), path)
    raise DataError(path, f"unsupported image shape {a.shape}")


def window_to_uint8(a: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map [low, high] linearly to [0, 255], clipping outside."""
    a = a.astype(np.float64)
    if not np.isfinite(low) or not np.isfinite(high) or high <= low:
        return np.zeros(a.shape, np.uint8) if not np.isfinite(low) else (a > low).astype(np.uint8) * 255
    out = (a - low) * (255.0 / (high - low))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def percentile_to_uint8(a: np.ndarray, percentiles: Sequence[float] = PERCENTILE_WINDOW) -> np.ndarray:
    """Robust 8-bit view of a high-bit-depth image (outliers such as burnt-in labels ignored)."""
    finite = a[np.isfinite(a)] if np.issubdtype(a.dtype, np.floating) else a
    if finite.size == 0:
        return np.zeros(a.shape, np.uint8)
    # Subsample for speed on full-size X-rays; percentiles barely move.
    flat = finite.ravel()
    if flat.size > 1_000_000:
        flat = flat[:: flat.size // 1_000_000]
    low, high = np.percentile(flat, percentiles)
    if high <= low:  # (nearly) constant image: keep its structure visible
        low, high = float(flat.min()), float(flat.max())
        if high <= low:
            return np.zeros(a.shape, np.uint8)
    return window_to_uint8(a, float(low), float(high))


def _ensure_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    return percentile_to_uint8(a)


def _first(value) -> float:
    """First number of a (possibly multi-valued) DICOM attribute."""
    try:
        return float(value[0])  # MultiValue
    except TypeError:
        return float(value)


def read_dicom(path: PathLike) -> np.ndarray:
    """DICOM → uint8: modality rescale, VOI window (or percentile window), MONOCHROME1 inverted."""
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError as exc:  # pragma: no cover - pydicom is a dependency
        raise DataError(path, f"reading DICOM needs pydicom ({exc})") from None
    try:
        ds = pydicom.dcmread(str(path))
        pixels = ds.pixel_array
    except Exception as exc:  # corrupt file, compressed without a handler, not DICOM
        raise DataError(path, f"cannot read DICOM ({type(exc).__name__}: {exc})") from None
    if pixels.ndim == 3 and getattr(ds, "SamplesPerPixel", 1) == 1:
        pixels = pixels[0]  # multi-frame: first frame
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if pixels.ndim == 3:  # colour DICOM
        return _ensure_uint8(_to_grey(pixels, path))
    values = apply_modality_lut(pixels, ds).astype(np.float64)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        center, width = _first(ds.WindowCenter), max(_first(ds.WindowWidth), 1.0)
        # DICOM PS3.3 C.11.2.1.2 linear window.
        low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
        out = window_to_uint8(values, low, high) if high > low else (values > low).astype(np.uint8) * 255
    elif "VOILUTSequence" in ds:
        out = percentile_to_uint8(apply_voi_lut(values, ds).astype(np.float64))
    else:
        out = percentile_to_uint8(values)
    if photometric == "MONOCHROME1":  # bright = low values
        out = 255 - out
    return out


def _read_raw(path: PathLike) -> np.ndarray:
    """Pixels as stored (any dtype, any channels), or DataError."""
    p = Path(path)
    if not p.is_file():
        raise DataError(path, "file not found")
    suffix = p.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        try:
            import tifffile

            return np.asarray(tifffile.imread(str(p)))
        except Exception:
            pass  # fall back to the generic readers below
    import cv2

    data = np.fromfile(str(p), dtype=np.uint8)  # np.fromfile: any path, spaces/unicode included
    a = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if a is not None:
        if a.ndim == 3 and a.shape[2] >= 3:
            a = a[:, :, [2, 1, 0] + ([3] if a.shape[2] == 4 else [])]  # BGR(A) → RGB(A)
        return a
    try:
        from PIL import Image

        with Image.open(p) as im:
            return np.asarray(im)
    except Exception as exc:
        raise DataError(path, f"cannot decode image ({type(exc).__name__}: {exc})") from None


def read_image(path: PathLike) -> np.ndarray:
    """Read an X-ray as a 2-D uint8 grey image (H, W), whatever its format or bit depth."""
    if is_dicom(path):
        return read_dicom(path)
    return to_grey_uint8(_read_raw(path), path)


def to_grey_uint8(a: np.ndarray, source: PathLike = "array") -> np.ndarray:
    """An image array already in memory as the 2-D uint8 grey image the models take, by the rules
    :func:`read_image` applies to files: colour (RGB order) to luma, 16-bit / float through the
    robust percentile window, bool to 0/255. ``source`` names the array in a :class:`DataError`."""
    return _ensure_uint8(_to_grey(np.asarray(a), source))


def mask_values(a: np.ndarray) -> np.ndarray:
    """One channel of a mask as stored: colour masks take their largest colour channel (alpha ignored)."""
    if a.ndim == 3:
        a = a[:, :, :3].max(axis=2) if a.shape[2] >= 3 else a[:, :, 0]
    return a


# The mask policy: foreground where a pixel is above this fraction of the mask's maximum. 0.5 reads
# an anti-aliased value as coverage (> 50% covered = inside), the usual rasterisation rule; 0.0
# would be the older "every non-zero pixel" rule.
FOREGROUND_ABOVE = 0.5


def binarize(a: np.ndarray) -> np.ndarray:
    """The mask policy: foreground where the value is above half (:data:`FOREGROUND_ABOVE`) the mask's maximum.

    Binary masks (0/1, 0/255, 1-bit, bool) are unchanged; an anti-aliased or JPEG-saved mask is cut
    at mid-grey instead of every non-zero pixel counting (which merged touching vertebrae and
    turned JPEG noise into specks). The scan warns about such masks (spine_det.data.validate).
    """
    a = mask_values(np.asarray(a))
    if a.dtype == bool:
        return a
    mx = a.max() if a.size else 0
    if not mx > 0:
        return np.zeros(a.shape, bool)
    return a > (mx * FOREGROUND_ABOVE)


def read_mask(path: PathLike, shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """Read a mask as 2-D bool with the one mask policy, :func:`binarize` (above half the maximum)."""
    p = Path(path)
    a = read_dicom(p) if is_dicom(p) else _read_raw(p)
    if a.ndim not in (2, 3):
        raise DataError(path, f"mask is not a 2-D image (shape {a.shape})")
    mask = binarize(a)
    if mask.ndim != 2:
        raise DataError(path, f"mask is not a 2-D image (shape {a.shape})")
    if shape is not None and tuple(mask.shape) != tuple(shape[:2]):
        raise DataError(
            path, f"mask size {mask.shape[1]}x{mask.shape[0]} differs from its image {shape[1]}x{shape[0]} (WxH)"
        )
    return mask


def read_label_map(path: PathLike, shape: Optional[Sequence[int]] = None) -> np.ndarray:
    """Read an instance label map (grey 8/16-bit PNG/TIFF: 0 = background, k = k-th object) as 2-D ints."""
    a = _read_raw(path)
    if a.ndim != 2 or a.dtype.kind not in "ui":
        raise DataError(path, f"instance map must be a one-channel integer image (got shape {a.shape}, {a.dtype})")
    if shape is not None and tuple(a.shape) != tuple(shape[:2]):
        raise DataError(path, f"instance map size {a.shape[1]}x{a.shape[0]} differs from its image "
                              f"{shape[1]}x{shape[0]} (WxH)")
    return a


def image_size(path: PathLike) -> Tuple[int, int]:
    """(height, width) from the file header only (cheap: no pixel decoding)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(path, "file not found")
    if is_dicom(p):
        try:
            import pydicom

            ds = pydicom.dcmread(str(p), stop_before_pixels=True)
            return int(ds.Rows), int(ds.Columns)
        except Exception as exc:
            raise DataError(path, f"cannot read DICOM header ({type(exc).__name__}: {exc})") from None
    try:
        from PIL import Image

        with Image.open(p) as im:
            w, h = im.size
            return int(h), int(w)
    except Exception:
        pass
    if p.suffix.lower() in TIFF_SUFFIXES:
        try:
            import tifffile

            with tifffile.TiffFile(str(p)) as tf:
                shape = tf.pages[0].shape
                return int(shape[0]), int(shape[1])
        except Exception as exc:
            raise DataError(path, f"cannot read TIFF header ({type(exc).__name__}: {exc})") from None
    raise DataError(path, "cannot read image header (corrupt or not an image)")

"""Reading X-rays and masks from any of the formats the dataset may come in.

Every reader returns plain numpy arrays (uint8 grey images, bool masks) and
raises :class:`DataError` with one line naming the file, so callers can report
and skip a bad file or stop with ``strict=True``.

Every reader first reads the file's header and refuses an image above the pixel cap
(:data:`DEFAULT_MAX_PIXELS`, or ``$SPINE_DET_MAX_PIXELS``) before decoding it: a PNG of a few
KB can declare 20000 x 20000 pixels, which decoded whole takes GBs and tens of seconds.
"""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import tifffile
from PIL import Image, JpegImagePlugin, PngImagePlugin, TiffImagePlugin

from spine_det.utils.errors import DataError  # defined at the bottom layer; raised and caught as data.io.DataError

PathLike = Union[str, os.PathLike]

IMAGE_SUFFIXES: Tuple[str, ...] = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".dcm")
DICOM_SUFFIXES: Tuple[str, ...] = (".dcm", ".dicom")
TIFF_SUFFIXES: Tuple[str, ...] = (".tif", ".tiff")

# Robust window used to bring 16-bit / float images to 8 bits.
PERCENTILE_WINDOW: Tuple[float, float] = (0.5, 99.5)

# The pixel cap. A full-spine film is at most ~4300 x 12900 px (43 x 129 cm at 0.1 mm, 55 MP); typical
# ones are 3000 x 9000 (27 MP). 100 MP leaves room for any film and refuses what only a mistake or a
# hostile file declares. Raise it with SPINE_DET_MAX_PIXELS=<pixels>; 0 turns it off.
MAX_PIXELS_ENV = "SPINE_DET_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 100_000_000

logger = logging.getLogger(__name__)

# pydicom (0.1 s to import) is imported by the DICOM readers below only: most films are PNG or JPEG, and
# every tool imports this module.


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


# -- the pixel cap ------------------------------------------------------------------------------


def max_pixels(path: PathLike = "image") -> Optional[int]:
    """The pixel cap in force (``$SPINE_DET_MAX_PIXELS``, else :data:`DEFAULT_MAX_PIXELS`); None = no cap."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        cap = float(raw)
    except ValueError:
        cap = float("nan")
    if not (np.isfinite(cap) and cap >= 0):
        raise DataError(path, f"{MAX_PIXELS_ENV}={raw!r} is not a number of pixels (e.g. 150000000; 0 = no cap)")
    return None if cap == 0 else int(cap)


def check_pixel_cap(path: PathLike, height: int, width: int) -> None:
    """Refuse, before decoding, an image with more pixels than the cap (:func:`max_pixels`)."""
    cap = max_pixels(path)
    n = int(height) * int(width)
    if cap is not None and n > cap:
        raise DataError(path, f"{width}x{height} px ({n:,} pixels) is above the pixel cap of {cap:,}; if it really "
                              f"is a film, raise the cap: {MAX_PIXELS_ENV}={n} (0 = no cap)")


# -- DICOM ----------------------------------------------------------------------------------------

# Where a DICOM film's pixel size is read from, in order of preference: PixelSpacing is in the
# patient (or calibrated), ImagerPixelSpacing at the detector's front face (lengths in the patient
# are smaller by the radiographic magnification, typically 1.1-1.2 on a spine film).
SPACING_ATTRIBUTES: Tuple[str, ...] = ("PixelSpacing", "ImagerPixelSpacing")


@dataclass(frozen=True)
class ImageMeta:
    """What a film's header says besides its pixels.

    ``spacing_mm`` is (between rows, between columns) in mm, DICOM's order, and None unless the file
    states it: lengths in mm are never made up from a guessed spacing (the resolution tags of PNG,
    JPEG and TIFF are display DPI, not the detector's pixel size, and are not read).
    """

    height: int
    width: int
    spacing_mm: Optional[Tuple[float, float]] = None
    spacing_source: Optional[str] = None  # one of SPACING_ATTRIBUTES
    note: str = ""  # why there is no spacing, or what to know about the one there is


def _dicom_dataset(path: PathLike, pixels: bool):
    """The dataset; with ``pixels`` its pixel data stays on disk until asked for (a film above the
    cap is refused before it is read), without them the header alone is read."""
    try:
        import pydicom
    except ImportError as exc:  # pragma: no cover - pydicom is a dependency
        raise DataError(path, f"reading DICOM needs pydicom ({exc})") from None
    if not Path(path).is_file():
        raise DataError(path, "file not found")
    try:
        if pixels:
            return pydicom.dcmread(str(path), defer_size="1 MB")
        return pydicom.dcmread(str(path), stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001  (corrupt, not DICOM: pydicom raises many types; one line naming the file)
        raise DataError(path, f"cannot read DICOM ({type(exc).__name__}: {exc})") from None


def _dicom_size(ds, path: PathLike) -> Tuple[int, int]:
    try:
        return int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        raise DataError(path, "cannot read DICOM header (no Rows / Columns)") from None


def _dicom_spacing(ds) -> Tuple[Optional[Tuple[float, float]], Optional[str], str]:
    """(spacing in mm, the attribute it came from, note) from :data:`SPACING_ATTRIBUTES`."""
    from pydicom.multival import MultiValue

    problems = []
    for name in SPACING_ATTRIBUTES:
        if name not in ds:
            continue
        value = ds.get(name)
        try:
            numbers = [float(v) for v in (value if isinstance(value, (list, tuple, MultiValue)) else [value])]
        except (TypeError, ValueError):
            numbers = []
        if len(numbers) == 2 and all(np.isfinite(v) and v > 0 for v in numbers):
            note = ""
            if name == "ImagerPixelSpacing":
                note = "ImagerPixelSpacing is at the detector: lengths in the patient are smaller by the magnification"
                factor = ds.get("EstimatedRadiographicMagnificationFactor")
                if factor is not None:
                    note += f" (EstimatedRadiographicMagnificationFactor {factor} in the file, not applied)"
            return (numbers[0], numbers[1]), name, note
        problems.append(f"{name} {'is empty' if value is None else f'{value} is not two positive numbers'}")
    return None, None, "; ".join(problems) or "no PixelSpacing or ImagerPixelSpacing in the DICOM header"


def _voi_unit(values: np.ndarray, ds, path: PathLike) -> Optional[np.ndarray]:
    """The file's VOI (pydicom: a VOI LUT sequence, else the window with its VOILUTFunction, LINEAR,
    LINEAR_EXACT or SIGMOID) scaled to [0, 1] by that VOI's own output range; None without a usable one.

    The output range is the LUT's lowest to highest entry (a LUT declared 16-bit that holds 12-bit
    values is not dimmed), or for a window the values pydicom gives far outside it on either side.
    """
    from pydicom.pixels import apply_voi, apply_windowing

    seq = ds.get("VOILUTSequence")
    has_lut = bool(seq) and "LUTDescriptor" in seq[0] and "LUTData" in seq[0]
    has_window = "WindowCenter" in ds and "WindowWidth" in ds
    if not (has_lut or has_window):
        return None
    try:
        with np.errstate(over="ignore"):  # SIGMOID far from its centre: exp overflows to the right limit
            if has_lut:  # preferred to a window in the same file, as pydicom's apply_voi_lut does
                n, first = int(seq[0].LUTDescriptor[0]) or 2 ** 16, int(seq[0].LUTDescriptor[1])
                out = apply_voi(np.rint(values).astype(np.int64), ds)
                ends = apply_voi(np.arange(first, first + n, dtype=np.int64), ds)
            else:
                out = apply_windowing(np.asarray(values, np.float64), ds)
                ends = apply_windowing(np.array([-np.inf, np.inf]), ds)
    except Exception as exc:  # noqa: BLE001  (width < 1, unknown VOILUTFunction, malformed LUT, ...)
        logger.warning("%s: VOI not applied (%s: %s); using the percentile window", path, type(exc).__name__, exc)
        return None
    lo, hi = float(np.min(ends)), float(np.max(ends))
    if not hi > lo:
        logger.warning("%s: VOI maps everything to one value; using the percentile window", path)
        return None
    unit = np.array(out, np.float64)  # a copy: the steps below work in place
    unit -= lo
    unit /= hi - lo
    return np.clip(unit, 0.0, 1.0, out=unit)


def _presentation_unit(unit: np.ndarray, ds, path: PathLike, monochrome1: bool) -> np.ndarray:
    """The presentation LUT (pydicom's apply_presentation_lut) applied to [0, 1] values.

    pydicom scales its input by the array's own minimum and maximum, so it is given the LUT's whole
    input range (a ramp) and the film is looked up in the result: a film that uses part of the VOI
    range keeps its grey levels. Presentation LUT Shape INVERSE on a MONOCHROME1 film is that film's
    own inversion (the DX module pairs the two), already applied by the caller: never twice.
    """
    from pydicom.pixels import apply_presentation_lut

    seq = ds.get("PresentationLUTSequence")
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    if seq and "LUTDescriptor" in seq[0] and "LUTData" in seq[0]:
        ramp = np.arange(int(seq[0].LUTDescriptor[0]) or 2 ** 16, dtype=np.float64)
    elif shape == "INVERSE" and not monochrome1:
        ramp = np.array([0.0, 1.0])
    else:
        if shape not in ("", "IDENTITY", "INVERSE"):
            logger.warning("%s: Presentation LUT Shape %r not understood; ignored", path, shape)
        return unit
    try:
        table = np.asarray(apply_presentation_lut(ramp, ds), np.float64)
    except Exception as exc:  # noqa: BLE001  (malformed LUT)
        logger.warning("%s: presentation LUT not applied (%s: %s)", path, type(exc).__name__, exc)
        return unit
    lo, hi = float(table.min()), float(table.max())
    if not hi > lo:
        return unit
    return np.interp(unit * (len(ramp) - 1), np.arange(len(ramp)), (table - lo) / (hi - lo))


def _dicom_display(pixels: np.ndarray, ds, path: PathLike) -> np.ndarray:
    """Grey DICOM pixels in [0, 1] as a viewer shows them (PS3.4 N.2): modality LUT / rescale, VOI,
    MONOCHROME1 polarity, presentation LUT; the percentile window where the file has no usable VOI."""
    from pydicom.pixels import apply_modality_lut

    try:
        values = apply_modality_lut(pixels, ds)
    except Exception as exc:  # noqa: BLE001  (malformed Modality LUT)
        raise DataError(path, f"cannot apply the DICOM's modality LUT ({type(exc).__name__}: {exc})") from None
    unit = _voi_unit(values, ds, path)
    if unit is None:
        unit = percentile_to_uint8(np.asarray(values, np.float64)) / 255.0
    monochrome1 = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper() == "MONOCHROME1"
    if monochrome1:  # the lowest value is white
        np.subtract(1.0, unit, out=unit)
    return _presentation_unit(unit, ds, path, monochrome1)


def read_dicom(path: PathLike) -> np.ndarray:
    """DICOM → uint8 as a viewer shows it (:func:`_dicom_display`); multi-frame: the first frame;
    colour: its luma."""
    ds = _dicom_dataset(path, pixels=True)
    check_pixel_cap(path, *_dicom_size(ds, path))
    try:
        from pydicom.pixels import pixel_array

        frames = int(ds.get("NumberOfFrames", 1) or 1)
        pixels = pixel_array(ds, index=0) if frames > 1 else ds.pixel_array  # decode one frame only
    except Exception as exc:  # noqa: BLE001  (compressed without a handler, truncated pixel data: one line naming the file)
        raise DataError(path, f"cannot read DICOM ({type(exc).__name__}: {exc})") from None
    if pixels.ndim == 3 and int(ds.get("SamplesPerPixel", 1) or 1) == 1:
        pixels = pixels[0]
    _require_finite(pixels, path)  # float pixel data (Float Pixel Data) may be all NaN
    if pixels.ndim == 3:  # colour DICOM
        return _ensure_uint8(_to_grey(pixels, path))
    unit = _dicom_display(pixels, ds, path)
    unit *= 255.0
    return np.rint(unit, out=unit).astype(np.uint8)


def read_image_meta(path: PathLike) -> ImageMeta:
    """A film's size and, for DICOM, its pixel spacing (:class:`ImageMeta`), from the header alone."""
    if is_dicom(path):
        ds = _dicom_dataset(path, pixels=False)
        height, width = _dicom_size(ds, path)
        spacing, source, note = _dicom_spacing(ds)
        return ImageMeta(height, width, spacing, source, note)
    height, width = image_size(path)
    return ImageMeta(height, width, note="not a DICOM file: no pixel spacing, lengths in pixels only")


# -- everything else ------------------------------------------------------------------------------


def _raster_size(path: PathLike) -> Optional[Tuple[int, int]]:
    """(height, width) from a PNG / JPEG / TIFF header, None if no header reader knows the file.

    PIL refuses to open an image above twice its ``MAX_IMAGE_PIXELS`` (179 MP); the plugin is then
    opened directly, which reads the same header without that check, so the size is still known.
    """
    p = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                return int(h), int(w)
    except Image.DecompressionBombError as exc:
        for plugin in (PngImagePlugin.PngImageFile, JpegImagePlugin.JpegImageFile, TiffImagePlugin.TiffImageFile):
            try:
                with plugin(str(p)) as im:
                    w, h = im.size
                    return int(h), int(w)
            except Exception:  # noqa: BLE001  (not this format)
                continue
        raise DataError(path, f"too large to open ({exc})") from None
    except Exception:  # noqa: BLE001  (not an image PIL knows; TIFF below)
        pass
    if p.suffix.lower() in TIFF_SUFFIXES:
        try:
            with tifffile.TiffFile(str(p)) as tf:
                shape = tf.pages[0].shape
                return int(shape[0]), int(shape[1])
        except Exception:  # noqa: BLE001  (no header tifffile reads either: the decoder reports the file)
            return None
    return None


def check_header_pixel_cap(path: PathLike) -> None:
    """:func:`check_pixel_cap` on the size the file's header declares, before anything decodes it
    (a file whose header no reader understands passes: its decoder reports it)."""
    if is_dicom(path):
        size: Optional[Tuple[int, int]] = _dicom_size(_dicom_dataset(path, pixels=False), path)
    else:
        size = _raster_size(path)
    if size is not None:
        check_pixel_cap(path, *size)


def _read_raw(path: PathLike) -> np.ndarray:
    """Pixels as stored (any dtype, any channels), or DataError."""
    p = Path(path)
    if not p.is_file():
        raise DataError(path, "file not found")
    check_header_pixel_cap(p)
    suffix = p.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        try:
            return np.asarray(tifffile.imread(str(p)))
        except Exception:  # noqa: BLE001  (fall back to the generic readers below, which report the file)
            pass

    data = np.fromfile(str(p), dtype=np.uint8)  # np.fromfile: any path, spaces/unicode included
    a = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if a is not None:
        if a.ndim == 3 and a.shape[2] >= 3:
            a = a[:, :, [2, 1, 0] + ([3] if a.shape[2] == 4 else [])]  # BGR(A) → RGB(A)
        return a
    try:
        with Image.open(p) as im:
            return np.asarray(im)
    except Exception as exc:  # noqa: BLE001  (truncated, corrupt, not an image: one line naming the file)
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
    return _ensure_uint8(_to_grey(_require_finite(np.asarray(a), source), source))


def _require_finite(a: np.ndarray, path: PathLike) -> np.ndarray:
    """Refuse a float image without one finite pixel (all NaN / inf): windowed, it would be a black
    film that every model segments without complaint."""
    if np.issubdtype(a.dtype, np.floating) and a.size and not np.isfinite(a).any():
        raise DataError(path, "no finite pixel (all NaN or infinite): not a film")
    return a


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
        return _dicom_size(_dicom_dataset(p, pixels=False), path)
    size = _raster_size(p)
    if size is None:
        raise DataError(path, "cannot read image header (corrupt or not an image)")
    return size

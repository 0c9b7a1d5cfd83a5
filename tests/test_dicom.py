"""DICOM films as a viewer shows them (pydicom's VOI and presentation LUTs) and their pixel spacing,
read into the morphometry's millimetres. Every file is written by the test (``write_dicom``)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from spine_det.data.io import read_image


def _ramp(lo: int = 0, hi: int = 4095, n: int = 64) -> np.ndarray:
    return np.linspace(lo, hi, n).round().reshape(4, n // 4)


def _u8(unit: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(unit, 0, 1) * 255).astype(np.uint8)


def _lut_item(first: int, data: np.ndarray, bits: int = 16):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.add_new("LUTDescriptor", "US", [len(data), first, bits])
    item.add_new("LUTData", "US", [int(v) for v in data])
    return item


def test_sigmoid_voi_function(tmp_path: Path, write_dicom) -> None:
    stored = _ramp()
    centre, width = 2000.0, 1200.0
    path = tmp_path / "sigmoid.dcm"
    write_dicom(path, stored, window=(centre, width), VOILUTFunction="SIGMOID")
    expected = _u8(1.0 / (1.0 + np.exp(-4.0 * (stored - centre) / width)))  # PS3.3 C.11.2.1.3.1
    assert np.array_equal(read_image(path), expected)


def test_linear_exact_voi_function(tmp_path: Path, write_dicom) -> None:
    stored = _ramp(1990, 2010, 24)
    centre, width = 2000.0, 10.0
    path = tmp_path / "exact.dcm"
    write_dicom(path, stored, window=(centre, width), VOILUTFunction="LINEAR_EXACT")
    expected = _u8((stored - centre) / width + 0.5)  # PS3.3 C.11.2.1.3.2: no -0.5 / -1 of LINEAR
    assert np.array_equal(read_image(path), expected)


def test_voi_lut_sequence_keeps_its_grey_levels(tmp_path: Path, write_dicom) -> None:
    # A 12-bit LUT (declared 16 bits) from stored 100..355, squared; the film uses only part of it, so a
    # window stretched over the film's own values would show different grey levels than the LUT gives.
    first, n = 100, 256
    lut = np.rint(4095 * (np.arange(n) / (n - 1)) ** 2)
    stored = _ramp(150, 300, 32)
    path = tmp_path / "lut.dcm"
    write_dicom(path, stored, VOILUTSequence=[_lut_item(first, lut)])
    expected = _u8(lut[np.clip(stored.astype(int) - first, 0, n - 1)] / 4095)
    assert np.array_equal(read_image(path), expected)
    # with a window as well, the LUT is the one applied (as pydicom's apply_voi_lut prefers it)
    write_dicom(path, stored, window=(225, 10), VOILUTSequence=[_lut_item(first, lut)])
    assert np.array_equal(read_image(path), expected)


def test_inverse_presentation_lut_shape(tmp_path: Path, write_dicom) -> None:
    stored = _ramp()
    path = tmp_path / "inverse.dcm"
    write_dicom(path, stored, window=(2048, 4096), PresentationLUTShape="INVERSE")
    plain = tmp_path / "identity.dcm"
    write_dicom(plain, stored, window=(2048, 4096), PresentationLUTShape="IDENTITY")
    assert read_image(plain)[0, 0] == 0 and read_image(plain)[-1, -1] == 255
    assert np.array_equal(read_image(path), 255 - read_image(plain))


@pytest.mark.parametrize("shape", [None, "INVERSE", "IDENTITY"])
def test_monochrome1_is_inverted_exactly_once(tmp_path: Path, write_dicom, shape) -> None:
    # DX files pair MONOCHROME1 with Presentation LUT Shape INVERSE: the same inversion, said twice
    first, n = 0, 4096
    lut = np.rint(4095 * np.sqrt(np.arange(n) / (n - 1)))
    stored = _ramp(1000, 3000, 32)
    extra = {"PresentationLUTShape": shape} if shape else {}
    path = tmp_path / "m1.dcm"
    write_dicom(path, stored, "MONOCHROME1", VOILUTSequence=[_lut_item(first, lut)], **extra)
    expected = 255 - _u8(lut[stored.astype(int)] / 4095)  # low values white
    assert np.array_equal(read_image(path), expected)


def test_presentation_lut_sequence(tmp_path: Path, write_dicom) -> None:
    n = 256
    table = np.rint(255 * (np.arange(n) / (n - 1)) ** 0.5)  # a gamma, 8-bit P-values
    stored = _ramp(0, 255, 32)
    path = tmp_path / "plut.dcm"
    write_dicom(path, stored, window=(128, 256), PresentationLUTSequence=[_lut_item(0, table, bits=8)])
    out = read_image(path)
    assert out[0, 0] == 0 and out[-1, -1] == 255
    # the window maps stored v to (v + 0.5) / 255 of the VOI range; the table then takes that index
    idx = np.clip(((stored - 127.5) / 255 + 0.5) * (n - 1), 0, n - 1)
    expected = _u8(np.interp(idx, np.arange(n), table) / 255)
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1
    assert out[1, 0] > stored[1, 0]  # the gamma brightens the mid-tones


def test_invalid_window_falls_back_to_the_percentile_window(tmp_path: Path, write_dicom) -> None:
    stored = _ramp()
    path = tmp_path / "w0.dcm"
    write_dicom(path, stored, window=(2000, 0))  # LINEAR needs width >= 1
    out = read_image(path)
    assert np.all(np.diff(out.ravel().astype(int)) >= 0)
    assert out.min() == 0 and out.max() == 255 and len(np.unique(out)) > 30  # a window, not a threshold


def test_multiframe_reads_the_first_frame(tmp_path: Path, write_dicom) -> None:
    frames = np.stack([_ramp(), 4095 - _ramp()])
    path = tmp_path / "mf.dcm"
    write_dicom(path, frames, window=(2048, 4096))
    out = read_image(path)
    assert out.shape == (4, 16) and out[0, 0] == 0 and out[-1, -1] == 255


# -- pixel spacing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("attributes, spacing, source", [
    ({"PixelSpacing": [0.2, 0.25]}, (0.2, 0.25), "PixelSpacing"),
    ({"ImagerPixelSpacing": [0.15, 0.15]}, (0.15, 0.15), "ImagerPixelSpacing"),
    ({"PixelSpacing": [0.2, 0.2], "ImagerPixelSpacing": [0.15, 0.15]}, (0.2, 0.2), "PixelSpacing"),
    ({"PixelSpacing": [0, 0], "ImagerPixelSpacing": [0.15, 0.15]}, (0.15, 0.15), "ImagerPixelSpacing"),
    ({}, None, None),
    ({"PixelSpacing": [0, 0]}, None, None),
])
def test_pixel_spacing_read_from_the_header(tmp_path: Path, write_dicom, attributes, spacing, source) -> None:
    from spine_det.data.io import read_image_meta

    path = tmp_path / "s.dcm"
    write_dicom(path, _ramp(), **attributes)
    meta = read_image_meta(path)
    assert (meta.height, meta.width) == (4, 16)
    assert meta.spacing_mm == spacing and meta.spacing_source == source
    if spacing is None:
        assert meta.note  # says why there are no millimetres


def test_no_spacing_for_files_that_cannot_carry_one(tmp_path: Path) -> None:
    import cv2

    from spine_det.data.io import read_image_meta

    cv2.imwrite(str(tmp_path / "x.png"), np.zeros((5, 7), np.uint8))
    meta = read_image_meta(tmp_path / "x.png")
    assert (meta.height, meta.width, meta.spacing_mm, meta.spacing_source) == (5, 7, None, None)
    assert "not a DICOM file" in meta.note


def _dicom_patient(src: Path, dst: Path, write_dicom, view: str, **attributes) -> None:
    """Copy a phantom patient and replace one view's JPEG film by a DICOM holding the same pixels."""
    import cv2

    shutil.copytree(src, dst)
    jpg = dst / view / f"{view}.jpg"
    grey = cv2.imread(str(jpg), cv2.IMREAD_GRAYSCALE)
    jpg.unlink()
    write_dicom(dst / view / f"{view}.dcm", grey.astype(np.uint16) * 16, window=(2048, 4096), **attributes)


def test_measure_reports_millimetres_beside_pixels(phantom_root, tmp_path, monkeypatch, write_dicom, load_tool):
    monkeypatch.setenv("SPINE_DET_CACHE", str(tmp_path / "cache"))
    patients = sorted(p for p in phantom_root.glob("Training/*/*") if (p / "LAT").is_dir() and (p / "AP").is_dir())[:2]
    root = tmp_path / "films"
    with_mm, without = (root / p.relative_to(phantom_root) for p in patients)
    _dicom_patient(patients[0], with_mm, write_dicom, "LAT", PixelSpacing=[0.5, 0.5])
    dst = with_mm / "AP"
    jpg = dst / "AP.jpg"
    import cv2

    grey = cv2.imread(str(jpg), cv2.IMREAD_GRAYSCALE)
    jpg.unlink()
    write_dicom(dst / "AP.dcm", grey.astype(np.uint16), window=(128, 256), ImagerPixelSpacing=[0.4, 0.4])
    shutil.copytree(patients[1], without)
    out = tmp_path / "measure"
    assert load_tool("measure").main(["--data-root", str(root), "--out", str(out), "--no-overlay", "--quiet"]) == 0
    records = {json.loads(p.read_text())["meta"]["patient_id"]: json.loads(p.read_text())
               for p in out.glob("*.json") if p.name != "measure_summary.json"}
    assert len(records) == 2
    mm = next(r for r in records.values() if r["meta"]["images"]["lat"].endswith(".dcm"))
    px = next(r for r in records.values() if r is not mm)

    spacing = mm["meta"]["pixel_spacing"]
    assert spacing["lat"]["spacing_mm"] == [0.5, 0.5] and spacing["lat"]["source"] == "PixelSpacing"
    assert spacing["ap"]["spacing_mm"] == [0.4, 0.4] and spacing["ap"]["source"] == "ImagerPixelSpacing"
    measured = [v for v in mm["lat"]["vertebrae"] if v["ha"] is not None]
    assert measured
    for v in measured:
        for k in ("ha", "hm", "hp", "depth", "expected_height"):
            assert v[f"{k}_mm"] == pytest.approx(v[k] * 0.5, abs=0.01), (k, v)
    for d in mm["lat"]["discs"]:
        assert d["height_mm"] == (None if d["height"] is None else pytest.approx(d["height"] * 0.5, abs=0.01))
    widths = [v for v in mm["ap"]["vertebrae"] if v["width"] is not None]
    assert widths and all(v["width_mm"] == pytest.approx(v["width"] * 0.4, abs=0.01) for v in widths)

    for view in ("lat", "ap"):  # JPEG films: the mm fields are there, empty, and the record says why
        assert px["meta"]["pixel_spacing"][view]["spacing_mm"] is None
        assert "not a DICOM file" in px["meta"]["pixel_spacing"][view]["note"]
    assert all(v["ha_mm"] is None for v in px["lat"]["vertebrae"])
    assert all(v["width_mm"] is None for v in px["ap"]["vertebrae"])
    summary = json.loads((out / "measure_summary.json").read_text())
    assert summary["millimetres"] == {"patients": 1, "without_spacing": [px["meta"]["patient_id"]]}

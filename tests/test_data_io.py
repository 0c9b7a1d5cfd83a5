"""Image and mask readers: 8/16-bit PNG and TIFF, RGB, DICOM (MONOCHROME1, rescale, window), masks."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from spine_det.data.io import DataError, image_size, read_image, read_mask


def _ramp16(h: int = 20, w: int = 30) -> np.ndarray:
    return np.linspace(1000, 60000, h * w).reshape(h, w).astype(np.uint16)


def test_8bit_and_rgb(tmp_path: Path) -> None:
    grey = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    assert np.array_equal(read_image(tmp_path / "g.png"), grey)
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 2] = 200  # pure red in BGR order as written by cv2
    cv2.imwrite(str(tmp_path / "c.png"), rgb)
    out = read_image(tmp_path / "c.png")
    assert out.shape == (20, 30) and out.dtype == np.uint8
    assert int(out[0, 0]) == round(200 * 0.299)  # luma of red: channel order handled
    assert image_size(tmp_path / "c.png") == (20, 30)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_percentile_window(tmp_path: Path, suffix: str) -> None:
    a = _ramp16()
    a[0, 0] = 65535  # a single outlier (burnt-in marker) must not squash the contrast
    path = tmp_path / f"x16{suffix}"
    if suffix == ".tif":
        import tifffile

        tifffile.imwrite(str(path), a)
    else:
        cv2.imwrite(str(path), a)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == a.shape
    flat = out.ravel()[1:]
    assert np.all(np.diff(flat.astype(int)) >= 0)  # monotone mapping of the ramp
    assert flat.min() == 0 and flat.max() == 255
    assert (flat == 0).mean() < 0.02 and (flat == 255).mean() < 0.02  # ~0.5 % clipped at each end
    assert image_size(path) == a.shape


def test_dicom_monochrome1_rescale_window(tmp_path: Path, write_dicom) -> None:
    # Stored values → modality values 2*v - 1000; window centre 40, width 401 → [-160.5, 239.5].
    values = np.array([[-400.0, -160, 40, 240, 600, -60]])
    stored = (values + 1000) / 2
    path = tmp_path / "x.dcm"
    write_dicom(path, stored, "MONOCHROME1", rescale=(2, -1000), window=(40, 401))
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (1, 6)
    low, high = 40 - 0.5 - 200, 40 - 0.5 + 200
    expected = np.clip(np.rint((values - low) / (high - low) * 255), 0, 255)
    expected = 255 - expected  # MONOCHROME1: high values are dark
    assert np.array_equal(out.astype(int), expected.astype(int)), (out, expected)
    assert out[0, 0] == 255 and out[0, 4] == 0  # below the window white, above black
    assert out.tolist() == [[255, 255, 127, 0, 0, 191]]  # hand-computed
    assert image_size(path) == (1, 6)


def test_dicom_monochrome2_without_window(tmp_path: Path, write_dicom) -> None:
    stored = _ramp16(10, 12) // 2
    path = tmp_path / "y.dcm"
    write_dicom(path, stored, "MONOCHROME2", rescale=(2, -1000))
    out = read_image(path)
    assert np.all(np.diff(out.ravel().astype(int)) >= 0) and out.min() == 0 and out.max() == 255


def test_masks_1bit_antialiased_rgb(tmp_path: Path) -> None:
    m = np.zeros((16, 24), bool)
    m[3:9, 4:15] = True
    Image.fromarray(m).convert("1").save(tmp_path / "one_bit.png")
    assert Image.open(tmp_path / "one_bit.png").mode == "1"
    assert np.array_equal(read_mask(tmp_path / "one_bit.png"), m)
    aa = np.zeros((16, 24), np.uint8)
    cv2.circle(aa, (12, 8), 5, 255, -1, cv2.LINE_AA)
    assert len(np.unique(aa)) > 2  # really anti-aliased
    cv2.imwrite(str(tmp_path / "aa.png"), aa)
    # the mask policy: above half the maximum (not every non-zero pixel, which thickens the edge)
    assert np.array_equal(read_mask(tmp_path / "aa.png"), aa > 127)
    assert (aa > 0).sum() > (aa > 127).sum()
    one = (m * 1).astype(np.uint8)  # 0/1 masks
    cv2.imwrite(str(tmp_path / "one.png"), one)
    assert np.array_equal(read_mask(tmp_path / "one.png", shape=(16, 24)), m)
    rgb = np.zeros((16, 24, 3), np.uint8)
    rgb[m] = (0, 0, 255)
    cv2.imwrite(str(tmp_path / "rgb.png"), rgb)
    assert np.array_equal(read_mask(tmp_path / "rgb.png"), m)


def test_bad_files_one_line(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "m.png"), np.zeros((10, 12), np.uint8))
    with pytest.raises(DataError) as e:
        read_mask(tmp_path / "m.png", shape=(10, 13))
    assert "m.png" in str(e.value) and "12x10" in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "bad file.jpg").write_bytes(b"\xff\xd8garbage")
    for fn in (read_image, image_size, read_mask):
        with pytest.raises(DataError, match=r"bad file\.jpg"):
            fn(tmp_path / "bad file.jpg")
    with pytest.raises(DataError, match="not found"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "bad.dcm").write_bytes(b"nope")
    with pytest.raises(DataError, match=r"bad\.dcm"):
        read_image(tmp_path / "bad.dcm")
    err = DataError(tmp_path / "x.png", "broken").with_patient("ID (3)")
    assert str(err).startswith("patient 'ID (3)'") and err.as_problem()["reason"] == "broken"


def test_a_film_without_one_finite_pixel_is_refused(tmp_path: Path) -> None:
    """An all-NaN float TIFF used to be windowed into a black film that predict segmented silently."""
    import tifffile

    tifffile.imwrite(str(tmp_path / "nan.tif"), np.full((20, 30), np.nan, np.float32))
    with pytest.raises(DataError, match=r"nan\.tif: no finite pixel"):
        read_image(tmp_path / "nan.tif")
    partly = np.linspace(0, 1, 600, dtype=np.float32).reshape(20, 30)
    partly[0, :5] = np.nan  # some finite pixels: read as before, NaN as the darkest grey
    tifffile.imwrite(str(tmp_path / "partly.tif"), partly)
    out = read_image(tmp_path / "partly.tif")
    assert out.shape == (20, 30) and out.max() == 255

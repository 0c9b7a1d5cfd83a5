"""The pixel cap: an image larger than any film is refused from its header, before its pixels are decoded."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from spine_det.data.io import MAX_PIXELS_ENV, DataError, image_size, read_image, read_mask


def write_blank_png(path: Path, width: int, height: int) -> None:
    """A 1-bit black PNG of any size, written row by row: a few tens of KB on disk, never whole in memory."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    row = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)))
        f.write(chunk(b"IDAT", idat))
        f.write(chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def huge_png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cap") / "huge.png"
    write_blank_png(path, 20000, 20000)  # 400 megapixels
    assert path.stat().st_size < 200_000
    return path


# In a fresh interpreter, so that its peak memory is this read's alone.
_READ = """
import json, resource, sys, time
from spine_det.data.io import DataError, read_image
t = time.perf_counter()
try:
    read_image(sys.argv[1]); error = None
except DataError as e:
    error = str(e)
seconds = time.perf_counter() - t
try:  # this process's own high-water mark (ru_maxrss keeps the parent's across exec: pytest's GBs)
    peak_kb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
except OSError:
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"error": error, "seconds": seconds, "peak_mb": peak_kb / 1024}))
"""


def test_huge_png_is_refused_from_its_header_fast_and_memory_light(huge_png: Path, monkeypatch) -> None:
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)
    run = subprocess.run([sys.executable, "-c", _READ, str(huge_png)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    r = json.loads(run.stdout.strip().splitlines()[-1])
    assert r["error"] is not None, r  # decoded in full, it would be a 400 MB array
    assert str(huge_png) in r["error"] and "20000x20000" in r["error"] and MAX_PIXELS_ENV in r["error"]
    assert "\n" not in r["error"]
    assert r["seconds"] < 1.0 and r["peak_mb"] < 200, r


def test_header_of_a_huge_png_still_reads(huge_png: Path) -> None:
    assert image_size(huge_png) == (20000, 20000)  # PIL's decompression-bomb limit does not hide the size


def test_the_cap_is_raised_and_lowered_by_the_environment(tmp_path: Path, monkeypatch, write_dicom) -> None:
    png, dcm, mask = tmp_path / "x.png", tmp_path / "x.dcm", tmp_path / "m.png"
    cv2.imwrite(str(png), np.zeros((20, 30), np.uint8))
    cv2.imwrite(str(mask), np.full((20, 30), 255, np.uint8))
    write_dicom(dcm, np.zeros((20, 30)))
    monkeypatch.setenv(MAX_PIXELS_ENV, "500")
    for path, reader in ((png, read_image), (dcm, read_image), (mask, read_mask)):
        with pytest.raises(DataError, match=rf"30x20 .*{MAX_PIXELS_ENV}"):
            reader(path)
    monkeypatch.setenv(MAX_PIXELS_ENV, "600")
    assert read_image(png).shape == read_image(dcm).shape == read_mask(mask).shape == (20, 30)
    monkeypatch.setenv(MAX_PIXELS_ENV, "0")  # no cap
    assert read_image(png).shape == (20, 30)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(DataError, match=f"{MAX_PIXELS_ENV}='lots'"):
        read_image(png)


def test_the_scan_checks_the_cap_before_decoding(tmp_path: Path, monkeypatch) -> None:
    from spine_det.data.validate import decode_checked

    png = tmp_path / "film.png"
    cv2.imwrite(str(png), np.zeros((20, 30), np.uint8))
    monkeypatch.setenv(MAX_PIXELS_ENV, "500")
    with pytest.raises(DataError, match=rf"film.png: 30x20 .*{MAX_PIXELS_ENV}"):
        decode_checked(png)
    monkeypatch.delenv(MAX_PIXELS_ENV)
    assert decode_checked(png).shape == (20, 30)

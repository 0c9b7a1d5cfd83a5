"""Shared fixtures: one phantom dataset per test session, prepared once.

``phantom_root``: ~8 synthetic patients at size 256 (seed 0), written by
``spine_det.data.phantom.generate_dataset``. ``prepared``: ``prepare_dataset`` on
it with its cache in a temporary folder (scan + COCO conversion done once).
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

PHANTOM_PATIENTS = 8
PHANTOM_SIZE = 256


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory):
    from spine_det.data.phantom import generate_dataset

    root = tmp_path_factory.mktemp("phantom") / "data"
    generate_dataset(root, PHANTOM_PATIENTS, seed=0, size=PHANTOM_SIZE, progress=False)
    return root


@pytest.fixture
def phantom_copy(phantom_root, tmp_path, monkeypatch):
    """A private copy of the session phantom (a tool under test may not touch the shared one), its
    cache outside it."""
    import shutil

    root = tmp_path / "data"
    shutil.copytree(phantom_root, root)
    monkeypatch.setenv("SPINE_DET_CACHE", str(tmp_path / "cache"))
    return root


@pytest.fixture
def one_error_line(capsys):
    """The single ``error: ...`` line a tool printed to stderr (asserted to be exactly one)."""

    def read() -> str:
        err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ln.startswith("error:")]
        assert len(err) == 1, err
        return err[0]

    return read


@pytest.fixture(scope="session")
def prepared(phantom_root, tmp_path_factory):
    from spine_det.data.prepare import prepare_dataset

    return prepare_dataset(phantom_root, cache_dir=tmp_path_factory.mktemp("spine_cache"))


@pytest.fixture(scope="session")
def load_tool():
    """``load_tool("measure_cobb")``: a tool as a module (``spine_det.tools.<name>``), to call its
    ``main(argv)``; a tool not yet moved into the package is loaded from ``tools/<name>.py``."""
    import importlib
    import importlib.util
    from pathlib import Path

    tools = Path(__file__).resolve().parents[1] / "tools"

    def load(name: str):
        if importlib.util.find_spec(f"spine_det.tools.{name}") is not None:
            return importlib.import_module(f"spine_det.tools.{name}")
        spec = importlib.util.spec_from_file_location(f"tool_{name}", tools / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture(scope="session")
def write_dicom():
    """``write_dicom(path, stored, photometric="MONOCHROME2", rescale=None, window=None, **attributes)``: a
    16-bit DX DICOM file with the stored values given, optional rescale (slope, intercept) and window (centre,
    width); ``attributes`` are set on the dataset as given (``VOILUTFunction="SIGMOID"``,
    ``PixelSpacing=[0.2, 0.2]``, ``VOILUTSequence=[item]``, ...)."""
    import numpy as np

    def write(path, stored, photometric="MONOCHROME2", rescale=None, window=None, **attributes) -> None:
        from pydicom.dataset import FileDataset, FileMetaDataset
        from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.Modality = "DX"
        stored = np.asarray(stored)
        if stored.ndim == 3:  # multi-frame
            ds.NumberOfFrames = stored.shape[0]
        ds.Rows, ds.Columns = stored.shape[-2:]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        if rescale is not None:
            ds.RescaleSlope, ds.RescaleIntercept = str(rescale[0]), str(rescale[1])
        if window is not None:
            ds.WindowCenter, ds.WindowWidth = str(window[0]), str(window[1])
        for name, value in attributes.items():
            setattr(ds, name, value)
        ds.PixelData = np.asarray(stored).astype(np.uint16).tobytes()
        ds.save_as(str(path), enforce_file_format=True)

    return write


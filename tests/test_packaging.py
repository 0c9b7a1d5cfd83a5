"""The package ships its configs: one resolver finds them, and a built wheel carries all of them."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from spine_det.config.paths import config_dir, resolve_config_file

REPO = Path(__file__).resolve().parents[1]


def test_resolve_by_name_and_by_path(tmp_path, monkeypatch):
    assert config_dir() == (REPO / "configs").resolve()
    assert resolve_config_file("lat_vertebra.yaml") == (REPO / "configs" / "lat_vertebra.yaml").resolve()
    assert resolve_config_file("linknet/ap_vertebra") == (REPO / "configs" / "linknet" / "ap_vertebra.yaml").resolve()
    # The checkout spelling works from any folder, as a name.
    monkeypatch.chdir(tmp_path)
    assert resolve_config_file("configs/linknet/lat_vertebra.yaml") == (REPO / "configs/linknet/lat_vertebra.yaml").resolve()
    # A real file wins over a shipped config of the same name.
    own = tmp_path / "lat_vertebra.yaml"
    own.write_text("_BASE_: x\n")
    assert resolve_config_file("lat_vertebra.yaml") == own.resolve()
    with pytest.raises(FileNotFoundError, match="no_such_task"):
        resolve_config_file("no_such_task.yaml")


def test_wheel_ships_every_config(tmp_path):
    """A non-editable install gets ``spine_det/configs`` with every YAML of the top-level ``configs/``."""
    pytest.importorskip("setuptools")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "README.md"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "spine_det", src / "spine_det", ignore=ignore)
    shutil.copytree(REPO / "configs", src / "configs", ignore=ignore)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("spine_det-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"spine_det/configs/" + p.relative_to(REPO / "configs").as_posix() for p in (REPO / "configs").rglob("*.yaml")}
    assert expected and expected <= names, sorted(expected - names)[:5]
    assert "spine_det/config/paths.py" in names and "spine_det/resources/reported_results.csv" in names

"""The package ships its configs: one resolver finds them, and a built wheel carries all of them."""
from __future__ import annotations

import re
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
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "spine-det = spine_det.tools.__main__:invoke_main" in zipfile.ZipFile(wheel).read(entry_points).decode()


WRAPPER = re.compile(
    r'#!/usr/bin/env python\n"""[^\n]+ \(code: spine_det\.tools\.(?P<name>\w+)\)\."""\n'
    r"from spine_det\.tools\.(?P=name) import invoke_main\n\nif __name__ == \"__main__\":\n    invoke_main\(\)\n\Z")


def test_tools_follow_the_convention():
    """Every tool module has main + invoke_main and a spine-det command; every tools/<name>.py whose
    module is in the package is exactly the thin wrapper; no development script among the tools."""
    import importlib

    from spine_det.tools.__main__ import COMMANDS

    modules = sorted(p.stem for p in (REPO / "spine_det" / "tools").glob("*.py") if not p.stem.startswith("__"))
    assert set(modules) <= set(COMMANDS), set(modules) - set(COMMANDS)
    for name in modules:
        mod = importlib.import_module(f"spine_det.tools.{name}")
        assert callable(mod.main) and callable(mod.invoke_main), name
    for script in sorted((REPO / "tools").glob("*.py")):
        if script.stem in modules:
            m = WRAPPER.match(script.read_text(encoding="utf-8"))
            assert m and m.group("name") == script.stem, f"{script.name} is not the thin wrapper"
    for dev_script in ("ablation_thin", "anchor_stats", "bench_evaluator", "bench_linknet"):
        assert not (REPO / "tools" / f"{dev_script}.py").exists() and (REPO / "dev" / f"{dev_script}.py").is_file()


def test_spine_det_command_dispatches_by_name(capsys, monkeypatch):
    from spine_det.tools.__main__ import COMMANDS, main

    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert all(n.replace("_", "-") in listed for n in COMMANDS)
    for registry_tool in ("train_net", "train_linknet", "predict", "benchmark"):
        assert registry_tool in COMMANDS
    assert main([]) == 2
    capsys.readouterr()
    assert main(["make-phantm"]) == 2
    assert "did you mean make-phantom?" in capsys.readouterr().err
    # "-" and "_" alike; the tool's usage line names the command; the tool's exit code comes back
    with pytest.raises(SystemExit) as e:
        main(["make_phantom", "--help"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("usage: spine-det make-phantom")
    assert main(["tasks"]) == 0 and "lat_vertebra" in capsys.readouterr().out
    monkeypatch.setitem(COMMANDS, "no_such_tool", "a command whose module is absent")
    assert main(["no-such-tool"]) == 2 and "has no spine_det.tools.no_such_tool" in capsys.readouterr().err

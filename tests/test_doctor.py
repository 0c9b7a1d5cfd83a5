import subprocess
from pathlib import Path
import sys

import pytest

from spine_det import doctor


@pytest.mark.slow
def test_doctor_exits_zero_and_names_detectron2():
    out = subprocess.run([sys.executable, "-m", "spine_det.tools", "doctor", "--device", "cpu"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "detectron2 source" in out.stdout
    assert "mask r-cnn forward" in out.stdout and "doctor: OK" in out.stdout


@pytest.mark.slow
def test_doctor_fails_with_one_line_on_a_bad_device():
    out = subprocess.run([sys.executable, "-m", "spine_det.tools", "doctor", "--device", "nonsense"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert out.stdout.strip().splitlines()[-1].startswith("doctor: FAILED:")


# --- the repair command fits the way the package was installed (issue 32, item 5) ---


def _checkout(root):
    """A source checkout's layout: the package with a Makefile and setup.py beside it."""
    (root / "spine_det").mkdir(parents=True)
    (root / "Makefile").write_text("install:\n")
    (root / "setup.py").write_text("")
    return root


def test_install_method_from_where_the_package_lives(tmp_path):
    repo = _checkout(tmp_path / "repo")
    site = tmp_path / "venv" / "lib" / "site-packages"
    (site / "spine_det").mkdir(parents=True)
    method = doctor.install_method
    assert method(repo / "spine_det", prefix=str(repo / ".venv"), in_container=False) == \
        doctor.InstallMethod("make", repo.resolve())
    # the checkout's .venv wins even inside a container (a dev container, CI)
    assert method(repo / "spine_det", prefix=str(repo / ".venv"), in_container=True).kind == "make"
    assert method(repo / "spine_det", prefix=str(tmp_path / "venv"), in_container=False) == \
        doctor.InstallMethod("editable", repo.resolve())
    assert method(site / "spine_det", prefix=str(tmp_path / "venv"), in_container=False, editable=repo) == \
        doctor.InstallMethod("editable", repo)
    assert method(site / "spine_det", prefix=str(tmp_path / "venv"), in_container=True, editable=repo).kind == "docker"


def test_a_copy_in_site_packages_without_an_editable_record_is_a_pip_install(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    (site / "spine_det").mkdir(parents=True)
    monkeypatch.setattr(doctor, "editable_source", lambda: None)
    assert doctor.install_method(site / "spine_det", prefix=str(tmp_path), in_container=False) == doctor.InstallMethod("pip")


@pytest.mark.parametrize("kind, wanted, unwanted", [
    ("make", "`make install` in", "-B"),
    ("editable", "`spine-det install-detectron2`", "make"),
    ("pip", "`spine-det install-detectron2`", "make"),
    ("docker", "docker build", "make"),
])
def test_repair_command_for_a_missing_detectron2(tmp_path, kind, wanted, unwanted):
    fix = doctor.repair_command("detectron2", doctor.InstallMethod(kind, tmp_path), "spine-det")
    assert wanted in fix and unwanted not in fix


def test_repair_command_after_make_install_forces_make(tmp_path):
    """`make install` is a no-op once its stamp exists: the advice must re-run it."""
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / doctor.MAKE_STAMP).touch()
    assert "`make -B install`" in doctor.repair_command("detectron2", doctor.InstallMethod("make", tmp_path))


@pytest.mark.parametrize("kind, wanted", [("pip", "pip install torch torchvision"), ("docker", "docker build"),
                                          ("editable", "pip install -c requirements/constraints.txt -e .")])
def test_repair_command_for_a_missing_torch(tmp_path, kind, wanted):
    assert wanted in doctor.repair_command("torch", doctor.InstallMethod(kind, tmp_path))


def test_doctor_tells_a_pip_user_the_pip_fix_not_make(monkeypatch, capsys):
    """Before: every user without Detectron2 was told `make install`, which a pip user does not have."""
    monkeypatch.setattr(doctor, "detectron2_origin", lambda: {"installed": "no"})
    monkeypatch.setattr(doctor, "install_method", lambda *a, **k: doctor.InstallMethod("pip"))
    monkeypatch.setattr(doctor, "spine_det_command", lambda: "spine-det")
    assert doctor.run_doctor(forward=False) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("doctor: FAILED: Detectron2 is not installed")
    assert "`spine-det install-detectron2`" in last and "make" not in last


def test_only_the_package_image_counts_as_docker(monkeypatch, tmp_path):
    """Any container (a dev container, a CI runner) used to be told to rebuild the package's image."""
    site = tmp_path / "site-packages"
    (site / "spine_det").mkdir(parents=True)
    monkeypatch.delenv(doctor.IMAGE_ENV, raising=False)
    assert doctor.install_method(site / "spine_det", prefix=str(tmp_path)).kind in ("pip", "editable")
    monkeypatch.setenv(doctor.IMAGE_ENV, "1")
    assert doctor.install_method(site / "spine_det", prefix=str(tmp_path)).kind == "docker"
    dockerfile = Path(__file__).resolve().parents[1] / "Dockerfile"
    assert f"{doctor.IMAGE_ENV}=1" in dockerfile.read_text()

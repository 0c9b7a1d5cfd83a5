"""The Detectron2 compatibility shims and the verified installer."""
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import spine_det.compat as compat

ROOT = Path(__file__).resolve().parent.parent


def test_pillow_linear_alias_present_after_shim():
    from PIL import Image

    assert Image.LINEAR == Image.BILINEAR
    import detectron2.data.transforms as T  # fails on Pillow >= 10 without the alias

    assert T.ExtentTransform.__init__.__defaults__[0] == Image.BILINEAR


@pytest.mark.skipif(compat.has_compiled_ops(), reason="official build: the stand-in stays out of the way")
def test_compiled_op_raises_clear_error():
    import torch
    from detectron2.layers import rotated_boxes

    with pytest.raises(compat.CompiledOpsMissingError, match="DETECTRON2_SOURCE=git"):
        rotated_boxes.pairwise_iou_rotated(torch.zeros(1, 5), torch.zeros(1, 5))


@pytest.mark.skipif(compat.has_compiled_ops(), reason="official build: the stand-in stays out of the way")
def test_stand_in_answers_environment_probes_and_hides_dunders():
    from detectron2 import _C
    from detectron2.utils.collect_env import collect_env_info

    assert compat.uses_stand_in()
    assert _C.has_cuda() is False
    assert not hasattr(_C, "__file__")
    with pytest.raises(compat.CompiledOpsMissingError):
        _ = _C.deform_conv_forward
    assert "detectron2" in collect_env_info()  # called by default_setup; must not crash


def test_stand_in_not_installed_when_compiled_ops_exist(tmp_path, monkeypatch):
    """With an official build (a compiled _C beside the package) the shim must not register anything."""
    fake = tmp_path / "detectron2"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "_C.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    code = "import sys; import spine_det.compat as c; print(c.has_compiled_ops(), 'detectron2._C' in sys.modules)"
    # The fake package first on the path (PYTHONPATH, so the interpreter's own path is not edited).
    path = os.pathsep.join([str(tmp_path), str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": path})
    assert out.stdout.split() == ["True", "False"]


def _load_installer():
    return importlib.import_module("spine_det.tools.install_detectron2")


def test_installer_refuses_a_tampered_sdist(tmp_path):
    inst = _load_installer()
    (tmp_path / inst.PYPI_SDIST).write_bytes(b"not the published archive")
    with pytest.raises(SystemExit, match="does not match the pinned"):
        inst.install_from_pypi_sources(tmp_path)


def test_installer_records_the_source_doctor_reads():
    from spine_det.doctor import detectron2_origin

    info = detectron2_origin()
    assert info["installed"] == "yes"
    assert ("PyPI" in info["source"]) != compat.has_compiled_ops()


def test_installer_auto_falls_back_to_pypi_sources_when_the_build_fails(monkeypatch, capsys):
    inst = _load_installer()
    calls = []

    def failing_build(commit):
        calls.append("git")
        raise subprocess.CalledProcessError(1, ["pip", "install", "detectron2 @ git+..."])

    monkeypatch.setattr(inst, "github_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(inst, "installed_source", lambda: None)
    monkeypatch.setattr(inst, "install_from_git", failing_build)
    monkeypatch.setattr(inst, "install_from_pypi_sources", lambda d=None: calls.append("pypi"))
    assert inst.main(["--source", "auto"]) == 0
    assert calls == ["git", "pypi"]
    assert "falls back to PyPI's verified sources" in capsys.readouterr().out
    calls.clear()
    with pytest.raises(subprocess.CalledProcessError):  # an explicit git request stays an error
        inst.main(["--source", "git"])
    assert calls == ["git"]


@pytest.mark.slow
def test_spawned_training_workers_apply_the_shims():
    """``train-net --num-gpus 2``: each worker is a new interpreter that unpickles Detectron2's worker, which
    imports ``detectron2.engine``; without the shims that import fails there (``PIL.Image.LINEAR`` with
    PyPI's Detectron2 and Pillow >= 10). spine_det's launch spawns through a module that applies them first:
    here Detectron2's own worker gets as far as its CUDA check in a fresh spawned process."""
    import torch
    import torch.multiprocessing as mp
    from detectron2.engine.launch import _distributed_worker, _find_free_port

    from spine_det.engine.launch import _spawned_worker, launch

    assert launch(lambda x: x + 1, 1, args=(1,)) == 2  # one process: the function itself, as Detectron2's
    args = (_distributed_worker, print, 1, 1, 0, f"tcp://127.0.0.1:{_find_free_port()}", ())
    if torch.cuda.is_available():  # a GPU: the one-process group forms and the worker runs
        mp.spawn(_spawned_worker, nprocs=1, args=args)
        return
    with pytest.raises(mp.ProcessRaisedException) as e:
        mp.spawn(_spawned_worker, nprocs=1, args=args)
    assert "cuda is not available" in str(e.value) and "LINEAR" not in str(e.value)


def test_installer_refuses_a_mistyped_source_in_the_environment(monkeypatch, capsys):
    """``DETECTRON2_SOURCE=gti`` took the PyPI route without a word while ``--source gti`` is refused."""
    inst = _load_installer()
    calls = []
    monkeypatch.setattr(inst, "github_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(inst, "installed_source", lambda: None)
    monkeypatch.setattr(inst, "install_from_git", lambda commit: calls.append("git"))
    monkeypatch.setattr(inst, "install_from_pypi_sources", lambda d=None: calls.append("pypi"))
    monkeypatch.setenv("DETECTRON2_SOURCE", "gti")
    with pytest.raises(SystemExit) as e:
        inst.main([])
    assert e.value.code == 2 and calls == []
    assert "DETECTRON2_SOURCE='gti' is not one of auto, git, pypi" in capsys.readouterr().err
    assert inst.main(["--source", "git"]) == 0 and calls == ["git"]  # the flag still wins over the environment
    monkeypatch.setenv("DETECTRON2_SOURCE", "")  # set but empty: the default
    assert inst.main([]) == 0 and calls == ["git", "pypi"]

"""Outputs are readable by the user's group and others as the umask says (0644 under 022), whichever
writer made them, and a failed write (disk full) is one line naming the target with nothing left behind."""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _no_temporaries(folder: Path) -> None:
    left = [p.name for p in folder.rglob("*") if ".tmp" in p.name]
    assert not left, left


def test_every_writer_gives_umask_modes(tmp_path, umask_022):
    """JSON, a LinkNet checkpoint, a Detectron2 checkpoint, phantom films and masks, an overlay PNG: 0644."""
    import cv2

    from spine_det.data.phantom import generate_dataset
    from spine_det.engine.semseg_trainer import save_checkpoint
    from spine_det.utils.fileio import atomic_path, atomic_write_json

    atomic_write_json(tmp_path / "metrics.json", {"dice": 0.5})
    save_checkpoint(tmp_path / "model_best.pth", {"model": {"w": torch.ones(2)}})
    with atomic_path(tmp_path / "overlay.png") as tmp:
        assert cv2.imwrite(str(tmp), np.zeros((8, 8), np.uint8))
    generate_dataset(tmp_path / "phantom", 1, seed=0, size=96, workers=1, progress=False)

    import spine_det.compat  # noqa: F401  (shims before detectron2)
    from spine_det.engine.checkpointer import SafeDetectionCheckpointer

    (tmp_path / "maskrcnn").mkdir()  # the trainer's OUTPUT_DIR
    SafeDetectionCheckpointer(torch.nn.Linear(2, 1), save_dir=str(tmp_path / "maskrcnn")).save("model_final")

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 8 and any(p.suffix == ".jpg" for p in files) and any(p.name == "model_final.pth" for p in files)
    assert {p.relative_to(tmp_path).as_posix(): oct(_mode(p)) for p in files if _mode(p) != 0o644} == {}


def test_the_umask_is_respected_not_overridden(tmp_path):
    from spine_det.utils.fileio import atomic_write_text

    old = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "private.txt") == 0o600


def test_disk_full_is_one_line_naming_the_target(tmp_path, monkeypatch):
    """ENOSPC from the writer: an OutputWriteError (a UserError and an OSError) that names the file the
    user asked for, not the temporary; no temporary file left; an older file of that name untouched."""
    from spine_det.utils.cli import run_reporting_user_errors
    from spine_det.utils.errors import UserError
    from spine_det.utils.fileio import OutputWriteError, atomic_write_json

    target = tmp_path / "out" / "summary.json"
    atomic_write_json(target, {"old": True})

    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OutputWriteError) as e:
        atomic_write_json(target, {"new": True})
    assert isinstance(e.value, UserError) and isinstance(e.value, OSError) and e.value.errno == errno.ENOSPC
    msg = str(e.value)
    assert msg == f"{target}: cannot write it (No space left on device)" and ".tmp" not in msg and "\n" not in msg
    _no_temporaries(tmp_path)
    monkeypatch.undo()
    assert target.read_text() == '{\n  "old": true\n}\n'

    def tool(_args):
        atomic_write_json(target, {"new": True})
        return 0

    monkeypatch.setattr(Path, "write_bytes", full)
    assert run_reporting_user_errors(tool, None) == 2  # the tools' one-line error, exit 2 (issue 31)


def test_a_writer_that_fails_by_removing_its_file_is_named(tmp_path):
    """cv2.imwrite returns False and deletes its file when the encoder cannot write (disk full): that was
    reported as a missing '.tmp' file; now the target is named."""
    from spine_det.utils.fileio import OutputWriteError, atomic_path

    target = tmp_path / "case_mask.png"
    with pytest.raises(OutputWriteError, match=r"case_mask\.png: cannot write it \(the writer failed") as e:
        with atomic_path(target) as tmp:
            tmp.unlink()  # what cv2.imwrite does on failure
    assert ".tmp" not in str(e.value) and not target.exists()
    _no_temporaries(tmp_path)


def test_torch_save_on_a_full_disk_is_named(tmp_path, monkeypatch):
    """torch.save's zip writer fails with a RuntimeError ("unexpected pos ...") when the disk fills: with
    (almost) no space left, that is reported as ENOSPC on the checkpoint."""
    from spine_det.utils import fileio
    from spine_det.utils.checkpoint_io import save_plain

    def broken_save(obj, f, *a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(torch, "save", broken_save)
    monkeypatch.setattr(fileio, "_free_bytes", lambda folder: 0)
    with pytest.raises(fileio.OutputWriteError, match=r"last_checkpoint\.pth: cannot write it \(No space left") as e:
        save_plain(tmp_path / "last_checkpoint.pth", {"model": {}})
    assert e.value.errno == errno.ENOSPC
    _no_temporaries(tmp_path)
    monkeypatch.setattr(fileio, "_free_bytes", lambda folder: 10 << 30)  # space left: a bug, not reworded
    with pytest.raises(RuntimeError, match="unexpected pos"):
        save_plain(tmp_path / "last_checkpoint.pth", {"model": {}})
    _no_temporaries(tmp_path)


def test_an_input_error_inside_the_block_is_not_called_a_write_error(tmp_path):
    import shutil

    from spine_det.utils.fileio import OutputWriteError, atomic_path

    with pytest.raises(FileNotFoundError) as e:
        with atomic_path(tmp_path / "AP.jpg") as tmp:
            shutil.copyfile(tmp_path / "missing.jpg", tmp)
    assert not isinstance(e.value, OutputWriteError) and "missing.jpg" in str(e.value)
    _no_temporaries(tmp_path)


def test_output_write_error_crosses_process_pools():
    import pickle

    from spine_det.utils.fileio import OutputWriteError

    e = pickle.loads(pickle.dumps(OutputWriteError("/out/a.png", "No space left on device", errno.ENOSPC)))
    assert str(e) == "/out/a.png: cannot write it (No space left on device)" and e.errno == errno.ENOSPC


def test_maskrcnn_checkpoint_on_a_full_disk_leaves_nothing_half_written(tmp_path, monkeypatch):
    """Detectron2's checkpointer wrote straight into model_XXXX.pth: a full disk left a truncated file
    behind a RuntimeError traceback. Now atomic: one line naming it, last_checkpoint still on the old one."""
    import spine_det.compat  # noqa: F401  (shims before detectron2)
    from spine_det.engine.checkpointer import SafeDetectionCheckpointer
    from spine_det.utils.fileio import OutputWriteError

    ck = SafeDetectionCheckpointer(torch.nn.Linear(2, 1), save_dir=str(tmp_path))
    ck.save("model_0000009", iteration=9)

    def full(obj, f, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OutputWriteError, match=r"model_0000019\.pth: cannot write it \(No space left on device\)"):
        ck.save("model_0000019", iteration=19)
    assert not (tmp_path / "model_0000019.pth").exists() and (tmp_path / "last_checkpoint").read_text() == "model_0000009.pth"
    _no_temporaries(tmp_path)


def test_spine_det_reports_a_write_error_a_tool_did_not_catch(monkeypatch, capsys):
    """`spine-det make-phantom` on a full disk: a traceback ending in OSError ENOSPC before; now every
    command run through `spine-det` prints an uncaught UserError as one line and exits 1."""
    import sys
    import types

    from spine_det.tools.__main__ import COMMANDS, main
    from spine_det.utils.fileio import OutputWriteError

    tool = types.ModuleType("spine_det.tools.full_disk_tool")

    def tool_main(argv):
        raise OutputWriteError("out/AP.jpg", os.strerror(errno.ENOSPC), errno.ENOSPC)

    tool.main = tool_main
    monkeypatch.setitem(sys.modules, tool.__name__, tool)
    monkeypatch.setitem(COMMANDS, "full_disk_tool", "a tool whose disk is full")
    assert main(["full-disk-tool"]) == 2  # a UserError the tool left to the dispatcher: one line, exit 2
    assert capsys.readouterr().err == "error: out/AP.jpg: cannot write it (No space left on device)\n"

"""Progress: a bar on a terminal, whole lines in a redirected log (no carriage-return frames)."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from spine_det.utils import progress as progress_mod
from spine_det.utils.progress import LogProgress, progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_redirected_stream_gets_whole_lines_with_count_share_and_postfix(monkeypatch) -> None:
    out = io.StringIO()
    bar = progress(range(4), desc="epoch 1/2", stream=out)
    assert isinstance(bar, LogProgress)
    for _ in bar:
        bar.set_postfix(loss="-0.5000")
    text = out.getvalue()
    assert "\r" not in text and text.count("\n") == 1
    assert text.startswith("epoch 1/2: 4/4 it (100 %), ") and text.rstrip().endswith("loss=-0.5000")

    monkeypatch.setattr(progress_mod, "LOG_EVERY", 0.0)  # a line at every update, then none at close
    out = io.StringIO()
    with progress(total=3, desc="phantom", unit="patient", stream=out) as bar:
        for _ in range(3):
            bar.update()
    assert out.getvalue().splitlines() == [f"phantom: {k}/3 patient ({100 * k / 3:.0f} %), 0 s" for k in (1, 2, 3)]


def test_disabled_progress_writes_nothing_and_a_terminal_gets_tqdm() -> None:
    out = io.StringIO()
    for _ in progress(range(3), desc="x", disable=True, stream=out):
        pass
    assert out.getvalue() == ""
    from tqdm import tqdm

    assert isinstance(progress(range(3), stream=_Tty()), tqdm)


def test_a_tool_redirected_to_a_file_writes_no_carriage_returns(tmp_path: Path) -> None:
    """make-phantom piped into a log used to leave tqdm's \\r frames there."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([sys.executable, "-m", "spine_det.tools", "make-phantom", "--out", str(tmp_path / "p"),
                          "--patients", "2", "--size", "64", "--workers", "1"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "\r" not in run.stderr and "phantom: 2/2 patient (100 %)" in run.stderr

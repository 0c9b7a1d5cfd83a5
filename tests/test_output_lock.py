"""One writer per output folder: a second spine-det process is refused naming the first, and a COCO
folder made from one data root is not silently refilled from another."""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LOCK_FILE = ".spine_det.lock"  # spine_det.utils.paths.LOCK_FILE, the documented name




@pytest.fixture
def data(phantom_copy):
    return phantom_copy


def _hold_in_another_process(folder: Path) -> subprocess.Popen:
    """A second process that takes the lock on ``folder`` as spine-det does and keeps it until killed."""
    code = ("import fcntl, os, sys, time; f = open(os.path.join(sys.argv[1], sys.argv[2]), 'a+'); "
            "fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB); f.truncate(0); f.write(str(os.getpid())); "
            "f.flush(); print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder), LOCK_FILE], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _hold_here(folder: Path, pid: int = 4242):
    """The lock as another process holds it (flock is per open file, so this conflicts in-process too)."""
    folder.mkdir(parents=True, exist_ok=True)
    f = open(folder / LOCK_FILE, "a+")
    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    f.truncate(0)
    f.write(f"{pid}\n")
    f.flush()
    return f


def test_a_second_process_writing_one_out_is_refused_naming_the_first(data, tmp_path, capsys, load_tool, one_error_line):
    out = tmp_path / "coco"
    out.mkdir()
    holder = _hold_in_another_process(out)
    try:
        convert = load_tool("convert_to_coco")
        assert convert.main(["--data-root", str(data), "--out", str(out), "--workers", "1", "--no-progress"]) == 2
        msg = one_error_line()
        assert f"is being written by another spine-det process (pid {holder.pid})" in msg and str(out) in msg
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing converted
        assert load_tool("measure").main(["--data-root", str(data), "--out", str(out), "--quiet",
                                          "--no-overlay"]) == 2
        assert f"pid {holder.pid}" in one_error_line()
    finally:
        holder.kill()
        holder.wait()
    # the holder gone (killed: no clean-up of its own), its lock goes with it: the next writer goes ahead
    assert convert.main(["--data-root", str(data), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    assert (out / "conversion_stamps.json").is_file()


def test_benchmark_and_eval_only_refuse_a_folder_being_written(data, tmp_path, capsys, load_tool, one_error_line):
    out = tmp_path / "bench"
    held = _hold_here(out)
    try:
        # (--seeds x: a tree without the lock stops at that check, just after the output's, instead of benchmarking)
        assert load_tool("benchmark").main(["--data-root", str(data), "--out", str(out), "--models", "linknet",
                                            "--skip-classifier", "--seeds", "x"]) == 2
        assert "another spine-det process (pid 4242)" in one_error_line()
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]
        run = tmp_path / "run"
        held_run = _hold_here(run, pid=4343)
        try:
            cfg = Path(__file__).resolve().parents[1] / "configs" / "linknet" / "lat_vertebra.yaml"
            assert load_tool("train_linknet").main(["--config-file", str(cfg), "--data-root", str(data), "--profile",
                                                    "cpu", "--eval-only", "OUTPUT_DIR", str(run)]) == 2
            assert "another spine-det process (pid 4343)" in one_error_line()
        finally:
            held_run.close()
    finally:
        held.close()


def test_lock_is_reentrant_in_one_process_and_kept_out_of_other_ranks(tmp_path, monkeypatch):
    from spine_det.utils.paths import lock_output, prepare_output

    out = tmp_path / "o"
    assert prepare_output(out) == prepare_output(out) == out.resolve()  # a tool run twice in one process
    assert (out / LOCK_FILE).read_text().strip() == str(os.getpid())
    other = tmp_path / "rank1"
    other.mkdir()
    held = _hold_here(other)
    try:
        monkeypatch.setenv("RANK", "1")  # torchrun's rank 1: rank 0 holds the lock for the group
        assert lock_output(other) == other.resolve()
    finally:
        held.close()


def test_convert_refuses_another_data_root_in_the_same_out_unless_overwrite(data, tmp_path, capsys, load_tool, one_error_line):
    from spine_det.data.phantom import generate_dataset

    second = tmp_path / "second"
    generate_dataset(second, 2, seed=5, size=128, test_fraction=0.0, workers=1, progress=False)
    convert = load_tool("convert_to_coco")
    out = tmp_path / "coco"
    args = ["--workers", "1", "--no-progress", "--out", str(out)]
    assert convert.main(["--data-root", str(data), *args]) == 0
    before = {p.name: p.read_bytes() for p in out.glob("spine_*.json")}
    assert convert.main(["--data-root", str(second), *args]) == 2
    msg = one_error_line()
    assert "holds the COCO files of another data root" in msg and str(data.resolve()) in msg
    assert {p.name: p.read_bytes() for p in out.glob("spine_*.json")} == before  # nothing replaced
    assert convert.main(["--data-root", str(data), *args]) == 0  # the same root again: fine (up to date)
    assert convert.main(["--data-root", str(second), "--overwrite", *args]) == 0
    files = {p.name for p in out.glob("spine_*.json")}
    assert files and files <= set(before)
    for name in files:
        images = json.loads((out / name).read_text())["images"]
        assert all(Path(im["file_name"]).resolve().is_relative_to(second.resolve()) for im in images)
    assert json.loads((out / "conversion_source.json").read_text())["data_root"] == str(second.resolve())

"""Train-or-reuse units: one model on one task (or the classifier), run as a subprocess of its tool.

A *unit* is one resumable, logged piece of the benchmark: the training tool of one
model family (``python -m spine_det.tools.<name>``, see :mod:`spine_det.modeling.registry`) on one
task and seed, or ``spine_det.tools.train_classifier`` for the classifier. Running each in its own
process keeps one unit's memory out of the next one's measurement, lets the
tool's own ``--resume`` do the resuming, and gives every unit its own log file
(``<out>/logs/<unit>.log``, streamed while it runs).

A unit is *finished* when its result file exists and was computed from the
checkpoint that is there now: ``benchmark_unit.json`` (the unit's stamp, written
atomically after a successful run) records the checkpoint's SHA-1, the result
file and the spec (profile, seeds, data root, hashes of the config files) it ran
with. A re-run skips a finished unit; an unfinished one is resumed (``--resume``)
then evaluated; one whose spec changed is moved aside (``<name>.before-<time>``)
and trained afresh.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from spine_det.utils.fileio import file_sha1  # noqa: F401  (one SHA-1 of a file; used and re-exported here)
from spine_det.utils.fileio import atomic_write_json

logger = logging.getLogger(__name__)

STAMP = "benchmark_unit.json"
STAMP_VERSION = 1


class UnitError(RuntimeError):
    """A unit's tool failed or left no result; the message names the unit and its log."""


@dataclass
class Unit:
    """One train-or-reuse step of the benchmark.

    ``commands`` maps a mode to an argv: ``"train"`` (fresh), ``"resume"`` (used
    instead of train when ``out_dir`` already holds a partial run) and ``"eval"``
    (used when training is done but the result is missing). ``checkpoints`` are
    candidate files, the first existing one is *the* checkpoint (e.g.
    ``model_best.pth`` before ``model_final.pth``); ``result`` is the file whose
    presence means the unit produced its numbers.
    """

    name: str  # file-safe, e.g. "<family key>-lat_vertebra"
    model: str  # a model family's key, "classifier" or "morphometry"
    task: Optional[str]
    out_dir: Path
    commands: Dict[str, List[str]]
    checkpoints: List[str]
    result: str  # relative to out_dir
    spec: Dict[str, Any] = field(default_factory=dict)  # what the run depends on (profile, seeds, data)
    partial_markers: List[str] = field(default_factory=lambda: ["last_checkpoint", "last_checkpoint.pth"])
    done_markers: List[str] = field(default_factory=list)  # any present: training is complete, only evaluate

    def training_done(self) -> bool:
        return any((self.out_dir / m).is_file() for m in self.done_markers)

    @property
    def result_path(self) -> Path:
        return self.out_dir / self.result

    @property
    def stamp_path(self) -> Path:
        return self.out_dir / STAMP

    def checkpoint_path(self) -> Optional[Path]:
        for c in self.checkpoints:
            p = self.out_dir / c
            if p.is_file():
                return p
        return None

    def has_partial_run(self) -> bool:
        return any((self.out_dir / m).exists() for m in self.partial_markers) or self.checkpoint_path() is not None

    def read_stamp(self) -> Optional[Dict[str, Any]]:
        try:
            return json.loads(self.stamp_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None


def fingerprint(path: Path) -> Dict[str, Any]:
    """What identifies a checkpoint: its content hash (size and name for the reader)."""
    return {"file": path.name, "size": path.stat().st_size, "sha1": file_sha1(path)}


def finished_reason(unit: Unit) -> Optional[str]:
    """``None`` when the unit is finished, else why not (for the log)."""
    if not unit.result_path.is_file():
        return f"no result yet ({unit.result})"
    ck = unit.checkpoint_path()
    if ck is None:
        return f"result exists but no checkpoint ({' / '.join(unit.checkpoints)})"
    named = _result_checkpoint(unit.result_path)
    if named is not None and Path(named).name != ck.name:
        return f"result was computed from {Path(named).name}, the unit's checkpoint is {ck.name}"
    stamp = unit.read_stamp()
    if stamp is None:
        # Not run by the benchmark (or stamp lost): accept a result written after the checkpoint.
        if unit.result_path.stat().st_mtime + 1e-3 < ck.stat().st_mtime:
            return "result is older than the checkpoint"
        return None
    if stamp.get("spec") != unit.spec:
        return f"it ran with {stamp.get('spec')}, this run asks {unit.spec}"
    if stamp.get("checkpoint") != fingerprint(ck):
        return f"checkpoint {ck.name} changed since its result was written"
    return None


def _result_checkpoint(path: Path) -> Optional[str]:
    """The checkpoint a semantic_metrics.json says it was computed from (None if it does not say)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ck = data.get("checkpoint") if isinstance(data, dict) else None
    return ck if isinstance(ck, str) and ck else None


@dataclass
class ProcessResult:
    returncode: int
    wall_s: float
    peak_rss_mb: Optional[float]  # the child's (and its waited-for children's) max resident set size
    cpu_s: Optional[float] = None  # user + system CPU seconds of the child and its waited-for children


def run_logged(cmd: Sequence[str], log_path: Path, env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None,
               echo: bool = False, heartbeat_s: float = 60.0, label: str = "") -> ProcessResult:
    """Run ``cmd``, streaming its stdout+stderr into ``log_path`` (appended); measure time and peak RSS.

    The peak RSS comes from ``wait4`` on this child alone, so units measured one
    after another do not see each other's memory.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg", **(env or {})}
    last_line = [""]
    with open(log_path, "a", encoding="utf-8", errors="replace") as log:
        log.write(f"\n$ {' '.join(map(str, cmd))}\n# started {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        log.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(map(str, cmd)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env,
                                cwd=str(cwd) if cwd else None, bufsize=0)

        def pump() -> None:
            assert proc.stdout is not None
            buf = b""
            while True:
                data = proc.stdout.read(4096)
                if not data:
                    break
                text = data.decode("utf-8", errors="replace")
                log.write(text)
                log.flush()
                buf = (buf + data)[-4096:]
                # tqdm redraws with \r: the last non-empty segment is the current state
                segs = [s for s in buf.decode("utf-8", errors="replace").replace("\r", "\n").split("\n") if s.strip()]
                if segs:
                    last_line[0] = segs[-1].strip()[:160]
                if echo:
                    sys.stderr.write(text)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(heartbeat_s):
                logger.info("%s running %.0fs: %s", label or Path(str(cmd[1])).name, time.perf_counter() - t0, last_line[0])

        beater = threading.Thread(target=beat, daemon=True)
        beater.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
        finally:
            stop.set()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        reader.join(timeout=10)
        log.write(f"# exit {proc.returncode} after {wall:.1f}s (CPU {usage.ru_utime + usage.ru_stime:.1f}s), "
                  f"peak RSS {usage.ru_maxrss / 1024:.0f} MB\n")
    return ProcessResult(proc.returncode, wall, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime)


def run_unit(unit: Unit, log_dir: Path, force: bool = False, echo: bool = False,
             runner: Callable[..., ProcessResult] = run_logged) -> Dict[str, Any]:
    """Run ``unit`` unless finished; returns its stamp (with ``"skipped": True`` when it was reused).

    Order: train (or resume when a partial run is there), then eval if the
    training step left no result. Raises :class:`UnitError` on failure.
    """
    log_path = log_dir / f"{unit.name}.log"
    if not force:
        why = finished_reason(unit)
        if why is None:
            stamp = unit.read_stamp() or _write_stamp(unit, [], adopted=True)
            logger.info("%s: finished, reusing %s", unit.name, unit.result_path)
            return {**stamp, "skipped": True}
        logger.info("%s: to run (%s)", unit.name, why)
    previous = unit.read_stamp() or {}
    if previous and previous.get("spec") != unit.spec and not force:
        # Trained under other settings: resuming would continue (or, when finished, merely re-score)
        # that model under the new spec's name. Keep it beside, start afresh.
        aside = set_aside(unit.out_dir)
        logger.warning("%s: its settings changed since it ran; previous run moved to %s, starting afresh",
                       unit.name, aside)
        previous = {}
    runs: List[Dict[str, Any]] = [r for r in previous.get("runs", []) if not force]
    unit.out_dir.mkdir(parents=True, exist_ok=True)

    mode = "resume" if ("resume" in unit.commands and unit.has_partial_run() and not force) else "train"
    steps = [mode] if mode in unit.commands and not (mode == "resume" and unit.training_done()) else []
    for step in steps + ["eval"]:
        if step == "eval" and (unit.result_path.is_file() and _result_newer(unit)) or step not in unit.commands:
            continue
        logger.info("%s: %s -> log %s", unit.name, step, log_path)
        started = time.time()
        res = runner(unit.commands[step], log_path, echo=echo, label=f"{unit.name} {step}")
        runs.append({"step": step, "cmd": list(map(str, unit.commands[step])), "returncode": res.returncode,
                     "wall_s": round(res.wall_s, 3), "cpu_s": None if res.cpu_s is None else round(res.cpu_s, 2),
                     "peak_rss_mb": None if res.peak_rss_mb is None else round(res.peak_rss_mb, 1),
                     "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started))})
        _write_runs(unit, runs)  # keep the time spent even if a later step fails
        if res.returncode != 0:
            raise UnitError(f"{unit.name}: {step} failed with exit code {res.returncode}; see {log_path}")
    if not unit.result_path.is_file():
        raise UnitError(f"{unit.name}: finished without writing {unit.result_path}; see {log_path}")
    if unit.checkpoint_path() is None:
        raise UnitError(f"{unit.name}: no checkpoint ({' / '.join(unit.checkpoints)}) in {unit.out_dir}; see {log_path}")
    return {**_write_stamp(unit, runs), "skipped": False}


def set_aside(folder: Path) -> Path:
    """Rename ``folder`` to ``<name>.before-<time>`` (nothing is deleted); returns the new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = folder.with_name(f"{folder.name}.before-{stamp}")
    n = 1
    while dest.exists():
        n += 1
        dest = folder.with_name(f"{folder.name}.before-{stamp}-{n}")
    folder.rename(dest)
    return dest


def _result_newer(unit: Unit) -> bool:
    ck = unit.checkpoint_path()
    return ck is None or unit.result_path.stat().st_mtime + 1e-3 >= ck.stat().st_mtime


def _write_runs(unit: Unit, runs: List[Dict[str, Any]]) -> None:
    stamp = unit.read_stamp() or {}
    stamp.update({"version": STAMP_VERSION, "unit": unit.name, "spec": unit.spec, "runs": runs})
    stamp.pop("checkpoint", None)  # not finished until _write_stamp says so
    atomic_write_json(unit.stamp_path, stamp)


def _write_stamp(unit: Unit, runs: List[Dict[str, Any]], adopted: bool = False) -> Dict[str, Any]:
    ck = unit.checkpoint_path()
    assert ck is not None
    stamp = {
        "version": STAMP_VERSION, "unit": unit.name, "model": unit.model, "task": unit.task, "spec": unit.spec,
        "checkpoint": fingerprint(ck), "result": unit.result, "runs": runs, "adopted": adopted,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    atomic_write_json(unit.stamp_path, stamp)
    return stamp


def train_wall_s(stamp: Dict[str, Any]) -> Optional[float]:
    """Total wall time of the unit's train/resume steps (all attempts), None if never trained here."""
    walls = [r["wall_s"] for r in stamp.get("runs", []) if r.get("step") in ("train", "resume")]
    return float(sum(walls)) if walls else None


def train_cpu_s(stamp: Dict[str, Any]) -> Optional[float]:
    """CPU seconds of the train/resume steps: a load-independent companion of the wall time on a shared machine."""
    vals = [r["cpu_s"] for r in stamp.get("runs", []) if r.get("step") in ("train", "resume") and r.get("cpu_s") is not None]
    return float(sum(vals)) if vals else None


def train_peak_rss_mb(stamp: Dict[str, Any]) -> Optional[float]:
    vals = [r["peak_rss_mb"] for r in stamp.get("runs", []) if r.get("step") in ("train", "resume") and r.get("peak_rss_mb")]
    return max(vals) if vals else None

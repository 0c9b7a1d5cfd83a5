"""Every checkpoint and metrics file names the spine_det version (and commit) that wrote it, as plain
strings: checkpoints stay readable with ``torch.load(weights_only=True)``, older ones still load."""
from __future__ import annotations

import json

import torch

import spine_det
from spine_det.utils.provenance import git_commit, provenance


def _stamped(d: dict) -> bool:
    return d.get("spine_det_version") == spine_det.__version__ and isinstance(d.get("git_commit"), str) and d["git_commit"]


def test_version_has_one_place():
    from spine_det.version import __version__

    assert spine_det.__version__ == __version__ == provenance()["spine_det_version"]


def test_linknet_and_classifier_checkpoints_carry_the_version(tmp_path):
    from spine_det.engine.semseg_trainer import load_checkpoint, save_checkpoint

    save_checkpoint(tmp_path / "model_best.pth", {"model": {"w": torch.ones(2)}, "epoch": 1})
    raw = torch.load(tmp_path / "model_best.pth", weights_only=True)  # no allow-list: plain strings
    assert _stamped(raw) and raw["epoch"] == 1
    assert _stamped(load_checkpoint(tmp_path / "model_best.pth"))
    torch.save({"model": {"w": torch.ones(2)}, "epoch": 1}, tmp_path / "old.pth")  # written before the stamp
    assert "spine_det_version" not in load_checkpoint(tmp_path / "old.pth")


def test_maskrcnn_checkpoints_carry_the_version_and_load_back(tmp_path):
    import spine_det.compat  # noqa: F401  (shims before detectron2)
    from spine_det.engine.checkpointer import SafeDetectionCheckpointer

    model = torch.nn.Linear(3, 2)
    SafeDetectionCheckpointer(model, save_dir=str(tmp_path)).save("model_final", iteration=9)
    raw = torch.load(tmp_path / "model_final.pth", weights_only=True)
    assert _stamped(raw) and raw["iteration"] == 9
    fresh = torch.nn.Linear(3, 2)
    left = SafeDetectionCheckpointer(fresh).load(str(tmp_path / "model_final.pth"))
    assert torch.equal(fresh.weight, model.weight) and left["iteration"] == 9


def test_detectron2_metrics_json_lines_carry_the_version(tmp_path):
    import spine_det.compat  # noqa: F401
    from detectron2.engine.defaults import default_writers
    from detectron2.utils.events import EventStorage

    from spine_det.engine.trainer import SpineTrainer
    from spine_det.engine.writers import StampedJSONWriter, stamp_json_writers

    writers = stamp_json_writers(default_writers(str(tmp_path), 10))
    assert sum(isinstance(w, StampedJSONWriter) for w in writers) == 1
    with EventStorage(0) as storage:
        storage.put_scalar("total_loss", 1.5)
        for w in writers:
            if isinstance(w, StampedJSONWriter):
                w.write()
                w.close()
    (line,) = (tmp_path / "metrics.json").read_text().splitlines()
    rec = json.loads(line)
    assert _stamped(rec) and rec["total_loss"] == 1.5 and rec["iteration"] == 0
    assert SpineTrainer.build_writers is not SpineTrainer.__mro__[1].build_writers  # the trainer uses them


def test_metrics_files_carry_the_version(tmp_path):
    """Every family's metrics.json is Detectron2's, stamped (the test above); the score files too."""
    from spine_det.evaluation.metrics import ScoreTable
    from spine_det.evaluation.score_files import SUMMARY_FILE, write_scores

    write_scores(ScoreTable(), tmp_path / "inference", {"model": "linknet"})
    data = json.loads((tmp_path / "inference" / SUMMARY_FILE).read_text())
    assert _stamped(data) and data["model"] == "linknet"


def test_git_commit_only_of_a_spine_det_checkout(tmp_path):
    """An installed package (no .git beside it) never reports the commit of a repository around it."""
    assert git_commit(tmp_path) == "unknown (not a git checkout)"
    c = git_commit()
    assert c.startswith("unknown (") or len(c.split("+")[0]) == 12


def test_a_tool_summary_carries_the_version(phantom_root, tmp_path, load_tool):
    """``spine-det measure`` (ground truth, no model): its measure_summary.json names the version; the
    other tools' summaries (eval-morphometry, measure-cobb, eval-instances, the benchmark's results.json
    and cost file) are stamped the same way."""
    out = tmp_path / "measured"
    assert load_tool("measure").main(["--data-root", str(phantom_root), "--source", "gt", "--split", "test",
                                      "--out", str(out), "--no-overlay", "--quiet"]) == 0
    assert _stamped(json.loads((out / "measure_summary.json").read_text())["meta"])

"""The LinkNet and classifier trainers under ``detectron2.engine.launch`` with 2 gloo processes (CPU): both
processes train the same steps on their halves of each batch, validate together, and the main process writes
the run folder Mask R-CNN's trainer writes."""
from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)


def _linknet_worker(cfg, manifest, report):
    """One process of the launch: train, then say what this process saw."""
    from detectron2.utils import comm

    from spine_det.engine.semseg_trainer import train_semseg

    torch.set_num_threads(1)
    summary = train_semseg(cfg, manifest)
    with open(f"{report}.rank{comm.get_rank()}", "w") as f:
        json.dump({"world": comm.get_world_size(), "summary": {k: summary[k] for k in ("iterations", "best_val_dice")}}, f)


def _classifier_worker(cfg, manifest, report):
    from detectron2.utils import comm

    from spine_det.engine.classifier_trainer import train_classifier

    torch.set_num_threads(1)
    result = train_classifier(cfg, manifest)
    with open(f"{report}.rank{comm.get_rank()}", "w") as f:
        json.dump({"world": comm.get_world_size(), "selected": result["selected"]}, f)


def _reports(report, world=2):
    return [json.loads(open(f"{report}.rank{r}").read()) for r in range(world)]


def test_linknet_trains_in_two_gloo_processes(prepared, tmp_path):
    from spine_det.config.loading import load_cfg
    from spine_det.config.semseg import get_semseg_cfg
    from spine_det.engine.launch import launch

    out = tmp_path / "linknet"
    cfg = load_cfg(get_semseg_cfg(), opts=[
        "MODEL.PRETRAINED", "False", "MODEL.DEVICE", "cpu", "INPUT.HEIGHT", "64", "INPUT.WIDTH", "48",
        "SOLVER.MAX_EPOCHS", "2", "SOLVER.MAX_ITERS_PER_EPOCH", "2", "SOLVER.IMS_PER_BATCH", "2",
        "SOLVER.SCHEDULER", "cosine", "DATALOADER.NUM_WORKERS", "0", "DATALOADER.CACHE", "False", "AUG.ENABLED", "False",
        "SPINE.TASKS", "['lat_vertebra']", "OUTPUT_DIR", str(out)])
    report = tmp_path / "report"
    launch(_linknet_worker, 2, dist_url="auto", args=(cfg, prepared.manifest, str(report)))
    ranks = _reports(report)
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["summary"] == ranks[1]["summary"] and ranks[0]["summary"]["iterations"] == 4  # same steps, same Dice
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pth"
    assert {"config.yaml", "log.txt", "log.txt.rank1", "metrics.json", "model_best.pth", "model_final.pth"} <= {
        f.name for f in out.iterdir()}
    recs = [json.loads(ln) for ln in (out / "metrics.json").read_text().splitlines()]
    assert [(r["iteration"], r["epoch"]) for r in recs if "lat_vertebra/dice" in r] == [(1, 1.0), (3, 2.0)]
    assert torch.load(out / "model_final.pth", weights_only=True)["trainer"]["world_size"] == 2


def test_classifier_trains_in_two_gloo_processes(prepared, tmp_path):
    from spine_det.config.classifier import get_classifier_cfg
    from spine_det.config.loading import load_cfg
    from spine_det.engine.launch import launch

    out = tmp_path / "cls"
    cfg = load_cfg(get_classifier_cfg(), opts=[
        "MODEL.BACKBONE", "resnet10s", "MODEL.PRETRAINED", "False", "MODEL.DEVICE", "cpu", "INPUT.HEIGHT", "64",
        "INPUT.WIDTH", "48", "SOLVER.MAX_EPOCHS", "2", "SOLVER.IMS_PER_BATCH", "4", "DATALOADER.NUM_WORKERS", "0",
        "DATALOADER.SAMPLER", "balanced", "VIEWS", "['lat']", "OUTPUT_DIR", str(out)])
    report = tmp_path / "report"
    launch(_classifier_worker, 2, dist_url="auto", args=(cfg, prepared.manifest, str(report)))
    ranks = _reports(report)
    assert [r["world"] for r in ranks] == [2, 2] and ranks[0]["selected"] == ranks[1]["selected"] == "lat"
    assert json.loads((out / "classification_metrics.json").read_text())["selected"] == "lat"
    final = torch.load(out / "lat" / "model_final.pth", weights_only=True)
    assert final["view"] == "lat" and final["trainer"]["epoch"] == 2 and final["trainer"]["world_size"] == 2
    recs = [json.loads(ln) for ln in (out / "lat" / "metrics.json").read_text().splitlines()]
    assert [r["epoch"] for r in recs if "lat/accuracy" in r] == [1.0, 2.0]

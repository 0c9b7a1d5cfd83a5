"""SpineSemanticEvaluator: pasting, scores against an independent count, files, two gloo processes."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import spine_det.compat  # noqa: F401
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.layers.mask_ops import paste_masks_in_image
from detectron2.structures import Boxes, Instances

from spine_det.evaluation.metrics import paste_instances
from spine_det.evaluation.semantic_evaluator import SparseMask, SpineSemanticEvaluator, instances_to_task_masks

H, W = 96, 64


def _instances(rng, n: int, n_classes: int = 1) -> Instances:
    """Predictions as Detectron2 returns them: 28x28 masks pasted inside their boxes."""
    x0 = torch.from_numpy(rng.uniform(0, W - 10, n)).float()
    y0 = torch.from_numpy(rng.uniform(0, H - 10, n)).float()
    boxes = torch.stack([x0, y0, x0 + torch.from_numpy(rng.uniform(3, 30, n)).float(),
                         y0 + torch.from_numpy(rng.uniform(3, 30, n)).float()], 1)
    boxes[:, 2].clamp_(max=W)
    boxes[:, 3].clamp_(max=H)
    probs = torch.from_numpy(rng.uniform(0, 1, (n, 28, 28))).float()
    inst = Instances((H, W))
    inst.pred_boxes = Boxes(boxes)
    inst.pred_masks = paste_masks_in_image(probs, Boxes(boxes), (H, W), threshold=0.5)
    inst.scores = torch.from_numpy(rng.uniform(0, 1, n)).float()
    inst.pred_classes = torch.from_numpy(rng.integers(0, n_classes, n))
    return inst


@pytest.mark.parametrize("seed", range(4))
def test_box_window_union_equals_full_paste(seed):
    rng = np.random.default_rng(seed)
    inst = _instances(rng, 12, n_classes=2)
    fast = instances_to_task_masks(inst, ["a", "b"], 0.4, (H, W))
    full = instances_to_task_masks(inst, ["a", "b"], 0.4, (H, W), box_margin=None)
    for c, t in enumerate(["a", "b"]):
        sel = (inst.pred_classes == c).numpy()
        ref = paste_instances(inst.pred_masks.numpy()[sel], inst.scores.numpy()[sel], 0.4, (H, W))
        assert np.array_equal(fast[t].dense(), ref)
        assert np.array_equal(full[t].dense(), ref)


def test_sparse_mask_roundtrip():
    m = np.zeros((20, 30), bool)
    assert SparseMask.from_dense(m).crop is None and not SparseMask.from_dense(m).dense().any()
    m[3:7, 10:12] = True
    m[15, 29] = True
    s = SparseMask.from_dense(m)
    assert s.box == (3, 10, 16, 30) and np.array_equal(s.dense(), m)


def _make_dataset(tmp: Path, name: str, tasks, n_images: int, seed: int = 0):
    """Ground-truth PNGs, dataset dicts and predictions for ``n_images`` images."""
    rng = np.random.default_rng(seed)
    dicts, outputs = [], []
    for i in range(n_images):
        files = {}
        for t in tasks:
            gt = np.zeros((H, W), np.uint8)
            if not (i == 1 and t == tasks[0]):  # one image with an empty ground truth
                y, x = rng.integers(0, H - 20), rng.integers(0, W - 20)
                gt[y : y + 20, x : x + 15] = 255
            f = tmp / f"{name}_{i}_{t}.png"
            cv2.imwrite(str(f), gt)
            files[t] = str(f)
        dicts.append({"file_name": "", "image_id": f"p{i}/lat", "height": H, "width": W, "mask_files": files})
        outputs.append({"instances": _instances(rng, 6, len(tasks))})
    if name not in DatasetCatalog.list():
        DatasetCatalog.register(name, lambda d=dicts: d)
        MetadataCatalog.get(name).set(tasks=list(tasks))
    return dicts, outputs


def _independent(dicts, outputs, tasks, thr):
    """Per-task mean Dice by plain numpy, written without metrics.py."""
    res = {}
    for c, t in enumerate(tasks):
        dices = []
        for d, o in zip(dicts, outputs):
            inst = o["instances"]
            keep = ((inst.pred_classes == c) & (inst.scores >= thr)).numpy()
            p = inst.pred_masks.numpy()[keep].any(0) if keep.any() else np.zeros((H, W), bool)
            g = cv2.imread(d["mask_files"][t], cv2.IMREAD_UNCHANGED) > 0
            inter, s = np.sum(p & g), p.sum() + g.sum()
            dices.append(1.0 if s == 0 else 2.0 * inter / s)
        res[t] = float(np.mean(dices))
    return res


def test_evaluator_scores_and_files(tmp_path):
    tasks = ["lat_vertebra"]
    dicts, outputs = _make_dataset(tmp_path, "test_ev_single", tasks, 5)
    ev = SpineSemanticEvaluator("test_ev_single", score_threshold=0.5, output_dir=str(tmp_path / "out"),
                                checkpoint="ckpt.pth", distributed=False)
    ev.reset()
    for d, o in zip(dicts, outputs):
        ev.process([d], [o])
    res = ev.evaluate()
    assert set(res) == {"lat_vertebra"}
    assert res["lat_vertebra"]["dice"] == pytest.approx(_independent(dicts, outputs, tasks, 0.5)["lat_vertebra"])
    js = json.loads((tmp_path / "out" / "semantic_metrics.json").read_text())
    assert js["dataset"] == "test_ev_single" and js["checkpoint"] == "ckpt.pth" and js["score_threshold"] == 0.5
    assert js["counts"]["images"] == 5 and js["counts"]["empty_gt"] == 1
    assert js["dice"] == pytest.approx(res["lat_vertebra"]["dice"])
    csv = (tmp_path / "out" / "semantic_per_image.csv").read_text().splitlines()
    assert len(csv) == 6 and "dice" in csv[0]


def test_reset_starts_no_thread_before_the_data_loader_forks(tmp_path):
    """inference_on_dataset calls reset() and then forks its loader workers: a ground-truth reading thread
    alive at that moment can hold an import lock the forked worker then waits on forever (seen: a worker
    stuck in PIL's plugin import on the first validation of a real-film run). Prefetch starts with process()."""
    import threading

    tasks = ["lat_vertebra"]
    dicts, outputs = _make_dataset(tmp_path, "test_ev_fork", tasks, 3)
    ev = SpineSemanticEvaluator("test_ev_fork", score_threshold=0.5, distributed=False, prefetch=True)
    before = {t.name for t in threading.enumerate()}
    ev.reset()
    assert not [t for t in threading.enumerate() if t.name not in before and t.name.startswith("spine-eval")]
    for d, o in zip(dicts, outputs):
        ev.process([d], [o])
    assert ev.evaluate()["lat_vertebra"]["dice"] == pytest.approx(_independent(dicts, outputs, tasks, 0.5)["lat_vertebra"])


def test_evaluator_view_dataset_reports_each_task_and_mean(tmp_path):
    tasks = ["lat_vertebra", "lat_disk_height"]
    dicts, outputs = _make_dataset(tmp_path, "test_ev_view", tasks, 4, seed=1)
    ev = SpineSemanticEvaluator("test_ev_view", tasks=tasks, output_dir=str(tmp_path / "out"), distributed=False)
    ev.reset()
    ev.process(dicts, outputs)
    res = ev.evaluate()
    ref = _independent(dicts, outputs, tasks, 0.5)
    assert set(res) == {*tasks, "mean"}
    for t in tasks:
        assert res[t]["dice"] == pytest.approx(ref[t])
        assert (tmp_path / "out" / t / "semantic_metrics.json").is_file()
    assert res["mean"]["dice"] == pytest.approx(np.mean([ref[t] for t in tasks]))
    top = json.loads((tmp_path / "out" / "semantic_metrics.json").read_text())
    assert set(top["tasks"]) == set(tasks)


def test_evaluator_rejects_tasks_that_do_not_match_the_dataset(tmp_path):
    _make_dataset(tmp_path, "test_ev_single", ["lat_vertebra"], 2)
    with pytest.raises(ValueError, match="do not match"):
        SpineSemanticEvaluator("test_ev_single", tasks=["lat_disk_height"])


# -- two gloo processes ---------------------------------------------------------------------


def _worker(rank: int, world: int, init_file: str, tmp: str, result_file: str) -> None:
    import torch.distributed as dist

    import spine_det.compat  # noqa: F401,F811  (a spawned worker applies the shims itself)
    from detectron2.utils import comm

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    comm._LOCAL_PROCESS_GROUP = dist.new_group(list(range(world)))  # as detectron2's launch does
    tasks = ["lat_vertebra", "lat_disk_height"]
    dicts, outputs = _make_dataset(Path(tmp), "test_ev_gloo", tasks, 6, seed=3)
    ev = SpineSemanticEvaluator("test_ev_gloo", tasks=tasks, output_dir=os.path.join(tmp, "out_gloo"), distributed=True)
    ev.reset()
    for i in range(rank, len(dicts), world):  # each rank sees half the images
        ev.process([dicts[i]], [outputs[i]])
    res = ev.evaluate()
    with open(f"{result_file}.{rank}", "w") as f:
        json.dump(res, f)
    dist.destroy_process_group()


def test_two_gloo_processes_give_the_same_numbers_as_one(tmp_path):
    import torch.multiprocessing as mp

    result = str(tmp_path / "res")
    mp.start_processes(_worker, args=(2, str(tmp_path / "init"), str(tmp_path), result), nprocs=2, join=True,
                       start_method="fork")
    r0 = json.loads(Path(result + ".0").read_text())
    r1 = json.loads(Path(result + ".1").read_text())
    assert r1 == {}  # non-main ranks return nothing
    tasks = ["lat_vertebra", "lat_disk_height"]
    dicts, outputs = _make_dataset(tmp_path, "test_ev_gloo", tasks, 6, seed=3)
    ev = SpineSemanticEvaluator("test_ev_gloo", tasks=tasks, distributed=False)
    ev.reset()
    ev.process(dicts, outputs)
    single = ev.evaluate()
    for k, v in single.items():
        for m, x in v.items():
            assert (math.isnan(x) and r0[k][m] is None) or r0[k][m] == pytest.approx(x, abs=1e-12)
    assert json.loads((tmp_path / "out_gloo" / "semantic_metrics.json").read_text())["tasks"]["lat_vertebra"]["counts"]["images"] == 6

"""Two gloo processes (torchrun-style env) give what one process gives: LinkNet training steps and evaluation.

* Training: DDP over 2 ranks, each with half of the global batch, must end with the
  same weights and losses as one process that runs the same two half-batches and
  averages their gradients (BatchNorm sees the same per-process batches in both).
* Evaluation: ``tools/train_linknet.py`` in 2 processes trains briefly and scores the
  test split (images split over ranks, rows gathered); ``--eval-only`` of that
  checkpoint in 1 process must give the same per-image table.
"""
from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent(
    """
    import sys, torch
    from spine_det.config.semseg import get_semseg_cfg
    from spine_det.engine import distributed as du
    from detectron2.utils import comm
    from spine_det.engine.semseg_trainer import build_optimizer
    from spine_det.modeling.semseg import build_seg_model
    from spine_det.modeling.losses import build_loss


    def main(out, halves=2, steps=3, batch=4):
        # global batch 4: 2 per rank under DDP, or 2 half-batches with averaged gradients in one process
        torch.set_num_threads(1)
        cfg = get_semseg_cfg()
        cfg.merge_from_list(["MODEL.PRETRAINED", False, "MODEL.DEVICE", "cpu", "SOLVER.BASE_LR", 0.01])
        device = du.init_from_env("cpu")
        rank, world = comm.get_rank(), comm.get_world_size()
        torch.manual_seed(0)
        model = build_seg_model(cfg, device)
        net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
        opt = build_optimizer(cfg.SOLVER, model.parameters())
        loss_fn = build_loss(cfg)
        g = torch.Generator().manual_seed(123)
        xs = torch.randn(steps, batch, 1, 64, 64, generator=g)
        ys = (torch.rand(steps, batch, 1, 64, 64, generator=g) > 0.7).float()
        per = batch // halves
        losses = []
        for s in range(steps):
            opt.zero_grad(set_to_none=True)
            if world > 1:
                sl = slice(rank * per, (rank + 1) * per)
                loss = loss_fn(net(xs[s, sl]), ys[s, sl])
                loss.backward()  # DDP averages the gradients over ranks
                losses.append(sum(comm.all_gather(loss.item())) / world)
            else:
                tot = 0.0
                for h in range(halves):
                    sl = slice(h * per, (h + 1) * per)
                    loss = loss_fn(net(xs[s, sl]), ys[s, sl]) / halves
                    loss.backward()
                    tot += loss.item()
                losses.append(tot)
            opt.step()
        if comm.is_main_process():
            params = {k: v.detach().clone() for k, v in model.named_parameters()}
            torch.save({"params": params, "losses": losses}, out)
        du.cleanup()
    """
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(cmd, world: int, timeout: float = 240, cwd=ROOT):
    """Start ``world`` processes of ``cmd`` with torchrun's environment; all must exit 0."""
    port = str(free_port())
    procs = []
    for rank in range(world):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        if world > 1:
            env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        else:
            for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
                env.pop(k, None)
        procs.append(subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for rank, (p, o) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"rank {rank} of {world} failed:\n{o[-3000:]}"
    return outs


@pytest.mark.slow
def test_ddp_two_processes_match_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER + "\nmain(sys.argv[1])\n")
    launch([sys.executable, str(script), str(tmp_path / "ddp.pt")], world=2)
    ns: dict = {}
    exec(compile(WORKER, "worker", "exec"), ns)  # the single-process reference, in this process
    ns["main"](str(tmp_path / "single.pt"))
    ddp = torch.load(tmp_path / "ddp.pt")
    single = torch.load(tmp_path / "single.pt")
    assert ddp["losses"] == pytest.approx(single["losses"], rel=1e-5, abs=1e-6)
    assert ddp["losses"][0] != ddp["losses"][-1]  # it did train
    for k, v in single["params"].items():
        torch.testing.assert_close(ddp["params"][k], v, rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}")
    torch.manual_seed(0)  # the weights moved away from the common initialisation
    from spine_det.config.semseg import get_semseg_cfg
    from spine_det.modeling.semseg import build_seg_model

    cfg = get_semseg_cfg()
    cfg.merge_from_list(["MODEL.PRETRAINED", False, "MODEL.DEVICE", "cpu"])
    init = dict(build_seg_model(cfg).named_parameters())
    changed = sum(not torch.equal(init[k], v) for k, v in single["params"].items())
    assert changed > len(init) // 2


def _rows(path: Path):
    with open(path, newline="") as f:
        return sorted(csv.DictReader(f), key=lambda r: r["image_id"])


@pytest.mark.slow
def test_train_linknet_two_processes_then_same_eval_in_one(tmp_path, phantom_root):
    task = "lat_vertebra"
    out = tmp_path / "linknet"
    base = [sys.executable, "-m", "spine_det.tools.train_linknet", "--config-file",
            str(ROOT / "configs" / "linknet" / f"{task}.yaml"), "--data-root", str(phantom_root),
            "--cache-dir", str(tmp_path / "cache"), "--profile", "cpu"]
    opts = ["OUTPUT_DIR", str(out), "SOLVER.MAX_EPOCHS", "1", "SOLVER.MAX_ITERS_PER_EPOCH", "2", "INPUT.HEIGHT", "64",
            "INPUT.WIDTH", "64", "DATALOADER.CACHE", "False"]
    launch(base + opts, world=2)
    metrics = out / "inference" / f"spine_{task}_test" / "semantic_per_image.csv"
    two = _rows(metrics)
    assert (out / "model_best.pth").is_file() and (out / "metrics.json").is_file()
    assert two and len({r["image_id"] for r in two}) == len(two)  # every test image once, gathered from both ranks
    metrics.unlink()
    from spine_det.tools.train_linknet import main as tool_main

    assert tool_main(base[3:] + ["--eval-only"] + opts) == 0  # one process, in this one
    one = _rows(metrics)
    assert [r["image_id"] for r in one] == [r["image_id"] for r in two]
    for a, b in zip(one, two):
        for k in ("dice", "jaccard", "pred_pixels", "gt_pixels"):
            assert a[k] == b[k], (a["image_id"], k)

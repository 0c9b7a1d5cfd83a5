#!/usr/bin/env python
"""Side-by-side check of our LinkNet against segmentation_models_pytorch's.

Prints both parameter counts and training throughput (forward + backward +
Adam step, images/s) on the same random input and device, and the ratios.
smp is a benchmark-only dependency: it is imported here and nowhere else.

  python dev/bench_linknet.py --size 256 --batch 4 --iters 10 --threads 1
"""
from __future__ import annotations

import argparse
import sys
import time


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256, help="square input side (px)")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--iters", type=int, default=10, help="timed iterations per model (after --warmup)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="alternate the two models this many times; the best round counts")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave as is)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", help="also write the figures to this JSON file")
    return p.parse_args(argv)


def train_throughput(model, x, y, iters: int, warmup: int) -> float:
    """Images per second of full training steps (soft Dice loss, Adam)."""
    import torch

    from spine_det.modeling.losses import dice_loss

    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        dice_loss(model(x), y).backward()
        opt.step()

    for _ in range(warmup):
        step()
    if x.is_cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    if x.is_cuda:
        torch.cuda.synchronize()
    return iters * x.shape[0] / (time.perf_counter() - t0)


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    try:
        import segmentation_models_pytorch as smp
    except ImportError:
        print("error: the benchmark needs segmentation-models-pytorch (pip install segmentation-models-pytorch)", file=sys.stderr)
        return 2
    from spine_det.modeling.linknet import LinkNet
    from spine_det.modeling.semseg import count_parameters

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    ours = LinkNet(num_classes=1, in_channels=3, pretrained=False).to(dev)  # same 3-channel input as smp
    ref = smp.Linknet(encoder_name="resnet18", encoder_weights=None, classes=1).to(dev)
    x = torch.randn(args.batch, 3, args.size, args.size, device=dev)
    y = (torch.rand(args.batch, 1, args.size, args.size, device=dev) > 0.5).float()
    best = {"ours": 0.0, "smp": 0.0}
    for _ in range(args.rounds):  # alternate so that load from other processes hits both alike
        best["ours"] = max(best["ours"], train_throughput(ours, x, y, args.iters, args.warmup))
        best["smp"] = max(best["smp"], train_throughput(ref, x, y, args.iters, args.warmup))
    p_ours, p_ref = count_parameters(ours), count_parameters(ref)
    res = {
        "input": [args.batch, 3, args.size, args.size], "device": str(dev), "threads": torch.get_num_threads(),
        "params_ours_M": round(p_ours / 1e6, 3), "params_smp_M": round(p_ref / 1e6, 3),
        "params_ratio": round(p_ours / p_ref, 4),
        "train_img_per_s_ours": round(best["ours"], 3), "train_img_per_s_smp": round(best["smp"], 3),
        "throughput_ratio": round(best["ours"] / best["smp"], 3),
    }
    print(f"input {tuple(res['input'])} on {dev} ({res['threads']} threads)")
    print(f"parameters : ours {res['params_ours_M']:.3f} M | smp {res['params_smp_M']:.3f} M | ratio {res['params_ratio']:.4f}")
    print(f"train img/s: ours {res['train_img_per_s_ours']:.2f} | smp {res['train_img_per_s_smp']:.2f} | ratio {res['throughput_ratio']:.3f}")
    if args.json:
        from spine_det.utils.fileio import atomic_write_json

        atomic_write_json(args.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())

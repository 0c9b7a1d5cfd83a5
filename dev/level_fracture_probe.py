#!/usr/bin/env python
"""Do a phantom's films show its fractures? A tiny CNN on one level's pixels, told where the level is.

The package's classifier must find the spine and the one bad level in a whole film; at chance on AP, that
does not say whether the AP pixels hold the fracture at all. This probe removes the search: every T10..L5 level
of a phantom is cut out of the film around its body centre (the mean of its four ground-truth corners; the
patch's side is 1.8 x the body's width in that view, so nothing of its height enters the crop), resized to
32 x 32, and a 3-layer CNN learns fractured (Genant grade >= 1) vs not on the Training patients, tested on
the Test ones. Reported: level AUC, and patient AUC (the max over a patient's levels vs Damaged/Normal).
Patients with only a listhesis count as Damaged with no fractured level, as in the phantom.

    python dev/level_fracture_probe.py --data-root <phantom> --view ap --seed 0
"""
from __future__ import annotations

import argparse
import glob
import json
import os

import cv2
import numpy as np
import torch
from torch import nn

PATCH = 32
LEVELS = ("T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5")


def level_patches(data_root: str, view: str):
    """Per split: patches (N, 1, 32, 32), level labels (N,), patient index (N,), patient labels (P,)."""
    out = {}
    for split in ("Training", "Test"):
        xs, ys, pid, plab = [], [], [], []
        for k, gtp in enumerate(sorted(glob.glob(os.path.join(data_root, split, "*", "*", "ground_truth.json")))):
            gt = json.load(open(gtp))
            img = cv2.imread(os.path.join(os.path.dirname(gtp), view.upper(), f"{view.upper()}.jpg"), 0)
            img = img.astype(np.float32) / 255.0
            plab.append(gt["label"] == "Damaged")
            for lv in gt["levels"]:
                c = np.array(list(lv[f"{view}_corners"].values()), np.float64)
                names = list(lv[f"{view}_corners"])
                left = c[[i for i, n in enumerate(names) if "left" in n or "anterior" in n]].mean(0)
                right = c[[i for i, n in enumerate(names) if "right" in n or "posterior" in n]].mean(0)
                centre, side = c.mean(0), 1.8 * float(np.linalg.norm(right - left))
                m = cv2.getAffineTransform(
                    np.float32([centre + [-side / 2, -side / 2], centre + [side / 2, -side / 2], centre + [-side / 2, side / 2]]),
                    np.float32([[0, 0], [PATCH, 0], [0, PATCH]]))
                p = cv2.warpAffine(img, m, (PATCH, PATCH), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
                xs.append((p - p.mean()) / (p.std() + 1e-3))
                ys.append(lv["genant_grade"] > 0)
                pid.append(k)
        out[split] = (np.stack(xs)[:, None], np.array(ys, np.float32), np.array(pid), np.array(plab))
    return out


def tiny_cnn() -> nn.Module:
    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))
    return nn.Sequential(block(1, 16), block(16, 32), block(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Dropout(0.3), nn.Linear(64, 1))


def auc(score: np.ndarray, label: np.ndarray) -> float:
    pos, neg = score[label > 0], score[label <= 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    return float(((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True)
    ap.add_argument("--view", choices=("ap", "lat"), default="ap")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.set_num_threads(1)
    data = level_patches(args.data_root, args.view)
    x, y, _, _ = data["Training"]
    xt, yt, pidt, plabt = data["Test"]
    model = tiny_cnn()
    opt = torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=1e-3)
    pos_w = torch.tensor((1 - y.mean()) / max(y.mean(), 1e-3))
    lossf = nn.BCEWithLogitsLoss(pos_weight=pos_w)
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(args.epochs):
        model.train()
        for idx in np.array_split(rng.permutation(len(X)), max(len(X) // 64, 1)):
            xb = X[idx]
            if rng.random() < 0.5:
                xb = torch.flip(xb, dims=[3])  # left-right: a body is about symmetric on AP; LAT only gains data
            opt.zero_grad()
            lossf(model(xb).squeeze(1), Y[idx]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        s = torch.sigmoid(model(torch.from_numpy(xt)).squeeze(1)).numpy()
    patient = np.array([s[pidt == k].max() for k in range(len(plabt))])
    print(json.dumps({"data_root": args.data_root, "view": args.view, "seed": args.seed,
                      "train_levels": int(len(y)), "train_fractured": int(y.sum()),
                      "test_levels": int(len(yt)), "test_fractured": int(yt.sum()),
                      "level_auc": round(auc(s, yt), 3), "patient_auc": round(auc(patient, plabt.astype(float)), 3)}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""What a wedge / biconcave / crush / burst fracture of each Genant grade does to a body's AP projection.

One L1 (a Normal phantom patient's, seed 0) is fractured with each kind and grade (the loss at the middle of the
grade's range) and its body alone is integrated along AP rays, as the AP renderer draws it, at the two scales of a
512 px film (lumbar field ~2 px/mm, full-spine field ~0.7 px/mm), beside the same body unfractured. Per row:

* core height (px): the apparent height of the trabecular body (cortex left out) on the centre column and on a
  column 60 % of the half-width out, where its integral exceeds half its value at the body's centre (sub-pixel),
  unfractured -> fractured;
* outline (px): the height of the whole body (cortex in) on the centre column, where its integral exceeds 5 % of
  its value at the body's centre: the outer endplate contours;
* Genant (px): the height the grade removes on the LAT film (``loss * h_exp``) at that scale;
* mass: the body's integrated attenuation, fractured / unfractured; sup band: the mean integral in the 3 px under
  the dense body's top edge on the centre column, fractured / unfractured (the compaction band);
* max |diff|: the largest change of the integral (e-folds) anywhere.

``--renderer before`` draws every body with ``_body`` (the renderer before fractured bodies had their own solid),
``after`` as the renderer does now::

    python dev/ap_fracture_visibility.py --renderer after
"""
from __future__ import annotations

import argparse
import copy
import math

import numpy as np

from spine_det.data.phantom import ap_render
from spine_det.data.phantom.anatomy import Frame, Vertebra, _apply_fracture, build_spine
from spine_det.data.phantom.patient import patient_rng

KINDS = ("wedge", "biconcave", "crush", "burst")
MU_T, MU_C, K_LUM, WAIST = 0.0075, 0.036, 1.5, 0.07


def fractured(v0: Vertebra, kind: str, grade: int) -> Vertebra:
    """``v0`` with a fracture of ``kind`` whose loss is the middle of ``grade``'s range; tilted by half its wedge
    angle as build_spine tilts it."""
    v = copy.deepcopy(v0)
    lo, hi = ap_render_grade_range(grade)

    class MidRng:  # the loss at the middle of the grade's range, every other draw at its middle too
        def uniform(self, a=0.0, b=1.0, size=None):
            if (a, b) == (lo, hi):
                return 0.5 * (a + b)
            return np.full(size, 0.5 * (a + b)) if size else 0.5 * (a + b)

        def integers(self, n):
            return 0

    v.ha = v.hm = v.hp = v.h_exp
    _apply_fracture(v, MidRng(), kind, grade)
    v.theta = v0.theta - 0.5 * _wedge(v0) + 0.5 * _wedge(v)
    return v


def ap_render_grade_range(grade: int):
    from spine_det.data.phantom.anatomy import _GRADE_LOSS
    return _GRADE_LOSS[grade]


def _wedge(v: Vertebra) -> float:
    return math.atan2(v.hp - v.ha, v.depth)


def integral(v: Vertebra, scale: float, renderer: str, mu_c: float = MU_C) -> np.ndarray:
    size = int(round(3 * max(v.width, v.h_exp) * scale)) + 8
    fr = Frame("ap", size, size, scale, size / 2 - v.centre[0] * scale, size / 2 - v.centre[2] * scale)
    A = np.zeros((size, size), np.float32)
    f = (24.0 / v.depth) ** K_LUM
    draw = ap_render._body if renderer == "before" or v.fracture == "none" else ap_render._fractured_body
    draw(A, fr, v, MU_T * f, mu_c * f, np.zeros_like(A), WAIST)
    return A


def half_height(col: np.ndarray, centre: int, share: float = 0.5) -> tuple:
    """(top, bottom) sub-pixel rows where ``col`` falls below ``share`` of its value at ``centre``."""
    ref = share * col[centre]
    i = centre
    while i > 0 and col[i - 1] >= ref:
        i -= 1
    top = i - (col[i] - ref) / max(col[i] - col[i - 1], 1e-9) if i > 0 else 0.0
    j = centre
    while j < len(col) - 1 and col[j + 1] >= ref:
        j += 1
    bot = j + (col[j] - ref) / max(col[j] - col[j + 1], 1e-9) if j < len(col) - 1 else float(j)
    return top, bot


def measure(v: Vertebra, scale: float, renderer: str) -> dict:
    A = integral(v, scale, renderer)
    core = integral(v, scale, renderer, mu_c=0.0)
    c = A.shape[0] // 2
    out = {"mass": float(A.sum()), "A": A}
    for name, du in (("centre", 0.0), ("side", 0.6 * v.width / 2)):
        top, bot = half_height(core[:, int(round(c + du * scale))], c)
        out[name] = bot - top
    top, bot = half_height(A[:, c], c, 0.05)
    out["outline"] = bot - top
    t = int(math.ceil(half_height(A[:, c], c)[0]))
    out["band"] = float(A[t:t + 3, c].mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--renderer", choices=("before", "after"), default="after")
    args = ap.parse_args()
    spine = build_spine(patient_rng(0, 0, 0), "Normal")
    v0 = copy.deepcopy(spine.level("L1"))
    print(f"L1: h_exp {v0.h_exp:.1f} mm, width {v0.width:.1f} mm, depth {v0.depth:.1f} mm, "
          f"sagittal tilt {math.degrees(v0.theta):.1f} deg; renderer {args.renderer}\n")
    print("| scale (px/mm) | kind | grade | loss | Genant (px) | core height, centre (px) | core height, side (px) | "
          "outline (px) | mass | "
          "sup band | max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for scale in (2.0, 0.7):
        base = measure(v0, scale, args.renderer)
        for kind in KINDS:
            for grade in (1, 2, 3):
                v = fractured(v0, kind, grade)
                m = measure(v, scale, args.renderer)
                diff = float(np.abs(m["A"] - base["A"]).max()) if m["A"].shape == base["A"].shape else float("nan")
                print(f"| {scale} | {kind} | {grade} | {v.loss:.2f} | {v.loss * v.h_exp * scale:.1f} | "
                      f"{base['centre']:.1f} -> {m['centre']:.1f} | {base['side']:.1f} -> {m['side']:.1f} | "
                      f"{base['outline']:.1f} -> {m['outline']:.1f} | "
                      f"{m['mass'] / base['mass']:.3f} | {m['band'] / base['band']:.2f} | {diff:.3f} |")


if __name__ == "__main__":
    main()

"""The one overlay module: what each drawing changes, and only there."""
from __future__ import annotations

import numpy as np

from spine_det.utils.overlay import overlay_gt_pred, overlay_masks, task_colour


def _grey() -> np.ndarray:
    return np.tile(np.arange(0, 200, 2, dtype=np.uint8), (80, 1))  # 80 x 100 ramp


def test_overlay_masks_tints_the_mask_in_its_task_colour_only():
    grey = _grey()
    m = np.zeros(grey.shape, bool)
    m[20:50, 30:70] = True
    out = overlay_masks(grey, {"lat_vertebra": m}, outline=False, legend=False, alpha=0.4)
    assert out.shape == (80, 100, 3) and out.dtype == np.uint8
    want = grey[m].astype(np.float32)[:, None] * 0.6 + np.array(task_colour("lat_vertebra"), np.float32) * 0.4
    assert np.abs(out[m].astype(np.float32) - want).max() <= 1.0
    assert (out[~m] == grey[~m][:, None]).all()  # untouched outside
    # the same class in the other view has the same colour; another class another one
    assert task_colour("ap_vertebra") == task_colour("lat_vertebra") != task_colour("lat_anterior_line")


def test_overlay_masks_outline_boxes_and_legend_draw_where_expected():
    grey = np.full((80, 100), 100, np.uint8)
    m = np.zeros(grey.shape, bool)
    m[30:60, 40:80] = True
    plain = overlay_masks(grey, [("ap_pedicle", m)], outline=False, legend=False)
    outlined = overlay_masks(grey, [("ap_pedicle", m)], outline=True, legend=False)
    changed = (plain != outlined).any(axis=2)
    ring = m & ~np.pad(m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:], 1)
    assert changed[ring].all() and not (changed & ~ring).any()  # exactly the boundary pixels, not the inside
    boxed = overlay_masks(grey, [], boxes=[("ap_pedicle", [10, 5, 20, 10])], legend=False)
    assert (boxed[5, 10:31] == task_colour("ap_pedicle")).all() and (boxed[7, 15] == 100).all()
    legend = overlay_masks(grey, [("ap_pedicle", m)], outline=False, legend=True)
    assert (legend[:25, :] != plain[:25, :]).any()  # the class name at the top left


def test_overlay_gt_pred_colours_agreement_and_errors():
    grey = np.full((10, 10), 128, np.uint8)
    gt = np.zeros((10, 10), bool)
    pred = np.zeros((10, 10), bool)
    gt[:, :5] = True
    pred[:5, :] = True
    out = overlay_gt_pred(grey, gt, pred, alpha=0.5)
    base = 128 / 255
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out[0, 0], [0.5 * base + 0.5, 0.5 * base + 0.5, 0.5 * base], rtol=1e-6)  # both: yellow
    np.testing.assert_allclose(out[9, 0], [0.5 * base, 0.5 * base + 0.5, 0.5 * base], rtol=1e-6)  # GT only: green
    np.testing.assert_allclose(out[0, 9], [0.5 * base + 0.5, 0.5 * base, 0.5 * base], rtol=1e-6)  # prediction only: red
    np.testing.assert_allclose(out[9, 9], [base] * 3, rtol=1e-6)  # neither: the X-ray
    assert np.array_equal(overlay_gt_pred(grey, gt, None)[0, 9], out[9, 9])

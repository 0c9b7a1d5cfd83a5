"""Object-level scoring of instances (detected / merged / split / false positives), checked by hand
and against a brute-force IoU over boolean masks."""
from __future__ import annotations

import numpy as np
import pytest

from spine_det.evaluation.instance_quality import match_instances, overlap_table, summarise


def boxes(shape, items):
    out = np.zeros(shape, np.uint16)
    for k, (y0, y1, x0, x1) in items:
        out[y0:y1, x0:x1] = k
    return out


def test_overlap_table_matches_brute_force():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 4, (30, 20))
    pred = rng.integers(0, 5, (30, 20)) * 7  # arbitrary ids
    g_ids, p_ids, inter, g_area, p_area = overlap_table(gt, pred)
    assert list(g_ids) == [1, 2, 3] and list(p_ids) == [7, 14, 21, 28]
    for i, g in enumerate(g_ids):
        assert g_area[i] == np.sum(gt == g)
        for j, p in enumerate(p_ids):
            assert inter[i, j] == np.sum((gt == g) & (pred == p))


def test_detected_merged_split_and_false_positive_counts():
    shape = (100, 40)
    gt = boxes(shape, [(1, (0, 10, 5, 35)), (2, (12, 22, 5, 35)), (3, (24, 34, 5, 35)), (4, (40, 50, 5, 35))])
    pred = boxes(shape, [
        (5, (0, 10, 5, 35)),   # exactly vertebra 1
        (6, (12, 34, 5, 35)),  # vertebrae 2 and 3 as one instance: a merge, neither detected (IoU < 0.5)
        (8, (40, 50, 5, 19)),  # left part of vertebra 4 (IoU 0.47) ...
        (9, (40, 50, 19, 33)),  # ... right part (0.47): vertebra 4 split, not detected
        (7, (80, 90, 5, 35)),  # nothing there
    ])
    m = match_instances(gt, pred)
    assert (m.gt, m.pred, m.detected, m.merges, m.splits) == (4, 5, 1, 1, 1)
    assert m.false_positives == 4 and m.mean_iou_detected == pytest.approx(1.0)
    # at IoU 0.4 the merged instance detects one of its two vertebrae (10/22 ~ 0.45), and one part
    # of the split vertebra detects it (0.47); the other part stays a false positive
    loose = match_instances(gt, pred, iou=0.4)
    assert (loose.detected, loose.false_positives) == (3, 2)


def test_one_to_one_and_summary():
    shape = (20, 20)
    gt = boxes(shape, [(1, (0, 10, 0, 20))])
    pred = boxes(shape, [(1, (0, 10, 0, 19)), (2, (0, 10, 19, 20))])
    m = match_instances(gt, pred)
    assert m.detected == 1 and m.false_positives == 1  # the second instance cannot detect it again
    empty = match_instances(gt, np.zeros(shape, np.uint16))
    assert (empty.detected, empty.pred, empty.false_positives) == (0, 0, 0)
    s = summarise([m, empty], expected=1)
    assert s["detected_per_image"] == 0.5 and s["images_with_all_detected"] == 0.5
    assert s["images_with_all_expected_detected"] == 0.5
    with pytest.raises(ValueError):
        match_instances(gt, np.zeros((3, 3)))

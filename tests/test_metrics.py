"""metrics.py against independent implementations (torchmetrics, pixel sets)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import binary_jaccard_index

from spine_det.evaluation.metrics import ScoreTable, binary_scores, paste_instances, scores_from_counts


def _set_scores(p: np.ndarray, g: np.ndarray):
    """Dice / Jaccard / TPR by counting pixel coordinates as Python sets."""
    P = set(zip(*np.nonzero(p)))
    G = set(zip(*np.nonzero(g)))
    inter = len(P & G)
    dice = 2 * inter / (len(P) + len(G)) if (P or G) else 1.0
    jac = inter / len(P | G) if (P | G) else 1.0
    tpr = inter / len(G) if G else math.nan
    return dice, jac, tpr


@pytest.mark.parametrize("seed", range(6))
def test_random_masks_match_torchmetrics_and_sets(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(5, 40, size=2))
    p = rng.random(shape) < rng.uniform(0.05, 0.9)
    g = rng.random(shape) < rng.uniform(0.05, 0.9)
    s = binary_scores(p, g)
    dice, jac, tpr = _set_scores(p, g)
    assert s["dice"] == pytest.approx(dice, abs=1e-12)
    assert s["jaccard"] == pytest.approx(jac, abs=1e-12)
    assert s["tpr"] == pytest.approx(tpr, abs=1e-12)
    tm = binary_jaccard_index(torch.from_numpy(p).long(), torch.from_numpy(g).long())
    assert s["jaccard"] == pytest.approx(float(tm), abs=1e-6)
    # Dice and Jaccard are tied by D = 2J / (1 + J).
    assert s["dice"] == pytest.approx(2 * s["jaccard"] / (1 + s["jaccard"]), abs=1e-12)


def test_empty_cases_follow_the_convention():
    z = np.zeros((8, 8), bool)
    one = z.copy()
    one[2:4, 2:4] = True
    both_empty = binary_scores(z, z)
    assert both_empty["dice"] == 1.0 and both_empty["jaccard"] == 1.0 and math.isnan(both_empty["tpr"])
    fp = binary_scores(one, z)  # gt empty, prediction not
    assert fp["dice"] == 0.0 and fp["jaccard"] == 0.0 and math.isnan(fp["tpr"])
    fn = binary_scores(z, one)  # prediction empty, gt not
    assert fn == {"dice": 0.0, "jaccard": 0.0, "tpr": 0.0}
    assert binary_scores(one, one) == {"dice": 1.0, "jaccard": 1.0, "tpr": 1.0}
    assert scores_from_counts(3, 4, 5) == pytest.approx({"dice": 6 / 9, "jaccard": 3 / 6, "tpr": 3 / 5})
    with pytest.raises(ValueError):
        binary_scores(z, np.zeros((8, 9), bool))


def test_score_table_means_over_images_and_skips_undefined_tpr():
    z = np.zeros((6, 6), bool)
    half = z.copy()
    half[:3] = True
    t = ScoreTable()
    t.add("a", half, half)  # 1, 1, 1
    t.add("b", z, half)  # 0, 0, 0
    t.add("c", z, z)  # 1, 1, nan
    s = t.summary()
    assert s["dice"] == pytest.approx(2 / 3) and s["jaccard"] == pytest.approx(2 / 3)
    assert s["tpr"] == pytest.approx(0.5)
    assert s["counts"]["images"] == 3 and s["counts"]["empty_gt"] == 1 and s["counts"]["tpr_images"] == 2
    assert s["counts"]["empty_pred_nonempty_gt"] == 1


def test_paste_instances_is_the_union_above_threshold():
    rng = np.random.default_rng(0)
    masks = rng.random((5, 10, 12)) < 0.2
    scores = np.array([0.9, 0.1, 0.5, 0.49, 0.7])
    expected = masks[0] | masks[2] | masks[4]
    assert np.array_equal(paste_instances(masks, scores, 0.5, (10, 12)), expected)
    assert np.array_equal(paste_instances(torch.from_numpy(masks), torch.from_numpy(scores), 0.5, (10, 12)), expected)
    assert not paste_instances(masks, scores, 0.95, (10, 12)).any()
    assert not paste_instances(np.zeros((0, 10, 12), bool), np.zeros(0), 0.5, (10, 12)).any()


def test_score_files_written_from_a_table(tmp_path):
    """ScoreTable computes, score_files writes: the summary JSON (+ meta) and the per-image CSV,
    sorted by image id, NaN written empty."""
    import csv
    import json

    from spine_det.evaluation.score_files import PER_IMAGE_FILE, SUMMARY_FILE, write_scores

    t = ScoreTable()
    gt = np.zeros((4, 4), bool)
    gt[1:3, 1:3] = True
    t.add("b", gt, gt)
    t.add("a", np.zeros((4, 4), bool), np.zeros((4, 4), bool))  # both empty: TPR undefined
    result = write_scores(t, tmp_path / "out", {"model": "x"})
    assert result == json.loads((tmp_path / "out" / SUMMARY_FILE).read_text())
    assert result["model"] == "x" and result["dice"] == 1.0 and result["counts"]["images"] == 2
    rows = list(csv.DictReader((tmp_path / "out" / PER_IMAGE_FILE).open()))
    assert [r["image_id"] for r in rows] == ["a", "b"] and rows[0]["tpr"] == "" and float(rows[1]["tpr"]) == 1.0
    assert not hasattr(ScoreTable, "write")  # no file I/O on the table itself

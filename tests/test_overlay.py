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
    assert legend.shape[0] > plain.shape[0] and np.array_equal(legend[:80], plain)  # the class name below the film
    assert _has_colour(legend[80:], task_colour("ap_pedicle"))  # ... in the task's colour


def _has_colour(strip: np.ndarray, bgr) -> bool:
    """Some pixel of ``strip`` is text of colour ``bgr`` (nearer it than the strip's grey; anti-aliased)."""
    from spine_det.utils.overlay import STRIP_BACKGROUND

    px = strip.reshape(-1, 3).astype(float)
    return bool((np.linalg.norm(px - bgr, axis=1) < np.linalg.norm(px - STRIP_BACKGROUND, axis=1) / 2).any())


def _film_offset(framed: np.ndarray, film: np.ndarray) -> int:
    """Row where ``film`` sits, pixel for pixel, inside ``framed`` (-1: nowhere)."""
    h = film.shape[0]
    return next((k for k in range(framed.shape[0] - h + 1) if np.array_equal(framed[k:k + h], film)), -1)


def test_header_and_legend_sit_in_strips_outside_the_film():
    """The model's caption in a strip above, the legend in a strip below: every film pixel is the
    picture without any text (before: the legend was drawn over the film's top left corner)."""
    grey = _grey()
    m = np.zeros(grey.shape, bool)
    m[5:60, 2:90] = True  # the mask under where the legend used to be
    layers = [("lat_vertebra", m)]
    bare = overlay_masks(grey, layers, boxes=[("lat_vertebra", [2, 5, 88, 55])], legend=False)
    caption = "LinkNet | model_best.pth sha1 0123abcd | probability >= 0.50 | task lat_vertebra"
    full = overlay_masks(grey, layers, boxes=[("lat_vertebra", [2, 5, 88, 55])], legend=True, header=caption)
    k = _film_offset(full, bare)
    assert k > 0, "the film is covered by text, or not drawn whole"
    assert full.shape[1] == bare.shape[1] and full.shape[0] > k + bare.shape[0]  # strips above and below
    header, footer = full[:k], full[k + bare.shape[0]:]
    assert _has_colour(header, (255, 255, 255))  # the caption's white text
    assert _has_colour(footer, task_colour("lat_vertebra"))  # the legend in the class colour
    assert overlay_masks(grey, layers, legend=False, header=None).shape == (80, 100, 3)  # nothing asked, nothing added


def test_model_caption_names_family_checkpoint_sha1_threshold_and_task(tmp_path):
    import hashlib

    from spine_det.utils.overlay import ModelCaption

    ck = tmp_path / "model_best.pth"
    ck.write_bytes(b"weights")

    class MaskRCNNLike:
        score_threshold = 0.3

    class LinkNetLike:
        threshold = 0.5

    sha = hashlib.sha1(b"weights").hexdigest()[:8]
    assert ModelCaption.describe("Mask R-CNN", ck, MaskRCNNLike()).text("ap_vertebra") == \
        f"Mask R-CNN | model_best.pth sha1 {sha} | score >= 0.30 | task ap_vertebra"
    assert ModelCaption.describe("LinkNet", str(ck), LinkNetLike()).text("lat_vertebra") == \
        f"LinkNet | model_best.pth sha1 {sha} | probability >= 0.50 | task lat_vertebra"


def test_box_labels_carry_level_and_score():
    from spine_det.utils.overlay import box_label

    assert box_label({"score": 0.9712, "level": "L3"}) == "L3 0.97"
    assert box_label({"score": 0.4, "level": None}) == "0.40"  # dropped by the level post-processing: score only
    assert box_label({"level": "T12"}) == "T12" and box_label({}) is None


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


def test_predict_draws_scores_beside_levels_and_names_the_model(tmp_path, monkeypatch):
    """predict's overlay call: Mask R-CNN boxes labelled "level score", the caption in the header
    (before: the level alone, no caption)."""
    from pathlib import Path

    import spine_det.utils.overlay as overlay
    from spine_det.engine.predictor import TaskPrediction
    from spine_det.tools import predict

    calls = []
    real = overlay.overlay_masks
    monkeypatch.setattr(predict, "overlay_masks", lambda *a, **k: calls.append(k) or real(*a, **k))
    a = np.zeros((40, 30), bool)
    a[2:10, 5:20] = True
    b = np.zeros((40, 30), bool)
    b[20:28, 5:20] = True
    insts = [{"score": 0.97, "bbox": [5, 2, 15, 8], "area": int(a.sum())},
             {"score": 0.41, "bbox": [5, 20, 15, 8], "area": int(b.sum())}]
    p = TaskPrediction(mask=a | b, instances=insts, instance_masks=np.stack([a, b]))
    cap = overlay.ModelCaption("Mask R-CNN", "model_best.pth", "0123abcd", "score >= 0.30")
    predict.write_outputs(tmp_path / "x", np.zeros((40, 30), np.uint8), {"lat_vertebra": p}, Path("x.png"), cap)
    (kw,) = calls
    assert kw["header"] == "Mask R-CNN | model_best.pth sha1 0123abcd | score >= 0.30 | task lat_vertebra"
    labels = kw["box_labels"]
    assert len(labels) == 2 and labels[0].endswith("0.97") and labels[1].endswith("0.41")
    for inst, label in zip(insts, labels):  # the level where the post-processing named one
        assert label.split()[0] == inst["level"] if inst.get("level") else label == f"{inst['score']:.2f}"


def test_predict_tool_overlay_keeps_the_film_whole_and_its_json_names_the_speck_rule(tmp_path, monkeypatch):
    """``spine-det predict`` end to end with a LinkNet checkpoint that stores no speck minimum: the
    overlay is the film (pixel for pixel as drawn without text) between a caption strip and a legend
    strip; the JSON says the relative rule cleaned the instance list."""
    import json

    import cv2
    import torch

    from spine_det.config.loading import load_cfg
    from spine_det.config.semseg import get_semseg_cfg
    from spine_det.modeling.semseg import build_seg_model
    from spine_det.tools import predict
    from spine_det.utils.checkpoint_io import save_plain

    torch.manual_seed(0)
    cfg = load_cfg(get_semseg_cfg(), opts=["MODEL.PRETRAINED", "False", "INPUT.HEIGHT", "32", "INPUT.WIDTH", "32",
                                            "SPINE.TASKS", "['lat_vertebra']", "TEST.THRESHOLD", "0.5"])
    ck = tmp_path / "model_best.pth"
    save_plain(ck, {"model": build_seg_model(cfg).state_dict(), "epoch": 1, "cfg": cfg.dump(), "model_name": "linknet"})
    grey = (np.arange(60 * 50) % 251).astype(np.uint8).reshape(60, 50)
    cv2.imwrite(str(tmp_path / "film.png"), grey)
    import hashlib

    import spine_det.utils.overlay as overlay

    headers = []
    real = overlay.overlay_masks
    monkeypatch.setattr(predict, "overlay_masks", lambda *a, **k: headers.append(k.get("header")) or real(*a, **k))
    assert predict.main(["--checkpoint", str(ck), "--input", str(tmp_path / "film.png"), "--output", str(tmp_path / "out")]) == 0
    sha = hashlib.sha1(ck.read_bytes()).hexdigest()[:8]
    assert headers == [f"LinkNet | model_best.pth sha1 {sha} | probability >= 0.50 | task lat_vertebra"]
    folder = tmp_path / "out" / "film"
    drawn = cv2.imread(str(folder / "lat_vertebra_overlay.png"))
    mask = cv2.imread(str(folder / "lat_vertebra_mask.png"), cv2.IMREAD_GRAYSCALE) > 0
    film = overlay_masks(grey, [("lat_vertebra", mask)], legend=False)
    k = _film_offset(drawn, film)
    assert k > 0 and drawn.shape[0] > k + 60  # caption above, legend below, film untouched between
    data = json.loads((folder / "lat_vertebra_instances.json").read_text())
    assert data["component_filter"]["rule"] == "relative_to_weighted_median"
    assert len(data["instances"]) == data["component_filter"]["components"] - data["component_filter"]["dropped"]

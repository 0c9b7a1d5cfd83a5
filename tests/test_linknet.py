"""LinkNet: shapes, parameter budget, loss values, letterbox geometry, train/resume/evaluate/predict."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from spine_det.config.loading import load_cfg
from spine_det.config.semseg import get_semseg_cfg
from spine_det.data.seg_dataset import Letterbox, letterbox_image, letterbox_mask, unletterbox
from spine_det.modeling.linknet import LinkNet
from spine_det.modeling.losses import bce_dice_loss, build_loss, dice_loss, soft_dice
from spine_det.modeling.semseg import count_parameters

# segmentation_models_pytorch.Linknet(encoder_name="resnet18", encoder_weights=None, classes=1)
SMP_LINKNET_PARAMS = 11_663_777


@pytest.mark.parametrize("shape,classes,in_ch", [((1, 1, 37, 53), 1, 1), ((2, 1, 65, 33), 3, 1), ((1, 3, 31, 97), 5, 3)])
def test_output_shape_odd_sizes(shape, classes, in_ch):
    torch.manual_seed(0)
    model = LinkNet(num_classes=classes, in_channels=in_ch, pretrained=False).eval()
    with torch.no_grad():
        out = model(torch.randn(*shape))
    assert out.shape == (shape[0], classes, shape[2], shape[3])
    assert torch.isfinite(out).all()


def test_parameter_count_close_to_smp():
    n = count_parameters(LinkNet(num_classes=1, in_channels=3, pretrained=False))
    assert abs(n / SMP_LINKNET_PARAMS - 1) < 0.05
    # grey input sums the first conv: 2 x 64 x 7 x 7 fewer weights
    assert count_parameters(LinkNet(num_classes=1, in_channels=1, pretrained=False)) == n - 2 * 64 * 49


def test_grey_summed_conv_equals_replicated_input():
    torch.manual_seed(0)
    rgb = LinkNet(1, in_channels=3, pretrained=False).eval()
    grey = LinkNet(1, in_channels=1, pretrained=False).eval()
    state = rgb.state_dict()
    state["stem.0.weight"] = state["stem.0.weight"].sum(1, keepdim=True)
    grey.load_state_dict(state)
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(grey(x), rgb(x.repeat(1, 3, 1, 1)), atol=1e-4)


def test_linknet_is_one_network_of_the_segmentation_registry():
    """The generic segmentation layer is named for what it is (issue 31): the registry, trainer, predictor and
    config are ``semseg`` modules, and LinkNet is one entry, brought by its family's hook as smp's networks are."""
    import importlib.util

    from spine_det.modeling import semseg
    from spine_det.modeling.registry import get_family, resolve

    for old in ("spine_det.config.linknet", "spine_det.engine.linknet_trainer", "spine_det.engine.linknet_predictor"):
        assert importlib.util.find_spec(old) is None, old
    for key in ("linknet", "smp_unet"):
        family = get_family(key)
        assert family.reference("predictor") == "spine_det.engine.semseg_predictor:SemSegPredictor"
        assert family.reference("load_config") == "spine_det.config.semseg:load_semseg_config"
        resolve(family.extra["register_networks"])()
        assert key in semseg.SEG_MODEL_REGISTRY
    cfg = load_cfg(get_semseg_cfg(), opts=["MODEL.PRETRAINED", "False"])
    assert cfg.MODEL.NAME == "linknet" and isinstance(semseg.build_seg_model(cfg), LinkNet)


def test_soft_dice_hand_made():
    # 2x2 image, target one pixel, probability 0.5 everywhere: (2*0.5 + 1) / (2 + 1 + 1) = 0.5
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    logits = torch.zeros_like(target)
    assert dice_loss(logits, target).item() == pytest.approx(-0.5)
    assert soft_dice(torch.sigmoid(logits), target, smooth=0.0).item() == pytest.approx(1.0 / 3.0)
    # perfect prediction -> -1; both empty -> -1 (smooth term); empty target, full prediction -> 1/(4+1)
    big = (target * 2 - 1) * 50
    assert dice_loss(big, target).item() == pytest.approx(-1.0, abs=1e-6)
    assert dice_loss(torch.full_like(target, -50.0), torch.zeros_like(target)).item() == pytest.approx(-1.0, abs=1e-6)
    assert dice_loss(torch.full_like(target, 50.0), torch.zeros_like(target)).item() == pytest.approx(-0.2, abs=1e-6)
    # valid mask: channel 1 (wrong) is ignored
    two = torch.cat([big, -big], dim=1)
    tt = torch.cat([target, target], dim=1)
    # channel 2 predicts the 3 other pixels: (0 + 1) / (3 + 1 + 1) = 0.2
    assert dice_loss(two, tt).item() == pytest.approx(-(1.0 + 0.2) / 2, abs=1e-6)
    assert dice_loss(two, tt, valid=torch.tensor([[True, False]])).item() == pytest.approx(-1.0, abs=1e-6)
    # bce_dice = BCE + negative Dice
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target).item()
    assert bce_dice_loss(logits, target).item() == pytest.approx(bce - 0.5)


def test_loss_registry():
    cfg = get_semseg_cfg()
    t = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    assert build_loss(cfg)(torch.zeros_like(t), t).item() == pytest.approx(-0.5)
    cfg.LOSS.NAME = "bce_dice"
    assert build_loss(cfg)(torch.zeros_like(t), t).item() < -0.5 + 1.0


def test_letterbox_round_trip():
    mask = np.zeros((300, 200), dtype=bool)
    mask[50:250, 40:160] = True
    lb = Letterbox.fit(mask.shape, (128, 128))
    assert (lb.h, lb.w) == (128, 85) and lb.left == (128 - 85) // 2 and lb.top == 0
    small = letterbox_mask(mask, lb)
    assert small.shape == (128, 128) and not small[:, : lb.left].any()
    back = unletterbox(small.astype(np.float32), lb) >= 0.5
    assert back.shape == mask.shape
    inter = np.logical_and(back, mask).sum()
    assert 2 * inter / (back.sum() + mask.sum()) > 0.97
    img = (np.arange(300 * 200) % 251).astype(np.uint8).reshape(300, 200)
    assert letterbox_image(img, Letterbox.fit(img.shape, (64, 64), "stretch")).shape == (64, 64)


def _tiny_cfg(out_dir, epochs, **extra):
    opts = ["MODEL.PRETRAINED", "False", "MODEL.DEVICE", "cpu", "INPUT.HEIGHT", "64", "INPUT.WIDTH", "48",
            "SOLVER.MAX_EPOCHS", str(epochs), "SOLVER.IMS_PER_BATCH", "2", "SOLVER.BASE_LR", "0.003",
            "SOLVER.SCHEDULER", "plateau", "DATALOADER.NUM_WORKERS", "0", "AUG.ENABLED", "False",
            "SPINE.TASKS", "['lat_vertebra']", "OUTPUT_DIR", str(out_dir)]
    for k, v in extra.items():
        opts += [k, str(v)]
    return load_cfg(get_semseg_cfg(), opts=opts)


def test_domain_randomisation_degrades_content_not_padding():
    import random

    from spine_det.data.seg_dataset import augment, degrade

    cfg = get_semseg_cfg()
    img = np.zeros((64, 48), np.uint8)
    img[:, 8:40] = np.tile(np.linspace(40, 220, 64, dtype=np.uint8)[:, None], (1, 32))
    img[20:30, 15:33] = 250  # an edge for blur / unsharp to change
    changed = 0
    for k in range(20):
        out = degrade(img, cfg.AUG, random.Random(k))
        assert out.dtype == np.uint8 and out.shape == img.shape
        assert (out[:, :8] == 0).all() and (out[:, 40:] == 0).all()  # letterbox padding untouched
        changed += not np.array_equal(out, img)
    assert changed >= 15  # DR_PROB 0.5 over three steps: most images are changed
    assert np.array_equal(degrade(img, cfg.AUG, random.Random(3)), degrade(img, cfg.AUG, random.Random(3)))
    cfg.defrost()
    cfg.AUG.DR_PROB = 0.0
    assert np.array_equal(degrade(img, cfg.AUG, random.Random(0)), img)  # switched off
    masks = np.zeros((1, 64, 48), bool)
    masks[0, 20:30, 15:33] = True
    _, m = augment(img, masks, cfg.AUG, random.Random(1))
    assert m.shape == masks.shape and m.any()  # geometry still shared by image and masks


def _metrics(out):
    return [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]


@pytest.mark.slow
def test_train_resume_evaluate_predict(prepared, tmp_path):
    from spine_det.engine.semseg_trainer import evaluate_semseg, load_checkpoint, train_semseg

    torch.set_num_threads(1)
    manifest = prepared.manifest
    out = tmp_path / "run"
    s1 = train_semseg(_tiny_cfg(out, 3), manifest)
    # a Mask R-CNN run's files: the pointer names the final checkpoint, model_best does not steal it
    assert (out / "model_best.pth").is_file() and (out / "last_checkpoint").read_text().strip() == "model_final.pth"
    assert {"config.yaml", "log.txt", "metrics.json", "model_best.json"} <= {f.name for f in out.iterdir()}
    assert not list(out.glob("model_0*.pth"))  # the periodic checkpoint went with model_final.pth
    n_train = len([s for s in manifest.select(split="train", view="lat") if s.masks.get("lat_vertebra")])
    ipe = n_train // 2  # batch 2, last partial batch dropped
    recs = _metrics(out)
    dice = [(r["iteration"], r["epoch"]) for r in recs if "lat_vertebra/dice" in r]
    assert dice == [(ipe - 1, 1.0), (2 * ipe - 1, 2.0), (3 * ipe - 1, 3.0)]  # validated every epoch, on iterations
    assert {"total_loss", "lr", "epoch", "lat_vertebra/jaccard", "spine_det_version"} <= set().union(*recs)
    assert s1["best_epoch"] >= 1 and s1["epochs"] == 3 and s1["iterations"] == 3 * ipe
    final = load_checkpoint(out / "model_final.pth")
    assert final["trainer"]["epoch"] == 3 and final["iteration"] == 3 * ipe - 1 and final["model_name"] == "linknet"

    # resume: continues at epoch 4, keeps the first three epochs' lines
    s2 = train_semseg(_tiny_cfg(out, 5), manifest, resume=True)
    recs = _metrics(out)
    assert [r["epoch"] for r in recs if "lat_vertebra/dice" in r] == [1, 2, 3, 4, 5]
    assert len({r["iteration"] for r in recs}) == len(recs)  # each iteration once
    assert load_checkpoint(out / "model_final.pth")["trainer"]["epoch"] == 5
    for name in ("model_final.pth", "model_best.pth"):  # plain data: torch's own weights_only check, no allow-list
        assert "model" in torch.load(out / name, weights_only=True)
    best = torch.load(out / "model_best.pth", weights_only=True)
    assert best["metric"] == "lat_vertebra/dice" and best["tasks"] == ["lat_vertebra"] and "spine_det_version" in best
    assert "trainer" not in best  # weights and what predict reads, not the optimiser
    # the speck filter chosen on the validation films is stored in the best checkpoint (plain data)
    rule = best["component_filter"]["lat_vertebra"]
    assert rule["rule"] == "validation_f1" and rule["films"] > 0 and rule["ground_truth_instances"] > 0
    assert rule["min_area_share"] is None or rule["min_area_share"] >= 0.0  # None: a 5-epoch model matches no vertebra
    assert s2["speck_filter"] == {"lat_vertebra": rule}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out))  # TensorBoard events beside metrics.json, continued on resume, iteration axis
    acc.Reload()
    # sorted: the resumed run's event file may sort first when both runs start within the same second
    assert sorted(e.step for e in acc.Scalars("lat_vertebra/dice")) == [k * ipe - 1 for k in range(1, 6)]
    losses = [(r["iteration"], r["total_loss"]) for r in recs if "total_loss" in r]
    assert sorted((e.step, round(e.value, 5)) for e in acc.Scalars("total_loss")) == [(i, round(v, 5)) for i, v in losses]
    assert losses[-1][1] < losses[0][1]  # training lowers the (negative Dice) loss
    assert s2["best_val_dice"] >= s1["best_val_dice"]

    # test split at original resolution, same files as the Mask R-CNN evaluator
    res = evaluate_semseg(_tiny_cfg(out, 5), manifest)
    folder = out / "inference" / "spine_lat_vertebra_test"
    data = json.loads((folder / "semantic_metrics.json").read_text())
    assert data["dataset"] == "spine_lat_vertebra_test" and data["model"] == "linknet"
    assert data["counts"]["images"] == len(manifest.select(split="test", task="lat_vertebra")) > 0
    assert 0.0 <= res["lat_vertebra"]["dice"] <= 1.0 and not math.isnan(res["lat_vertebra"]["dice"])
    assert (folder / "semantic_per_image.csv").read_text().count("\n") == data["counts"]["images"] + 1

    # predictor from the checkpoint alone, original image size
    from spine_det.data.io import read_image
    from spine_det.engine.predictor import build_predictor

    pred = build_predictor("linknet", str(out / "model_best.pth"))
    s = manifest.select(split="test", view="lat")[0]
    img = read_image(s.image)
    outp = pred(img)
    assert list(outp) == ["lat_vertebra"]
    assert outp["lat_vertebra"].mask.shape == img.shape and outp["lat_vertebra"].mask.dtype == bool
    for inst in outp["lat_vertebra"].instances:
        assert 0 <= inst["score"] <= 1 and inst["area"] > 0 and len(inst["bbox"]) == 4
    used = outp["lat_vertebra"].component_filter["rule"]
    assert pred.speck_filter == {"lat_vertebra": rule} and used == ("validation_f1" if rule["min_area_share"] is not None
                                                                     else "relative_to_weighted_median")

    # the benchmark's cost step: times 1 image, but saves the masks of the 3 the figures ask for,
    # and the figures' reader finds each of them
    from spine_det.benchmark.cost import measure
    from spine_det.benchmark.figures import load_predictions

    samples = manifest.select(view="lat")[:3]
    cost = measure("linknet", str(out / "model_best.pth"), "lat_vertebra", samples, pred_dir=tmp_path / "preds",
                   n_images=1, keep_predictions=3)
    assert cost["inference_images"] == 1 and cost["requested"] == {"images": 1, "keep": 3}
    masks = load_predictions(tmp_path / "preds", [s.key for s in samples])
    assert len(samples) == 3 and set(masks) == {s.key for s in samples}
    assert np.array_equal(masks[samples[2].key], pred(read_image(samples[2].image))["lat_vertebra"].mask)


def test_configs_load():
    from pathlib import Path

    from spine_det.config.semseg import tasks_of
    from spine_det.tasks import TASK_NAMES, tasks_of_view

    root = Path(__file__).resolve().parents[1] / "configs" / "linknet"
    for t in TASK_NAMES:
        cfg = load_cfg(get_semseg_cfg(), str(root / f"{t}.yaml"), "cpu")
        assert tasks_of(cfg) == [t] and cfg.MODEL.DEVICE == "cpu"
        # a task's own cpu profile (profiles/cpu/<task>.yaml): the lines get the phantom's resolution,
        # ap_vertebra the portrait of a full-spine film, the small AP structures the phantom's own pixels;
        # the rest keep the profile's 256x192
        want = {"lat_anterior_line": (512, 384), "lat_posterior_line": (512, 384), "ap_vertebra": (640, 224),
                "ap_spinous_process": (512, 352), "ap_pedicle": (512, 352)}.get(t, (256, 192))
        assert (cfg.INPUT.HEIGHT, cfg.INPUT.WIDTH) == want, t
        # measured on real films for this task only
        assert (cfg.INPUT.CLAHE, cfg.TEST.HFLIP) == ((2.0, True) if t == "ap_vertebra" else (0.0, False)), t
        # real lateral films face either way: every LAT task trains on mirrored films half the time
        assert cfg.AUG.HFLIP == 0.5 if t.startswith("lat") else True, t
    for v in ("ap", "lat"):
        cfg = load_cfg(get_semseg_cfg(), str(root / f"{v}_all.yaml"))
        assert tasks_of(cfg) == [t.name for t in tasks_of_view(v)]
    with pytest.raises(ValueError):
        tasks_of(load_cfg(get_semseg_cfg(), opts=["SPINE.TASKS", "['ap_vertebra', 'lat_vertebra']"]))


def test_init_weights_start_training_from_another_linknet(tmp_path):
    """MODEL.INIT_WEIGHTS (e.g. a phantom-trained LinkNet): matching tensors copied, another head kept."""
    import torch

    from spine_det.engine.semseg_trainer import init_from_checkpoint
    from spine_det.modeling.linknet import LinkNet
    from spine_det.utils.checkpoint_io import CheckpointError, save_plain

    torch.manual_seed(0)
    src = LinkNet(num_classes=1, pretrained=False)
    ck = tmp_path / "model_best.pth"
    save_plain(ck, {"model": src.state_dict(), "epoch": 1, "score": 0.5, "metric": "dice", "tasks": ["ap_vertebra"],
                    "cfg": "", "model_name": "linknet"})
    torch.manual_seed(1)
    dst = LinkNet(num_classes=3, pretrained=False)  # three tasks: the last layer cannot be copied
    head_before = dst.final_up2.weight.clone()
    out = init_from_checkpoint(dst, str(ck))
    assert torch.equal(dst.encoder3[0].conv1.weight, src.encoder3[0].conv1.weight)
    assert torch.equal(dst.stem[1].running_mean, src.stem[1].running_mean)
    assert torch.equal(dst.final_up2.weight, head_before) and "final_up2.weight" in out["kept"]
    other = tmp_path / "classifier.pth"
    save_plain(other, {"model": {}, "view": "ap", "backbone": "resnet18"})
    with pytest.raises(CheckpointError):
        init_from_checkpoint(dst, str(other))


def test_train_subset_is_nested_and_epoch_length_fixed(prepared, tmp_path):
    """Label-efficiency runs: nested subsets of the training split, the same number of images per epoch."""
    from spine_det.data.layout import nested_subset
    from spine_det.engine.semseg_trainer import _loader, build_seg_datasets

    manifest = prepared.manifest
    train = [s for s in manifest.select(split="train", view="lat") if s.masks.get("lat_vertebra")]
    assert len(train) >= 5
    small, big = nested_subset(train, 3, seed=0), nested_subset(train, 4, seed=0)
    assert len(small) == 3 and len(big) == 4 and {s.key for s in small} < {s.key for s in big}
    assert [s.key for s in nested_subset(list(reversed(train)), 3, seed=0)] == [s.key for s in small]  # input order
    assert any({s.key for s in nested_subset(train, 3, seed=k)} != {s.key for s in small} for k in range(1, 6))
    assert len(nested_subset(train, 0)) == len(nested_subset(train, 10 ** 6)) == len(train)

    cfg = _tiny_cfg(tmp_path / "run", 1, **{"DATALOADER.TRAIN_SUBSET": 3, "SOLVER.EPOCH_IMAGES": 10})
    ds = build_seg_datasets(cfg, manifest)
    assert len(ds["train"]) == 3
    assert {s.key for s in ds["train"].samples} == {s.key for s in small}
    assert len(ds["val"]) == len(manifest.select(split="val", task="lat_vertebra"))  # validation unchanged
    loader = _loader(ds["train"], 2, True, 0, 0, drop_last=True, epoch_images=10)
    seen = [int(i) for b in loader for i in b["index"]]
    assert len(seen) == 10 and set(seen) == {0, 1, 2}  # 3 images repeated to fill a 10-image epoch
    assert len(_loader(ds["train"], 2, True, 0, 0, drop_last=True)) == 1  # default: one pass


def test_contrast_equalisation_is_histogram_equalisation_per_tile():
    """INPUT.CLAHE's function: one tile with no clipping is plain histogram equalisation (numpy's CDF
    here, computed independently); a clip limit of 0 leaves the image alone."""
    from spine_det.data.seg_dataset import equalize_contrast

    rng = np.random.default_rng(0)
    img = rng.normal(100, 8, (64, 48)).clip(0, 255).astype(np.uint8)  # a low-contrast image
    cdf = np.cumsum(np.bincount(img.ravel(), minlength=256)) / img.size
    assert np.array_equal(equalize_contrast(img, 1000.0, tiles=1), np.round(cdf[img] * 255).astype(np.uint8))
    assert equalize_contrast(img, 0.0) is img
    out = equalize_contrast(img, 2.0)
    assert out.shape == img.shape and out.dtype == np.uint8 and out.std() > 2 * img.std()


def test_contrast_equalisation_is_the_same_in_training_and_prediction(prepared):
    """The network input of an image is the same whether the training dataset or the predictor made it,
    with CLAHE on, and CLAHE changes it (so neither path can silently skip it)."""
    from spine_det.data.io import read_image
    from spine_det.engine.semseg_predictor import SemSegPredictor
    from spine_det.engine.semseg_trainer import build_seg_datasets

    class Recorder(torch.nn.Module):
        def forward(self, x):
            self.seen = x.clone()
            return torch.zeros(x.shape[0], 1, *x.shape[2:])

    seen = {}
    for clahe in (0.0, 2.0):
        cfg = load_cfg(get_semseg_cfg(), opts=["SPINE.TASKS", "['lat_vertebra']", "INPUT.HEIGHT", "96",
                                                "INPUT.WIDTH", "64", "INPUT.CLAHE", str(clahe), "MODEL.DEVICE", "cpu"])
        val = build_seg_datasets(cfg, prepared.manifest)["val"]
        rec = Recorder()
        SemSegPredictor(cfg, model=rec).predict_probs(read_image(val.samples[0].image))
        assert torch.equal(rec.seen[0], val[0]["image"])
        seen[clahe] = rec.seen[0]
    assert not torch.equal(seen[0.0], seen[2.0])


def test_test_time_flip_maps_the_mirror_back_pixel_for_pixel():
    """TEST.HFLIP averages the image's and its mirror's probabilities: a network that commutes with
    mirroring gives exactly the unflipped result (odd letterbox margins included), and a network that
    ignores its input gives the mean of its output and that output's mirror."""
    from spine_det.engine.semseg_predictor import SemSegPredictor

    class Identity(torch.nn.Module):  # logits = the input: commutes with mirroring
        def forward(self, x):
            return x[:, :1]

    class Ramp(torch.nn.Module):  # logits rise left to right, whatever the input
        def forward(self, x):
            ramp = torch.linspace(-3, 3, x.shape[-1]).expand(x.shape[0], 1, x.shape[-2], x.shape[-1])
            return ramp.clone()

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (50, 31), dtype=np.uint8)  # letterboxed into 64 x 48: odd side margins

    def probs(model, flip):
        cfg = load_cfg(get_semseg_cfg(), opts=["SPINE.TASKS", "['ap_vertebra']", "INPUT.HEIGHT", "64", "INPUT.WIDTH", "48",
                                                "TEST.HFLIP", str(flip), "MODEL.DEVICE", "cpu"])
        return SemSegPredictor(cfg, model=model).predict_probs(img)[0]

    plain, flipped = probs(Identity(), False), probs(Identity(), True)
    assert np.allclose(plain, flipped, atol=1e-6) and plain.std() > 0.05
    ramp, ramp_flipped = probs(Ramp(), False), probs(Ramp(), True)
    assert ramp[:, -1].mean() > ramp[:, 0].mean() + 0.5  # without the flip the ramp shows
    assert np.allclose(ramp_flipped, (ramp + ramp[:, ::-1]) / 2, atol=0.02)


def test_resuming_with_more_epochs_continues_the_cosine_schedule_downwards(prepared, tmp_path):
    """A finished cosine run resumed with SOLVER.MAX_EPOCHS raised: the LR goes on from where it was,
    never up (torch's cosine stepped past T_max climbs back towards BASE_LR); an interrupted run with
    the same MAX_EPOCHS resumes on exactly its old schedule."""
    from spine_det.engine.semseg_trainer import build_scheduler, continue_schedule, train_semseg

    torch.set_num_threads(1)
    out = tmp_path / "run"
    cosine = {"SOLVER.SCHEDULER": "cosine", "SOLVER.MAX_ITERS_PER_EPOCH": 1, "SOLVER.MIN_LR": 1e-5}
    train_semseg(_tiny_cfg(out, 1, **cosine), prepared.manifest)
    train_semseg(_tiny_cfg(out, 3, **cosine), prepared.manifest, resume=True)
    lrs = [r["lr"] for r in _metrics(out) if "lr" in r]  # one iteration per epoch
    # the finished run was at MIN_LR: it stays there (was [0.003, 1e-5, 0.003]: the cosine's second period)
    assert lrs == pytest.approx([0.003, 1e-5, 1e-5])

    def schedule(max_epochs, segments):  # LR of each epoch, the run stopped and resumed after each segment
        solver = _tiny_cfg(out, max_epochs, **cosine).SOLVER
        lrs, state, start = [], None, 0
        for end in segments:
            opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=solver.BASE_LR)
            sched = build_scheduler(solver, opt)
            if state:
                opt.load_state_dict(state[0])
                sched.load_state_dict(state[1])
                continue_schedule(sched, start, max_epochs)
            for _ in range(start, end):
                lrs.append(opt.param_groups[0]["lr"])
                opt.step()
                sched.step()
            state, start = (opt.state_dict(), sched.state_dict()), end
        return lrs

    assert schedule(6, [2, 4, 6]) == pytest.approx(schedule(6, [6]), rel=1e-9)  # interrupted: unchanged

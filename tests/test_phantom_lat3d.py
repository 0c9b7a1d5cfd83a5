"""The LAT film rendered through the 3-D solids (lat_render): determinism, the AP film untouched, ground truth
that follows the solids, and plausible film statistics."""
from __future__ import annotations

import copy
import json

import cv2
import numpy as np
import pytest

from spine_det.data.phantom import generate_dataset, generate_patient
from spine_det.data.phantom.anatomy import build_spine, make_frames, pose_for_lat
from spine_det.data.phantom.ap_render import render_ap
from spine_det.data.phantom.lat_render import _body, render_lat3d
from spine_det.data.phantom.patient import DEFAULT_LAT_RENDERER, LAT_RENDERERS, patient_rng

SIZE = 384


def _setup(index: int, seed: int = 7, label: str = "Damaged"):
    spine = build_spine(patient_rng(seed, index, 0), label)
    lat = pose_for_lat(spine, patient_rng(seed, index, 2))
    return spine, lat, make_frames(spine, patient_rng(seed, index, 1), SIZE, lat)


@pytest.fixture(scope="module")
def films():
    return [generate_patient(i, 3, 512, "Normal" if i % 2 == 0 else "Damaged", lat_renderer="3d") for i in range(8)]


def test_lat_render_is_deterministic_and_leaves_the_ap_film_alone():
    spine, lat, frames = _setup(1)
    a = render_lat3d(lat, frames["lat"], np.random.default_rng(5), "ID 2")
    b = render_lat3d(lat, frames["lat"], np.random.default_rng(5), "ID 2")
    c = render_lat3d(lat, frames["lat"], np.random.default_rng(6), "ID 2")
    assert a.dtype == np.uint8 and a.shape == (frames["lat"].height, frames["lat"].width)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    # the LAT renderer changes neither the solids nor the frames the AP film and the masks are drawn from
    before = copy.deepcopy((spine, lat, frames))
    render_lat3d(lat, frames["lat"], np.random.default_rng(5))
    assert repr(before) == repr((spine, lat, frames))
    # the AP film of a patient is what render_ap makes of its own stream, whatever the LAT renderer is
    p = generate_patient(1, 7, SIZE, "Damaged", lat_renderer="3d")
    ap = render_ap(spine, frames["ap"], patient_rng(7, 1, 10), p.patient_id)
    assert np.array_equal(p.grey("ap"), ap)
    assert np.array_equal(p.grey("lat"), render_lat3d(lat, frames["lat"], patient_rng(7, 1, 11), p.patient_id))


@pytest.mark.parametrize("index", [0, 3, 4])
def test_lat_ground_truth_follows_the_solid_bodies(index):
    """The body solids' mid-width section is the masks' polygon: the vertebra mask lies inside the rendered
    bone, the disc bands between the bodies hold almost none of the bodies' core, and the anterior and
    posterior lines run along the solids' walls."""
    spine, lat, frames = _setup(index)
    fr = frames["lat"]
    p = generate_patient(index, 7, SIZE, "Damaged", lat_renderer="3d")
    for v in lat.vertebrae:  # seen without the coronal tilt of scoliosis, which spreads an endplate into a band
        v.beta = 0.0
    solid = np.zeros((fr.height, fr.width), bool)
    inner = np.zeros_like(solid)
    for name in fr.levels:  # each body's path through bone (mm, unit densities), cut at a tenth of its most
        core = np.zeros((fr.height, fr.width), np.float32)
        _body(core, fr, lat.level(name), 1.0, 1.0, np.zeros_like(core), 0.0, 1.0, 1.0)
        solid |= core > 0.1 * core.max()
        inner |= core > 0.6 * core.max()
    vert = p.masks["lat_vertebra"] > 127
    disc = p.masks["lat_disk_height"] > 127
    near = cv2.dilate(solid.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # a click's jitter, 1 px
    assert (vert & near).sum() >= 0.99 * vert.sum() and (vert & solid).sum() >= 0.9 * vert.sum()
    assert (disc & inner).sum() <= 0.15 * disc.sum()  # 1-px borders of 2-3 px thoracic discs
    edge = cv2.morphologyEx(solid.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    dist = cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, 3)
    for key in ("lat_anterior_line", "lat_posterior_line"):
        line = p.masks[key] > 127
        assert np.median(dist[line]) <= 2.0, key


def test_lat_film_statistics_are_plausible(films):
    """Averaged over films: bodies brighter than their surroundings and the lumbar bodies brighter than their
    discs; the trunk attenuates more along the rays through the lumbar bodies than through the mid-thoracic ones
    (their rays cross the lungs)."""
    ring_gap, disc_gap = [], []
    for p in films:
        g = p.grey("lat").astype(float)
        m = p.masks["lat_vertebra"] > 0
        ring = cv2.dilate(m.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~m
        ring_gap.append(g[m].mean() - g[ring].mean())
        rows = [int(np.mean([c[1] for c in lv["lat_corners"].values()])) for lv in p.gt["lat_levels"]
                if lv["name"].startswith("L")]
        band = np.zeros_like(m)
        band[min(rows):max(rows) + 1] = True
        disc_gap.append(g[m & band].mean() - g[(p.masks["lat_disk_height"] > 0) & band].mean())
    assert np.mean(ring_gap) > 5 and np.mean(disc_gap) > 3, (ring_gap, disc_gap)
    from spine_det.data.phantom.lat_render import _trunk_and_air
    longer, n = 0, 0
    for i in range(12):
        spine, lat, frames = _setup(i)
        fr = frames["lat"]
        at = {k: np.round(fr.px(lat.level(k).centre)).astype(int) for k in ("T8", "L3")}  # the body's centre
        if at["T8"][1] < 0:
            continue
        soft, air = _trunk_and_air(lat, fr, np.random.default_rng(i))
        net = soft - air  # the lungs take the mid-thorax's attenuation away
        n += 1
        longer += net[at["L3"][1], at["L3"][0]] > net[at["T8"][1], at["T8"][0]]
    assert n >= 3 and longer == n


def test_lat_renderer_changes_the_lat_film_only_and_is_recorded(tmp_path):
    """--lat-renderer draws the LAT film another way; the AP film, every mask and the ground truth are the
    same, the manifest says which renderer drew the films, and a rerun with the other one is refused."""
    a, b = (generate_patient(4, 2, 128, "Damaged", lat_renderer=r) for r in ("painted", "3d"))
    assert not np.array_equal(a.grey("lat"), b.grey("lat")) and np.array_equal(a.grey("ap"), b.grey("ap"))
    assert all(np.array_equal(a.masks[k], b.masks[k]) for k in a.masks) and a.gt == b.gt
    with pytest.raises(ValueError, match="LAT renderer"):
        generate_patient(4, 2, 128, "Damaged", lat_renderer="raytraced")
    assert DEFAULT_LAT_RENDERER in LAT_RENDERERS
    out = tmp_path / "ph"
    generate_dataset(out, 2, 0, 96, workers=1, progress=False, lat_renderer="3d")
    assert json.loads((out / "phantom_manifest.json").read_text())["lat_renderer"] == "3d"
    with pytest.raises(FileExistsError, match="lat_renderer"):
        generate_dataset(out, 2, 0, 96, workers=1, progress=False, lat_renderer="painted")

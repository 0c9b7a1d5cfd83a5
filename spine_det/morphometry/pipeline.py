"""One patient's masks / instances -> the full morphometry record (a JSON-ready dict).

Inputs are instance masks (Mask R-CNN) or binary masks split into 8-connected
components (LinkNet, ground truth). Flagged bodies (merged, fragment, partial,
split) keep their geometry in the record but get no heights or grade, and are
not used as neighbours: a flag is better than a confident wrong number.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from spine_det.data.io import DataError
from spine_det.morphometry.ap import body_width, pair_pedicles
from spine_det.morphometry.grading import GradingConfig, grade_vertebrae, patient_call
from spine_det.morphometry.heights import body_heights, disc_heights, listhesis_step, middle_segment
from spine_det.morphometry.vertebrae import Body, components, extract_bodies, gap_levels

Instances = Union[np.ndarray, Sequence[np.ndarray]]  # a binary mask (split into components) or a list of masks

LAT_CORNERS = ("sup_ant", "sup_post", "inf_post", "inf_ant")
AP_CORNERS = ("sup_left", "sup_right", "inf_right", "inf_left")


@dataclass
class MeasureConfig:
    """How masks become numbers. ``pad`` (px) is added to lengths between extreme pixel centres:

    1.0 is right for a mask rasterised by the pixel-centre rule; masks drawn with
    anti-aliased edges (and read with "any value > 0 is foreground") are fatter,
    which ``tools/eval_morphometry.py`` calibrates on the training split.
    """

    pad: float = 1.0
    # Per-height factors (anterior / middle / posterior) for a source's systematic shape bias, fitted
    # on train: a mask head that fills the biconcave endplates overestimates the middle height of every
    # level by the same few %, which a single pad cannot remove. 1.0 for ground-truth masks.
    height_scale: Dict[str, float] = field(default_factory=lambda: {"ha": 1.0, "hm": 1.0, "hp": 1.0})
    ipd_pad: float = 1.0  # px subtracted from the gap between the pedicles' extreme pixel centres
    lat_anterior: str = "left"  # image side the patient faces in LAT ("left", "right" or "auto")
    min_area: int = 20  # px; smaller components are specks
    grading: GradingConfig = field(default_factory=GradingConfig)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["grading"] = self.grading.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MeasureConfig":
        g = GradingConfig.from_dict(d.get("grading", {}))
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__ and k != "grading"}
        return cls(grading=g, **known)


def load_measure_config(path=None, pad: Optional[float] = None) -> MeasureConfig:
    """MeasureConfig from a JSON file (``morphometry_config.json`` of eval_morphometry, or a bare config)."""
    cfg = MeasureConfig()
    if path is not None:
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
            cfg = MeasureConfig.from_dict(d.get("config", d))
        except (OSError, ValueError, TypeError) as e:
            raise DataError(path, f"unreadable morphometry config ({e})") from None
        bad = [k for k in ("pad", "ipd_pad") if not isinstance(getattr(cfg, k), (int, float))
               or not np.isfinite(getattr(cfg, k))]
        if bad:  # JSON's NaN / Infinity: every length would be NaN (nothing measured) or infinite
            raise DataError(path, f"{', '.join(bad)} must be a finite number of pixels")
    if pad is not None:
        if not np.isfinite(float(pad)):
            raise ValueError(f"pad must be a finite number of pixels, got {pad!r}")
        cfg.pad = float(pad)
    return cfg


def as_instances(x: Optional[Instances], min_area: int = 20) -> List[np.ndarray]:
    """A binary mask -> its components; a stack / list of instance masks -> itself."""
    if x is None:
        return []
    if isinstance(x, np.ndarray) and x.ndim == 2:
        return components(x, min_area=min_area)
    return [np.asarray(m) > 0 for m in x if np.count_nonzero(m) >= min_area]


def _pt(p: np.ndarray) -> List[float]:
    return [round(float(p[0]), 2), round(float(p[1]), 2)]


def _r(x: float, nd: int = 3) -> Optional[float]:
    return None if x is None or x != x else round(float(x), nd)


def guess_lat_anterior(bodies_mask: np.ndarray, posterior_hint: Optional[np.ndarray]) -> str:
    """Anterior side of a LAT image: opposite to the spinous processes / posterior line, else "left"."""
    if posterior_hint is None or not np.any(posterior_hint) or not np.any(bodies_mask):
        return "left"
    xb = np.nonzero(bodies_mask)[1].mean()
    xp = np.nonzero(posterior_hint)[1].mean()
    return "left" if xp > xb else "right"


def _body_record(b: Body, names: Sequence[str]) -> Dict[str, Any]:
    return {
        "index": b.index,
        "centroid": _pt(b.centroid),
        "area": b.area,
        "axis": [round(float(b.axis[0]), 4), round(float(b.axis[1]), 4)],
        "corners": {n: _pt(b.corners[i]) for i, n in enumerate(names)},
        "flags": list(b.flags),
    }


def measure_lat(
    vertebrae: Instances,
    discs: Optional[np.ndarray] = None,
    cfg: Optional[MeasureConfig] = None,
    posterior_hint: Optional[np.ndarray] = None,
) -> Dict[str, Any]:
    """Ordered LAT bodies with heights, ratios, grades; discs per gap; listhesis steps per pair."""
    cfg = cfg or MeasureConfig()
    inst = as_instances(vertebrae, cfg.min_area)
    side = cfg.lat_anterior
    if side == "auto":
        union = np.any(np.stack(inst), 0) if inst else np.zeros((1, 1), bool)
        side = guess_lat_anterior(union, posterior_hint)
    bodies, curve = extract_bodies(inst, side_a=side)
    recs, heights, trusted = [], [], []
    for b in bodies:
        rec = _body_record(b, LAT_CORNERS)
        h = body_heights(b, cfg.pad)
        h.update({k: v * cfg.height_scale.get(k, 1.0) for k, v in h.items() if k in cfg.height_scale})
        heights.append(h)
        trusted.append(b.ok)
        if b.ok:
            rec.update({k: _r(v) for k, v in h.items()})
            seg = middle_segment(b)
            rec["middle_segment"] = [_pt(seg[0]), _pt(seg[1])] if np.isfinite(seg).all() else None
        else:
            rec.update({k: None for k in h})
        recs.append(rec)
    grades = grade_vertebrae(heights, [b.t for b in bodies], trusted, cfg.grading) if bodies else []
    for rec, g in zip(recs, grades):
        rec.update({"expected_height": _r(g["expected_height"]), "loss": _r(g["loss"], 4),
                     "grade": g["grade"], "crush": _r(g["crush"], 4)})
    steps = []
    for u, l in zip(bodies[:-1], bodies[1:]):
        s = listhesis_step(u, l)
        trusted_pair = u.ok and l.ok and "missing_below" not in u.flags
        steps.append({"upper": u.index, "lower": l.index, "trusted": trusted_pair, **{k: _r(v, 2) for k, v in s.items()}})
    disc_recs = [
        {"upper": d.upper, "lower": d.upper + 1, "height": _r(d.height, 2), "centroid": _pt(d.centroid),
         "area": d.area, "flags": d.flags}
        for d in disc_heights(discs, bodies, curve, cfg.pad)
    ]
    return {
        "anterior_side": side,
        "n_bodies": len(bodies),
        "missing_levels": int(sum(gap_levels(bodies))),
        "vertebrae": recs,
        "discs": disc_recs,
        "listhesis": steps,
    }


def measure_ap(vertebrae: Instances, pedicles: Optional[np.ndarray] = None, cfg: Optional[MeasureConfig] = None) -> Dict[str, Any]:
    """Ordered AP bodies with widths and the interpedicular distance per level."""
    cfg = cfg or MeasureConfig()
    bodies, curve = extract_bodies(as_instances(vertebrae, cfg.min_area), side_a="left")
    peds = pair_pedicles(pedicles, bodies, curve, cfg.ipd_pad)
    recs = []
    for b, p in zip(bodies, peds):
        rec = _body_record(b, AP_CORNERS)
        rec["width"] = _r(body_width(b, cfg.pad), 2) if b.ok else None
        rec["ipd"] = _r(p["ipd"], 2)
        rec["pedicle_centre_distance"] = _r(p.get("pedicle_centre_distance", float("nan")), 2)
        rec["pedicles"] = [_pt(np.asarray(c)) for c in p["pedicles"]]
        rec["flags"] = rec["flags"] + list(p["flags"])
        recs.append(rec)
    # a level whose IPD is much wider than its neighbours' is the AP sign of a burst fracture
    ipd = np.array([r["ipd"] if r["ipd"] is not None else np.nan for r in recs], float)
    for i, r in enumerate(recs):
        nb = [ipd[j] for j in (i - 1, i + 1) if 0 <= j < len(ipd) and np.isfinite(ipd[j])]
        r["ipd_ratio"] = _r(ipd[i] / float(np.mean(nb)), 3) if nb and np.isfinite(ipd[i]) else None
    return {"n_bodies": len(bodies), "missing_levels": int(sum(gap_levels(bodies))), "vertebrae": recs}


def measure_patient(
    lat: Optional[Dict[str, Any]] = None,
    ap: Optional[Dict[str, Any]] = None,
    cfg: Optional[MeasureConfig] = None,
    meta: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Measure both views and make the patient call.

    ``lat``: ``{"lat_vertebra": instances, "lat_disk_height": mask, "lat_spinous_process": mask}``
    (only the vertebrae are required); ``ap``: ``{"ap_vertebra": ..., "ap_pedicle": ...}``.
    """
    cfg = cfg or MeasureConfig()
    out: Dict[str, Any] = {"meta": dict(meta or {}), "config": cfg.to_dict()}
    if lat and lat.get("lat_vertebra") is not None:
        hint = lat.get("lat_posterior_line")
        if hint is None:
            hint = lat.get("lat_spinous_process")
        out["lat"] = measure_lat(lat["lat_vertebra"], lat.get("lat_disk_height"), cfg, hint)
    if ap and ap.get("ap_vertebra") is not None:
        out["ap"] = measure_ap(ap["ap_vertebra"], ap.get("ap_pedicle"), cfg)
    grades = [v["grade"] for v in out.get("lat", {}).get("vertebrae", [])]
    lis = [s["centre_pct"] for s in out.get("lat", {}).get("listhesis", []) if s["trusted"] and s["centre_pct"] is not None]
    out["call"] = patient_call(grades, lis, cfg.grading)
    out["call"]["flags"] = sorted({f for view in ("lat", "ap") for v in out.get(view, {}).get("vertebrae", []) for f in v["flags"]})
    return out

"""Per-patient outputs: the morphometry JSON and an overlay PNG a reader can check at a glance.

The overlay draws, on the LAT view, each body's outline corners and its three
height segments (anterior, middle, posterior) coloured by Genant grade with a
"G<grade> <loss>%" label, flags in red, listhesis steps over the threshold; on
the AP view (placed beside it) body widths and the interpedicular segment.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Dict, Optional, Union

import cv2
import numpy as np

from spine_det.utils.fileio import atomic_path, atomic_write_json

# BGR colours per grade (-1 = not graded)
GRADE_COLOURS = {-1: (160, 160, 160), 0: (80, 200, 80), 1: (0, 220, 255), 2: (0, 140, 255), 3: (40, 40, 255)}
FLAG_COLOUR = (60, 60, 230)


def safe_name(key: str) -> str:
    """A patient key ("Training/Normal/ID (97)") as one file-system-safe name."""
    return re.sub(r"[^A-Za-z0-9._()-]+", "_", key.replace("/", "__")).strip("_")


def _p(xy) -> tuple:
    return int(round(xy[0])), int(round(xy[1]))


def _text(img: np.ndarray, s: str, org, colour, scale: float) -> None:
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), max(2, int(3 * scale)), cv2.LINE_AA)
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, max(1, int(1.2 * scale)), cv2.LINE_AA)


def draw_lat(image: np.ndarray, lat: Dict[str, Any], listhesis_pct: float = 10.0) -> np.ndarray:
    """LAT overlay (BGR uint8)."""
    img = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    scale = max(0.35, img.shape[0] / 1600)
    th = max(1, int(round(img.shape[0] / 700)))
    for v in lat.get("vertebrae", []):
        c = v["corners"]
        sa, sp, ip, ia = (c[k] for k in ("sup_ant", "sup_post", "inf_post", "inf_ant"))
        g = v.get("grade", -1)
        col = GRADE_COLOURS.get(g, GRADE_COLOURS[-1])
        if v["flags"] and v.get("ha") is None:
            cv2.polylines(img, [np.array([_p(sa), _p(sp), _p(ip), _p(ia)], np.int32)], True, FLAG_COLOUR, th, cv2.LINE_AA)
            _text(img, ",".join(v["flags"]), _p(v["centroid"]), FLAG_COLOUR, scale)
            continue
        cv2.line(img, _p(sa), _p(ia), col, th + 1, cv2.LINE_AA)  # anterior height
        cv2.line(img, _p(sp), _p(ip), col, th + 1, cv2.LINE_AA)  # posterior height
        if v.get("middle_segment"):
            m0, m1 = v["middle_segment"]
            cv2.line(img, _p(m0), _p(m1), col, th + 1, cv2.LINE_AA)  # middle height
        cv2.line(img, _p(sa), _p(sp), col, 1, cv2.LINE_AA)
        cv2.line(img, _p(ia), _p(ip), col, 1, cv2.LINE_AA)
        loss = v.get("loss")
        label = f"G{g}" + (f" {100 * loss:.0f}%" if loss is not None else "")
        x = int(max(sp[0], ip[0]) + 6) if sp[0] > sa[0] else int(min(sp[0], ip[0]) - 6 - 60 * scale * 2)
        _text(img, label, (x, int(v["centroid"][1])), col, scale)
        if v["flags"]:
            _text(img, ",".join(v["flags"]), (x, int(v["centroid"][1] + 22 * scale * 2)), FLAG_COLOUR, scale * 0.8)
    verts = lat.get("vertebrae", [])
    for s in lat.get("listhesis", []):
        if s.get("centre_pct") is not None and abs(s["centre_pct"]) >= listhesis_pct and s.get("trusted"):
            u = verts[s["upper"]]["corners"]["inf_ant"]
            _text(img, f"step {s['centre_pct']:.0f}%", (int(u[0] - 150 * scale), int(u[1])), FLAG_COLOUR, scale)
    return img


def draw_ap(image: np.ndarray, ap: Dict[str, Any]) -> np.ndarray:
    """AP overlay (BGR uint8): endplates (width) and the interpedicular segment."""
    img = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    scale = max(0.35, img.shape[0] / 1600)
    th = max(1, int(round(img.shape[0] / 700)))
    for v in ap.get("vertebrae", []):
        c = v["corners"]
        col = FLAG_COLOUR if v["flags"] else (80, 200, 80)
        cv2.line(img, _p(c["sup_left"]), _p(c["sup_right"]), col, th, cv2.LINE_AA)
        cv2.line(img, _p(c["inf_left"]), _p(c["inf_right"]), col, th, cv2.LINE_AA)
        if len(v.get("pedicles", [])) >= 2 and v.get("ipd") is not None:
            ps = sorted(v["pedicles"], key=lambda p: p[0])
            cv2.line(img, _p(ps[0]), _p(ps[-1]), (255, 200, 0), th, cv2.LINE_AA)
            _text(img, f"IPD {v['ipd']:.0f}", (int(ps[-1][0] + 8), int(ps[-1][1])), (255, 200, 0), scale * 0.8)
    return img


def draw_record(lat_image: Optional[np.ndarray], ap_image: Optional[np.ndarray], record: Dict[str, Any]) -> np.ndarray:
    """LAT (and AP beside it, scaled to the same height) with measurements and the patient call."""
    panels = []
    lis = record.get("config", {}).get("grading", {}).get("listhesis_pct", 10.0)
    if lat_image is not None and "lat" in record:
        panels.append(draw_lat(lat_image, record["lat"], lis))
    if ap_image is not None and "ap" in record:
        panels.append(draw_ap(ap_image, record["ap"]))
    if not panels:
        raise ValueError("nothing to draw: no image with measurements")
    h = max(p.shape[0] for p in panels)
    panels = [p if p.shape[0] == h else cv2.resize(p, (int(round(p.shape[1] * h / p.shape[0])), h)) for p in panels]
    img = np.concatenate(panels, axis=1)
    call = record.get("call", {})
    txt = f"{call.get('label', '?')}: " + ("; ".join(call.get("reasons", [])) or "no fracture / listhesis")
    _text(img, txt, (10, int(30 * max(1.0, h / 1000))), (255, 255, 255), max(0.5, h / 1400))
    return img


def write_report(
    record: Dict[str, Any],
    out_dir: Union[str, os.PathLike],
    key: str,
    lat_image: Optional[np.ndarray] = None,
    ap_image: Optional[np.ndarray] = None,
) -> Dict[str, str]:
    """Write ``<out>/<safe key>.json`` and, given an image, ``<safe key>.png``; returns the paths."""
    out = Path(out_dir)
    name = safe_name(key)
    paths = {"json": str(out / f"{name}.json")}
    atomic_write_json(paths["json"], record)
    if lat_image is not None or ap_image is not None:
        img = draw_record(lat_image, ap_image, record)
        paths["png"] = str(out / f"{name}.png")
        with atomic_path(paths["png"]) as tmp:
            if not cv2.imwrite(str(tmp), img):
                raise OSError(f"{paths['png']}: could not write the overlay")
    return paths

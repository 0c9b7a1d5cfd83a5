"""Contact sheet of a written phantom dataset: one Normal and one Damaged patient, AP and LAT,
raw and with every mask's contour overlaid - a quick visual check of realism and alignment."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from spine_det.tasks import VIEW_FOLDER, VIEW_IMAGE_STEM, VIEWS, tasks_of_view
from spine_det.utils.fileio import atomic_write_bytes

COLOURS: Dict[str, Tuple[int, int, int]] = {  # BGR
    "ap_vertebra": (0, 220, 0), "ap_pedicle": (255, 80, 0), "ap_spinous_process": (0, 0, 255),
    "lat_vertebra": (0, 220, 0), "lat_disk_height": (0, 220, 255), "lat_spinous_process": (0, 0, 255),
    "lat_anterior_line": (255, 0, 255), "lat_posterior_line": (255, 255, 0),
}


def _first(root: Path, label: str) -> Optional[Path]:
    found = sorted(root.glob(f"*/{label}/ID (*)/ground_truth.json"))
    return found[0].parent if found else None


def contact_sheet(root: Path, out: Path, height: int = 900) -> Path:
    """Write ``out`` (PNG) from the first Normal and first Damaged patient under ``root``."""
    root, out = Path(root), Path(out)
    tiles: List[np.ndarray] = []
    for label in ("Normal", "Damaged"):
        pdir = _first(root, label)
        if pdir is None:
            continue
        gt = json.loads((pdir / "ground_truth.json").read_text(encoding="utf-8"))
        for view in VIEWS:
            vdir = pdir / VIEW_FOLDER[view]
            img = cv2.imread(str(vdir / f"{VIEW_IMAGE_STEM[view]}.jpg"), cv2.IMREAD_COLOR)
            if img is None:
                raise FileNotFoundError(f"{vdir / (VIEW_IMAGE_STEM[view] + '.jpg')}: cannot read")
            ov = img.copy()
            for task in tasks_of_view(view):
                m = cv2.imread(str(vdir / f"{task.mask_stem}.png"), cv2.IMREAD_UNCHANGED)
                cs, _ = cv2.findContours((m > 0).astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
                cv2.drawContours(ov, cs, -1, COLOURS[task.name], max(img.shape[0] // 700, 1))
            grades = ", ".join(f"{lv['name']} {lv['fracture_type']} g{lv['genant_grade']}"
                               for lv in gt["levels"] if lv["genant_grade"] > 0) or "no fracture"
            cv2.putText(ov, f"{gt['patient_id']} {label} {view.upper()}: {grades}", (10, 30),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.8 * img.shape[0] / 1024, (0, 255, 255), 2, cv2.LINE_AA)
            for t in (img, ov):
                tiles.append(cv2.resize(t, (int(t.shape[1] * height / t.shape[0]), height), interpolation=cv2.INTER_AREA))
    if not tiles:
        raise FileNotFoundError(f"{root}: no phantom patients found")
    ok, buf = cv2.imencode(".png", np.concatenate(tiles, axis=1))
    if not ok:
        raise RuntimeError(f"{out}: PNG encoding failed")
    atomic_write_bytes(out, buf.tobytes())
    return out

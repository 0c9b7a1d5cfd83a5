"""The eight segmentation tasks of the spine dataset and how they map to files.

Every other module names tasks through this table, so that configs, dataset
names, mask file names and result tables agree.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

VIEWS: Tuple[str, ...] = ("ap", "lat")

# File name of the X-ray inside each view folder (``<patient>/AP/AP.jpg``); the
# reader also accepts .png/.tif/.tiff/.dcm with the same stem.
VIEW_IMAGE_STEM: Dict[str, str] = {"ap": "AP", "lat": "LAT"}
VIEW_FOLDER: Dict[str, str] = {"ap": "AP", "lat": "LAT"}


@dataclass(frozen=True)
class Task:
    """One segmentation task: a class of one view."""

    name: str  # e.g. "lat_anterior_line"
    view: str  # "ap" or "lat"
    class_name: str  # human-readable class, used as Detectron2 thing class
    mask_stem: str  # mask file stem inside the view folder, e.g. "Lat_Anterior_Vertebral_Line"
    thin: bool = False  # thin, broken structure (the report's failure cases)


TASKS: Dict[str, Task] = {
    t.name: t
    for t in [
        Task("ap_vertebra", "ap", "Vertebra", "Ap_Vertebra"),
        Task("ap_spinous_process", "ap", "Spinous Process", "Ap_Spinous_Process", thin=True),
        Task("ap_pedicle", "ap", "Pedicle", "Ap_Pedicle"),
        Task("lat_vertebra", "lat", "Vertebra", "Lat_Vertebra"),
        Task("lat_disk_height", "lat", "Disk Height", "Lat_Disk_Height"),
        Task("lat_spinous_process", "lat", "Spinous Process", "Lat_Spinous_Process"),
        Task("lat_anterior_line", "lat", "Anterior Vertebral Line", "Lat_Anterior_Vertebral_Line", thin=True),
        Task("lat_posterior_line", "lat", "Posterior Vertebral Line", "Lat_Posterior_Vertebral_Line", thin=True),
    ]
}

TASK_NAMES: Tuple[str, ...] = tuple(TASKS)
SPLITS: Tuple[str, ...] = ("train", "val", "test")
LABELS: Tuple[str, ...] = ("Normal", "Damaged")  # index 1 = Damaged is the positive class


def tasks_of_view(view: str) -> List[Task]:
    """Tasks of one view, in table order."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {VIEWS}")
    return [t for t in TASKS.values() if t.view == view]


def get_task(name: str) -> Task:
    """Look a task up by name with an error that lists the valid names."""
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; expected one of {', '.join(TASK_NAMES)}") from None


def parse_tasks(spec: str | List[str]) -> List[str]:
    """Parse a ``--tasks`` value: ``all``, a view (``ap``/``lat``) or task names."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: List[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item == "all":
            out.extend(TASK_NAMES)
        elif item in VIEWS:
            out.extend(t.name for t in tasks_of_view(item))
        else:
            out.append(get_task(item).name)
    return list(dict.fromkeys(out))

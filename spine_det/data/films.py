"""Which files under a folder are films (X-rays), and whether a film is of the view a model segments.

``spine-det predict --input <folder>`` and the Python API read only films. A file is *not* a film when
it is named like a mask of the dataset layout (``Lat_Vertebra.png``, ``Ap_Vertebra_instances.png``:
stems from :data:`spine_det.tasks.TASKS`), like any instance label map (``*_instances.png``) or like a
prediction (``lat_vertebra_mask.png``, ``..._overlay.png``: :mod:`spine_det.engine.prediction_files`),
or when it is hidden (``._AP.jpg``, a half-written ``.x.tmp.png``).

A film's view is told, in this order:

1. by its folder: a film inside a folder named ``AP`` or ``LAT`` (any case; the layout's view
   folders, ``spine_det.data.layout``) is of that view. Reliable: a film of the other view is
   left out by default and, when taken anyway, warned about (refused under ``--strict``);
2. otherwise by its shape, a weak hint only: full-spine AP films are tall and narrow (height/width
   of the AASCE 2019 AP films 1.6-4.3, median 2.6), lateral films less so (phantom LAT 0.8-2.5). A
   film at least :data:`TALL_AP_RATIO` times taller than wide given to a LAT model, or one wider than
   tall given to an AP model, is warned about. The content is not judged.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from spine_det.data.io import DICOM_SUFFIXES, IMAGE_SUFFIXES, DataError, image_size
from spine_det.tasks import TASKS, VIEW_FOLDER, VIEWS, get_task

PathLike = Union[str, os.PathLike]

TALL_AP_RATIO = 2.6  # height/width from which a film looks like a full-spine AP film (no phantom LAT film is this tall)
WIDE_RATIO = 1.0  # height/width below which a film is wider than tall: not an AP spine film
FILM_SUFFIXES: Tuple[str, ...] = tuple(dict.fromkeys((*IMAGE_SUFFIXES, *DICOM_SUFFIXES)))  # what the readers read
# What `spine-det predict` writes per task (spine_det.engine.prediction_files): never a film.
OUTPUT_SUFFIXES: Tuple[str, ...] = ("_mask.png", "_instances.json", "_overlay.png", "_instances.png")


def _not_film_names() -> Dict[str, str]:
    """Lower-case stems that are not films -> what they are."""
    names: Dict[str, str] = {}
    for t in TASKS.values():
        names[t.mask_stem.lower()] = "mask"
        names[f"{t.mask_stem}_instances".lower()] = "instance map"
        for suffix in OUTPUT_SUFFIXES:
            names[f"{t.name}{suffix}".rsplit(".", 1)[0].lower()] = "prediction"
    return names


def not_a_film(path: PathLike) -> Optional[str]:
    """What ``path`` is when its name says it is no film ("mask", "instance map", "prediction", "hidden
    file": macOS ``._AP.jpg`` resource forks, half-written ``.x.tmp.png``), else None."""
    if Path(path).name.startswith("."):
        return "hidden file"
    stem = Path(path).stem.lower()
    what = _not_film_names().get(stem)
    if what is None and stem.endswith("_instances"):
        what = "instance map"
    return what


def folder_view(path: PathLike) -> Optional[str]:
    """The view the film's folder names (``.../AP/x.jpg`` -> "ap"), else None."""
    parent = Path(path).parent.name.lower()
    for view in VIEWS:
        if parent == VIEW_FOLDER[view].lower():
            return view
    return None


def model_view(tasks: Iterable[str]) -> Optional[str]:
    """The view of a model's tasks (every task is of one view); None for tasks of both views."""
    views = {get_task(t).view for t in tasks}
    return views.pop() if len(views) == 1 else None


@dataclass
class Film:
    path: Path
    view: Optional[str] = None  # what its folder says (None: a plain folder)


@dataclass
class FilmSearch:
    """The films under a folder, and what was left out: files that are no films, films of another view."""

    films: List[Film] = field(default_factory=list)
    not_films: List[Path] = field(default_factory=list)
    other_view: List[Film] = field(default_factory=list)

    def summary(self, view: Optional[str]) -> Optional[str]:
        """One line about what was left out, or None."""
        parts = []
        if self.not_films:
            parts.append(f"{len(self.not_films)} file(s) named like masks or predictions, or hidden (e.g. {self.not_films[0].name})")
        if self.other_view:
            others = sorted({f.view for f in self.other_view if f.view})
            parts.append(f"{len(self.other_view)} {'/'.join(v.upper() for v in others)} film(s) by their folder, "
                         f"not {str(view).upper()} (--view all takes them)")
        return ("left out: " + "; ".join(parts)) if parts else None


def find_films(folder: PathLike, view: Optional[str] = None) -> FilmSearch:
    """Every film under ``folder`` (recursively, sorted), leaving out files named like masks or
    predictions and, with ``view``, films whose folder names another view."""
    found = FilmSearch()
    for p in sorted(Path(folder).rglob("*")):
        if not p.is_file() or p.suffix.lower() not in FILM_SUFFIXES:
            continue
        if not_a_film(p):
            found.not_films.append(p)
            continue
        film = Film(p, folder_view(p))
        (found.other_view if view and film.view and film.view != view else found.films).append(film)
    return found


def shape_hint(height: int, width: int, view: str) -> Optional[str]:
    """Why a film of this size may not be a ``view`` film (a weak hint), else None."""
    if height <= 0 or width <= 0:
        return None
    ratio = height / width
    if view == "lat" and ratio >= TALL_AP_RATIO:
        return f"it is {ratio:.1f} times taller than wide, like a full-spine AP film"
    if view == "ap" and ratio < WIDE_RATIO:
        return f"it is wider than tall (height/width {ratio:.2f}), unlike an AP spine film"
    return None


def view_doubt(film_view: Optional[str], size: Optional[Tuple[int, int]], view: Optional[str]) -> Optional[str]:
    """Why a film may not be of ``view`` (the model's): its folder first; the shape only when no folder says."""
    if view is None:
        return None
    if film_view is not None:
        return None if film_view == view else f"its folder says {film_view.upper()}"
    return shape_hint(*size, view) if size else None


def view_doubts(films: Sequence[Film], view: Optional[str]) -> List[Tuple[Path, str]]:
    """(film, reason) for every film that may not be of ``view``; sizes read from headers only."""
    out = []
    for f in films:
        size = None
        if f.view is None and view is not None:
            try:
                size = image_size(f.path)
            except DataError:
                size = None  # unreadable: reported when it is read for prediction
        reason = view_doubt(f.view, size, view)
        if reason:
            out.append((f.path, reason))
    return out

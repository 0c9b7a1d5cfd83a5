"""Find every X-ray and mask of the dataset and assign patient-level splits.

Layout::

    <root>/Training/{Normal,Damaged}/<patient>/{AP,LAT}/{AP,LAT}.<ext>
    <root>/Training/{Normal,Damaged}/<patient>/AP/Ap_Vertebra.png ...   (stems: Task.mask_stem)
    <root>/Training/<patient>/AP/...                                    (unlabelled patient)
    <root>/Test/...                                                     (optional, same shape)

Folder and file names are matched case-insensitively; they may contain spaces
and parentheses (``ID (97)``). A patient folder directly under Training/ or Test/
(one holding an AP or LAT folder) is an *unlabelled* patient: segmentation works,
the Normal/Damaged classifier is not offered. A dataset may have only some views
and tasks (e.g. AP vertebrae only): a view or a mask that *no* patient has is
absent from the dataset (said once), not missing from every patient. Beside a
mask ``<stem>.png`` an optional 16-bit instance label map ``<stem>_instances.png``
(0 = background, k = k-th object) keeps touching objects apart as instances.
The result is a :class:`Manifest`, written once to the cache dir and read
everywhere else, so that every tool sees the same samples and the same splits.
"""
from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from spine_det.data.io import IMAGE_SUFFIXES, DataError
from spine_det.data.validate import CHECKS_VERSION, check_mask, check_name_collisions, clear_memo, decode_image_checked, prefetch, summarize_warnings
from spine_det.data.phantom.writer import MARKER
from spine_det.tasks import LABELS, SPLITS, TASK_NAMES, VIEW_FOLDER, VIEW_IMAGE_STEM, VIEWS, get_task, tasks_of_view
from spine_det.utils.fileio import atomic_write_json

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

TRAIN_FOLDER = "Training"
TEST_FOLDER = "Test"
MANIFEST_VERSION = 2  # 2: unlabelled patients, absent views/tasks, instance label maps
UNLABELLED = ""  # ViewSample.label of a patient without a Normal/Damaged folder
INSTANCE_MAP_SUFFIX = "_instances"  # <mask stem>_instances.png: 16-bit instance label map


@dataclass
class ViewSample:
    """One X-ray (one view of one patient) with its mask files."""

    patient_id: str  # unique across the dataset: "Training/Normal/ID (97)"
    label: str  # "Normal" | "Damaged" | "" (unlabelled)
    split: str  # "train" | "val" | "test"
    view: str  # "ap" | "lat"
    image: str  # absolute path of the X-ray
    masks: Dict[str, Optional[str]]  # task name -> absolute mask path, None if missing
    height: int
    width: int
    instance_maps: Dict[str, str] = field(default_factory=dict)  # task -> 16-bit instance label map

    @property
    def key(self) -> str:
        """Stable unique id of this image, used as image_id everywhere."""
        return f"{self.patient_id}/{self.view}"

    def mask_files(self) -> Dict[str, str]:
        """Only the masks that exist."""
        return {t: p for t, p in self.masks.items() if p}


@dataclass
class Manifest:
    """What was found under a data root, and the split of every patient."""

    root: str
    seed: int
    val_fraction: float
    test_fraction: float
    samples: List[ViewSample] = field(default_factory=list)
    problems: List[dict] = field(default_factory=list)  # {"patient", "file", "reason"}
    warnings: List[dict] = field(default_factory=list)  # {"patient", "file", "kind", "reason"}: kept, but see
    checks_version: int = 0  # spine_det.data.validate.CHECKS_VERSION of the scan (older: rescanned)
    test_from_folder: bool = False  # True when a Test folder gave the test split
    absent: List[str] = field(default_factory=list)  # views / tasks that no patient of the dataset has

    @property
    def tasks(self) -> List[str]:
        """Tasks with at least one mask in the dataset, in table order."""
        have = {t for s in self.samples for t, p in s.masks.items() if p}
        return [t for t in TASK_NAMES if t in have]

    @property
    def labelled(self) -> bool:
        """True when every patient has a Normal/Damaged label (the classifier needs them)."""
        return bool(self.samples) and all(s.label in LABELS for s in self.samples)

    def select(
        self, split: Optional[str] = None, view: Optional[str] = None, task: Optional[str] = None
    ) -> List[ViewSample]:
        """Samples filtered by split / view; with ``task``, only those that have its mask."""
        if split is not None and split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if view is not None and view not in VIEWS:
            raise ValueError(f"unknown view {view!r}; expected one of {VIEWS}")
        t = get_task(task) if task is not None else None
        out = []
        for s in self.samples:
            if split is not None and s.split != split:
                continue
            if view is not None and s.view != view:
                continue
            if t is not None and (s.view != t.view or not s.masks.get(t.name)):
                continue
            out.append(s)
        return out

    def patients(self, split: Optional[str] = None) -> List[Tuple[str, str]]:
        """(patient_id, label) of every patient (in a split), in manifest order."""
        seen: Dict[str, str] = {}
        for s in self.samples:
            if split is None or s.split == split:
                seen.setdefault(s.patient_id, s.label)
        return list(seen.items())

    def get(self, key: str) -> ViewSample:
        """The sample with this :attr:`ViewSample.key`."""
        for s in self.samples:
            if s.key == key:
                return s
        raise KeyError(key)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["version"] = MANIFEST_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Manifest":
        d = dict(d)
        version = d.pop("version", None)
        if version != MANIFEST_VERSION:
            raise ValueError(f"manifest version {version}, expected {MANIFEST_VERSION}")
        d["samples"] = [ViewSample(**s) for s in d.get("samples", [])]
        return cls(**d)

    def save(self, path: PathLike) -> None:
        atomic_write_json(path, self.to_dict(), indent=1)

    @classmethod
    def load(cls, path: PathLike) -> "Manifest":
        try:
            with open(path, "r", encoding="utf-8") as f:
                return cls.from_dict(json.load(f))
        except (OSError, ValueError, TypeError) as exc:
            raise DataError(path, f"cannot read manifest ({type(exc).__name__}: {exc})") from None

    def summary(self) -> str:
        """One line: patients per split, images per view, problems."""
        per_split = {sp: len(self.patients(sp)) for sp in SPLITS}
        n_pat = sum(per_split.values())
        labels = {lab: sum(1 for _, l in self.patients() if l == lab) for lab in LABELS}
        unlabelled = sum(1 for _, l in self.patients() if l == UNLABELLED)
        if unlabelled:
            labels["unlabelled"] = unlabelled
        views = {v: len(self.select(view=v)) for v in VIEWS}
        missing = sum(1 for s in self.samples for t, p in s.masks.items() if not p and t not in self.absent)
        return (
            f"{n_pat} patients (train {per_split['train']} / val {per_split['val']} / test {per_split['test']}; "
            + ", ".join(f"{k} {v}" for k, v in labels.items() if v or not unlabelled)  # Normal 0 only when all are labelled
            + f"), {views['ap']} AP + {views['lat']} LAT images, {missing} missing masks, "
            + (f"absent: {', '.join(self.absent)}, " if self.absent else "")
            + f"{len(self.problems)} problems"
            + (f", warnings: {summarize_warnings(self.warnings)}" if self.warnings else "")
            + (" (test split from the Test folder)" if self.test_from_folder else " (seeded test split)")
        )


# --------------------------------------------------------------------------- scanning


def _children(folder: Path) -> Dict[str, Path]:
    """Entries of a folder by lower-case name (sorted for determinism)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return {}
    check_name_collisions(entries)  # LAT/ + lat/, "ID (5)" + "ID_(5)": refused, naming both
    return {p.name.lower(): p for p in entries}


def _find_file(folder_entries: Dict[str, Path], stem: str) -> Optional[Path]:
    """File with this stem (case-insensitive) and a known image suffix; first suffix in IMAGE_SUFFIXES wins."""
    stem = stem.lower()
    for suffix in IMAGE_SUFFIXES:
        p = folder_entries.get(stem + suffix)
        if p is not None and p.is_file():
            return p
    return None


class _Problems:
    """Collects problems; raises at the first one when strict.

    A missing view folder or mask is only *noted* (``note_missing``) while scanning: whether it is a
    problem depends on the whole dataset (a view or task that no patient has is absent, not missing),
    which :meth:`settle_missing` decides once every patient has been seen.
    """

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.items: List[dict] = []
        self.missing: List[Tuple[str, Optional[str], PathLike, str]] = []  # (what, patient, file, reason)
        self.warnings: List[dict] = []

    def add(self, patient: Optional[str], file: PathLike, reason: str) -> None:
        err = DataError(file, reason, patient)
        if self.strict:
            raise err
        logger.warning("skipped: %s", err)
        self.items.append(err.as_problem())

    def warn(self, patient: Optional[str], file: PathLike, kind: str, reason: str) -> None:
        """A file kept as it is, but not what it should be (spine_det.data.validate.MASK_WARNINGS)."""
        logger.debug("%s: %s", DataError(file, reason, patient), kind)  # one summary line at the end of the scan
        self.warnings.append({"patient": patient, "file": str(file), "kind": kind, "reason": reason})

    def note_missing(self, what: str, patient: Optional[str], file: PathLike, reason: str) -> None:
        self.missing.append((what, patient, file, reason))

    def settle_missing(self, present: set) -> List[str]:
        """Report the noted absences of views/tasks that some patient has; return the others (absent)."""
        absent = sorted({w for w, *_ in self.missing if w not in present},
                        key=lambda w: (w not in VIEWS, w))
        for what, patient, file, reason in self.missing:
            if what in present:
                self.add(patient, file, reason)
        return absent


def _is_patient_folder(folder: Path) -> bool:
    """A folder holding an AP or LAT view folder."""
    entries = _children(folder)
    views = (entries.get(VIEW_FOLDER[v].lower()) for v in VIEWS)
    return any(p is not None and p.is_dir() for p in views)


def _scan_patient(
    patient_dir: Path, patient_id: str, label: str, problems: _Problems
) -> List[ViewSample]:
    samples: List[ViewSample] = []
    entries = _children(patient_dir)
    for view in VIEWS:
        view_dir = entries.get(VIEW_FOLDER[view].lower())
        if view_dir is None or not view_dir.is_dir():
            problems.note_missing(view, patient_id, patient_dir / VIEW_FOLDER[view], "view folder missing")
            continue
        files = _children(view_dir)
        image = _find_file(files, VIEW_IMAGE_STEM[view])
        if image is None:
            problems.add(
                patient_id,
                view_dir / f"{VIEW_IMAGE_STEM[view]}.jpg",
                f"image missing (looked for {VIEW_IMAGE_STEM[view]} with {'/'.join(IMAGE_SUFFIXES)})",
            )
            continue
        try:
            height, width = decode_image_checked(image)  # every pixel decoded once (memoised, parallel)
        except DataError as exc:
            problems.add(patient_id, image, exc.reason)
            continue
        masks: Dict[str, Optional[str]] = {}
        instance_maps: Dict[str, str] = {}
        for task in tasks_of_view(view):
            mpath = _find_file(files, task.mask_stem)
            if mpath is None:
                problems.note_missing(task.name, patient_id, view_dir / f"{task.mask_stem}.png", "mask missing")
                masks[task.name] = None
                continue
            try:
                mh, mw, notes = check_mask(mpath)  # decoded; not binary / empty / full: warnings
            except DataError as exc:
                problems.add(patient_id, mpath, exc.reason)
                masks[task.name] = None
                continue
            if (mh, mw) != (height, width):
                problems.add(
                    patient_id, mpath, f"mask size {mw}x{mh} differs from its image {width}x{height} (WxH)"
                )
                masks[task.name] = None
                continue
            for kind, reason in notes:
                problems.warn(patient_id, mpath, kind, reason)
            masks[task.name] = str(mpath.resolve())
            ipath = _find_file(files, task.mask_stem + INSTANCE_MAP_SUFFIX)
            if ipath is not None:
                try:
                    ih, iw = decode_image_checked(ipath)  # decoded in full, like the masks
                except DataError as exc:
                    problems.add(patient_id, ipath, exc.reason)
                    continue
                if (ih, iw) != (height, width):
                    problems.add(patient_id, ipath, f"instance map size {iw}x{ih} differs from its image "
                                                    f"{width}x{height} (WxH); instances from the mask's components")
                    continue
                instance_maps[task.name] = str(ipath.resolve())
        samples.append(
            ViewSample(
                patient_id=patient_id,
                label=label,
                split="",
                view=view,
                image=str(image.resolve()),
                masks=masks,
                height=height,
                width=width,
                instance_maps=instance_maps,
            )
        )
    return samples


def _scan_split_folder(
    root: Path, folder: Path, problems: _Problems
) -> List[Tuple[str, str, List[ViewSample]]]:
    """(patient_id, label, samples) for every patient under Training/ or Test/: in a Normal/Damaged
    class folder, or directly there (unlabelled)."""
    out = []
    labels = {lab.lower(): lab for lab in LABELS}
    for name, label_dir in _children(folder).items():
        if not label_dir.is_dir():
            continue
        label = labels.get(name)
        if label is None:
            if _is_patient_folder(label_dir):
                patient_dirs, label = [label_dir], UNLABELLED
            else:
                problems.add(None, label_dir, f"neither a class folder ({' or '.join(LABELS)}) nor a patient "
                                              f"folder (one holding {' or '.join(VIEW_FOLDER.values())})")
                continue
        else:
            patient_dirs = [p for p in _children(label_dir).values() if p.is_dir()]
        for patient_dir in patient_dirs:
            patient_id = patient_dir.relative_to(root).as_posix()
            samples = _scan_patient(patient_dir, patient_id, label, problems)
            if samples:
                out.append((patient_id, label, samples))
            else:
                problems.add(patient_id, patient_dir, "no readable X-ray in this patient folder")
    return out


def split_patients(
    patients: Sequence[Tuple[str, str]], fraction: float, seed: int
) -> Tuple[List[str], List[str]]:
    """Seeded, label-stratified patient split: (kept, carved) patient ids.

    The carved set has round(N * fraction) patients (at least one when
    fraction > 0 and N > 1), spread over the labels in proportion.
    """
    ids = [p for p, _ in patients]
    n = len(ids)
    k = int(round(n * fraction)) if fraction > 0 else 0
    if fraction > 0 and n > 1:
        k = max(k, 1)
    k = min(k, n - 1) if n > 1 else 0
    rng = random.Random(seed)
    by_label: Dict[str, List[str]] = {}
    for pid, lab in sorted(patients):
        by_label.setdefault(lab, []).append(pid)
    # Interleave the shuffled labels by relative rank: taking the first k gives a stratified sample.
    ranked = []
    for lab in sorted(by_label):
        members = by_label[lab]
        rng.shuffle(members)
        for i, pid in enumerate(members):
            ranked.append(((i + 0.5) / len(members), rng.random(), pid))
    ranked.sort()
    carved = {pid for _, _, pid in ranked[:k]}
    return [p for p in ids if p not in carved], [p for p in ids if p in carved]


def _refuse_unfinished_phantom(root: Path) -> None:
    """A phantom folder whose generator stopped half-way (its manifest says ``"complete": false``) holds
    only some of its patients: refused, not scanned as a smaller dataset."""
    marker = root / MARKER
    if not marker.is_file():
        return
    try:
        complete = json.loads(marker.read_text(encoding="utf-8")).get("complete", True)
    except (OSError, ValueError, AttributeError):
        return  # not our manifest: the scan decides on the files themselves
    if complete is False:
        raise DataError(root, "phantom output that was never finished (stopped half-way?); rerun spine-det "
                              "make-phantom with the same arguments to complete it")


def scan_dataset(
    root: PathLike,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    strict: bool = False,
) -> Manifest:
    """Scan ``root`` (every file decoded once: spine_det.data.validate) and assign patient-level,
    seeded, stratified splits.

    The test split is the ``Test`` folder when present, else a seeded
    ``test_fraction`` of the Training patients; validation is a seeded
    ``val_fraction`` of the remaining Training patients. Problems (missing,
    truncated or undecodable files, masks of the wrong size) are recorded and skipped,
    or raised as :class:`DataError` with ``strict=True``; mask warnings (not binary,
    empty, all foreground) are recorded in :attr:`Manifest.warnings`. Names that clash
    (``LAT/`` + ``lat/``) are refused.
    """
    root_path = Path(root).expanduser().resolve()
    if not root_path.is_dir():
        raise DataError(root_path, "data root is not a folder")
    _refuse_unfinished_phantom(root_path)
    problems = _Problems(strict)
    prefetch(root_path)  # decode every image file once, in parallel; the walk below looks them up
    top = _children(root_path)
    train_dir = top.get(TRAIN_FOLDER.lower())
    test_dir = top.get(TEST_FOLDER.lower())
    if train_dir is None or not train_dir.is_dir():
        raise DataError(
            root_path,
            f"no {TRAIN_FOLDER}/ folder (expected {TRAIN_FOLDER}/{{Normal,Damaged}}/<patient>/{{AP,LAT}}/...)",
        )
    training = _scan_split_folder(root_path, train_dir, problems)
    testing = _scan_split_folder(root_path, test_dir, problems) if test_dir is not None and test_dir.is_dir() else []
    present = {s.view for _, _, ss in training + testing for s in ss}
    present |= {t for _, _, ss in training + testing for s in ss for t, p in s.masks.items() if p}
    absent = problems.settle_missing(present)
    if absent and present:
        logger.info("%s: not in this dataset (no patient has them): %s", root_path, ", ".join(absent))
    if not training:
        raise DataError(train_dir, "no patients found (expected Normal/<patient>/{AP,LAT}/..., Damaged/... "
                                   "or <patient>/{AP,LAT}/...)")
    test_from_folder = bool(testing)
    split_of: Dict[str, str] = {}
    train_patients = [(pid, lab) for pid, lab, _ in training]
    if test_from_folder:
        for pid, _, _ in testing:
            split_of[pid] = "test"
    else:
        train_patients, test_ids = _carve(train_patients, test_fraction, seed)
        split_of.update({pid: "test" for pid in test_ids})
    train_patients, val_ids = _carve(train_patients, val_fraction, seed + 1)
    split_of.update({pid: "val" for pid in val_ids})
    split_of.update({pid: "train" for pid, _ in train_patients})
    samples: List[ViewSample] = []
    for pid, _, patient_samples in training + testing:
        for s in patient_samples:
            s.split = split_of[pid]
            samples.append(s)
    manifest = Manifest(
        root=str(root_path),
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        samples=samples,
        problems=problems.items,
        warnings=problems.warnings,
        checks_version=CHECKS_VERSION,
        test_from_folder=test_from_folder,
        absent=[a for a in absent if a in VIEWS or get_task(a).view in present],
    )
    clear_memo()
    if manifest.warnings:
        logger.warning("%s under %s (kept; see 'warnings' in the manifest; policy: spine_det.data.validate)",
                       summarize_warnings(manifest.warnings), root_path)
    logger.info("scanned %s: %s", root_path, manifest.summary())
    return manifest


def _carve(
    patients: List[Tuple[str, str]], fraction: float, seed: int
) -> Tuple[List[Tuple[str, str]], List[str]]:
    kept, carved = split_patients(patients, fraction, seed)
    label = dict(patients)
    return [(p, label[p]) for p in kept], carved


def nested_subset(samples: Sequence["ViewSample"], n: int, seed: int = 0) -> List["ViewSample"]:
    """The first ``n`` samples of one seeded shuffle of ``samples`` (0 or n >= len: all of them).

    Nested by construction: for one seed, the 25 images of a 25-image subset are among the 50 of the
    50-image subset, so label-efficiency curves differ only by the images added. Order-independent:
    samples are sorted by key before the shuffle.
    """
    by_key = {s.key: s for s in samples}
    return [by_key[k] for k in nested_keys(by_key, n, seed)]


def nested_keys(keys: Iterable[str], n: int, seed: int = 0) -> List[str]:
    """:func:`nested_subset` on image keys alone (``<patient>/<view>``: Detectron2's ``image_id`` of
    the registered datasets), so every model family trains on the same ``n`` films for one seed."""
    ordered = sorted(keys)
    if n <= 0 or n >= len(ordered):
        return ordered
    order = np.random.default_rng(seed).permutation(len(ordered))
    return [ordered[i] for i in sorted(order[:n])]

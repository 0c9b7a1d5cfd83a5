"""The benchmark's results: one :class:`ResultRecord` per (family, task, seed), kept on disk, and every
table's rows built from the list of them.

A record holds what the tables need of one trained unit (or of Otsu on one task): its test scores and the
file they came from, its training curves, its cost-table values (first seed only) and its scores on the
transfer data set. :class:`RecordStore` writes each record atomically as ``records/<unit name>.json``
under the benchmark's output folder when its unit finishes, and again when its transfer score comes,
so an interrupted benchmark leaves the records of the units it finished; a re-run reuses the finished
units (:mod:`.runner`) and writes their records again. :func:`segmentation_rows`, :func:`transfer_rows`,
:func:`cost_rows` and :func:`training_curves` turn the list of records into the rows
:mod:`.tables` renders and the figures draw: the records are the one place a unit's numbers are kept.
"""
from __future__ import annotations

import csv
import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from spine_det.benchmark.curves import late_gain
from spine_det.benchmark.tables import OTSU, seed_statistics
from spine_det.modeling.registry import seed_suffix
from spine_det.utils.fileio import atomic_write_json

logger = logging.getLogger(__name__)

RECORDS_DIR = "records"


@dataclass
class ResultRecord:
    """What the benchmark keeps of one family (or Otsu) on one task with one training seed."""

    family: str  # a model family's key, or "otsu"
    task: str
    seed: int
    scores: Dict[str, Any]  # the test split's semantic_metrics.json summary ({} when unreadable)
    result_file: Optional[str] = None  # that file; its semantic_per_image.csv names the images scored
    curves: Optional[Dict[str, Any]] = None  # training curves from the tool's logs (None: nothing trained)
    cost: Optional[Dict[str, Any]] = None  # the cost table's values (measured for the first seed only)
    transfer: Optional[Dict[str, Any]] = None  # scores on the transfer data set's test split

    @property
    def key(self) -> Tuple[str, str, int]:
        return (self.family, self.task, int(self.seed))

    @property
    def name(self) -> str:
        """The unit's name (``<family>-<task>[-seed<k>]``), the record's file name."""
        return f"{self.family}-{self.task}{seed_suffix(self.seed)}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ResultRecord":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class RecordStore:
    """The records of one benchmark run, in the order their units finished, each mirrored in ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._records: Dict[Tuple[str, str, int], ResultRecord] = {}

    def __iter__(self) -> Iterator[ResultRecord]:
        return iter(list(self._records.values()))

    def __len__(self) -> int:
        return len(self._records)

    def path(self, record: ResultRecord) -> Path:
        return self.folder / f"{record.name}.json"

    def get(self, family: str, task: str, seed: int) -> Optional[ResultRecord]:
        return self._records.get((family, task, int(seed)))

    def put(self, record: ResultRecord) -> ResultRecord:
        """Keep ``record`` (replacing the one of its family, task and seed) and write it atomically."""
        self._records[record.key] = record
        atomic_write_json(self.path(record), asdict(record))
        return record

    def update(self, family: str, task: str, seed: int, **changes: Any) -> ResultRecord:
        """Change fields of a record (one with empty scores when there was none) and write it again."""
        record = self.get(family, task, seed) or ResultRecord(family, task, int(seed), scores={})
        for k, v in changes.items():
            setattr(record, k, v)
        return self.put(record)

    def discard(self, family: str, task: str, seed: int) -> None:
        """Forget a record (its unit failed this time): its file goes too, so the folder says what this run has."""
        record = self._records.pop((family, task, int(seed)), None) or ResultRecord(family, task, int(seed), {})
        self.path(record).unlink(missing_ok=True)


def load_records(folder: Path) -> List[ResultRecord]:
    """Every record written in ``folder`` (e.g. after an interrupted run), in file-name order."""
    out = []
    for p in sorted(Path(folder).glob("*.json")):
        try:
            out.append(ResultRecord.from_dict(json.loads(p.read_text(encoding="utf-8"))))
        except (OSError, ValueError, TypeError) as e:
            logger.warning("skipping unreadable result record %s: %s", p, e)
    return out


# --------------------------------------------------------------------------- records -> table rows


def _by_family(records: Sequence[ResultRecord], task: str) -> Dict[str, Dict[int, ResultRecord]]:
    """``{family: {seed: record}}`` of one task, families and seeds in the order their records came."""
    out: Dict[str, Dict[int, ResultRecord]] = {}
    for r in records:
        if r.task == task:
            out.setdefault(r.family, {})[int(r.seed)] = r
    return out


def _image_ids(result_file: Optional[str]) -> Optional[set]:
    p = Path(result_file).with_name("semantic_per_image.csv") if result_file else None
    if p is None or not p.is_file():
        return None
    with open(p, newline="", encoding="utf-8") as f:
        return {r["image_id"] for r in csv.DictReader(f)}


def _same_images(task: str, first: Mapping[str, ResultRecord]) -> bool:
    """Whether every first-seed result of ``task`` scored the same test images (warned when not)."""
    ids = {m: _image_ids(r.result_file) for m, r in first.items()}
    sets = [s for s in ids.values() if s is not None]
    same = all(s == sets[0] for s in sets) if sets else True
    if not same:
        logger.warning("%s: the models were scored on different test images: %s", task,
                       {m: len(s) for m, s in ids.items() if s is not None})
    return same


def segmentation_rows(records: Sequence[ResultRecord], tasks: Sequence[str], columns: Sequence[str],
                      seeds: Sequence[int], test_images: Mapping[str, int]) -> List[Dict[str, Any]]:
    """The segmentation table: per task the first seed's scores of each column (Otsu first), with several
    seeds each trained family's statistics over them, and each seed's late validation gain."""
    rows = []
    for t in tasks:
        by_family = _by_family(records, t)
        first = {m: s[seeds[0]] for m, s in by_family.items() if seeds[0] in s}
        trained = {m: s for m, s in by_family.items() if m != OTSU}
        rows.append({
            "task": t, "test_images": test_images.get(t), "same_images": _same_images(t, first),
            "models": {m: first[m].scores if m in first else None for m in columns},
            "seeds": {m: seed_statistics({k: r.scores for k, r in s.items()}) for m, s in trained.items()
                      if len(seeds) > 1},
            "late_gain": {m: {k: late_gain((r.curves or {}).get("val_dice") or [], lr_steps=(r.curves or {}).get("lr_steps") or ())
                              for k, r in sorted(s.items())} for m, s in trained.items()},
        })
    return rows


def transfer_rows(records: Sequence[ResultRecord], tasks: Sequence[str], columns: Sequence[str],
                  seeds: Sequence[int], test_images: Mapping[str, int]) -> List[Dict[str, Any]]:
    """The transfer table: per task the first seed's transfer scores of each column, with several seeds
    each trained family's statistics over them."""
    rows = []
    for t in tasks:
        by_family = {m: {k: r for k, r in s.items() if r.transfer is not None}
                     for m, s in _by_family(records, t).items()}
        rows.append({
            "task": t, "test_images": test_images.get(t),
            "models": {m: (by_family[m][seeds[0]].transfer if seeds[0] in by_family.get(m, {}) else None)
                       for m in columns},
            "seeds": {m: seed_statistics({k: r.transfer for k, r in s.items()}) for m, s in by_family.items()
                      if s and len(seeds) > 1 and m != OTSU},
        })
    return rows


def cost_rows(records: Sequence[ResultRecord], first_seed: int) -> List[Dict[str, Any]]:
    """The cost table's rows of the trained families (first seed), in the order their units ran."""
    return [{"model": r.family, "task": r.task, **r.cost} for r in records if r.cost is not None and r.seed == first_seed]


def training_curves(records: Sequence[ResultRecord], task: str,
                    first_seed: int) -> Tuple[Dict[str, Any], Dict[str, Dict[int, Any]]]:
    """(first seed's curves by family, every seed's curves by family and seed) of one task, for its figure."""
    every = {m: {k: r.curves for k, r in s.items()} for m, s in _by_family(records, task).items()
             if any(r.curves is not None for r in s.values())}
    first = {m: s[first_seed] for m, s in every.items() if first_seed in s}
    return first, every

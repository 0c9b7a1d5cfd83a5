"""The files a scored split leaves behind: ``semantic_metrics.json`` and ``semantic_per_image.csv``.

:class:`~spine_det.evaluation.metrics.ScoreTable` computes; this module writes (atomically), so
every model's evaluation folder has the same two files in the same form, and the benchmark reads
them back by these names.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional

from spine_det.evaluation.metrics import METRICS, ScoreTable
from spine_det.utils.fileio import atomic_write_json, atomic_write_text
from spine_det.utils.provenance import provenance

SUMMARY_FILE = "semantic_metrics.json"
PER_IMAGE_FILE = "semantic_per_image.csv"


def per_image_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """CSV text of per-image rows, sorted by image id; every key of any row is a column, NaN is empty."""
    rows = sorted(rows, key=lambda r: str(r["image_id"]))
    keys: List[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys or ["image_id", *METRICS])
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()})
    return buf.getvalue()


def write_scores(table: ScoreTable, out_dir: Path | str, meta: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Write ``semantic_metrics.json`` (the table's summary + ``meta`` + the spine_det version) and
    ``semantic_per_image.csv`` into ``out_dir`` atomically; returns the summary written."""
    out_dir = Path(out_dir)
    result = {**table.summary(), **dict(meta or {}), **provenance()}
    atomic_write_json(out_dir / SUMMARY_FILE, result)
    atomic_write_text(out_dir / PER_IMAGE_FILE, per_image_csv(table.rows))
    return result

"""Run records: one JSON file per training run (spec, R, metrics, timings, provenance)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clrepro.fsutil import write_json

RECORD_VERSION = 1
STATUSES = ("ok", "diverged", "failed")  # failed: out of memory, reason in "failed"
REQUIRED = ("record_version", "run", "status", "hp", "R", "b", "test_sizes", "metrics",
            "timings", "provenance")


class CorruptRecordError(ValueError):
    """A result file exists but cannot be used (truncated, edited, wrong format)."""


def write_record(path: str | Path, record: dict[str, Any]) -> None:
    write_json(path, record)


def load_record(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptRecordError(f"{path}: unreadable result ({exc}); delete it and rerun "
                                 f"the workflow to recompute it") from exc
    if not isinstance(record, dict):
        raise CorruptRecordError(f"{path}: not a run record")
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise CorruptRecordError(f"{path}: missing {', '.join(missing)}; delete it and rerun")
    if record["status"] not in STATUSES:
        raise CorruptRecordError(f"{path}: unknown status {record['status']!r}")
    return record

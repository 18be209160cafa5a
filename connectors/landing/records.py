"""What a landed page is made of: where a record's key is, a record that could not be landed,
and what :func:`connectors.landing.land_page` wrote (re-exported by :mod:`connectors.landing`).

Example:
    >>> RecordKey("id", "updated_at").read({"id": 7, "updated_at": "2026-10-01T00:00:00Z"})
    ('7', datetime.datetime(2026, 10, 1, 0, 0, tzinfo=datetime.timezone.utc))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from connectors.errors import RecordError
from connectors.state import parse_utc

__all__ = ["LandedBatch", "RecordKey", "RejectedRecord"]


@dataclass(frozen=True)
class RecordKey:
    """Where a record's primary key and last-modified instant are: a top-level key or a function
    of the raw record (e.g. Dixa's ``csid`` inside ``fields``)."""

    record_id: str | Callable[[Mapping[str, Any]], object]
    updated_at: str | Callable[[Mapping[str, Any]], object] | None = None

    def read(self, record: Mapping[str, Any]) -> tuple[str, datetime | None]:
        """``(record_id, updated_at)``; :class:`~connectors.errors.RecordError` without an id."""
        get = record.get
        rid = get(self.record_id) if isinstance(self.record_id, str) else self.record_id(record)
        if isinstance(rid, bool) or not isinstance(rid, str | int) or rid == "":
            raise RecordError("missing_record_id", "record has no usable primary key")
        upd = self.updated_at
        return str(rid), parse_utc(get(upd) if isinstance(upd, str) else upd and upd(record))


@dataclass(frozen=True)
class RejectedRecord:
    """A record that could not be landed: reason code, message, scrubbed JSON, for quarantine;
    its id and last change when they could be read (which version of the record it was)."""

    reason: str
    message: str
    raw: str
    record_id: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class LandedBatch:
    """What :func:`land_page` wrote (``path`` is ``None`` when nothing was landable)."""

    path: Path | None
    rows: int
    rejected: tuple[RejectedRecord, ...]
    max_updated_at: datetime | None
    batch_id: str

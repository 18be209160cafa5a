"""The Mindful emulator's data: canonical attempts, their rendered records, the hour files.

:class:`MindfulStore` keeps the normal-form canonical attempts (what a correct connector must
rebuild: :meth:`~MindfulStore.expected_attempts`), their Mindful records (rendered by
:mod:`connectors.emulator.mindful.render`), non-callback records, raw records served as given,
and an index of records by the hour of their ``createdAt`` (the hour files). Changes are made in
place, as Mindful does: records have no last-modified field.

Example:
    >>> store = MindfulStore(seed=0)
    >>> store.hour(datetime(2023, 6, 8, 12, tzinfo=UTC))
    []
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from pydantic import SecretStr

from connectors.emulator.mindful.metrics import metrics_document
from connectors.emulator.mindful.render import PhoneBook, hold_record, normal_form, record
from connectors.landing import pii_hash
from engine import clock
from engine.schema import CALLBACK_ATTEMPTS

__all__ = ["MindfulStore"]

Record = dict[str, Any]
_IMMUTABLE = {"source", "attempt_id"}


def _hour_of(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


class MindfulStore:
    """Served attempts and records, indexed by hour (thread-safe).

    Args:
        seed: seed of phone numbers, hold records and record decorations.
    """

    def __init__(self, *, seed: int) -> None:
        self.seed = seed
        self._store = threading.RLock()
        self._phones = PhoneBook(seed=seed)
        self._rows: dict[str, Record] = {}
        self._records: dict[str, Record] = {}
        self._hours: dict[datetime, dict[str, Record]] = {}
        self._raw: dict[datetime, list[Record]] = {}
        self._holds = 0

    def expected_attempts(self, secret: SecretStr) -> pl.DataFrame:
        """The canonical attempts a correct connector rebuilds, ``customer_key`` hashed with
        ``secret`` (HMAC-SHA256 of the phone number's digits), sorted by ``attempt_id``."""
        with self._store:
            rows = [dict(r) for r in self._rows.values()]
            phones = [self._phones.number(r["customer_key"]) for r in rows]
        for row, phone in zip(rows, phones, strict=True):
            digits = None if phone is None else re.sub(r"\D", "", phone)
            row["customer_key"] = None if digits is None else pii_hash(digits, secret)
        return pl.DataFrame(rows, schema=CALLBACK_ATTEMPTS).sort("attempt_id")

    @property
    def not_callbacks(self) -> int:
        """How many non-callback records (callers who chose to hold) are served."""
        return self._holds

    def records(self) -> list[Record]:
        """Every served record except :meth:`add_raw_records` ones, by ``createdAt`` and ``id``."""
        with self._store:
            return sorted(self._records.values(), key=lambda r: (r["createdAt"], r["id"]))

    def hour(self, window_start: datetime) -> list[Record]:
        """The records of the hour file ``[window_start, window_start + 1 h)``."""
        start = window_start.astimezone(UTC)
        with self._store:
            served = list(self._hours.get(start, {}).values())
            raw = list(self._raw.get(start, ()))
        return sorted(served, key=lambda r: (r["createdAt"], r["id"])) + raw

    def metrics(self, begin: datetime, end: datetime, **filters: str | None) -> dict[str, Any]:
        """The metrics document the endpoint serves for these parameters."""
        return metrics_document(self.records(), begin=begin, end=end, **filters)

    def add_attempts(self, attempts: pl.DataFrame) -> None:
        """Serve more attempts (their ids must be new)."""
        rows = normal_form(attempts)
        with self._store:
            if taken := sorted({r["attempt_id"] for r in rows} & set(self._records))[:5]:
                raise ValueError(f"attempts already served: {taken}")
            for row in rows:
                self._put(row)

    def update_attempts(self, attempt_ids: Iterable[str], **changes: Any) -> None:
        """Change canonical columns of served attempts and re-render them (in place: Mindful
        records have no last-modified field; a re-read of their hour picks the change up).

        Moving ``created_at`` moves the record to another hour file.

        Example:
            ``emu.update_attempts(["e58de6e3788241e07"], outcome="successful", has_retry=False)``
        """
        if bad := (set(changes) - set(CALLBACK_ATTEMPTS)) | (set(changes) & _IMMUTABLE):
            raise ValueError(f"cannot change {sorted(bad)}")
        with self._store:
            rows = [self._rows[i] | changes for i in attempt_ids]
            for row in normal_form(pl.DataFrame(rows, schema=CALLBACK_ATTEMPTS)):
                self._put(row)

    def add_holds(
        self,
        n: int,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        targets: Sequence[tuple[str, str | None]] | None = None,
    ) -> None:
        """Serve ``n`` non-callback records created uniformly in ``[start, end]`` (default: the
        served attempts' time range) for one of ``targets`` (default: their call targets)."""
        rng = random.Random(f"{self.seed}:holds:{self._holds}")
        with self._store:
            rows = list(self._rows.values())
            created = [r["created_at"] for r in rows] or [clock.now()]
            start, end = start or min(created), end or max(created)
            seen = {(r["call_target_id"], r["call_target_name"]) for r in rows}
            targets = targets or sorted(t for t in seen if t[0]) or [("5298", "Calls test")]
            span_ms = max(0, (end - start) // timedelta(milliseconds=1))
            for _ in range(n):
                rid = f"{rng.getrandbits(68):017x}"
                at = start + timedelta(milliseconds=rng.randrange(span_ms + 1))
                self._index(hold_record(rid, at, rng.choice(list(targets)), self.seed))
                self._holds += 1

    def add_raw_records(self, records: Iterable[Record], *, hour: datetime) -> None:
        """Serve records exactly as given in the file of the hour starting at ``hour`` (to test
        malformed input); they are not in :meth:`records`, the metrics or the expected attempts."""
        with self._store:
            self._raw.setdefault(hour.astimezone(UTC), []).extend(dict(r) for r in records)

    def _put(self, row: Record) -> None:
        self._rows[row["attempt_id"]] = row
        self._index(record(row, self._phones.number(row["customer_key"]), self.seed))

    def _index(self, rec: Record) -> None:
        old = self._records.get(rec["id"])
        if old is not None:
            self._hours[_hour_of(datetime.fromisoformat(old["createdAt"]))].pop(rec["id"])
        self._records[rec["id"]] = rec
        start = _hour_of(datetime.fromisoformat(rec["createdAt"]))
        self._hours.setdefault(start, {})[rec["id"]] = rec

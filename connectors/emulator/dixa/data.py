"""The Dixa emulator's store: canonical contacts in, sorted typed records out, mutations.

Thread-safe. Records of each record id are rendered once and cached in serving order (primary
timestamp, then csid, then offer or rating number); any change re-renders on the next read.
Contact ids that are positive decimal integers are kept as csids (when free); others get fresh
csids from 100001 in input id order.

Example:
    >>> at = datetime(2026, 11, 10, 9, 5, tzinfo=UTC)
    >>> contacts = pl.DataFrame({"source": "dixa", "contact_id": ["7", "x"], "segment_no": 1,
    ...     "channel": "voice", "queue_id": "q1", "offered_at": [at, at],
    ...     "outcome": ["answered", "abandoned"]})
    >>> store = Store(seed=0)
    >>> store.add(contacts, now=None)
    ['7', '100001']
    >>> len(store.entries("conversations")) == store.expected().height == 2
    True
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from connectors.emulator.dixa.catalogue import FILTER_ATTRIBUTES, record
from connectors.emulator.dixa.query import BadRequestError, Query
from connectors.emulator.dixa.record import CHANNEL_VALUES, Contact, normalise
from engine.schema import CONTACTS, CONTACTS_REQUIRED, empty_contacts

__all__ = ["Entry", "Store", "conform"]

_CSID = re.compile(r"[1-9][0-9]{0,17}")
_IMMUTABLE = {"source", "contact_id", "segment_no"}
_FIRST_CSID = 100_000
_ATTRIBUTE_FIELDS = {
    "channel": "initial_channel",
    "queue_id": "queue_id",
    "agent_id": "agent_id",
    "initial_direction": "initial_direction",
    "tag_id": "tag_ids",
    "contact_point": "contact_point",
}
_ALIASES = {v.lower(): k for k, values in CHANNEL_VALUES.items() for v in values}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Record = dict[str, Any]


@dataclass(frozen=True)
class Entry:
    """One served record with its sort position and the values filters match on (lower-case)."""

    at: datetime | None
    key: tuple[int, int]
    csid: int | None
    record: Record
    attrs: Mapping[str, frozenset[str]]


def conform(contacts: pl.DataFrame) -> pl.DataFrame:
    """Cast to the canonical schema (absent optional columns default) and check the identity."""
    missing = [c for c in CONTACTS_REQUIRED if c not in contacts.columns]
    if missing:
        raise ValueError(f"contacts frame lacks required columns {missing}")
    defaults: dict[str, object] = {c: 0 for c, t in CONTACTS.items() if t == pl.Int64()}
    defaults |= {"direction": "inbound", "sl_threshold_ms": None, "wait_ms": None}
    frame = contacts.with_columns(
        pl.lit(defaults.get(c)).cast(t).alias(c) for c, t in CONTACTS.items() if c not in contacts
    ).select(pl.col(c).cast(t) for c, t in CONTACTS.items())
    keys = ("contact_id", "segment_no", "channel", "queue_id", "offered_at", "outcome")
    if any(frame[c].null_count() for c in keys):
        raise ValueError(f"contacts: {', '.join(keys)} must not be null")
    if frame.select(pl.struct("contact_id", "segment_no").is_duplicated().any()).item():
        raise ValueError("contacts: (contact_id, segment_no) must be unique")
    return frame


def _value(field: Any) -> Any:
    return field.get("value") if isinstance(field, dict) else None


def _attrs(rec: Record) -> tuple[dict[str, frozenset[str]], int | None]:
    """Filter values and csid of a record (robust to malformed raw records)."""
    fields = rec.get("fields") if isinstance(rec, dict) else None
    items = fields if isinstance(fields, list) else []
    named = {
        f["name"]: _value(f.get("field"))
        for f in items
        if isinstance(f, dict) and isinstance(f.get("name"), str)
    }
    out: dict[str, frozenset[str]] = {}
    for attribute, name in (*_ATTRIBUTE_FIELDS.items(), ("rating_score", "rating_score")):
        raw = named.get(name)
        values = raw if isinstance(raw, list) else [] if raw is None else [raw]
        lowered = {str(v).lower() for v in values if not isinstance(v, dict | list)}
        if attribute == "channel":
            lowered |= {_ALIASES[v] for v in lowered if v in _ALIASES}
        out[attribute] = frozenset(lowered)
    csid = named.get("csid", named.get("conversation_id"))
    ok = isinstance(csid, int) and not isinstance(csid, bool)
    return out, csid if ok else None


def _stamp(rec: Record) -> datetime | None:
    primary = rec.get("primaryTimestampField") if isinstance(rec, dict) else None
    raw = primary.get("timestamp") if isinstance(primary, dict) else None
    try:
        ts = datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    return None if ts is None or ts.tzinfo is None else ts.astimezone(UTC)


def _entry(rec: Record, number: int) -> Entry:
    attrs, csid = _attrs(rec)
    return Entry(_stamp(rec), (csid or 0, number), csid, rec, attrs)


class Store:
    """Canonical contacts and raw records, rendered as the three record ids."""

    def __init__(self, *, seed: int = 0, unknown_type: bool = False) -> None:
        self.seed, self.unknown_type = seed, unknown_type
        self._lock = threading.RLock()
        self._contacts: dict[int, Contact] = {}
        self._aliases: dict[str, int] = {}
        self._names: dict[str, str] = {}
        self._top = _FIRST_CSID
        self._raw: dict[str, list[Record]] = {}
        self._cache: dict[str, tuple[list[Entry], list[datetime]]] = {}

    def set_unknown_type(self, value: bool) -> None:
        """Switch the unknown-``_type`` field on or off."""
        with self._lock:
            self.unknown_type = value
            self._cache.clear()

    def add(self, contacts: pl.DataFrame, *, now: datetime | None) -> list[str]:
        """Add contacts (``now``: stamp ``updated_at``); returns their csids in input id order."""
        rows = conform(contacts).to_dicts()
        if now is not None:
            rows = [r | {"updated_at": now} for r in rows]
        by_contact: dict[str, list[Record]] = {}
        for row in sorted(rows, key=lambda r: (r["contact_id"], r["segment_no"])):
            by_contact.setdefault(row["contact_id"], []).append(row)
        with self._lock:
            if taken := sorted(set(by_contact) & set(self._aliases)):
                raise ValueError(f"contacts already served: {taken[:5]}")
            fresh = [c for c in by_contact if not self._claim(c)]
            top = max(self._top, max(self._contacts, default=0))
            for top, cid in enumerate(fresh, start=top + 1):  # noqa: B020 - top is the counter
                self._aliases[cid] = top
                self._contacts[top] = Contact(top, ())
            self._top = max(self._top, top)
            named = {r["queue_id"] for r in rows if r["queue_name"]} - set(self._names)
            for row in rows:
                if row["queue_name"]:
                    self._names.setdefault(row["queue_id"], row["queue_name"])
            for cid, segments in by_contact.items():
                self._put(normalise(segments, csid=self._aliases[cid], names=self._names))
            for contact in list(self._contacts.values()):  # queues named only now: relabel
                if any(s["queue_id"] in named for s in contact.segments):
                    self._put(normalise(contact.segments, csid=contact.csid, names=self._names))
            self._cache.clear()
            return [str(self._aliases[cid]) for cid in by_contact]

    def _claim(self, contact_id: str) -> bool:
        if not _CSID.fullmatch(contact_id) or int(contact_id) in self._contacts:
            return False
        self._aliases[contact_id] = int(contact_id)
        self._contacts[int(contact_id)] = Contact(int(contact_id), ())
        return True

    def _put(self, contact: Contact) -> None:
        self._contacts[contact.csid] = contact
        self._aliases[contact.contact_id] = contact.csid

    def update(
        self, contact_ids: Iterable[str], *, segment_no: int | None, changes: Mapping[str, Any]
    ) -> None:
        """Apply canonical ``changes`` to contacts (all segments, or one served segment)."""
        if bad := (set(changes) - set(CONTACTS)) | (set(changes) & _IMMUTABLE):
            raise ValueError(f"cannot change {sorted(bad)}")
        with self._lock:
            if changes.get("queue_name") and changes.get("queue_id"):
                self._names.setdefault(changes["queue_id"], changes["queue_name"])
            for cid in contact_ids:
                contact = self._contacts[self._aliases[cid]]
                rows = [
                    {**s, **(changes if segment_no in (None, s["segment_no"]) else {})}
                    for s in contact.segments
                ]
                self._put(normalise(rows, csid=contact.csid, names=self._names))
            self._cache.clear()

    def add_raw(self, record_id: str, records: Iterable[Record]) -> None:
        """Serve raw records of ``record_id`` as given."""
        with self._lock:
            self._raw.setdefault(record_id, []).extend(records)
            self._cache.clear()

    def canonical_id(self, contact_id: str) -> str:
        """The served csid of an input (or served) contact id."""
        with self._lock:
            return str(self._aliases[contact_id])

    def expected(self) -> pl.DataFrame:
        """The normalised canonical segments (sorted by contact id and segment number)."""
        with self._lock:
            rows = [s for c in self._contacts.values() for s in c.segments]
        if not rows:
            return empty_contacts()
        return pl.DataFrame(rows, schema=CONTACTS).sort("contact_id", "segment_no")

    def entries(self, record_id: str) -> list[Entry]:
        """The records of ``record_id`` in serving order."""
        return self._sorted(record_id)[0]

    def _sorted(self, record_id: str) -> tuple[list[Entry], list[datetime]]:
        with self._lock:
            if record_id not in self._cache:
                rendered: list[Record] = []
                for csid in sorted(self._contacts):
                    contact = self._contacts[csid]
                    if record_id == "conversations":
                        rendered += contact.conversations(self.seed, unknown_type=self.unknown_type)
                    elif record_id == "closed_conversations":
                        rendered += contact.closed(self.seed)
                    elif record_id == "ratings":
                        rendered += contact.ratings(self.seed)
                rendered += self._raw.get(record_id, [])
                entries = [_entry(r, n) for n, r in enumerate(rendered)]
                entries.sort(key=lambda e: (e.at is None, e.at or _EPOCH, e.key))
                stamps = [e.at for e in entries if e.at is not None]
                self._cache[record_id] = (entries, stamps)
            return self._cache[record_id]

    def select(self, query: Query) -> list[Entry]:
        """The records a query selects, in serving order."""
        entries, stamps = self._sorted(query.id)
        if query.start is not None and query.end is not None:
            lo = bisect.bisect_left(stamps, query.start)
            entries = entries[lo : max(lo, bisect.bisect_left(stamps, query.end))]
        if query.csids is not None:
            entries = [e for e in entries if e.csid in query.csids]
        entry = record(query.id)
        known = {f["filterAttribute"] for f in entry["filters"]} if entry else set()
        for attribute, values in query.filters.items():
            if attribute in known:
                entries = [e for e in entries if e.attrs.get(attribute, frozenset()) & values]
        return entries

    def filter_values(self, attribute: str) -> list[dict[str, Any]]:
        """The ``{"value", "label"}`` pairs seen for a filter attribute."""
        if attribute not in (*FILTER_ATTRIBUTES, "contact_point"):
            raise BadRequestError("Invalid value extracted from request context")
        name, pairs = _ATTRIBUTE_FIELDS[attribute], dict[str, str]()
        for e in self.entries("conversations"):
            for f in e.record["fields"]:
                if f["name"] == name:
                    value, label = f["field"]["value"], f["field"].get("label")
                    for v in value if isinstance(value, list) else [value]:
                        pairs.setdefault(str(v), label if label is not None else str(v))
        return [{"value": v, "label": pairs[v]} for v in sorted(pairs)]

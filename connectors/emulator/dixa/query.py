"""Request parsing of the Dixa emulator: bodies, period filters, filters, opaque page keys.

* A records or metrics body needs ``id`` (string), ``timezone`` (an IANA zone) and a
  ``periodFilter`` or a ``csidFilter`` (a list of conversation ids). ``filters`` is optional: a
  list of ``{"attribute": str, "values": [non-empty]}``; attributes a record does not know are
  ignored, as the seed says.
* ``periodFilter`` is ``{"_type": "Interval", "start": …, "end": …}`` (ISO 8601; a time without
  an offset is wall-clock time in ``timezone``), selecting primary timestamps in ``[start, end)``,
  or ``{"_type": "Preset", "value": {"_type": "PreviousWeek"}}`` with one of :data:`PRESETS`,
  whole calendar periods of ``timezone`` (weeks start on Monday).
* A page key is standard base64 of ``{"offset", "limit", "query"}`` where ``query`` is a checksum
  of the request (body, or path for catalogues): a key sent with another query, or one that does
  not decode, is a 400, as is a ``pageLimit`` outside ``1..300``.

Example:
    >>> key = encode_key(200, 100, "abc")
    >>> decode_key(key, "abc")
    (200, 100)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "MAX_PAGE_LIMIT",
    "PRESETS",
    "BadRequestError",
    "Query",
    "checksum",
    "decode_key",
    "encode_key",
    "page_limit",
    "parse_body",
]

MAX_PAGE_LIMIT = 300
PRESETS = (
    "Today",
    "Yesterday",
    "ThisWeek",
    "PreviousWeek",
    "ThisMonth",
    "PreviousMonth",
    "ThisQuarter",
    "PreviousQuarter",
    "ThisYear",
    "PreviousYear",
)


class BadRequestError(ValueError):
    """A request the seed answers with 400 (the message is the seed's wording)."""


@dataclass(frozen=True)
class Query:
    """A parsed records/metrics body; ``start``/``end`` are UTC, ``None`` without a period."""

    id: str
    timezone: str
    start: datetime | None
    end: datetime | None
    filters: Mapping[str, frozenset[str]]
    csids: frozenset[int] | None
    aggregations: tuple[str, ...]
    checksum: str


def checksum(value: object) -> str:
    """A short stable digest of a JSON-able value (what a page key is bound to)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_key(offset: int, limit: int, query: str) -> str:
    """The opaque page key of the page starting at ``offset``."""
    raw = json.dumps({"offset": offset, "limit": limit, "query": query}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode()


def decode_key(key: str, query: str) -> tuple[int, int]:
    """``(offset, limit)`` of a page key issued for ``query``.

    Raises:
        BadRequestError: Not a key of this emulator, or issued for another query.
    """
    try:
        data = json.loads(base64.b64decode(key, validate=True))
        offset, limit, bound = data["offset"], data["limit"], data["query"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise BadRequestError("Invalid value for: query parameter pageKey") from None
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (offset, limit))
    if not ints or offset < 0 or not 1 <= limit <= MAX_PAGE_LIMIT or bound != query:
        raise BadRequestError("Invalid value for: query parameter pageKey")
    return offset, limit


def page_limit(query: Mapping[str, list[str]], default: int) -> int | None:
    """The ``pageLimit`` query parameter (``None`` when absent).

    Raises:
        BadRequestError: Not an integer in ``1..300``.
    """
    raw = query.get("pageLimit", [None])[-1]
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PAGE_LIMIT:
        raise BadRequestError("Invalid value for: query parameter pageLimit")
    return int(raw)


def _zone(name: object) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise BadRequestError("Invalid value for: body (timezone)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequestError("Invalid value for: body (timezone)") from None


def _instant(value: object, zone: ZoneInfo) -> datetime:
    try:
        ts = datetime.fromisoformat(str(value).strip()) if isinstance(value, str) else None
    except ValueError:
        ts = None
    if ts is None:
        raise BadRequestError("Invalid value for: body (periodFilter)")
    return (ts if ts.tzinfo else ts.replace(tzinfo=zone)).astimezone(UTC)


def _preset(name: object, zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    today = now.astimezone(zone).date()

    def day(d: date) -> datetime:  # local midnight of ``d`` (23- and 25-hour days stay right)
        return datetime(d.year, d.month, d.day, tzinfo=zone).astimezone(UTC)

    def month(y: int, m: int) -> datetime:
        return day(date(y + (m - 1) // 12, (m - 1) % 12 + 1, 1))

    y, m, q = today.year, today.month, (today.month - 1) // 3 * 3 + 1
    monday, one = today - timedelta(days=today.weekday()), timedelta(days=1)
    periods = {
        "Today": (day(today), day(today + one)),
        "Yesterday": (day(today - one), day(today)),
        "ThisWeek": (day(monday), day(monday + 7 * one)),
        "PreviousWeek": (day(monday - 7 * one), day(monday)),
        "ThisMonth": (month(y, m), month(y, m + 1)),
        "PreviousMonth": (month(y, m - 1), month(y, m)),
        "ThisQuarter": (month(y, q), month(y, q + 3)),
        "PreviousQuarter": (month(y, q - 3), month(y, q)),
        "ThisYear": (month(y, 1), month(y + 1, 1)),
        "PreviousYear": (month(y - 1, 1), month(y, 1)),
    }
    if name not in periods:
        raise BadRequestError("Invalid value for: body (periodFilter)")
    return periods[str(name)]


def _period(value: object, zone: ZoneInfo, now: datetime) -> tuple[datetime, datetime]:
    if not isinstance(value, dict):
        raise BadRequestError("Invalid value for: body (periodFilter)")
    if value.get("_type") == "Interval":
        return _instant(value.get("start"), zone), _instant(value.get("end"), zone)
    inner = value.get("value")
    if value.get("_type") == "Preset" and isinstance(inner, dict):
        return _preset(inner.get("_type"), zone, now)
    raise BadRequestError("Invalid value for: body (periodFilter)")


def _filters(value: object) -> dict[str, frozenset[str]]:
    if value is None:
        return {}
    out: dict[str, frozenset[str]] = {}
    for item in value if isinstance(value, list) else [None]:
        values = item.get("values") if isinstance(item, dict) else None
        attribute = item.get("attribute") if isinstance(item, dict) else None
        if not isinstance(attribute, str) or not isinstance(values, list) or not values:
            raise BadRequestError("Invalid value for: body (filters)")
        if any(isinstance(v, dict | list) or v is None for v in values):
            raise BadRequestError("Invalid value for: body (filters)")
        out[attribute] = frozenset(str(v).lower() for v in values) | out.get(attribute, set())
    return out


def parse_body(body: bytes, *, now: datetime) -> Query:
    """Parse a records or metrics request body.

    Raises:
        BadRequestError: Not JSON, or a required or malformed member.
    """
    try:
        data: Any = json.loads(body or b"null")
    except ValueError:
        raise BadRequestError("Invalid value for: body") from None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise BadRequestError("Invalid value for: body")
    zone = _zone(data.get("timezone"))
    start = end = None
    if data.get("periodFilter") is not None:
        start, end = _period(data["periodFilter"], zone, now)
    raw_csids, csids = data.get("csidFilter"), None
    if raw_csids is not None:
        ok = isinstance(raw_csids, list) and raw_csids
        if not ok or not all(isinstance(c, int) and not isinstance(c, bool) for c in raw_csids):
            raise BadRequestError("Invalid value for: body (csidFilter)")
        csids = frozenset(raw_csids)
    if start is None and csids is None:
        raise BadRequestError("Invalid value for: body (periodFilter or csidFilter required)")
    aggregations = data.get("aggregations") or []
    if not isinstance(aggregations, list) or not all(isinstance(a, str) for a in aggregations):
        raise BadRequestError("Invalid value for: body (aggregations)")
    keyed = {k: data.get(k) for k in ("id", "timezone", "periodFilter", "csidFilter", "filters")}
    return Query(
        data["id"],
        zone.key,
        start,
        end,
        _filters(data.get("filters")),
        csids,
        tuple(aggregations),
        checksum(keyed),
    )

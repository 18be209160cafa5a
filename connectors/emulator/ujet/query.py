"""Query evaluation of the UJET emulator: filters, sort and paging, answered from a sorted index.

The rules (documented with the HTTP behaviour in :mod:`connectors.emulator.ujet.app`) are defined by
:func:`scan`: keep the records every filter accepts, then sort them. Scanning every record per
request made a page of a 30,000-record tenant cost ~25-50 ms of pure Python (more under load), and
that time is latency a client pays inside every rate-limit window: an emulator artefact a real,
indexed API does not have. So :class:`SortedView` keeps an endpoint's records sorted once per
sort column (rebuilt only after the data changes) and answers a page with a binary search when
the range filters are on the sort column (the tail query of a sync: ``updated_at[from]`` sorted
by ``updated_at``), scanning only what remains for the other filters.

Why the answer is exactly :func:`scan`'s: ids are unique within an endpoint, so ``(value, id)``
is a total order and filtering commutes with sorting (filtering a sorted list keeps the order the
filtered list would sort into); the descending order is the ascending one reversed (nulls first
instead of last); and a range filter on the sort column keeps a contiguous run of the non-null
values when they are all of the filter's kind (strings for ``*_at`` fields, non-boolean numbers
otherwise). Whenever one of these premises fails (a column some record lacks, objects or lists,
types that do not compare, a NaN bound) the request is answered by :func:`scan` itself, errors
included.

Example:
    >>> records = [{"id": i, "updated_at": f"2026-10-01T00:00:0{9 - i}.000Z"} for i in range(5)]
    >>> query = {"updated_at[from]": ["2026-10-01T00:00:07Z"], "sort_column": ["updated_at"]}
    >>> [r["id"] for r in answer(records, SortedView.build(records, "updated_at"), query)[0]]
    [2, 1, 0]
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.emulator.ujet.render import iso

__all__ = [
    "BadRequestError",
    "Filter",
    "SortedView",
    "answer",
    "int_param",
    "parse_filters",
    "scan",
    "sort_column",
    "sort_order",
]

Record = dict[str, Any]

_RANGE = re.compile(r"([a-z_]+)\[(from|to)\]")
_OFFSET = re.compile(r" (\d\d:?\d\d)$")  # a "+hh:mm" offset whose "+" became a space in the query
_CALL_TYPES = {
    "ivrcall": "voice inbound (ivr)",
    "incomingcallapp": "voice inbound (app)",
    "incomingcallweb": "voice callback (web)",
    "scheduledcallapp": "voice scheduled (app)",
    "scheduledcallweb": "voice scheduled (web)",
    "outboundcall": "voice outbound",
}
_LISTS: Mapping[str, Callable[[Record], object]] = {
    "id[]": lambda r: r["id"],
    "agent_id[]": lambda r: (r["agent_info"] or {}).get("id"),
    "end_user_id[]": lambda r: r["end_user"]["id"],
    "call_status[]": lambda r: r["status"],
    "chat_status[]": lambda r: r["status"],
    "call_type[]": lambda r: r.get("call_type"),
    "chat_type[]": lambda r: r.get("chat_type"),
    "call_fail_reason[]": lambda r: r["fail_reason"],
    "chat_fail_reason[]": lambda r: r["fail_reason"],
    "verified[]": lambda r: r["verified"],
    "lang[]": lambda r: r["lang"],
    "support_number[]": lambda r: r.get("support_number"),
}


class BadRequestError(ValueError):
    """A malformed query parameter (answered with 400)."""


def _text(value: object) -> str:
    return "null" if value is None else str(value).lower()


def int_param(query: Mapping[str, list[str]], name: str, default: int) -> int:
    """A positive integer parameter (``page``, ``per``), ``default`` when absent or empty."""
    raw = query.get(name, [str(default)])[-1] or str(default)
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise BadRequestError(f"{name} must be a positive integer")
    return int(raw)


def _instant(raw: str, *, ceil: bool) -> str:
    """A bound as a record-style timestamp string (records have millisecond precision)."""
    try:
        ts = datetime.fromisoformat(_OFFSET.sub(r"+\1", raw.strip()))
    except ValueError:
        raise BadRequestError(f"not an ISO 8601 time: {raw!r}") from None
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    if ceil and ts.microsecond % 1000:
        ts += timedelta(microseconds=1000 - ts.microsecond % 1000)
    return str(iso(ts))


@dataclass(frozen=True)
class Filter:
    """One filter of a query: ``keep(record)``; range filters also say what they bound."""

    keep: Callable[[Record], bool]
    field: str | None = None  # the bounded field of a range filter, else None
    lower: bool = False  # ``[from]`` (>=) rather than ``[to]`` (<=)
    bound: object = None
    kind: tuple[type, ...] = ()


def _list_filter(get: Callable[[Record], object], wanted: set[str]) -> Filter:
    return Filter(keep=lambda r: _text(get(r)) in wanted)


def _range_filter(name: str, lower: bool, bound: Any, kind: tuple[type, ...]) -> Filter:
    def keep(r: Record) -> bool:
        value = r.get(name)
        return (
            isinstance(value, kind)
            and not isinstance(value, bool)
            and (value >= bound if lower else value <= bound)
        )

    return Filter(keep=keep, field=name, lower=lower, bound=bound, kind=kind)


def parse_filters(query: Mapping[str, list[str]]) -> list[Filter]:
    """The query's filters, in query order (a malformed bound raises, the first one first)."""
    filters = []
    for key, values in query.items():
        if key in _LISTS:
            wanted = {_CALL_TYPES.get(v.lower(), v.lower()) for v in values}
            filters.append(_list_filter(_LISTS[key], wanted))
        elif match := _RANGE.fullmatch(key):
            name, lower = match[1], match[2] == "from"
            bound: object
            kind: tuple[type, ...]
            if name.endswith("_at"):
                bound, kind = _instant(values[-1], ceil=lower), (str,)
            else:
                try:
                    bound, kind = float(values[-1]), (int, float)
                except ValueError:
                    raise BadRequestError(f"{key} must be a number") from None
            filters.append(_range_filter(name, lower, bound, kind))
    return filters


def sort_column(query: Mapping[str, list[str]]) -> str:
    """The column to sort by (default ``id``; whether it can be sorted by is checked later)."""
    return query.get("sort_column", ["id"])[-1] or "id"


def sort_order(query: Mapping[str, list[str]]) -> tuple[str, bool]:
    """``(sort_column, descending)``; a direction other than ASC / DESC raises."""
    column = sort_column(query)
    direction = (query.get("sort_direction", ["ASC"])[-1] or "ASC").upper()
    if direction not in {"ASC", "DESC"}:
        raise BadRequestError("sort_direction must be ASC or DESC")
    return column, direction == "DESC"


def scan(records: list[Record], query: Mapping[str, list[str]]) -> list[Record]:
    """The reference answer: every record through every filter, then sorted (the rules).

    Ties on the sort column break on ``id`` in the same direction; nulls last ascending, first
    descending. Sorting by a column the first kept record lacks, or whose value there is an
    object or a list, is a 400.
    """
    filters = parse_filters(query)
    for f in filters:
        records = [r for r in records if f.keep(r)]
    column, descending = sort_order(query)
    if records and (column not in records[0] or isinstance(records[0][column], dict | list)):
        raise BadRequestError(f"cannot sort by {column!r}")
    present = [r for r in records if r.get(column) is not None]
    absent = [r for r in records if r.get(column) is None]
    present.sort(key=lambda r: (r[column], r["id"]), reverse=descending)
    absent.sort(key=lambda r: r["id"], reverse=descending)
    return absent + present if descending else present + absent


@dataclass(frozen=True)
class SortedView:
    """An endpoint's records sorted ascending by one column (non-null by value and id, then
    nulls by id), with the non-null values alongside for binary search.

    ``kind`` is ``(str,)`` or ``(int, float)`` when every non-null value is of that filter kind
    (booleans excluded), so a range filter of that kind on the column keeps a contiguous run.
    """

    column: str
    records: list[Record]
    keys: list[Any]
    kind: tuple[type, ...]

    @classmethod
    def build(cls, records: Sequence[Record], column: str) -> SortedView | None:
        """The view, or ``None`` when :func:`scan` must answer (see the module docstring)."""
        if len({r["id"] for r in records}) != len(records):
            return None
        types = set()
        for r in records:
            if column not in r or isinstance(r[column], dict | list):
                return None
            types.add(type(r[column]))
        types.discard(type(None))
        if not (types <= {str} or types <= {int, float, bool}):
            return None
        present = sorted(
            (r for r in records if r[column] is not None), key=lambda r: (r[column], r["id"])
        )
        absent = sorted((r for r in records if r[column] is None), key=lambda r: r["id"])
        kind: tuple[type, ...] = (
            (str,) if types == {str} else (int, float) if types <= {int, float} else ()
        )
        return cls(column, present + absent, [r[column] for r in present], kind)

    def select(self, filters: Sequence[Filter]) -> tuple[list[Record], int, int]:
        """``(records, lo, hi)``: ``records[lo:hi]`` are the ones every filter keeps, ascending.

        Range filters on the column narrow the run by binary search; the others are applied
        to what is left (in order, so the result keeps the view's order).
        """
        lo, hi, rest = 0, len(self.records), []
        for f in filters:
            searchable = (
                f.field == self.column
                and self.kind
                and f.kind == self.kind
                and not (isinstance(f.bound, float) and math.isnan(f.bound))
            )
            if not searchable:
                rest.append(f)
            elif f.lower:  # a bound excludes the nulls: the run ends with the non-null values
                lo, hi = max(lo, bisect.bisect_left(self.keys, f.bound)), min(hi, len(self.keys))
            else:
                hi = min(hi, bisect.bisect_right(self.keys, f.bound))
        if not rest:
            return self.records, lo, max(lo, hi)
        kept = [r for r in self.records[lo:hi] if all(f.keep(r) for f in rest)]
        return kept, 0, len(kept)


def answer(
    records: list[Record],
    view: SortedView | None,
    query: Mapping[str, list[str]],
    page: int = 1,
    per: int = 100,
) -> tuple[list[Record], int]:
    """``(the records of page `page`, how many match in all)``: :func:`scan`'s, through ``view``.

    ``records`` are the endpoint's records (used when ``view`` is ``None``); ``view`` must be
    built from the same records, sorted by the query's sort column.
    """
    if view is None:
        rows = scan(records, query)
        return rows[(page - 1) * per : page * per], len(rows)
    filters = parse_filters(query)
    column, descending = sort_order(query)
    if column != view.column:
        raise ValueError(f"view sorted by {view.column!r}, query by {column!r}")
    rows, lo, hi = view.select(filters)
    total, skip = hi - lo, (page - 1) * per
    if skip >= total:
        return [], total
    if not descending:
        return rows[lo + skip : min(hi, lo + skip + per)], total
    return rows[max(lo, hi - skip - per) : hi - skip][::-1], total

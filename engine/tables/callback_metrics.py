"""The callback metrics document (SPEC §6.2, seed 000; definitions in docs/callbacks.md).

:func:`document` renders, for a window ``[begin, end)`` and the vendor's filters, exactly the
document ``GET /v2/callback/historical/metrics`` returns: the same keys, spellings and nesting
(including the retry keys ``'1'`` … ``'5'`` whose quote characters are part of the key, and
``totalRepeatCustomers``/``totalUniqueCustomers`` inside ``performance``). Averages are
``sum_ms / (count * 1000)`` and maxima ``max_ms / 1000`` (seconds), computed in Python from exact
integer aggregates; an empty set gives ``0``. :func:`document_intervals` gives the same content
per step interval of a reporting zone, at most :data:`MAX_INTERVALS` of them
(:func:`check_intervals`). The frames are collected here, once per document.

Both take requests (:func:`engine.tables.callback_requests.requests`), not attempts: a request
is what the document counts, and one requests frame can serve the document and both tables.

Example:
    >>> from engine.demo.callbacks import generate_attempts
    >>> from engine.tables.callback_requests import requests
    >>> reqs = requests(generate_attempts(days=1, scale=0.2).lazy())
    >>> doc = document(reqs, begin=parse_time("2026-10-01"), end=parse_time("2026-10-02"))
    >>> doc["data"]["totalCallbacks"] > 0
    True
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import polars as pl

from engine.interval import GRID, check_calendar, interval_grid, to_intervals
from engine.schema import CALLBACK_ATTEMPTS
from engine.settings import known_zone
from engine.tables.callback_requests import (
    REQUEST_COLUMNS,
    RETRY_BUCKETS,
    combine,
    customers,
    in_retry_bucket,
    measures,
    requests_per_customer,
)
from engine.validate.spelling import normalised

__all__ = [
    "MAX_INTERVALS",
    "STEPS",
    "Step",
    "check_intervals",
    "document",
    "document_intervals",
    "document_parts",
    "merge_parts",
    "parse_time",
    "render",
]

Step = Literal["15m", "1h", "1d"]
STEPS: Final[dict[str, int]] = {"15m": 15, "1h": 60, "1d": 1440}
#: The most step intervals :func:`document_intervals` lists (a typo'd year would otherwise ask
#: for gigabytes of documents): 104 days of 15 minutes, 416 days of hours, 27 years of days.
MAX_INTERVALS: Final = 10_000
#: The request columns a document reads (every one but the chain key).
_DOCUMENT_COLUMNS: Final = tuple(c for c in REQUEST_COLUMNS if c not in ("source", "original_id"))
#: the two forms of a time, ASCII digits of exact widths (strptime takes ``2026-1-5`` and any
#: Unicode digit, full-width ones too), and the strptime format of each
_TIME_FORMS: Final = ((re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII), "%Y-%m-%d"),
                      (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", re.ASCII),
                       "%Y-%m-%dT%H:%M:%SZ"))  # fmt: skip
_SHOWN: Final = 40  #: the characters of a bad time a message quotes (a request's value)
_FIVE: Final = (  # document key, outcome; in the seed's (alphabetical) order
    ("totalAbandoned", "abandoned"),
    ("totalCanceled", "canceled"),
    ("totalFailure", "failure"),
    ("totalSuccessful", "successful"),
    ("totalUnavailable", "unavailable"),
)


def parse_time(text: str) -> datetime:
    """A ``timeBegin``/``timeEnd`` value: ``YYYY-MM-DD`` (UTC midnight) or
    ``YYYY-MM-DDTHH:MM:SSZ``, ASCII digits of exactly those widths (spaces around it aside).

    Raises:
        ValueError: any other form, with the expected forms in the message (and the value's
            first 40 characters: it may be a request's, of any length).

    Example:
        >>> parse_time("2026-10-01T09:30:00Z").isoformat()
        '2026-10-01T09:30:00+00:00'
    """
    for form, fmt in _TIME_FORMS:
        if form.fullmatch(text.strip()):
            try:
                return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC)
            except ValueError:  # no such day or time (2026-02-30, 24:00:00)
                break
    shown = repr(text[:_SHOWN]) + ("…" if len(text) > _SHOWN else "")
    msg = f"{shown} is not a time: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ"
    raise ValueError(msg)


def _filter_value(column: str, parameter: str, value: str) -> str:
    got = pl.select(normalised(column, value)).item()
    if got is None:
        allowed = CALLBACK_ATTEMPTS[column]
        assert isinstance(allowed, pl.Enum)
        msg = f"{parameter} {value!r} is not one of {', '.join(allowed.categories)}"
        raise ValueError(msg)
    return str(got)


def _selection(
    begin: datetime,
    end: datetime,
    *,
    call_target_id: str | None,
    first_party_called: str | None,
    source_type: str | None,
    type: str | None,
) -> list[pl.Expr]:
    for name, instant_ in (("begin", begin), ("end", end)):
        if instant_.tzinfo is None:
            msg = f"{name} {instant_.isoformat()} is naive: give a UTC instant"
            raise ValueError(msg)
    if end <= begin:
        msg = f"timeEnd {end.isoformat()} is not after timeBegin {begin.isoformat()}"
        raise ValueError(msg)
    instant = pl.col("instant")
    conditions = [instant >= begin.astimezone(UTC), instant < end.astimezone(UTC)]
    if call_target_id is not None:
        ids = [i.strip() for i in call_target_id.split(",") if i.strip()]
        if not ids:
            msg = f"callTargetId {call_target_id!r} names no call target"
            raise ValueError(msg)
        conditions.append(pl.col("call_target_id").is_in(ids))
    for column, parameter, value in (
        ("first_party_called", "firstPartyCalled", first_party_called),
        ("source_type", "sourceType", source_type),
        ("type", "type", type),
    ):
        if value is not None:
            conditions.append(pl.col(column) == _filter_value(column, parameter, value))
    return conditions


def _additive() -> list[pl.Expr]:
    """The document's additive aggregates: :func:`measures` and the retry buckets' outcomes."""
    outcome = pl.col("outcome")
    retries = [
        (in_retry_bucket(b) & (outcome == o)).sum().cast(pl.Int64).alias(f"retry_{b}_{o}")
        for b in RETRY_BUCKETS.categories
        for _, o in _FIVE
    ]
    return [*measures(), *retries]


def _average(row: dict[str, Any], name: str) -> float | int:
    n: int = row[f"{name}_count"]
    return row[f"{name}_sum"] / (n * 1000) if n else 0


def _maximum(row: dict[str, Any], name: str) -> float | int:
    return row[f"{name}_max"] / 1000 if row[f"{name}_count"] else 0


def _data(row: dict[str, Any]) -> dict[str, Any]:
    """The seed's ``data`` object from one row of :func:`_additive` and :func:`customers`."""
    outcomes = {
        "totalAbandoned": row["abandoned"],
        "totalCallbackASAP": row["asap"],
        "totalCallbackScheduled": row["scheduled"],
        "totalCanceled": row["canceled"],
        "totalFailure": row["failure"],
        "totalSuccessful": row["successful"],
        "totalUnavailable": row["unavailable"],
    }
    buckets = {
        (b if b == "over5" else f"'{b}'"): {key: row[f"retry_{b}_{o}"] for key, o in _FIVE}
        for b in RETRY_BUCKETS.categories
    }
    performance = {
        "averageCallbackTime": _average(row, "callback_ms"),
        "averageCustomerWaitTime": _average(row, "customer_wait_ms"),
        "averageEstimatedCallbackTime": _average(row, "estimated_callback_ms"),
        "averagePunctuality": _average(row, "punctuality_ms"),
        "averageTalkTime": _average(row, "talk_ms"),
        "maxCallbackTime": _maximum(row, "callback_ms"),
        "maxCustomerWaitTime": _maximum(row, "customer_wait_ms"),
        "maxEstimatedCallbackTime": _maximum(row, "estimated_callback_ms"),
        "maxTalkTime": _maximum(row, "talk_ms"),
        "rcsl": {
            "totalAbove60": row["rcsl_above60"],
            "totalBelow30": row["rcsl_below30"],
            "totalBetween31_60": row["rcsl_31_60"],
        },
        "retries": {
            **buckets,
            "totalCallbacksWithRetries": row["requests_with_retries"],
            "totalRetryAttempts": row["retries"],
        },
        "totalRepeatCustomers": row["repeat_customers"],
        "totalUniqueCustomers": row["unique_customers"],
    }
    return {"outcomes": outcomes, "performance": performance, "totalCallbacks": row["requests"]}


def document_parts(
    reqs: pl.LazyFrame,
    *,
    begin: datetime,
    end: datetime,
    call_target_id: str | None = None,
    first_party_called: str | None = None,
    source_type: str | None = None,
    type: str | None = None,
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """What the document of the requests in ``[begin, end)`` that pass the filters is made of:
    one row of additive aggregates, and per customer key its number of requests
    (``customer_key``, ``requests``).

    Both add up over disjoint sets of requests (:func:`merge_parts`), so a document can be
    computed in parts (one per UTC day on a cluster, :mod:`engine.distributed`) and rendered
    once (:func:`render`): the unique and repeat customers are then counted once, over the
    merged keys, never summed. Arguments and errors as for :func:`document`.
    """
    where = _selection(
        begin,
        end,
        call_target_id=call_target_id,
        first_party_called=first_party_called,
        source_type=source_type,
        type=type,
    )
    selected = reqs.filter(where).select(_DOCUMENT_COLUMNS)
    return selected.select(_additive()), requests_per_customer(selected)


def merge_parts(additive: pl.LazyFrame, per_key: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """The :func:`document_parts` of several disjoint sets of requests (their rows stacked) as
    those of their union: sums and counts add, maxima take the max (a part with no value has a
    maximum of 0, and validated durations are never negative), each key's requests add up.

    Example:
        >>> from engine.demo.callbacks import generate_attempts
        >>> from engine.tables.callback_requests import requests
        >>> reqs = requests(generate_attempts(days=2, scale=0.1).lazy())
        >>> day = {"begin": parse_time("2026-10-01"), "end": parse_time("2026-10-02")}
        >>> next_day = {"begin": day["end"], "end": parse_time("2026-10-03")}
        >>> parts = [document_parts(reqs, **w) for w in (day, next_day)]
        >>> merged = merge_parts(*(pl.concat(p) for p in zip(*parts, strict=True)))
        >>> render(*merged) == document(reqs, begin=day["begin"], end=next_day["end"])
        True
    """
    columns = additive.collect_schema().names()
    key = pl.col("customer_key")
    return additive.select(combine(tuple(columns))), per_key.group_by(key).agg(
        pl.col("requests").sum()
    )


def render(additive: pl.LazyFrame, per_key: pl.LazyFrame) -> dict[str, Any]:
    """The seed-000 document from its parts (:func:`document_parts`, or :func:`merge_parts` of
    several): the unique and repeat customers counted over ``per_key``. One collect of two
    one-row aggregates."""
    totals, people = pl.collect_all([additive, customers(per_key)], engine="streaming")
    return {"data": _data(totals.row(0, named=True) | people.row(0, named=True))}


def document(
    reqs: pl.LazyFrame,
    *,
    begin: datetime,
    end: datetime,
    call_target_id: str | None = None,
    first_party_called: str | None = None,
    source_type: str | None = None,
    type: str | None = None,
) -> dict[str, Any]:
    """The seed-000 metrics document for the requests whose instant is in ``[begin, end)``.

    Unique and repeat customers are counted over the window's requests as a whole (exact, never
    summed from intervals). One collect of two one-row aggregates
    (:func:`render` of :func:`document_parts`).

    Args:
        reqs: requests (:func:`engine.tables.callback_requests.requests`) of canonical attempts
            (every attempt of a request, whatever its own time).
        begin: window start (aware, inclusive).
        end: window end (aware, exclusive).
        call_target_id: one id or a comma-separated list.
        first_party_called: ``agent`` or ``customer``.
        source_type: ``voice`` or ``digital``.
        type: ``asap`` or ``scheduled``.

    Raises:
        ValueError: an empty or reversed window, a naive instant or an unknown filter value.

    Example:
        >>> from engine.demo.callbacks import generate_attempts
        >>> from engine.tables.callback_requests import requests
        >>> attempts = generate_attempts(days=1, scale=0.2)
        >>> w = {"begin": parse_time("2026-10-01"), "end": parse_time("2026-10-02")}
        >>> document(requests(attempts.lazy()), **w)["data"]["totalCallbacks"] > 0
        True
        >>> shuffled = attempts.sample(fraction=1.0, shuffle=True, seed=3).lazy()
        >>> document(requests(shuffled), **w) == document(requests(attempts.lazy()), **w)
        True
    """
    filters = {
        "call_target_id": call_target_id,
        "first_party_called": first_party_called,
        "source_type": source_type,
        "type": type,
    }
    return render(*document_parts(reqs, begin=begin, end=end, **filters))


def check_intervals(begin: datetime, end: datetime, step: Step) -> None:
    """Refuse a window of more than :data:`MAX_INTERVALS` intervals of ``step``, or one too
    close to the ends of the calendar, before any interval is made.

    Raises:
        ValueError: the window is too long for ``step`` (the message says how long it may be),
            or not within the years 1 to 9999 with a week to spare.

    Example:
        >>> check_intervals(parse_time("2026-01-01"), parse_time("2027-01-01"), "15m")
        Traceback (most recent call last):
        ValueError: 35,040 intervals of 15m, more than the 10,000 allowed (104 days of 15m): ...
    """
    length = timedelta(minutes=STEPS[step])
    count = (end - begin) / length
    if count > MAX_INTERVALS:
        days = MAX_INTERVALS * length / timedelta(days=1)
        most = f"more than the {MAX_INTERVALS:,} allowed ({days:,.0f} days of {step})"
        msg = f"{count:,.0f} intervals of {step}, {most}: give a shorter window or a longer step"
        raise ValueError(msg)
    check_calendar(begin, end)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def document_intervals(
    reqs: pl.LazyFrame,
    *,
    begin: datetime,
    end: datetime,
    step: Step = "15m",
    tz: str = "UTC",
    call_target_id: str | None = None,
    first_party_called: str | None = None,
    source_type: str | None = None,
    type: str | None = None,
) -> list[dict[str, Any]]:
    """The document's ``data`` per step interval (aligned to the wall clock of ``tz``).

    Every interval overlapping ``[begin, end)`` is listed, in order, as ``{"intervalBegin",
    "intervalEnd", "partialInterval", "data"}``: the interval's own bounds (UTC,
    ``YYYY-MM-DDTHH:MM:SSZ``), whether the window cuts it (its data then covers only the part
    inside the window), and the data of :func:`document` for that part. Unique and repeat
    customers are exact per interval. ``reqs`` as for :func:`document`; a window of more than
    :data:`MAX_INTERVALS` intervals is refused (:func:`check_intervals`).

    Example:
        >>> from engine.schema import CALLBACK_ATTEMPTS
        >>> from engine.tables.callback_requests import requests
        >>> els = document_intervals(requests(pl.LazyFrame(schema=CALLBACK_ATTEMPTS)), step="1h",
        ...     begin=parse_time("2026-10-01T00:30:00Z"), end=parse_time("2026-10-01T02:00:00Z"))
        >>> [(e["intervalBegin"], e["partialInterval"]) for e in els]
        [('2026-10-01T00:00:00Z', True), ('2026-10-01T01:00:00Z', False)]
    """
    if step not in STEPS:
        msg = f"step {step!r} is not one of {', '.join(STEPS)}"
        raise ValueError(msg)
    known_zone(tz)
    where = _selection(
        begin,
        end,
        call_target_id=call_target_id,
        first_party_called=first_party_called,
        source_type=source_type,
        type=type,
    )
    check_intervals(begin, end, step)
    grid = interval_grid(begin, end, minutes=STEPS[step], tz=tz)
    reqs = reqs.filter(where)
    per_interval = to_intervals(reqs, grid, at="instant", by=(), combine=_additive())
    key = pl.col("customer_key")
    per_key = to_intervals(
        reqs.filter(key.is_not_null()).select("instant", key),
        grid,
        at="instant",
        by=("customer_key",),
        combine=[pl.len().alias("requests")],
    )
    people = customers(per_key, by=("interval_start_utc",))
    table = (
        grid.lazy()
        .join(per_interval, on="interval_start_utc", how="left")
        .join(people, on="interval_start_utc", how="left")
        .with_columns(pl.exclude(GRID).fill_null(0))
        .sort("interval_start_utc")
        .collect()
    )
    return [
        {
            "intervalBegin": _iso(row["interval_start_utc"]),
            "intervalEnd": _iso(row["interval_end_utc"]),
            "partialInterval": row["interval_start_utc"] < begin or row["interval_end_utc"] > end,
            "data": _data(row),
        }
        for row in table.iter_rows(named=True)
    ]

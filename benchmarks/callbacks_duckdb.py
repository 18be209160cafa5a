"""The DuckDB peer of the callback benchmark: docs/callbacks.md's tables and document as SQL.

Written from docs/callbacks.md, independently of ``engine/callback_*.py``, so that the benchmark
compares equal work and checks the answer:

- a request is the chain of attempts sharing (``source``, ``original_id``); its first and final
  attempts are the lowest and highest (``retry_attempt``, ``created_at``, ``attempt_id``): the
  ``min``/``max`` of that struct with the row number, whose rows are joined back;
- attributes, instant, estimated callback time and punctuality come from the first attempt;
  outcome, retry count, callback time, customer wait and talk time from the final one;
- ``callback_intervals``: the additive columns per 15-minute UTC interval (``epoch // length``) x
  (call target, type, first party, source type), zero-filled over the window for every
  combination seen; maxima 0 where the count is 0; the call target's name on its latest request
  (ties: the greatest name, a null name the smallest; none: the id);
- ``retry_outcomes``: requests with 1 … 5 and more than 5 retries by final outcome, all six
  buckets for every call target with a request in the window;
- the month document: the same aggregates over the window plus exact unique and repeat customers.

Only what the benchmark runs is supported: UTC, whole-interval windows, no document filters.
This module does not import Polars, so the DuckDB worker's memory is DuckDB's.

Example:
    >>> from datetime import datetime, UTC
    >>> w = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
    >>> "GROUP BY" in requests_sql("x.parquet", window=w)
    True
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "GRAIN_US",
    "OUTCOMES",
    "document_data",
    "document_sql",
    "intervals_sql",
    "requests_relation_sql",
    "requests_sql",
    "retries_sql",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
GRAIN_US = 15 * 60_000_000
OUTCOMES = ("successful", "unavailable", "failure", "canceled", "abandoned", "other")
_BUCKETS = {"1": "= 1", "2": "= 2", "3": "= 3", "4": "= 4", "5": "= 5", "over5": "> 5"}
_GROUP = ("call_target_id", "type", "first_party_called", "source_type")
_GRID = (
    "make_timestamptz(grid.g * {grain}) AS interval_start_utc",
    "make_timestamptz((grid.g + 1) * {grain}) AS interval_end_utc",
    "make_timestamp(grid.g * {grain}) AS interval_start_local",
    "0::INTEGER AS utc_offset_min",
)
_WAIT = "CASE WHEN outcome = 'successful' THEN customer_wait_ms END"
_TALK = "CASE WHEN outcome = 'successful' THEN talk_ms END"
_STATS = {
    "callback_ms": ("callback_ms", True),
    "estimated_callback_ms": ("estimated_callback_ms", True),
    "punctuality_ms": ("punctuality_ms", False),
    "customer_wait_ms": (_WAIT, True),
    "talk_ms": (_TALK, True),
}


def _us(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(microseconds=1)


def _quoted(path: str) -> str:
    return path.replace("'", "''")


def requests_sql(path: str, *, window: tuple[datetime, datetime]) -> str:
    """One row per request whose instant lies in ``[window)``, with ``g`` its 15-minute grain.

    Per chain, the lowest and highest (``retry_attempt``, ``created_at``, ``attempt_id``, row)
    structs give the row numbers of the first and final attempts, whose columns are joined back:
    2.5x less CPU than ``arg_min_null(struct_pack(<columns>), <key>)`` per chain (measured at 1M).
    """
    # A row's identity: its file's row number, and when ``path`` is a glob (a store directory,
    # whose row numbers restart in every file) the file's index in the high bits. An integer:
    # a (filename, row number) struct cost DuckDB ~75 % more CPU at 10M (measured).
    many = "*" in path
    row = "(file_index::BIGINT << 40) + file_row_number" if many else "file_row_number"
    return requests_relation_sql(
        f"""(SELECT *, {row} AS rid
    FROM read_parquet('{_quoted(path)}', file_row_number = true, hive_partitioning = false))""",
        window=window,
    )


def requests_relation_sql(relation: str, *, window: tuple[datetime, datetime]) -> str:
    """:func:`requests_sql` over any relation with the attempts' columns and ``rid``, a unique
    integer per row (a table of de-duplicated attempts, a subquery)."""
    lo, hi = (_us(t) for t in window)
    key = "struct_pack(r := retry_attempt, c := created_at, a := attempt_id, i := rid)"
    firsts = [*_GROUP, "call_target_name", "customer_key", "created_at"]
    firsts += ["estimated_callback_ms", "punctuality_ms"]
    finals = ("outcome", "callback_ms", "customer_wait_ms", "talk_ms")
    columns = [f"fa.{c} AS {c}" for c in firsts] + [f"la.{c} AS {c}" for c in finals]
    return f"""
WITH att AS (SELECT * FROM {relation}),
chains AS (
    SELECT min({key}).i AS f, max({key}) AS l, count(*) AS attempts
    FROM att GROUP BY source, original_id
)
SELECT {", ".join(columns)}, chains.l.r::BIGINT AS retries, attempts,
    epoch_us(fa.created_at) // {GRAIN_US} AS g
FROM chains
JOIN att AS fa ON fa.rid = chains.f
JOIN att AS la ON la.rid = chains.l.i
WHERE epoch_us(fa.created_at) >= {lo} AND epoch_us(fa.created_at) < {hi}
"""


def _measures() -> list[str]:
    """The additive columns of ``callback_intervals`` as aggregates, in the table's order."""
    out = ["count(*) AS requests"]
    out += [f"count(*) FILTER (WHERE outcome = '{o}') AS {o}" for o in OUTCOMES]
    out += [f"count(*) FILTER (WHERE type = '{t}') AS {t}" for t in ("asap", "scheduled")]
    out += [f"coalesce(sum({c}), 0) AS {c}" for c in ("attempts", "retries")]
    out += ["count(*) FILTER (WHERE retries > 0) AS requests_with_retries"]
    for name, (value, has_max) in _STATS.items():
        out += [f"coalesce(sum({value}), 0) AS {name}_sum", f"count({value}) AS {name}_count"]
        out += [f"coalesce(max({value}), 0) AS {name}_max"] if has_max else []
    out += [
        f"count(*) FILTER (WHERE {_WAIT} <= 30000) AS rcsl_below30",
        f"count(*) FILTER (WHERE {_WAIT} > 30000 AND {_WAIT} <= 60000) AS rcsl_31_60",
        f"count(*) FILTER (WHERE {_WAIT} > 60000) AS rcsl_above60",
    ]
    return out


def _names(reqs: str) -> str:
    key = "struct_pack(t := created_at, has := call_target_name IS NOT NULL, n := call_target_name)"
    return f"""SELECT call_target_id,
        coalesce(arg_max_null(call_target_name, {key}), call_target_id) AS call_target_name
    FROM {reqs} GROUP BY call_target_id"""


def _grid(window: tuple[datetime, datetime]) -> str:
    lo, hi = (_us(t) for t in window)
    if lo % GRAIN_US or hi % GRAIN_US:
        raise ValueError(f"window {window} is not on whole 15-minute intervals")
    return f"SELECT range AS g FROM range({lo // GRAIN_US}, {hi // GRAIN_US})"


def _grid_columns(tz: str) -> str:
    """The interval key columns of grain ``grid.g``: in UTC, or in ``tz`` when its offsets are
    whole quarter-hours (every UTC boundary is then a local one; DuckDB's ``timezone``)."""
    columns = ", ".join(_GRID).format(grain=GRAIN_US)
    if tz == "UTC":
        return columns
    local = f"timezone('{tz}', make_timestamptz(grid.g * {GRAIN_US}))"
    offset = f"((epoch_us({local}) - grid.g * {GRAIN_US}) // 60000000)::INTEGER"
    return columns.replace(f"make_timestamp(grid.g * {GRAIN_US})", local).replace(
        "0::INTEGER", offset
    )


def _on(left: str, right: str, columns: tuple[str, ...]) -> str:
    return " AND ".join(f"{left}.{c} IS NOT DISTINCT FROM {right}.{c}" for c in columns)


def intervals_sql(reqs: str, *, window: tuple[datetime, datetime], tz: str = "UTC") -> str:
    """``callback_intervals`` from the relation ``reqs`` (:func:`requests_sql`'s rows)."""
    measures = _measures()
    names = [m.rsplit(" AS ", 1)[1] for m in measures]
    group = ", ".join(_GROUP)
    grid = _grid_columns(tz)
    return f"""
WITH agg AS (SELECT {group}, g, {", ".join(measures)} FROM {reqs} GROUP BY {group}, g),
combos AS (SELECT DISTINCT {group} FROM agg),
names AS ({_names(reqs)}),
grid AS ({_grid(window)})
SELECT {grid}, {", ".join(f"combos.{c}" for c in _GROUP[:1])}, names.call_target_name,
    {", ".join(f"combos.{c}" for c in _GROUP[1:])},
    {", ".join(f"coalesce(agg.{n}, 0)::BIGINT AS {n}" for n in names)}
FROM combos CROSS JOIN grid
LEFT JOIN agg ON {_on("agg", "combos", _GROUP)} AND agg.g = grid.g
LEFT JOIN names ON {_on("names", "combos", _GROUP[:1])}
ORDER BY {", ".join(f"combos.{c}" for c in _GROUP)}, grid.g
"""


def retries_sql(reqs: str, *, window: tuple[datetime, datetime], tz: str = "UTC") -> str:
    """``retry_outcomes`` from the relation ``reqs`` (:func:`requests_sql`'s rows)."""
    bucket = " ".join(f"WHEN retries {c} THEN '{b}'" for b, c in _BUCKETS.items())
    counts = ", ".join(f"count(*) FILTER (WHERE outcome = '{o}') AS {o}" for o in OUTCOMES)
    buckets = ", ".join(f"('{b}', {i})" for i, b in enumerate(_BUCKETS))
    grid = _grid_columns(tz)
    return f"""
WITH agg AS (
    SELECT call_target_id, CASE {bucket} END AS retry_bucket, g, count(*) AS requests, {counts}
    FROM {reqs} WHERE retries > 0 GROUP BY ALL
),
targets AS (SELECT DISTINCT call_target_id FROM {reqs}),
buckets AS (SELECT * FROM (VALUES {buckets}) AS b(retry_bucket, k)),
names AS ({_names(reqs)}),
grid AS ({_grid(window)})
SELECT {grid}, targets.call_target_id, names.call_target_name, buckets.retry_bucket,
    {", ".join(f"coalesce(agg.{n}, 0)::BIGINT AS {n}" for n in ("requests", *OUTCOMES))}
FROM targets CROSS JOIN buckets CROSS JOIN grid
LEFT JOIN agg ON {_on("agg", "targets", ("call_target_id",))}
    AND agg.retry_bucket = buckets.retry_bucket AND agg.g = grid.g
LEFT JOIN names ON {_on("names", "targets", ("call_target_id",))}
ORDER BY targets.call_target_id, buckets.k, grid.g
"""


def document_sql(path: str, *, window: tuple[datetime, datetime]) -> str:
    """One row: the document's aggregates over the requests in ``window``."""
    retries = [
        f"count(*) FILTER (WHERE retries {c} AND outcome = '{o}') AS retry_{b}_{o}"
        for b, c in _BUCKETS.items()
        for o in OUTCOMES[:5]
    ]
    return f"""
WITH reqs AS ({requests_sql(path, window=window)}),
keys AS (SELECT customer_key, count(*) AS n FROM reqs
    WHERE customer_key IS NOT NULL GROUP BY customer_key)
SELECT {", ".join(_measures() + retries)},
    (SELECT count(*) FROM keys) AS unique_customers,
    (SELECT count(*) FILTER (WHERE n >= 2) FROM keys) AS repeat_customers
FROM reqs
"""


def _avg(row: dict[str, Any], name: str) -> float | int:
    n = row[f"{name}_count"]
    return row[f"{name}_sum"] / (n * 1000) if n else 0


def _max(row: dict[str, Any], name: str) -> float | int:
    return row[f"{name}_max"] / 1000 if row[f"{name}_count"] else 0


def document_data(row: dict[str, Any]) -> dict[str, Any]:
    """The seed document (``{"data": …}``) from :func:`document_sql`'s row (docs/callbacks.md)."""
    key = {o: f"total{o.capitalize()}" for o in OUTCOMES[:5]}
    buckets = {
        (b if b == "over5" else f"'{b}'"): {key[o]: row[f"retry_{b}_{o}"] for o in OUTCOMES[:5]}
        for b in _BUCKETS
    }
    performance = {
        **{f"average{k}": _avg(row, n) for k, n in _DOC_STATS.items()},
        **{f"max{k}": _max(row, n) for k, n in _DOC_STATS.items() if n != "punctuality_ms"},
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
    outcomes = {key[o]: row[o] for o in OUTCOMES[:5]}
    outcomes |= {"totalCallbackASAP": row["asap"], "totalCallbackScheduled": row["scheduled"]}
    return {
        "data": {
            "outcomes": outcomes,
            "performance": performance,
            "totalCallbacks": row["requests"],
        }
    }


_DOC_STATS = {
    "CallbackTime": "callback_ms",
    "CustomerWaitTime": "customer_wait_ms",
    "EstimatedCallbackTime": "estimated_callback_ms",
    "Punctuality": "punctuality_ms",
    "TalkTime": "talk_ms",
}

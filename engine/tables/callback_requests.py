"""Callback requests: attempt chains reduced to one row each, and the aggregates over requests.

Definitions are those of docs/callbacks.md. A request is the chain of attempts sharing
(``source``, ``original_id``); its first attempt has the lowest (``retry_attempt``,
``created_at``, ``attempt_id``), its final attempt the highest.

There is one plan (:func:`requests`): sort the attempts into :data:`CHAIN_ORDER`, where each
chain is one run of rows from its first to its final attempt, and reduce every run where it lies
(:func:`requests_from_runs`). It is exact whatever order the attempts come in. The only reader
allowed to skip the sort is the callback store's (:mod:`engine.output.store`), after proving
that every chain in the rows it reads is one run in that order (:func:`chain_order_breaks`).
The request's attributes and instant come from the first attempt; its outcome, retry count,
callback time, customer wait and talk time from the final one; estimated callback time and
punctuality from the first.

The aggregates (:func:`measures`) are what the interval tables store and what the metrics document
reports, so the two agree by construction; :func:`combine` says how they add up across rows.

Example:
    >>> from engine.demo.callbacks import generate_attempts
    >>> reqs = requests(generate_attempts(days=1, scale=0.2).lazy())
    >>> row = reqs.select(measures()).collect().row(0, named=True)
    >>> row["requests"] == sum(row[o] for o in OUTCOMES)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import polars as pl

from engine.interval import on_grid, to_intervals
from engine.schema import CALLBACK_OUTCOMES

__all__ = [
    "ADDITIVE",
    "ATTRIBUTES",
    "CHAIN_ORDER",
    "MAXIMA",
    "ORDER",
    "OUTCOMES",
    "REQUEST_COLUMNS",
    "RETRY_BUCKETS",
    "SUMS",
    "busy_table",
    "call_target_names",
    "chain_order_breaks",
    "chain_start",
    "combine",
    "customers",
    "finish_table",
    "in_chain_order",
    "in_retry_bucket",
    "latest_names",
    "measures",
    "requests",
    "requests_from_runs",
    "requests_per_customer",
    "retry_bucket",
    "rolled_up",
]

#: A request's attributes, taken from its first attempt.
ATTRIBUTES: Final = (
    "call_target_id",
    "call_target_name",
    "type",
    "first_party_called",
    "source_type",
    "customer_key",
)
OUTCOMES: Final[tuple[str, ...]] = tuple(CALLBACK_OUTCOMES.categories.to_list())
RETRY_BUCKETS: Final = pl.Enum(["1", "2", "3", "4", "5", "over5"])
_STATS: Final = ("callback_ms", "estimated_callback_ms", "customer_wait_ms", "talk_ms")

#: The additive columns of ``callback_intervals``, in table order.
ADDITIVE: Final = (
    "requests",
    *OUTCOMES,
    "asap",
    "scheduled",
    "attempts",
    "retries",
    "requests_with_retries",
    *(f"callback_ms_{s}" for s in ("sum", "count", "max")),
    *(f"estimated_callback_ms_{s}" for s in ("sum", "count", "max")),
    "punctuality_ms_sum",
    "punctuality_ms_count",
    *(f"customer_wait_ms_{s}" for s in ("sum", "count", "max")),
    *(f"talk_ms_{s}" for s in ("sum", "count", "max")),
    "rcsl_below30",
    "rcsl_31_60",
    "rcsl_above60",
)
MAXIMA: Final = tuple(f"{s}_max" for s in _STATS)
SUMS: Final = tuple(c for c in ADDITIVE if c not in MAXIMA)


#: A chain's order: its first attempt has the lowest key, its final attempt the highest.
ORDER: Final = ("retry_attempt", "created_at", "attempt_id")
#: The store's row order (:func:`in_chain_order`): each chain's attempts together, first to final.
CHAIN_ORDER: Final = ("source", "original_id", *ORDER)
#: Request columns taken from the first attempt, and the attempt column each one is.
_FROM_FIRST: Final = {
    **{c: c for c in ATTRIBUTES},
    "instant": "created_at",
    "estimated_callback_ms": "estimated_callback_ms",
    "punctuality_ms": "punctuality_ms",
}
#: Request columns taken from the final attempt, and the attempt column each one is.
_FROM_FINAL: Final = {
    "retries": "retry_attempt",
    "outcome": "outcome",
    "callback_ms": "callback_ms",
    "customer_wait_ms": "customer_wait_ms",
    "talk_ms": "talk_ms",
}
#: The columns of :func:`requests`, in order (``attempts``: the chain's length).
REQUEST_COLUMNS: Final = (
    "source",
    "original_id",
    *ATTRIBUTES,
    "instant",
    "attempts",
    "retries",
    "outcome",
    "callback_ms",
    "estimated_callback_ms",
    "punctuality_ms",
    "customer_wait_ms",
    "talk_ms",
)


def in_chain_order(attempts: pl.LazyFrame) -> pl.LazyFrame:
    """``attempts`` in the store's order: each chain's attempts one run of rows in
    :data:`ORDER` (nulls first, as Polars sorts), first attempt first and final attempt last,
    which :func:`requests_from_runs` reduces without a hash table or a join. The callback store
    is written in this order.

    The chains come in the order of a 64-bit hash of their key, then of the key itself
    (:data:`CHAIN_ORDER`): nothing needs them in any order among themselves, two chains whose
    hashes collide are still kept apart by their keys, and a sort led by an integer costs a
    seventh of one led by two text columns (10M attempts: 7.6 against 52 CPU-s).
    """
    return attempts.sort([pl.struct(CHAIN_ORDER[:2]).hash(), *CHAIN_ORDER])


def _after(columns: Sequence[str]) -> pl.Expr:
    """The row comes strictly after the previous row in ``columns``' order, nulls first."""
    after = pl.lit(value=False)
    for c in reversed(columns):
        this, prev = pl.col(c), pl.col(c).shift()
        greater = (prev.is_null() & this.is_not_null()) | (this > prev).fill_null(value=False)
        after = greater | (this.eq_missing(prev) & after)
    return after


def chain_start(position: pl.Expr) -> pl.Expr:
    """The row starts a run: the first row (``position`` 0), or its chain key differs from the
    previous row's (a null key is a value, as in a group-by)."""
    same = pl.all_horizontal(pl.col(c).eq_missing(pl.col(c).shift()) for c in CHAIN_ORDER[:2])
    return ~same | (position == 0)


def chain_order_breaks(attempts: pl.LazyFrame) -> pl.LazyFrame:
    """One row, ``breaks``: zero exactly when :func:`requests_from_runs` gives the requests of
    ``attempts``, that is when every chain is one run of adjacent rows, each row of a run
    strictly after the row before it in :data:`ORDER` (nulls first).

    ``breaks`` counts the rows of a run not strictly after the row before them (two attempts of
    one chain with the same (``retry_attempt``, ``created_at``, ``attempt_id``) count, since
    their order would be arbitrary) plus the runs beyond one per chain (a chain split in two
    places, e.g. across two files of a store). The chains need not be in any order among
    themselves. One streaming pass of neighbour comparisons, and the distinct chains counted by
    a 64-bit hash of each run's key (a null key is a value, as in a group-by): a collision can
    only count a break that is not there, so a zero is a proof.
    """
    start = chain_start(pl.col("_pos"))
    late = (~start & ~_after(ORDER)).sum()
    chains = pl.struct(CHAIN_ORDER[:2]).hash().filter(start).n_unique()
    extra_runs = start.sum().cast(pl.Int64) - chains.cast(pl.Int64)
    breaks = (late.cast(pl.Int64) + extra_runs).alias("breaks")
    return attempts.with_row_index("_pos").select(breaks)


def requests_from_runs(attempts: pl.LazyFrame) -> pl.LazyFrame:
    """:func:`requests` of attempts whose every chain is one run of adjacent rows in
    :data:`ORDER` (a precondition: :func:`chain_order_breaks` is zero, as in :data:`CHAIN_ORDER`).

    Other rows give wrong requests: call :func:`requests` unless the precondition has been
    proven for every evaluation of ``attempts``, as the callback store's reader does
    (:func:`engine.output.store.scan_requests`; ``tests/test_architecture.py`` allows no other
    caller). A run starts where the chain key changes and ends before the next start. The starts and
    ends are kept (one row for a one-attempt chain, two adjacent rows otherwise), each start
    takes the final attempt's columns from itself or the next row, and the rest are dropped: no
    sort, no hash table, no join, and one evaluation of ``attempts`` (so the pairing cannot mix
    two evaluations' row orders). A run's position span is its number of attempts.
    """
    start = chain_start(pl.col("_pos"))
    ends = (
        attempts.with_row_index("_pos")
        .with_columns(start.alias("_start"))
        .with_columns(pl.col("_start").shift(-1, fill_value=True).alias("_end"))
        .filter(pl.col("_start") | pl.col("_end"))
    )

    def final(column: str) -> pl.Expr:
        return pl.when(pl.col("_end")).then(pl.col(column)).otherwise(pl.col(column).shift(-1))

    return (
        ends.select(
            "_start",
            *CHAIN_ORDER[:2],
            *(pl.col(a).alias(r) for r, a in _FROM_FIRST.items()),
            (final("_pos") - pl.col("_pos") + 1).cast(pl.Int64).alias("attempts"),
            *(final(a).alias(r) for r, a in _FROM_FINAL.items()),
        )
        .filter(pl.col("_start"))
        .with_columns(pl.col("retries").cast(pl.Int64))
        .select(REQUEST_COLUMNS)
    )


def requests(attempts: pl.LazyFrame) -> pl.LazyFrame:
    """One row per request: ``source``, ``original_id``, the :data:`ATTRIBUTES`, ``instant``,
    ``attempts``, ``retries``, ``outcome`` and the per-request durations (nullable).

    The attempts are sorted into :data:`CHAIN_ORDER` and each chain's run of rows is reduced
    where it lies (:func:`requests_from_runs`): exact whatever the input's row order. The result
    is cached: the sort is the cost, so the uses of one requests frame in one collect (both
    tables, their names, the document) share one sort. (Runs read from a proven store are
    cheaper to reduce again than to hold, so :func:`requests_from_runs` does not cache.) A
    caller that selects fewer columns sorts and reads only those (projection pushdown).

    Args:
        attempts: canonical callback attempts (:data:`engine.schema.CALLBACK_ATTEMPTS`), unique
            by (``source``, ``attempt_id``) as validation leaves them.

    Returns:
        :data:`REQUEST_COLUMNS`, one row per (``source``, ``original_id``), in chain order.
    """
    return requests_from_runs(in_chain_order(attempts)).cache()


def _count(condition: pl.Expr) -> pl.Expr:
    return condition.sum().cast(pl.Int64)


def _stats(name: str, value: pl.Expr) -> list[pl.Expr]:
    return [
        value.sum().alias(f"{name}_sum"),
        value.count().cast(pl.Int64).alias(f"{name}_count"),
        value.max().fill_null(0).alias(f"{name}_max"),
    ]


def measures() -> list[pl.Expr]:
    """The :data:`ADDITIVE` columns as aggregates over requests (a group, or a whole window)."""
    outcome, kind, retries = pl.col("outcome"), pl.col("type"), pl.col("retries")
    successful = outcome == "successful"
    wait = pl.when(successful).then(pl.col("customer_wait_ms"))
    talk = pl.when(successful).then(pl.col("talk_ms"))
    return [
        pl.len().cast(pl.Int64).alias("requests"),
        *(_count(outcome == o).alias(o) for o in OUTCOMES),
        _count(kind == "asap").alias("asap"),
        _count(kind == "scheduled").alias("scheduled"),
        pl.col("attempts").sum(),
        retries.sum(),
        _count(retries > 0).alias("requests_with_retries"),
        *_stats("callback_ms", pl.col("callback_ms")),
        *_stats("estimated_callback_ms", pl.col("estimated_callback_ms")),
        *_stats("punctuality_ms", pl.col("punctuality_ms"))[:2],
        *_stats("customer_wait_ms", wait),
        *_stats("talk_ms", talk),
        _count(wait <= 30_000).alias("rcsl_below30"),
        _count((wait > 30_000) & (wait <= 60_000)).alias("rcsl_31_60"),
        _count(wait > 60_000).alias("rcsl_above60"),
    ]


def combine(columns: tuple[str, ...] = ADDITIVE) -> list[pl.Expr]:
    """How additive columns of finer rows combine into a coarser row (maxima take the max)."""
    return [pl.col(c).max() if c in MAXIMA else pl.col(c).sum() for c in columns]


def in_retry_bucket(bucket: str) -> pl.Expr:
    """The request's retry count falls in ``bucket`` (``'1'`` … ``'5'`` or ``'over5'``)."""
    retries = pl.col("retries")
    return retries > 5 if bucket == "over5" else retries == int(bucket)


def retry_bucket() -> pl.Expr:
    """The request's retry bucket (null for requests without retries)."""
    retries = pl.col("retries")
    label = pl.when(retries > 5).then(pl.lit("over5")).otherwise(retries.cast(pl.String))
    return pl.when(retries > 0).then(label).cast(RETRY_BUCKETS).alias("retry_bucket")


def customers(per_key: pl.LazyFrame, *, by: Sequence[str] = ()) -> pl.LazyFrame:
    """``unique_customers`` and ``repeat_customers`` per ``by`` group (one row without ``by``).

    ``per_key`` has one row per (``*by``, ``customer_key``) with the key's number of requests in
    a column ``requests`` (:func:`requests_per_customer`): a customer is unique once per group
    and repeat when it has two requests or more there. Counting by a streaming group-by on the
    key holds one entry per key, where ``n_unique`` and ``value_counts`` each hash every key.
    """
    counts = [
        pl.len().cast(pl.Int64).alias("unique_customers"),
        _count(pl.col("requests") >= 2).alias("repeat_customers"),
    ]
    return per_key.group_by(*by).agg(counts) if by else per_key.select(counts)


def requests_per_customer(reqs: pl.LazyFrame) -> pl.LazyFrame:
    """Per non-null ``customer_key`` of ``reqs``, its number of requests (column ``requests``)."""
    key = pl.col("customer_key")
    return reqs.filter(key.is_not_null()).group_by(key).agg(pl.len().alias("requests"))


def call_target_names(reqs: pl.LazyFrame) -> pl.LazyFrame:
    """Per call target, the name on its latest request (ties: the greatest name; else the id)."""
    name = pl.col("call_target_name")
    return (
        reqs.group_by("call_target_id")
        .agg(name.sort_by(["instant", "call_target_name"], nulls_last=False).last())
        .with_columns(name.fill_null(pl.col("call_target_id")))
    )


def latest_names(reqs: pl.LazyFrame) -> pl.LazyFrame:
    """Per call target, the ``instant`` and ``call_target_name`` of its latest request in the
    order :func:`call_target_names` takes (a null name is not filled): of the rows of several
    disjoint sets of requests stacked, :func:`call_target_names` is that of their union."""
    order = pl.col("instant"), pl.col("call_target_name")
    by = ["instant", "call_target_name"]
    latest = (c.sort_by(by, nulls_last=False).last() for c in order)
    return reqs.group_by("call_target_id").agg(latest)


def finish_table(
    filled: pl.LazyFrame, names: pl.LazyFrame, *, columns: Sequence[str]
) -> pl.LazyFrame:
    """A zero-filled table with its call targets' names, in its stored column order and in
    ``filled``'s row order (:func:`engine.interval.zero_fill`'s: group, then interval).

    The last step of both interval tables, from requests and from a roll-up alike.
    """
    return filled.join(
        names, on="call_target_id", how="left", nulls_equal=True, maintain_order="left"
    ).select(columns)


def busy_table(
    agg: pl.LazyFrame,
    grid: pl.DataFrame,
    names: pl.LazyFrame,
    *,
    group: Sequence[str],
    columns: Sequence[str],
) -> pl.LazyFrame:
    """An interval table's aggregated rows (one per interval and ``group``, each counting at
    least one request) with the grid's columns and the call targets' names, in the zero-filled
    table's order (group, nulls first, then interval) and stored column order."""
    return finish_table(on_grid(agg, grid, order=group), names, columns=columns)


def rolled_up(
    table: pl.LazyFrame, grid: pl.DataFrame, *, group: Sequence[str], columns: tuple[str, ...]
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """A stored table's ``columns`` combined into the coarser intervals of ``grid``, and its names.

    Each fine interval lies in exactly one coarse interval, so combining (sums add, maxima take
    the max) is exact; a call target has one name in the whole table, so any row's will do.

    Returns:
        The rolled rows (one per coarse interval and ``group``, not zero-filled) and the names.
    """
    names = table.group_by("call_target_id").agg(pl.col("call_target_name").first())
    fine = table.select("interval_start_utc", *group, *columns).rename(
        {"interval_start_utc": "_at"}
    )
    return to_intervals(fine, grid, at="_at", by=group, combine=combine(columns)), names

"""Callback requests: attempt chains reduced to one row each, and the aggregates over requests.

Definitions are those of docs/callbacks.md. A request is the chain of attempts sharing
(``source``, ``original_id``); its first attempt has the lowest (``retry_attempt``,
``created_at``, ``attempt_id``), its final attempt the highest. The request's attributes and
instant come from the first attempt; its outcome, retry count, callback time, customer wait and
talk time from the final one; estimated callback time and punctuality from the first.

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

from engine.interval import to_intervals
from engine.schema import CALLBACK_OUTCOMES

__all__ = [
    "ADDITIVE",
    "ATTEMPTS_PER_PARTITION",
    "ATTRIBUTES",
    "CHAIN_ORDER",
    "MAXIMA",
    "ORDER",
    "OUTCOMES",
    "REQUEST_COLUMNS",
    "RETRY_BUCKETS",
    "SUMS",
    "call_target_names",
    "chain_order_breaks",
    "chain_start",
    "combine",
    "customer_counts",
    "customers",
    "finish_table",
    "in_chain_order",
    "in_retry_bucket",
    "measures",
    "partitioned_requests",
    "partitions_for",
    "requests",
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


def _chain_ends(attempts: pl.LazyFrame, ref: str) -> pl.LazyFrame:
    """Per chain, the ``ref`` of its first (``_f``) and final (``_l``) attempt.

    Only the chain and order columns are sorted (a global sort of every column the requests need
    cost twice the CPU; carrying even the numeric ones cost more memory than their join), and
    the reduction is ``min_by``/``max_by`` of the sorted position, a streaming aggregate, where
    ``get(arg_min)`` was a per-group gather.
    """
    ranked = attempts.select(*dict.fromkeys(["source", "original_id", *ORDER, ref])).sort(*ORDER)
    rank = pl.col("_rank")
    return (
        ranked.with_row_index("_rank")
        .group_by("source", "original_id")
        .agg(
            pl.col(ref).min_by(rank).alias("_f"),
            pl.col(ref).max_by(rank).alias("_l"),
            pl.len().cast(pl.Int64).alias("attempts"),
        )
    )


def in_chain_order(attempts: pl.LazyFrame) -> pl.LazyFrame:
    """``attempts`` sorted by :data:`CHAIN_ORDER` (nulls first, as Polars sorts): the store's order.

    Each chain's attempts are then one run of rows, first attempt first and final attempt last,
    and :func:`requests` with ``chain_ordered=True`` reduces them without a sort, a hash table or
    a join (benchmarks/README.md, "Callback tables"). ``build_callbacks`` writes
    ``store/callback_attempts`` in this order. The sort is the cost: 9-15 CPU-s at 10M attempts
    (``DataFrame.sort`` took 17).
    """
    return attempts.sort(CHAIN_ORDER)


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


def chain_order_breaks(attempts: pl.LazyFrame, *, starts: Sequence[int] = ()) -> pl.LazyFrame:
    """One row, ``breaks``: the rows of ``attempts`` not strictly after the row before them in
    :data:`CHAIN_ORDER` (nulls first). Zero means :func:`requests` may take ``chain_ordered``.

    Strictly: two attempts of one chain with the same (``retry_attempt``, ``created_at``,
    ``attempt_id``) count as a break, since their order would be arbitrary. The first row never
    breaks, nor do the rows at the positions ``starts``: where the files of a store whose chains
    never span two files begin (:mod:`engine.output.store`; each chain is still one run). One
    streaming pass of neighbour comparisons on the five key columns.
    """
    pos = pl.col("_pos")
    ordered = _after(CHAIN_ORDER) | (pos == 0)
    if starts:
        ordered |= pos.is_in(pl.Series(list(starts), dtype=pl.get_index_type()).implode())
    return attempts.with_row_index("_pos").select((~ordered).sum().cast(pl.Int64).alias("breaks"))


def _run_requests(attempts: pl.LazyFrame) -> pl.LazyFrame:
    """:func:`requests` of attempts in :data:`CHAIN_ORDER`: each chain is a run of rows.

    A run starts where the chain key changes and ends before the next start. The starts and
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


def requests(
    attempts: pl.LazyFrame, *, row_id: str | None = None, chain_ordered: bool = False
) -> pl.LazyFrame:
    """One row per request: ``source``, ``original_id``, the :data:`ATTRIBUTES`, ``instant``,
    ``attempts``, ``retries``, ``outcome`` and the per-request durations (nullable).

    The first and final attempts are found on the chain and order columns alone; their other
    columns are joined back by (``source``, ``attempt_id``), so a caller that selects fewer
    columns reads and joins only those (projection pushdown prunes the joins). Not by row index:
    ``attempts`` is evaluated once per join side, and a plan with an unordered step (``unique``,
    a join) need not give its rows in the same order each time. The joins build their hash
    tables on the chains (``force_left``) and stream the attempts through them: left to choose,
    the engine hashed the attempts' side (1 GiB more at 10M attempts).

    With ``row_id``, the join is on that integer column instead: one integer key rather than two
    strings (at 10M attempts, tables in 4 parts: 10.8 against 15-16 CPU-s, 1.2 against ~1.9
    GiB). It must be a value *of the row*, unique, that every evaluation of ``attempts`` gives
    alike: a column of a materialised frame (``DataFrame.with_row_index(...).lazy()``) or the
    file position a Parquet scan assigns (``pl.scan_parquet(..., row_index_name=...)``), never a
    ``with_row_index`` on a lazy plan, for the reason above.

    With ``chain_ordered``, the caller vouches that ``attempts`` yields its rows in
    :data:`CHAIN_ORDER` (:func:`in_chain_order` wrote them so, or :func:`chain_order_breaks`
    found none): each chain is then a run of rows and is reduced where it lies, with neither the
    sort nor the joins (at 10M attempts, the month's requests in about 0.5 against 5 CPU-s).
    ``row_id`` is then not needed. Wrong rows if the rows are not in that order.

    Args:
        attempts: canonical callback attempts (:data:`engine.schema.CALLBACK_ATTEMPTS`), unique
            by (``source``, ``attempt_id``) as validation leaves them.
        row_id: the name of such a row-identifying integer column, if ``attempts`` has one.
        chain_ordered: ``attempts`` is in :data:`CHAIN_ORDER`.
    """
    if chain_ordered:
        return _run_requests(attempts)
    keys = ["source"] if row_id is None else []
    ref = "attempt_id" if row_id is None else row_id
    first = attempts.select(
        *keys, pl.col(ref).alias("_f"), *(pl.col(a).alias(r) for r, a in _FROM_FIRST.items())
    )
    final = attempts.select(
        *keys, pl.col(ref).alias("_l"), *(pl.col(a).alias(r) for r, a in _FROM_FINAL.items())
    )
    return (
        _chain_ends(attempts, ref)
        .join(final, on=[*keys, "_l"], build_side="force_left")
        .join(first, on=[*keys, "_f"], build_side="force_left")
        .with_columns(pl.col("retries").cast(pl.Int64))
        .select(REQUEST_COLUMNS)
    )


#: Attempts per part of :func:`partitioned_requests` that :func:`partitions_for` aims at.
ATTEMPTS_PER_PARTITION: Final = 2_500_000


def partitions_for(attempts: int) -> int:
    """How many parts to build the requests of ``attempts`` attempts in (one up to 2.5M).

    At 10M attempts (both tables, lz4 Parquet) one pass peaked at 2.8 GiB, two parts at 2.2,
    four at 1.9-2.0 and eight at 1.7, for 13, 14, 15-16 and 18 CPU-s: each part reads the attempts
    again. Below 2.5M the extra passes cost more than the memory they save
    (benchmarks/README.md, "Callback tables").
    """
    return max(1, -(-attempts // ATTEMPTS_PER_PARTITION))


def partitioned_requests(
    attempts: pl.LazyFrame,
    *,
    where: Sequence[pl.Expr],
    columns: Sequence[str],
    partitions: int = 1,
    row_id: str | None = None,
    chain_ordered: bool = False,
) -> pl.LazyFrame:
    """The :func:`requests` satisfying ``where``, only ``columns``, built in ``partitions`` parts.

    Part ``p`` holds the chains whose ``original_id`` hashes to ``p`` modulo ``partitions``. A
    chain has one ``original_id``, so it never spans two parts (hashing ``source`` too would
    change nothing but the cost) and the parts' union is exactly :func:`requests`. Each part's
    sort and chain hash table hold about ``1/partitions`` of the attempts, which is what bounds
    peak memory; every part reads the scan again, which is what it costs (see
    benchmarks/README.md).

    Args:
        attempts: canonical callback attempts.
        where: conditions on request columns that a request must meet (e.g. its instant in the
            window).
        columns: the request columns to keep (narrow: the concatenation is held).
        partitions: number of parts (1: one pass).
        row_id: a row-identifying integer column of ``attempts`` (see :func:`requests`).
        chain_ordered: ``attempts`` is in :data:`CHAIN_ORDER` (see :func:`requests`); the
            requests are then built in one pass whatever ``partitions`` says: a run reduction
            holds no more than the kept columns of the requests.
    """
    if partitions < 1:
        msg = f"partitions must be at least 1, not {partitions}"
        raise ValueError(msg)
    if chain_ordered:
        return requests(attempts, chain_ordered=True).filter(*where).select(columns)
    if partitions == 1:
        return requests(attempts, row_id=row_id).filter(*where).select(columns)
    part = pl.col("original_id").hash(seed=0) % partitions
    return pl.concat(
        [
            requests(attempts.filter(part == p), row_id=row_id).filter(*where).select(columns)
            for p in range(partitions)
        ],
        parallel=False,
    )


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


def customers() -> list[pl.Expr]:
    """``unique_customers`` (distinct non-null keys) and ``repeat_customers`` (>= 2 requests)."""
    key = pl.col("customer_key").drop_nulls()
    return [
        key.n_unique().cast(pl.Int64).alias("unique_customers"),
        # value_counts, not unique_counts: the latter fails on an empty selection (Polars 2.1).
        _count(key.value_counts().struct.field("count") >= 2).alias("repeat_customers"),
    ]


def customer_counts(reqs: pl.LazyFrame, *, part: tuple[int, int] = (0, 1)) -> pl.LazyFrame:
    """:func:`customers` over all of ``reqs``, as one row, by a group-by on the key.

    The same numbers as ``reqs.select(customers())``, for less CPU on a whole window (about a
    quarter less for the month's document at 10M attempts): one streaming group-by counts each
    key's requests, where ``n_unique`` and ``value_counts`` hash every key twice.

    With ``part=(p, k)``, only the keys whose hash is ``p`` modulo ``k``: a key falls in exactly
    one part, so the ``k`` parts' counts add up to the whole exactly (the hash only splits the
    keys; the keys themselves are compared in full). Collected one after the other, each part's
    hash table holds about ``1/k`` of the keys (the month at 10M attempts: 3.6M keys of 64
    characters, ~1.3 GB in one group-by).
    """
    p, k = part
    if not 0 <= p < k:
        msg = f"part {p} of {k} does not exist"
        raise ValueError(msg)
    key = pl.col("customer_key")
    keys = reqs.select(key).filter(key.is_not_null())
    if k > 1:
        keys = keys.filter(key.hash(seed=0) % k == p)
    per_key = keys.group_by(key).len()
    return per_key.select(
        pl.len().cast(pl.Int64).alias("unique_customers"),
        _count(pl.col("len") >= 2).alias("repeat_customers"),
    )


def call_target_names(reqs: pl.LazyFrame) -> pl.LazyFrame:
    """Per call target, the name on its latest request (ties: the greatest name; else the id)."""
    name = pl.col("call_target_name")
    return (
        reqs.group_by("call_target_id")
        .agg(name.sort_by(["instant", "call_target_name"], nulls_last=False).last())
        .with_columns(name.fill_null(pl.col("call_target_id")))
    )


def finish_table(
    filled: pl.LazyFrame, names: pl.LazyFrame, *, columns: Sequence[str], order: Sequence[str]
) -> pl.LazyFrame:
    """A zero-filled table with its call targets' names, in its stored column and row order.

    The last step of both interval tables, from requests and from a roll-up alike.
    """
    return (
        filled.join(names, on="call_target_id", how="left", nulls_equal=True)
        .select(columns)
        .sort(order)
    )


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

"""Callback requests: attempt chains reduced to one row each, and the aggregates over requests.

Definitions are those of docs/callbacks.md. A request is the chain of attempts sharing
(``source``, ``original_id``); its first attempt has the lowest (``retry_attempt``,
``created_at``, ``attempt_id``), its final attempt the highest. The request's attributes and
instant come from the first attempt; its outcome, retry count, callback time, customer wait and
talk time from the final one; estimated callback time and punctuality from the first.

The aggregates (:func:`measures`) are what the interval tables store and what the metrics document
reports, so the two agree by construction; :func:`combine` says how they add up across rows.

Example:
    >>> from engine.synthetic_callbacks import generate_attempts
    >>> reqs = requests(generate_attempts(days=1, scale=0.2).lazy())
    >>> row = reqs.select(measures()).collect().row(0, named=True)
    >>> row["requests"] == sum(row[o] for o in OUTCOMES)
    True
"""

from __future__ import annotations

from typing import Final

import polars as pl

from engine.schema import CALLBACK_OUTCOMES

__all__ = [
    "ADDITIVE",
    "ATTRIBUTES",
    "MAXIMA",
    "OUTCOMES",
    "RETRY_BUCKETS",
    "SUMS",
    "call_target_names",
    "combine",
    "customers",
    "in_retry_bucket",
    "measures",
    "requests",
    "retry_bucket",
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


def requests(attempts: pl.LazyFrame) -> pl.LazyFrame:
    """One row per request: ``source``, ``original_id``, the :data:`ATTRIBUTES`, ``instant``,
    ``attempts``, ``retries``, ``outcome`` and the per-request durations (nullable).

    Args:
        attempts: canonical callback attempts (:data:`engine.schema.CALLBACK_ATTEMPTS`).
    """
    ranked = attempts.sort("retry_attempt", "created_at", "attempt_id").with_row_index("_rank")
    first, final = pl.col("_rank").arg_min(), pl.col("_rank").arg_max()
    return ranked.group_by("source", "original_id").agg(
        *(pl.col(c).get(first) for c in ATTRIBUTES),
        pl.col("created_at").get(first).alias("instant"),
        pl.len().cast(pl.Int64).alias("attempts"),
        pl.col("retry_attempt").get(final).cast(pl.Int64).alias("retries"),
        pl.col("outcome").get(final),
        pl.col("callback_ms").get(final),
        pl.col("estimated_callback_ms").get(first),
        pl.col("punctuality_ms").get(first),
        pl.col("customer_wait_ms").get(final),
        pl.col("talk_ms").get(final),
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


def call_target_names(reqs: pl.LazyFrame) -> pl.LazyFrame:
    """Per call target, the name on its latest request (ties: the greatest name; else the id)."""
    name = pl.col("call_target_name")
    return (
        reqs.group_by("call_target_id")
        .agg(name.sort_by(["instant", "call_target_name"], nulls_last=False).last())
        .with_columns(name.fill_null(pl.col("call_target_id")))
    )

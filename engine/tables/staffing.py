"""The ``staffing`` table (SPEC §10): agents required per interval x queue x channel, by Erlang C.

From a volume table (:mod:`engine.tables.callvolume`): the offered load in Erlangs ``A = offered
* AHT / interval`` (AHT from the interval itself, ``handle_ms / answered``, or
``staffing_default_aht_ms`` where nothing was answered or no handle time was recorded), the
configured threshold ``T`` of the queue and channel (``sl_default_ms`` and ``sl_overrides``; a
record's own threshold does not apply to a plan) and the channel's target ``sl_target``.
``agents_required`` is the smallest ``N > A`` whose Erlang C service level ``1 - C(N, A) *
exp(-(N - A) * T / AHT)`` reaches the target; the table also gives that service level, the
occupancy ``A / N`` and the probability of waiting ``C(N, A)``. An interval with nothing offered
needs 0 agents (service level null).

Computed as expressions, one frame for every row: each row's candidate agent counts
(``A ± 8 sqrt(A)``, enough for any target up to 0.999) are exploded, the Poisson terms built
by a running sum of logarithms (no factorial overflows, no Python loop over rows), Erlang B as a
term over its running total, Erlang C from it. Erlang A (abandonment with known patience) is not
computed: the tables hold the waits of abandoned contacts, which are censored by the answers, so
patience is not known from them.

Example:
    >>> from datetime import datetime, UTC
    >>> from engine.settings import BuildSettings
    >>> t = pl.LazyFrame({"interval_start_utc": [datetime(2026, 10, 1, tzinfo=UTC)],
    ...                   "queue_id": ["q1"], "channel": ["voice"], "offered": [100],
    ...                   "answered": [100], "handle_ms": [100 * 180_000]})
    >>> build(t, settings=BuildSettings(interval_minutes=30)).collect()["agents_required"][0]
    14
"""

from __future__ import annotations

from typing import Final

import polars as pl

from engine.settings import BuildSettings
from engine.tables.callvolume import configured_threshold_ms

__all__ = ["KEYS", "SCHEMA", "build"]

KEYS: Final = ("interval_start_utc", "queue_id", "channel")
SCHEMA: Final[dict[str, pl.DataType]] = {
    "interval_start_utc": pl.Datetime("us", "UTC"),
    "queue_id": pl.String(),
    "channel": pl.String(),
    "offered": pl.Int64(),
    "aht_ms": pl.Float64(),
    "load_erlangs": pl.Float64(),
    "threshold_ms": pl.Int64(),
    "sl_target": pl.Float64(),
    "agents_required": pl.Int64(),
    "service_level": pl.Float64(),
    "wait_probability": pl.Float64(),
    "occupancy": pl.Float64(),
}
_LENGTH: Final = "__interval_ms"
_SPREAD: Final = 8.0  #: candidates span A ± this many sqrt(A) (and a margin)


def _by_channel(
    values: dict[str, float] | dict[str, int], default: float, dtype: pl.DataType
) -> pl.Expr:
    expr = pl.lit(default, dtype)
    for channel, v in values.items():
        expr = pl.when(pl.col("channel") == channel).then(pl.lit(v, dtype)).otherwise(expr)
    return expr


def _required(base: pl.LazyFrame) -> pl.LazyFrame:
    """Per ``row`` with a load: the smallest agent count reaching the target, its service level
    and waiting probability."""
    a = pl.col("load_erlangs")
    spread = _SPREAD * a.sqrt()
    lo = (a - spread - 5).floor().clip(lower_bound=0).cast(pl.Int64)
    hi = (a + spread + 30).ceil().cast(pl.Int64)
    k = pl.col("k")
    first = k == k.min().over("row")
    # log P(k) - log P(lo) for the Poisson(A) terms: a running sum of log A - log k.
    step = pl.when(first).then(0.0).otherwise(a.log() - k.cast(pl.Float64).log())
    rel = step.cum_sum().over("row")
    term = (rel - rel.max().over("row")).exp()
    erlang_b = term / term.cum_sum().over("row")
    kf = k.cast(pl.Float64)
    erlang_c = kf * erlang_b / (kf - a * (1 - erlang_b))
    sl = 1 - erlang_c * (-(kf - a) * pl.col("threshold_ms") / pl.col("aht_ms")).exp()
    return (
        base.filter(a > 0)
        .select(
            "row",
            "load_erlangs",
            "threshold_ms",
            "aht_ms",
            "sl_target",
            pl.int_ranges(lo, hi + 1).alias("k"),
        )
        .explode("k")
        .with_columns(erlang_c.alias("wait_probability"), sl.alias("service_level"))
        .filter((kf > a) & (pl.col("service_level") >= pl.col("sl_target")))
        .group_by("row")
        .agg(
            pl.col("k").first().alias("agents_required"),
            pl.col("service_level").first(),
            pl.col("wait_probability").first(),
        )
    )


def build(table: pl.LazyFrame, *, settings: BuildSettings) -> pl.LazyFrame:
    """The staffing rows of a volume table, one per its row, in its order.

    Args:
        table: rows with ``interval_start_utc``, ``queue_id``, ``channel``, ``offered``,
            ``answered`` and ``handle_ms`` (a volume table, sparse or zero-filled); with
            ``interval_end_utc`` (as a volume table has), each interval's load is over its own
            length (an interval spanning a DST jump is as long as the wall clock makes it),
            else over ``settings.interval_minutes``.
        settings: interval length, thresholds, ``sl_target``, ``staffing_default_aht_ms``.

    Returns:
        :data:`SCHEMA` columns: every row with something offered has ``agents_required > 0``
        and ``service_level >= sl_target``; one agent fewer would not reach the target (or
        could not carry the load).
    """
    interval_ms = pl.lit(settings.interval_minutes * 60_000)
    if "interval_end_utc" in table.collect_schema():  # 90 or 30 minutes across a DST jump
        length = pl.col("interval_end_utc") - pl.col("interval_start_utc")
        interval_ms = length.dt.total_milliseconds()
    answered = pl.col("answered")
    aht = (
        pl.when((answered > 0) & (pl.col("handle_ms") > 0))
        .then(pl.col("handle_ms") / answered)
        .otherwise(float(settings.staffing_default_aht_ms))
    )
    base = table.select(
        *KEYS,
        pl.col("offered").cast(pl.Int64),
        aht.alias("aht_ms"),
        configured_threshold_ms(settings).alias("threshold_ms"),
        interval_ms.alias(_LENGTH),
        _by_channel(settings.sl_target, settings.sl_target["voice"], pl.Float64()).alias(
            "sl_target"
        ),
    ).with_columns(
        (pl.col("offered") * pl.col("aht_ms") / pl.col(_LENGTH)).alias("load_erlangs"),
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("row"),
    )
    return (
        base.join(_required(base), on="row", how="left", maintain_order="left")
        .with_columns(
            pl.col("channel").cast(pl.String),
            pl.col("agents_required").fill_null(0),
            pl.when(pl.col("agents_required") > 0)
            .then(pl.col("load_erlangs") / pl.col("agents_required"))
            .alias("occupancy"),
        )
        .select(list(SCHEMA))
        .cast(SCHEMA)  # type: ignore[arg-type]
    )

"""The long forecasting format (``unique_id``, ``ds``, ``y``) that statsforecast, Prophet and
the other Nixtla tools read.

One series per queue, channel and metric: ``unique_id`` is ``queue_id|channel|metric``, ``ds``
is the interval start *without* a zone (forecasting libraries want naive stamps): in UTC by
default (strictly increasing; regular where the zone's DST jumps are whole intervals), or on
the reporting zone's wall clock with ``time="local"`` (``[output] forecast_time``), where a
centre's daily curve does not move at a DST change; and ``y`` the metric as a float. Only
additive metrics are offered: they are zero-filled, so every series is complete. Forecast
the workload (``offered``, ``answered``, ``handle_ms``) and derive AHT as
``handle_ms / answered`` from the forecasts, rather than forecasting a ratio.

Example:
    >>> from datetime import datetime, UTC, timedelta
    >>> from engine.tables import callvolume
    >>> from engine.settings import BuildSettings
    >>> from engine.demo.contacts import generate_contacts
    >>> w = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
    >>> t = callvolume.build(generate_contacts(start=w[0], days=1, scale=0.1).lazy(), window=w,
    ...                      settings=BuildSettings())
    >>> long_format(t, metrics=("offered",)).collect().columns
    ['unique_id', 'ds', 'y']
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import polars as pl

from engine.interval import known_zone
from engine.tables.callvolume import ADDITIVE, MAXIMA

__all__ = ["DEFAULT_METRICS", "long_format"]

DEFAULT_METRICS: tuple[str, ...] = ("offered", "answered", "abandoned", "handle_ms")


def long_format(
    table: pl.LazyFrame,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    time: Literal["utc", "local"] = "utc",
    closed: datetime | None = None,
    tz: str | None = None,
) -> pl.LazyFrame:
    """The volume table as one long frame of series, sorted by ``unique_id`` and ``ds``.

    Args:
        table: a volume table (:data:`engine.tables.callvolume.SCHEMA` columns).
        metrics: additive columns to turn into series.
        time: ``ds`` as the interval start in UTC (``"utc"``, strictly increasing; regular
            where the zone's DST jumps are whole intervals, not Lord Howe's 30 minutes), or on
            the reporting zone's wall clock (``"local"``, its ``interval_start_local``: a
            centre's daily curve stays put across DST changes). Local stamps skip the
            spring-forward hour, and the fall-back hour's two intervals of each stamp are
            merged into one row as a roll-up merges them (a count or duration summed, a
            ``*_max_ms`` its maximum), so it is exact.
        closed: publish only what had closed by this instant (aware, in any zone), as the
            exports do (:func:`engine.output.vendor.closed_by`): a UTC row whose interval ended
            by then; a local stamp when every interval it stands for ended by then.
        tz: the zone ``table`` was built in (``[build] tz``), for local stamps: each is then
            published only when every interval it stands for is in ``table``.

    A local stamp is published only when it is complete: a fall-back stamp is never written
    with its first interval alone while the second is still running (with ``closed``) or
    outside the table (with ``tz``), only to change later; it is left out until both are in.
    The exports give both.

    Raises:
        ValueError: a metric is not an additive column of the volume table; ``time`` neither
            ``"utc"`` nor ``"local"``; a naive ``closed``; a ``tz`` Python or Polars does not
            know.
    """
    unknown = [m for m in metrics if m not in ADDITIVE]
    if unknown:
        msg = f"not additive volume columns: {unknown} (choose from {list(ADDITIVE)})"
        raise ValueError(msg)
    if time not in ("utc", "local"):  # "UTC" was taken for "local": series shifted, silently
        raise ValueError(f"time {time!r}: 'utc' or 'local'")
    if closed is not None:
        if closed.tzinfo is None:
            msg = f"closed {closed.isoformat()} is naive: give an aware instant"
            raise ValueError(msg)
        closed = closed.astimezone(UTC)  # the table's instants are UTC
    if tz is not None:
        known_zone(tz)
    stamp = "interval_start_utc" if time == "utc" else "interval_start_local"
    table = table.filter(_published(time, closed, tz))
    series = table.unpivot(
        index=["queue_id", "channel", stamp], on=list(metrics), variable_name="metric",
        value_name="y",
    ).select(
        pl.concat_str(
            "queue_id", pl.col("channel").cast(pl.String), "metric", separator="|"
        ).alias("unique_id"),
        pl.col(stamp).dt.replace_time_zone(None).alias("ds"),
        pl.col("y").cast(pl.Float64),
        pl.col("metric").is_in(list(MAXIMA)).alias("__max"),
    )  # fmt: skip
    if time == "local":
        y = pl.col("y")
        merged = pl.when(pl.col("__max").first()).then(y.max()).otherwise(y.sum())
        series = series.group_by("unique_id", "ds").agg(merged.alias("y"))
    else:
        series = series.drop("__max")
    return series.sort("unique_id", "ds")


def _published(time: Literal["utc", "local"], closed: datetime | None, tz: str | None) -> pl.Expr:
    """Which rows of a volume table :func:`long_format` publishes (see there): with UTC stamps
    the intervals ended by ``closed``; with local ones the rows of each stamp whose every
    interval ended by ``closed`` and, with ``tz``, whose earliest and latest instants on that
    wall clock (a fall-back stamp's two) are its first and last interval in the table."""
    end = pl.col("interval_end_utc")
    if time == "utc":
        return pl.lit(value=True) if closed is None else end <= closed
    local, start = pl.col("interval_start_local"), pl.col("interval_start_utc")
    keep = pl.lit(value=True) if closed is None else end.max().over(local) <= closed
    if tz is not None:
        wall = local.dt.replace_time_zone(None)
        first, last = (
            wall.dt.replace_time_zone(tz, ambiguous=which).dt.convert_time_zone("UTC")
            for which in ("earliest", "latest")
        )
        keep &= (start.min().over(local) == first) & (start.max().over(local) == last)
    return keep

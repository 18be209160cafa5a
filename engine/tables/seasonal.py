"""A seasonal naive forecast of the forecasting format (``unique_id``, ``ds``, ``y``).

Each interval of the forecast is the mean of the same local interval one, two, ... ``seasons``
weeks before (the weeks the history holds; none: null). This is the baseline WFM teams start
from: it keeps each queue's weekday-by-interval shape exactly, needs no fitting, and any model
worth using must beat it. It is written here with Polars joins rather than taken from
statsforecast, whose ``SeasonalNaive`` repeats one season only (no mean of weeks) and which
brings numba and a compile step into a nightly run for a model of a few lines.

``ds`` is read on the wall clock of ``tz`` (``UTC`` by default: the UTC forecasting export;
the zone the tables were built in for the local one), which is where a centre's weekly curve
stays put. Across a DST change, as the local export writes it:

- a stamp the clock skips (New York's 02:00-02:45 on a spring-forward day) is not forecast,
  and a past week's skipped stamp is no history (not a zero): that interval of a week after
  averages the other weeks;
- a stamp the clock shows twice (01:00-01:45 on a fall-back day) is one row standing for both
  its intervals (their sum; a ``*_max_ms`` series: their maximum). As history it counts as
  one interval's worth (``y / 2``; a maximum as it is), and as a forecast it is both intervals'
  (twice the mean; a maximum the mean), so a day's forecast sums over its real intervals: with
  10 contacts in every quarter-hour, 920 on a spring-forward day, 1000 on a fall-back day and
  960 on every other one.

Example:
    >>> from datetime import datetime, timedelta
    >>> t0 = datetime(2026, 10, 1)
    >>> ds = [t0 + timedelta(minutes=15 * i) for i in range(4 * 96 * 7)]
    >>> h = pl.LazyFrame({"unique_id": "q|voice|offered", "ds": ds,
    ...                   "y": [float(i % 96) for i in range(len(ds))]})
    >>> f = forecast(h, start=t0 + timedelta(days=28), days=1, interval_minutes=15).collect()
    >>> f.height, f["y_hat"][5]
    (96, 5.0)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

import polars as pl

from engine.interval import known_zone

__all__ = ["SEASON_DAYS", "forecast", "occurrences"]

SEASON_DAYS: Final = 7  #: one season is a week


def occurrences(stamp: pl.Expr, tz: str) -> pl.Expr:
    """How many intervals start at the naive local wall-clock ``stamp`` in ``tz``: 0 where the
    clock skips it (spring forward), 2 where it shows it twice (fall back), else 1 (Int32)."""
    first = stamp.dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
    second = stamp.dt.replace_time_zone(tz, ambiguous="latest", non_existent="null")
    count = pl.when(first.is_null()).then(0).when(first != second).then(2).otherwise(1)
    return count.cast(pl.Int32)


def forecast(
    history: pl.LazyFrame,
    *,
    start: datetime,
    days: int,
    interval_minutes: int,
    seasons: int = 4,
    tz: str = "UTC",
) -> pl.LazyFrame:
    """Forecast every series of ``history`` over ``days`` days of intervals from ``start``.

    Only history before ``start`` is read, so the same call backtests a past period (compare
    its ``y_hat`` with the actual ``y``) or forecasts the next days (``start`` just after the
    last ``ds``). Each forecast stamp is the mean over the past weeks of the same local stamp
    (``ds`` minus whole weeks on the wall clock), per interval: see the module's DST rules.

    Args:
        history: ``unique_id`` (String; one ending ``_max_ms`` is a maximum), ``ds`` (naive
            wall-clock stamps of ``tz`` on the interval grid, a fall-back hour's two intervals
            of one stamp in one row), ``y``. Rows at stamps ``tz`` skips are not read.
        start: the first forecast interval (naive, like ``ds``).
        days: how many days to forecast, 1 to 7 (a week ahead at most: each interval needs the
            same interval of a past week).
        interval_minutes: the grid's interval length.
        seasons: how many past weeks to average, at least 1.
        tz: the IANA zone whose wall clock ``ds`` is on.

    Returns:
        ``unique_id``, ``ds``, ``y_hat`` (Float64, null where no past week holds the interval),
        one row per series and stamp of the period that the clock shows (none for a skipped
        stamp), sorted by ``unique_id`` and ``ds``.

    Raises:
        ValueError: ``days`` or ``seasons`` out of range, or ``tz`` not an IANA zone.
    """
    if not 1 <= days <= SEASON_DAYS:
        msg = f"forecast days must be 1 to {SEASON_DAYS}, got {days}"
        raise ValueError(msg)
    if seasons < 1:
        msg = f"seasons must be at least 1, got {seasons}"
        raise ValueError(msg)
    known_zone(tz)
    step = timedelta(minutes=interval_minutes)
    end = start + timedelta(days=days)
    maximum = pl.col("unique_id").cast(pl.String).str.ends_with("_max_ms")  # any id type
    ds = pl.col("ds").dt.cast_time_unit("us")
    past = (
        history.filter(pl.col("ds") < start)
        .select("unique_id", ds.alias("past_ds"), "y", occurrences(ds, tz).alias("n"))
        .filter(pl.col("n") > 0)
        .select(
            "unique_id",
            "past_ds",
            (pl.col("y") / pl.when(maximum).then(1).otherwise(pl.col("n"))).alias("y"),
        )
    )
    ids = past.select("unique_id").unique()
    grid = (
        pl.LazyFrame({"ds": pl.datetime_range(start, end - step, step, eager=True, time_unit="us")})
        .with_columns(occurrences(pl.col("ds"), tz).alias("n"))
        .filter(pl.col("n") > 0)
    )
    lags = pl.LazyFrame({"lag": list(range(1, seasons + 1))})
    season = pl.duration(days=SEASON_DAYS * pl.col("lag"))
    wanted = (
        ids.join(grid, how="cross")
        .join(lags, how="cross")
        .with_columns((pl.col("ds") - season).alias("past_ds"))
    )
    per_interval = pl.col("y").mean() * pl.when(maximum.first()).then(1).otherwise(
        pl.col("n").first()
    )
    return (
        wanted.join(past, on=["unique_id", "past_ds"], how="left")
        .group_by("unique_id", "ds")
        .agg(per_interval.cast(pl.Float64).alias("y_hat"))
        .sort("unique_id", "ds")
    )

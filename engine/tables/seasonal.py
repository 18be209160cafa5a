"""A seasonal naive forecast of the forecasting format (``unique_id``, ``ds``, ``y``).

Each interval of the forecast is the mean of the same interval one, two, ... ``seasons`` weeks
before (the weeks the history holds; none: null). This is the baseline WFM teams start from: it
keeps each queue's weekday-by-interval shape exactly, needs no fitting, and any model worth using
must beat it. It is written here with Polars joins rather than taken from statsforecast, whose
``SeasonalNaive`` repeats one season only (no mean of weeks) and which brings numba and a
compile step into a nightly run for a model of a few lines.

The seasons are taken on ``ds`` as given: with ``ds`` in UTC a local centre's curve moves at a
DST change; with local wall-clock ``ds`` it does not.

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

__all__ = ["SEASON_DAYS", "forecast"]

SEASON_DAYS: Final = 7  #: one season is a week


def forecast(
    history: pl.LazyFrame,
    *,
    start: datetime,
    days: int,
    interval_minutes: int,
    seasons: int = 4,
) -> pl.LazyFrame:
    """Forecast every series of ``history`` over ``days`` days of intervals from ``start``.

    Only history before ``start`` is read, so the same call backtests a past period (compare
    its ``y_hat`` with the actual ``y``) or forecasts the next days (``start`` just after the
    last ``ds``).

    Args:
        history: ``unique_id``, ``ds`` (naive datetimes on the interval grid), ``y``.
        start: the first forecast interval (naive, like ``ds``).
        days: how many days to forecast, 1 to 7 (a week ahead at most: each interval needs the
            same interval of a past week).
        interval_minutes: the grid's interval length.
        seasons: how many past weeks to average, at least 1.

    Returns:
        ``unique_id``, ``ds``, ``y_hat`` (Float64, null where no past week holds the interval),
        sorted by ``unique_id`` and ``ds``.

    Raises:
        ValueError: ``days`` or ``seasons`` out of range.
    """
    if not 1 <= days <= SEASON_DAYS:
        msg = f"forecast days must be 1 to {SEASON_DAYS}, got {days}"
        raise ValueError(msg)
    if seasons < 1:
        msg = f"seasons must be at least 1, got {seasons}"
        raise ValueError(msg)
    step = timedelta(minutes=interval_minutes)
    end = start + timedelta(days=days)
    past = history.filter(pl.col("ds") < start).select("unique_id", "ds", "y")
    ids = past.select("unique_id").unique()
    grid = pl.LazyFrame(
        {"ds": pl.datetime_range(start, end - step, step, eager=True, time_unit="us")}
    )
    lags = pl.LazyFrame({"lag": list(range(1, seasons + 1))})
    season = pl.duration(days=SEASON_DAYS * pl.col("lag"))
    wanted = (
        ids.join(grid, how="cross")
        .join(lags, how="cross")
        .with_columns((pl.col("ds").dt.cast_time_unit("us") - season).alias("past_ds"))
    )
    return (
        wanted.join(
            past.with_columns(pl.col("ds").dt.cast_time_unit("us")).rename({"ds": "past_ds"}),
            on=["unique_id", "past_ds"],
            how="left",
        )
        .group_by("unique_id", "ds")
        .agg(pl.col("y").mean().alias("y_hat"))
        .sort("unique_id", "ds")
    )

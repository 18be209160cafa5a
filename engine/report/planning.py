"""The report's per-channel figures and its staffing and forecast-vs-actual numbers.

Service level and ASA mean different things on different channels (a 20 s voice threshold, a
1 h email one), so the report never blends them: :func:`channel_totals` gives each channel its
own totals, ratios derived from that channel's sums, and the threshold and target the build
planned with (from the ``staffing`` table; where there is none, the channel's threshold and target
the build recorded, else the defaults).

:func:`plan_days` gives, per local day and channel of the window's last week, the contacts
offered, the seasonal naive forecast of them (:mod:`engine.tables.seasonal`, from the store's
history before that week, on local wall-clock intervals), the offered load and the agent-hours
and peak agents the ``staffing`` table requires. Stored tables may hold busy rows only: the
history is zero-filled on the local interval grid up to the window's end before it is
forecast, so a closed day is a day of zeros, not a missing one.

Example:
    ``plan = plan_days(store_dir, window=data.window, tz="Europe/Berlin", interval=15)``
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import polars as pl

from engine.interval import Grid, Window
from engine.output import delta
from engine.settings import BuildSettings, SlFormula
from engine.tables import callvolume, seasonal

__all__ = ["PLAN_COLUMNS", "channel_totals", "plan_days", "staffing_table"]

PLAN_COLUMNS: Final = ("day", "channel", "offered", "forecast", "load_hours", "agent_hours",
                       "peak_agents")  # fmt: skip
_SUMS: Final = tuple(c for c in callvolume.ADDITIVE if c not in callvolume.MAXIMA)


def staffing_table(root: Path, *, days: list[date] | None = None) -> pl.LazyFrame | None:
    """The ``staffing`` table of a build's output directory (or its ``store/``), if any; with
    ``days``, those partitions only, read into memory once."""
    for path in (root / "store" / "staffing", root / "staffing"):
        if delta.is_table(path):
            if days is None:
                return delta.scan(path)
            return delta.scan(path, days=days).collect().lazy()
    return None


def channel_totals(
    queues: pl.DataFrame,
    staffing: pl.LazyFrame | None,
    *,
    sl_formula: SlFormula,
    built: BuildSettings | None = None,
) -> list[dict[str, Any]]:
    """One dict per channel: the window's sums, derived ratios, ``threshold_ms`` and
    ``sl_target`` (the most common of the channel's rows in ``staffing``, else the channel's
    own in ``built``).

    Args:
        queues: the report's per-queue window totals (additive columns and ``channel``).
        staffing: the staffing table, if the store has one.
        sl_formula: the report's service-level formula.
        built: the service-level settings the store was built with (default: the defaults).
    """
    if queues.height == 0:
        return []
    settings = (built or BuildSettings()).model_copy(update={"sl_formula": sl_formula})
    sums = queues.group_by("channel").agg(
        *(pl.col(c).sum() for c in _SUMS), *(pl.col(c).max() for c in callvolume.MAXIMA)
    )
    derived = callvolume.derive(sums.lazy(), settings=settings)
    targets = pl.LazyFrame(
        {
            "channel": list(settings.sl_target),
            "sl_target": list(settings.sl_target.values()),
            "threshold_ms": [settings.threshold_ms("", c) for c in settings.sl_target],
        }
    )
    if staffing is not None:
        stored = staffing.group_by("channel").agg(
            pl.col("sl_target").mode().first(), pl.col("threshold_ms").mode().first()
        )
        targets = stored.join(targets, on="channel", how="full", coalesce=True).select(
            "channel",
            pl.coalesce("sl_target", "sl_target_right").alias("sl_target"),
            pl.coalesce("threshold_ms", "threshold_ms_right").alias("threshold_ms"),
        )
    out = derived.with_columns(pl.col("channel").cast(pl.String)).join(
        targets, on="channel", how="left"
    )
    return out.sort("channel").collect().to_dicts()


def _history(
    volume: pl.LazyFrame,
    window: Window,
    tz: str,
    interval: int,
    held: tuple[datetime | None, datetime | None],
) -> pl.LazyFrame:
    """Offered per channel and local wall-clock stamp before the window's end, zero-filled on
    the local grid from ``held[0]`` (else the first busy interval) to the window's end (or
    ``held[1]`` before it, but never before the last busy interval): the stamps the clock
    skips are not on it, and a repeated stamp's two intervals are one row (summed), as in the
    local forecasting format :func:`engine.tables.seasonal.forecast` reads."""
    held_from, held_to = held
    end = window[1] if held_to is None else min(window[1], held_to)
    local = pl.col("interval_start_utc").dt.convert_time_zone(tz).dt.replace_time_zone(None)
    local = local.dt.cast_time_unit("us")
    busy = (
        volume.filter(pl.col("interval_start_utc") < window[1])
        .group_by(pl.col("channel").cast(pl.String).alias("unique_id"), local.alias("ds"))
        .agg(pl.col("offered").sum().cast(pl.Float64).alias("y"))
    )
    lo = pl.col("ds").min()
    if held_from is not None:  # back from the first busy interval, on its grid, to held_from
        start = pl.lit(held_from.astimezone(ZoneInfo(tz)).replace(tzinfo=None), pl.Datetime("us"))
        step_us = interval * 60_000_000
        steps = ((lo - start).dt.total_microseconds() // step_us).clip(0)
        lo = lo - pl.duration(microseconds=steps * step_us)
    # the last stamp: the wall clock just before ``end`` (past a repeated hour's first pass too)
    hi = pl.max_horizontal(
        pl.lit(_local(end - timedelta(microseconds=1), tz), pl.Datetime("us")),
        pl.col("ds").max(),
    )
    bounds = busy.select(lo.alias("lo"), hi.alias("hi"))
    step = f"{interval}m"
    grid = (
        bounds.select(pl.datetime_ranges("lo", "hi", step, time_unit="us").alias("ds"))
        .explode("ds")
        .filter(seasonal.occurrences(pl.col("ds"), tz) > 0)
    )
    grid = pl.concat([grid, busy.select("ds")]).unique()  # a busy stamp is never dropped
    ids = busy.select("unique_id").unique()
    full = ids.join(grid, how="cross")
    return full.join(busy, on=["unique_id", "ds"], how="left").with_columns(
        pl.col("y").fill_null(0.0)
    )


def _local(at: datetime, tz: str) -> datetime:
    """``at`` on ``tz``'s wall clock, naive."""
    return at.astimezone(ZoneInfo(tz)).replace(tzinfo=None)


def _last_week(window: Window, tz: str) -> tuple[datetime, int]:
    """The first local midnight (naive) and number of the window's last (up to) 7 whole local
    days: local midnight to local midnight in ``tz``, however many hours a DST day has."""
    local_start, local_end = _local(window[0], tz), _local(window[1], tz)
    midnight = local_start.replace(hour=0, minute=0, second=0, microsecond=0)
    first = midnight if midnight == local_start else midnight + timedelta(days=1)
    last = local_end.replace(hour=0, minute=0, second=0, microsecond=0)
    first = max(first, last - timedelta(days=seasonal.SEASON_DAYS))
    return first, (last - first).days


def plan_days(
    volume: pl.LazyFrame,
    staffing: pl.LazyFrame | None,
    *,
    window: Window,
    tz: str,
    interval: int,
    history_from: datetime | None = None,
    held_to: datetime | None = None,
) -> pl.DataFrame:
    """Per local day x channel of the window's last (up to) 7 whole local days (local midnight
    to local midnight in ``tz``: a fall-back day's 25 hours are one day): :data:`PLAN_COLUMNS`.

    ``offered`` is 0 on a day with no contacts up to the window's end (a closed day is listed);
    ``forecast`` is null where the store holds no earlier week; the staffing columns are null
    without a ``staffing`` table. ``history_from``: when ``volume`` is the recent part of a
    store that holds earlier rows, where that part starts (from there on, an interval with no
    row is a zero, as it is in the whole store). ``held_to``: where the intervals the store
    built end, when the window reaches past them (no zeros, and so no days, are made up after
    it).
    """
    first, days = _last_week(window, tz)
    if days < 1:
        return pl.DataFrame(schema=dict.fromkeys(PLAN_COLUMNS, pl.Null))
    last = first + timedelta(days=days)
    history = _history(volume, window, tz, interval, (history_from, held_to))
    fc = seasonal.forecast(history, start=first, days=days, interval_minutes=interval, tz=tz)
    day = pl.col("ds").dt.date().alias("day")
    actual = (
        history.filter(pl.col("ds") >= first, pl.col("ds") < last)
        .group_by("unique_id", day)
        .agg(pl.col("y").sum().alias("offered"))
    )
    frame = actual.join(
        fc.group_by("unique_id", day).agg(
            pl.when(pl.col("y_hat").is_not_null().any())
            .then(pl.col("y_hat").sum())
            .alias("forecast")
        ),
        on=["unique_id", "day"],
        how="left",
    ).rename({"unique_id": "channel"})
    if staffing is not None:
        at = pl.col("interval_start_utc")
        local = at.dt.convert_time_zone(tz).dt.replace_time_zone(None)
        # each interval on its own (the two 01:00s of a fall-back night are two), as long as
        # the wall clock makes it (90 or 30 minutes across a half-hour jump)
        grid = Grid.over(*window, minutes=interval, tz=tz).frame
        length = pl.col("interval_end_utc") - at
        per_interval = (
            staffing.with_columns(local.alias("ds"))
            .filter(pl.col("ds") >= first, pl.col("ds") < last)
            .group_by(pl.col("channel").cast(pl.String), "interval_start_utc", "ds")
            .agg(pl.col("load_erlangs").sum(), pl.col("agents_required").sum())
            .join(grid.lazy().select(at, "interval_end_utc"), on="interval_start_utc", how="left")
            .with_columns((length.dt.total_seconds() / 3600).fill_null(interval / 60).alias("h"))
        )
        need = per_interval.group_by("channel", day).agg(
            (pl.col("load_erlangs") * pl.col("h")).sum().alias("load_hours"),
            (pl.col("agents_required") * pl.col("h")).sum().alias("agent_hours"),
            pl.col("agents_required").max().alias("peak_agents"),
        )
        needs = ("load_hours", "agent_hours", "peak_agents")  # a day nothing was offered: 0
        frame = frame.join(need, on=["channel", "day"], how="left").with_columns(
            pl.col(c).fill_null(0) for c in needs
        )
    else:
        frame = frame.with_columns(
            pl.lit(None, pl.Float64).alias("load_hours"),
            pl.lit(None, pl.Float64).alias("agent_hours"),
            pl.lit(None, pl.Int64).alias("peak_agents"),
        )
    return frame.select(PLAN_COLUMNS).sort("day", "channel").collect()

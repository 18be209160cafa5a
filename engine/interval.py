"""Interval grids aligned to the local wall clock of any IANA zone (SPEC §4).

Definition used throughout: an interval *boundary* is every instant whose local wall-clock time in
the reporting zone is a whole multiple of the interval length after local midnight. Intervals are
the half-open spans between consecutive boundaries, labelled by their start. So a spring-forward
day in New York has 92 quarter-hours and a fall-back day 100 (the repeated hour's quarter-hours
appear twice, with different ``interval_start_utc``). Where a DST jump is not a multiple of the
interval length (Australia/Lord_Howe moves by 30 minutes), the interval that spans the jump is
longer or shorter than nominal: that is what the wall clock shows. A local day (1440 minutes)
starts at its first instant: where the clock skips midnight (America/Santiago 2026-09-06 goes
from 00:00 to 01:00) the day starts at the jump, 23 hours long and labelled 01:00; a midnight it
shows twice (America/Havana 2026-11-01) starts one day of 25 hours.

Bucketing does not convert every row's time zone: all boundaries in a window are multiples of one
*grain* (the greatest common divisor of their epoch milliseconds: 15 minutes for every zone in use
today), so rows are keyed by ``epoch_ms // grain`` (integer arithmetic) and grains are mapped to
intervals on the small aggregated frame.

Example:
    >>> from datetime import datetime, UTC
    >>> g = interval_grid(datetime(2026, 3, 8, 5, tzinfo=UTC), datetime(2026, 3, 9, 4, tzinfo=UTC),
    ...                   minutes=15, tz="America/New_York")
    >>> g.height
    92
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import reduce
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from engine.schema import GRID as GRID_SCHEMA
from engine.schema import UTC_TS

__all__ = [
    "CALENDAR",
    "GRID",
    "Grid",
    "Window",
    "aggregate_by_interval",
    "check_calendar",
    "grain_ms",
    "in_grid",
    "interval_grid",
    "known_zone",
    "on_grid",
    "snap_window",
    "to_intervals",
    "zero_fill",
]

#: Columns of a grid (and the interval key columns of every interval table).
GRID = GRID_SCHEMA

Window = tuple[datetime, datetime]

_DAY_MINUTES = 1440

#: The instants intervals may lie between (a grid reaches days beyond its window, and Python's
#: dates end at the years 1 and 9999).
CALENDAR = (datetime(1, 1, 8, tzinfo=UTC), datetime(9999, 12, 24, tzinfo=UTC))


def check_calendar(start: datetime, end: datetime) -> None:
    """Refuse, with :class:`ValueError`, a window reaching outside :data:`CALENDAR` (aware)."""
    if start < CALENDAR[0] or end > CALENDAR[1]:
        msg = f"intervals are listed from {CALENDAR[0].date()} to {CALENDAR[1].date()} only"
        raise ValueError(msg)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        msg = f"naive datetime {value.isoformat()}: instants must carry a time zone"
        raise ValueError(msg)
    return value.astimezone(UTC)


def known_zone(name: str) -> str:
    """``name`` if Python and Polars both know it as a time zone, else :class:`ValueError`.
    Python's database holds names Polars' has not (``localtime``, ``posixrules``, ``right/…``):
    accepted there, they failed later, the error blaming the data.

    Example:
        >>> known_zone("Asia/Kathmandu")
        'Asia/Kathmandu'
    """
    try:
        ZoneInfo(name)
        pl.select(pl.lit(datetime(2000, 1, 1, tzinfo=UTC)).dt.convert_time_zone(name))
    except (ZoneInfoNotFoundError, ValueError, TypeError, pl.exceptions.PolarsError) as exc:
        msg = f"unknown IANA time zone {name!r}"
        raise ValueError(msg) from exc
    return name


def _day_start(local: pl.Expr, tz: str) -> pl.Expr:
    """The first instant of the local day whose midnight is ``local`` (naive), or null.

    A midnight the clock shows twice starts the day at its first showing. One it skips starts
    it at the jump: the minute before plus a minute, when that minute exists (most midnight
    gaps start at midnight); else (America/Toronto 1919-03-31 went from 23:30 to 00:30) the
    first whole minute that exists, found by the first quarter hour that does (to 04:00) and the
    minutes up to it. Vectorised: a few candidates a day, coalesced (only days are this few).
    """

    def at(naive: pl.Expr, ambiguous: Literal["earliest", "latest"] = "earliest") -> pl.Expr:
        return naive.dt.replace_time_zone(tz, ambiguous=ambiguous, non_existent="null")

    minute, quarter = timedelta(minutes=1), timedelta(minutes=15)
    quarters = [local + k * quarter for k in range(1, 17)]
    first = pl.coalesce([pl.when(at(q).is_not_null()).then(q) for q in quarters])
    after_gap = pl.coalesce([at(first - k * minute) for k in range(14, -1, -1)])
    return pl.coalesce(at(local), at(local - minute, "latest") + minute, after_gap)


def _boundaries(start: datetime, end: datetime, minutes: int, tz: str) -> pl.Series:
    """Every boundary from at or before ``start`` to at or after ``end``, in UTC, sorted."""
    # UTC wall times +-2 days cover every zone's local times (offsets are within +-14 h); one
    # more step on top because truncating the candidates moves them down by up to a step.
    pad = timedelta(days=2)
    lo = (start - pad).replace(tzinfo=None)
    hi = (end + pad + timedelta(minutes=minutes)).replace(tzinfo=None)
    every = "1d" if minutes == _DAY_MINUTES else f"{minutes}m"
    naive = pl.datetime_range(lo, hi, every, time_unit="us", eager=True).dt.truncate(every)
    local = pl.col("local")
    if minutes == _DAY_MINUTES:
        starts = [_day_start(local, tz)]
    else:  # wall-clock candidates; each exists zero (gap), one or two (fold) times
        starts = [
            local.dt.replace_time_zone(tz, ambiguous=amb, non_existent="null")
            for amb in ("earliest", "latest")
        ]
    frame = pl.DataFrame({"local": naive}).select(pl.concat_list(starts).alias("b"))
    return (
        frame.explode("b")
        .drop_nulls()
        .select(pl.col("b").dt.convert_time_zone("UTC").cast(UTC_TS))
        .unique()
        .sort("b")
        .to_series()
    )


def interval_grid(start: datetime, end: datetime, *, minutes: int, tz: str) -> pl.DataFrame:
    """All intervals that overlap ``[start, end)``.

    Args:
        start: window start (aware).
        end: window end (aware, exclusive).
        minutes: 15, 30, 60, or 1440 for local days (each from its first instant, see the
            module docstring: 23 or 25 hours on a DST change).
        tz: IANA zone the intervals align to.

    Returns:
        A small frame with the :data:`GRID` columns, sorted by ``interval_start_utc``.

    Raises:
        ValueError: a naive instant, ``end`` not after ``start``, a window outside
            :data:`CALENDAR`, ``minutes`` no whole divisor of a day, or ``tz`` no zone Python
            and Polars both know (one line naming it, not Polars' error).

    Example:
        >>> from datetime import datetime, UTC
        >>> interval_grid(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC),
        ...               minutes=60, tz="Asia/Kathmandu").row(0)[2].time().isoformat()
        '05:00:00'
    """
    start, end = _as_utc(start), _as_utc(end)
    if end <= start:
        msg = f"window end {end.isoformat()} is not after its start {start.isoformat()}"
        raise ValueError(msg)
    check_calendar(start, end)
    if (
        isinstance(minutes, bool)
        or not isinstance(minutes, int)
        or not 0 < minutes <= 1440
        or 1440 % minutes
    ):
        msg = f"interval of {minutes!r} minutes: a whole divisor of a day (15, 30, 60; 1440: days)"
        raise ValueError(msg)
    known_zone(tz)  # Polars' own error names no argument (and suggests another zone)
    b = _boundaries(start, end, minutes, tz)
    frame = pl.DataFrame({"interval_start_utc": b}).with_columns(
        interval_end_utc=pl.col("interval_start_utc").shift(-1)
    )
    frame = frame.filter(
        pl.col("interval_end_utc") > start, pl.col("interval_start_utc") < end
    ).with_columns(
        interval_start_local=pl.col("interval_start_utc")
        .dt.convert_time_zone(tz)
        .dt.replace_time_zone(None),
    )
    return frame.with_columns(
        utc_offset_min=(
            (
                pl.col("interval_start_local")
                - pl.col("interval_start_utc").dt.replace_time_zone(None)
            )
            .dt.total_minutes()
            .cast(pl.Int32)
        )
    ).select(GRID.keys())


def snap_window(start: datetime, end: datetime, *, minutes: int, tz: str) -> Window:
    """The window widened outwards to whole intervals (:attr:`Grid.window`)."""
    return Grid.over(start, end, minutes=minutes, tz=tz).window


@dataclass(frozen=True)
class Grid:
    """One window in whole intervals of one length and zone, with its intervals, built once.

    :meth:`over` widens ``[start, end)`` to whole intervals and keeps the interval frame it
    computed for that (:func:`interval_grid`), so the builders, the merge and the reports of
    one build share one grid instead of each computing it again.

    Attributes:
        start: the first interval's start (UTC).
        end: the last interval's end (UTC, exclusive).
        minutes: the interval length (15, 30, 60, or 1440 for local days).
        tz: the IANA zone the intervals align to.
        frame: the intervals (:data:`GRID` columns, sorted by ``interval_start_utc``).

    Example:
        >>> from datetime import datetime, UTC
        >>> g = Grid.over(datetime(2026, 3, 8, 5, 7, tzinfo=UTC),
        ...               datetime(2026, 3, 9, 4, tzinfo=UTC), minutes=15, tz="America/New_York")
        >>> g.start.isoformat(), g.frame.height
        ('2026-03-08T05:00:00+00:00', 92)
    """

    start: datetime
    end: datetime
    minutes: int
    tz: str
    frame: pl.DataFrame = field(repr=False, compare=False)

    @classmethod
    def over(cls, start: datetime, end: datetime, *, minutes: int, tz: str) -> Grid:
        """The grid of every interval that overlaps ``[start, end)``.

        Raises:
            ValueError: a naive instant, ``end`` not after ``start``, an interval length that is
            no whole divisor of a day, or an unknown zone.
        """
        frame = interval_grid(start, end, minutes=minutes, tz=tz)
        first: datetime = frame["interval_start_utc"][0]
        last: datetime = frame["interval_end_utc"][-1]
        return cls(first, last, minutes, tz, frame)

    @property
    def window(self) -> Window:
        """``(start, end)``."""
        return self.start, self.end

    def holds(self, at: pl.Expr) -> pl.Expr:
        """``at`` falls in one of the grid's intervals."""
        return (at >= self.start) & (at < self.end)

    @property
    def days(self) -> set[date]:
        """The UTC dates its intervals start on: the store partitions it touches."""
        return set(self.frame["interval_start_utc"].dt.date().unique().to_list())


def grain_ms(grid: pl.DataFrame) -> int:
    """The largest step in ms that every boundary of ``grid`` is a multiple of."""
    edges = pl.concat([grid["interval_start_utc"], grid["interval_end_utc"]]).dt.epoch("ms")
    return int(reduce(math.gcd, edges.unique().to_list(), 0))


def in_grid(at: pl.Expr, grid: pl.DataFrame) -> pl.Expr:
    """``at`` falls in one of the intervals of ``grid`` (from its first start to its last end)."""
    lo: datetime = grid["interval_start_utc"][0]
    hi: datetime = grid["interval_end_utc"][-1]
    return (at >= lo) & (at < hi)


def to_intervals(
    frame: pl.LazyFrame,
    grid: pl.DataFrame,
    *,
    at: str,
    by: Sequence[str],
    combine: Sequence[pl.Expr],
) -> pl.LazyFrame:
    """Map each row's instant ``at`` to its interval of ``grid`` and combine rows of one interval.

    ``frame`` is small (already aggregated, e.g. by grain or by finer interval); rows outside the
    grid must have been filtered out.

    Returns:
        One row per (``interval_start_utc``, ``*by``) with the ``combine`` aggregates.
    """
    bounds = grid.lazy().select("interval_start_utc", pl.col("interval_start_utc").alias("_b"))
    return (
        frame.sort(at)
        .join_asof(bounds, left_on=at, right_on="_b", strategy="backward")
        .group_by("interval_start_utc", *by)
        .agg(combine)
    )


def aggregate_by_interval(
    frame: pl.LazyFrame,
    grid: pl.DataFrame,
    *,
    at: pl.Expr,
    by: Sequence[str],
    measures: Sequence[pl.Expr],
    combine: Sequence[pl.Expr],
) -> pl.LazyFrame:
    """Aggregate rows to (interval, ``*by``): by integer grain first, then grains to intervals.

    Rows are keyed by ``epoch_us // grain`` (integer arithmetic on the large frame, see the module
    docstring); the per-grain aggregates are mapped to intervals on the small frame.

    Args:
        frame: rows whose instant ``at`` lies inside the grid (see :func:`in_grid`); instants in
            microseconds.
        grid: the target intervals (:func:`interval_grid`).
        at: each row's instant.
        by: the other group keys.
        measures: aggregates of the rows of one grain.
        combine: how the ``measures`` of several grains combine into one interval.

    Example:
        >>> from datetime import datetime, UTC
        >>> g = interval_grid(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=UTC),
        ...                   minutes=15, tz="UTC")
        >>> rows = pl.LazyFrame({"t": [datetime(2026, 1, 1, 0, 20, tzinfo=UTC)], "k": ["a"]})
        >>> aggregate_by_interval(rows, g, at=pl.col("t"), by=["k"], measures=[pl.len()],
        ...                       combine=[pl.col("len").sum()]).collect().row(0)[1:]
        ('a', 1)
    """
    grain_us = grain_ms(grid) * 1000
    agg = (
        frame.group_by(*by, (at.cast(pl.Int64) // grain_us).alias("_grain"))
        .agg(measures)
        .with_columns((pl.col("_grain") * grain_us).cast(grid["interval_start_utc"].dtype))
        .rename({"_grain": "_at"})
    )
    return to_intervals(agg, grid, at="_at", by=by, combine=combine)


def on_grid(agg: pl.LazyFrame, grid: pl.DataFrame, *, order: Sequence[str]) -> pl.LazyFrame:
    """Aggregated rows (one per ``interval_start_utc`` and group) with the other :data:`GRID`
    columns of their interval, in :func:`zero_fill`'s order: ``order`` (nulls first), then
    interval. The busy rows of a table, without building its zero rows."""
    return agg.join(grid.lazy(), on="interval_start_utc", how="inner").sort(
        [*order, "interval_start_utc"], nulls_last=False, maintain_order=True
    )


def zero_fill(
    agg: pl.LazyFrame, grid: pl.DataFrame, combos: pl.LazyFrame, *, fill: Sequence[str]
) -> pl.LazyFrame:
    """Every interval of ``grid`` for every key combination of ``combos``, zeros where ``agg``
    has no row, sorted by the combination (its columns in their order, nulls first) and then
    by interval.

    The order comes from building the grid in it (the few combinations sorted, crossed with the
    intervals in order, the aggregates joined keeping that order), not from sorting the filled
    rows: the caller needs no sort of the (large) result.

    Args:
        agg: one row per (``interval_start_utc``, key columns of ``combos``).
        grid: the intervals (in order, as :func:`interval_grid` makes them).
        combos: the key combinations to fill (unique rows); null keys match null keys.
        fill: the columns of ``agg`` that become 0 where it has no row.

    Returns:
        The :data:`GRID` columns, the key columns and every column of ``agg``.
    """
    names = combos.collect_schema().names()
    keys = ["interval_start_utc", *names]
    return (
        combos.sort(names)
        .join(grid.lazy(), how="cross", maintain_order="left_right")
        .join(agg, on=keys, how="left", nulls_equal=True, maintain_order="left")
        .with_columns(pl.col(c).fill_null(0) for c in fill)
    )

"""The report's staffing and forecast-vs-actual days on a local clock with DST, against a
plain-Python oracle from SPEC §4 and docs/metrics.md: the window's last 7 whole local days
(local midnight to local midnight), offered per local day, and the seasonal naive forecast
summed over each day's real intervals (each the mean of the same local interval in up to four
earlier weeks; zero where the store holds no row after its first, none where the clock skips
the stamp)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from engine.report import planning

NY = "America/New_York"


def _utc(day: date, tz: str) -> datetime:
    return datetime.combine(day, datetime.min.time(), ZoneInfo(tz)).astimezone(UTC)


def _quarters(day: date, tz: str) -> list[datetime]:
    """The real quarter-hours (UTC starts) of one local day: 92, 96 or 100 of them."""
    lo, hi = _utc(day, tz), _utc(day + timedelta(days=1), tz)
    return [lo + timedelta(minutes=15 * i) for i in range(int((hi - lo).total_seconds()) // 900)]


def _volume(starts: list[datetime], offered: list[int]) -> pl.LazyFrame:
    return pl.LazyFrame(
        {"interval_start_utc": starts, "queue_id": "q", "channel": "voice", "offered": offered},
        schema={"interval_start_utc": pl.Datetime("us", "UTC"), "queue_id": pl.String,
                "channel": pl.String, "offered": pl.Int64},
    )  # fmt: skip


def _constant(first: date, last: date, tz: str) -> pl.LazyFrame:
    """10 contacts in every real quarter-hour of the local days ``[first, last)``."""
    starts = [q for k in range((last - first).days) for q in _quarters(first + timedelta(k), tz)]
    return _volume(starts, [10] * len(starts))


@pytest.mark.parametrize(
    ("end", "odd"),
    [
        (date(2026, 3, 15), 920.0),  # the spring-forward week: 03-08 has 92 quarter-hours
        (date(2026, 3, 22), None),  # the week after: 03-08's missing hour is no zero
        (date(2026, 11, 8), 1000.0),  # the fall-back week: 7 days, 11-01 of 100 quarter-hours
        (date(2026, 11, 15), None),  # the week after: 11-01's 01:xx not counted twice
    ],
)
def test_each_day_of_a_dst_week_offers_and_forecasts_its_real_intervals(
    end: date, odd: float | None
) -> None:
    first = end - timedelta(days=42)
    volume = _constant(first, end, NY)
    got = planning.plan_days(volume, None, window=(_utc(first, NY), _utc(end, NY)), tz=NY,
                             interval=15)  # fmt: skip
    days = [end - timedelta(days=k) for k in range(7, 0, -1)]
    assert got["day"].to_list() == days
    want = [10.0 * len(_quarters(d, NY)) for d in days]
    assert got["offered"].to_list() == want
    assert got["forecast"].to_list() == want
    assert [w for w in want if w != 960.0] == ([] if odd is None else [odd])

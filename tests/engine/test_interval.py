"""Interval grids: DST days, half- and quarter-hour offsets, against zoneinfo directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.interval import grain_ms, interval_grid, snap_window
from tests import oracle


def local_day(tz: str, y: int, m: int, d: int) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tz)
    return datetime(y, m, d, tzinfo=zone), datetime(y, m, d, tzinfo=zone) + timedelta(days=1)


@pytest.mark.parametrize(
    ("tz", "day", "minutes", "count"),
    [
        ("America/New_York", (2026, 3, 8), 15, 92),
        ("America/New_York", (2026, 11, 1), 15, 100),
        ("Europe/London", (2026, 3, 29), 15, 92),
        ("Europe/London", (2026, 10, 25), 15, 100),
        ("Europe/London", (2026, 10, 25), 60, 25),
        ("Australia/Lord_Howe", (2026, 10, 4), 15, 94),  # 30-minute DST jump
        ("Australia/Lord_Howe", (2026, 4, 5), 15, 98),
        ("Asia/Kolkata", (2026, 6, 1), 30, 48),
        ("Asia/Kathmandu", (2026, 6, 1), 60, 24),
        ("UTC", (2026, 6, 1), 15, 96),
    ],
)
def test_intervals_per_local_day(tz: str, day: tuple[int, int, int], minutes: int, count: int):
    start, end = local_day(tz, *day)
    grid = interval_grid(start, end, minutes=minutes, tz=tz)
    assert grid.height == count
    # Every interval starts on the local wall clock's grid, and they tile the day.
    for row in grid.iter_rows(named=True):
        local = row["interval_start_utc"].astimezone(ZoneInfo(tz))
        assert (local.hour * 60 + local.minute) % minutes == 0
        assert local.replace(tzinfo=None) == row["interval_start_local"]
        assert local.utcoffset() == timedelta(minutes=row["utc_offset_min"])
    starts, ends = grid["interval_start_utc"], grid["interval_end_utc"]
    assert starts[0] == start.astimezone(UTC)
    assert ends[-1] == end.astimezone(UTC)
    assert (starts[1:] == ends[:-1]).all()


def test_fall_back_repeats_local_labels_with_distinct_utc_keys() -> None:
    grid = interval_grid(
        *local_day("America/New_York", 2026, 11, 1), minutes=15, tz="America/New_York"
    )
    assert grid["interval_start_utc"].is_unique().all()
    repeated = grid.filter(grid["interval_start_local"].is_duplicated())
    assert repeated.height == 8  # 01:00-01:45 twice
    assert set(repeated["utc_offset_min"]) == {-240, -300}


def test_kathmandu_hours_start_at_quarter_past_utc() -> None:
    grid = interval_grid(*local_day("Asia/Kathmandu", 2026, 6, 1), minutes=60, tz="Asia/Kathmandu")
    assert set(grid["interval_start_utc"].dt.minute()) == {15}
    assert grain_ms(grid) % (15 * 60_000) == 0


@given(
    st.sampled_from(["UTC", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu",
                     "Asia/Kolkata", "Europe/London", "America/St_Johns"]),
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31)),  # noqa: DTZ001 (naive bounds; made aware in the test)
    st.integers(1, 3 * 24 * 60),
    st.sampled_from([15, 30, 60, 1440]),
)  # fmt: skip
def test_grid_equals_oracle(tz: str, start: datetime, minutes_long: int, minutes: int) -> None:
    s = start.replace(tzinfo=UTC)
    e = s + timedelta(minutes=minutes_long)
    got = interval_grid(s, e, minutes=minutes, tz=tz).to_dicts()
    assert got == oracle.intervals(s, e, minutes, tz)
    lo, hi = snap_window(s, e, minutes=minutes, tz=tz)
    assert lo <= s
    assert hi >= e


def test_window_must_be_aware_and_ordered() -> None:
    with pytest.raises(ValueError, match="naive"):
        interval_grid(datetime(2026, 1, 1), datetime(2026, 1, 2), minutes=15, tz="UTC")  # noqa: DTZ001
    s = datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="not after"):
        interval_grid(s, s, minutes=15, tz="UTC")

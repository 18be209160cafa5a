"""Interval grids: DST days, half- and quarter-hour offsets, against zoneinfo directly."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.interval import grain_ms, interval_grid, snap_window
from engine.schema import CONTACTS
from engine.settings import BuildSettings
from engine.tables import callvolume, seasonal
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


#: Zones whose clocks skip or repeat local midnight on some days of 2024-2027 (and an ordinary
#: DST zone, whose midnights all exist once).
MIDNIGHT_ZONES = (
    "America/Santiago",
    "America/Havana",
    "America/Asuncion",
    "Asia/Beirut",
    "Africa/Cairo",
    "Atlantic/Azores",
    "America/New_York",
)


def midnight_changes(tz: str, years: range) -> list[date]:
    """The days of ``years`` whose local midnight ``tz``'s clock skips or shows twice."""
    zone, day, out = ZoneInfo(tz), date(years.start, 1, 1), []
    while day.year < years.stop:
        midnight = datetime.combine(day, time())
        early, late = (midnight.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1))
        if early != late:
            out.append(day)
        day += timedelta(days=1)
    return out


MIDNIGHT_DAYS = [(tz, d) for tz in MIDNIGHT_ZONES for d in midnight_changes(tz, range(2024, 2028))]
#: A midnight skipped by a gap that starts before it: Toronto went from 23:30 to 00:30, so
#: neither 00:00 nor 23:59 the day before exists (the day starts at 00:30).
MIDNIGHT_DAYS.append(("America/Toronto", date(1919, 3, 31)))


def test_the_zones_chosen_do_change_at_midnight() -> None:
    assert ("America/Santiago", date(2026, 9, 6)) in MIDNIGHT_DAYS  # 00:00 -> 01:00
    assert ("America/Havana", date(2026, 3, 8)) in MIDNIGHT_DAYS  # 00:00 -> 01:00
    assert ("America/Havana", date(2026, 11, 1)) in MIDNIGHT_DAYS  # 01:00 -> 00:00
    assert ("America/Asuncion", date(2024, 10, 6)) in MIDNIGHT_DAYS
    assert not [d for tz, d in MIDNIGHT_DAYS if tz == "America/New_York"]
    assert midnight_changes("America/Toronto", range(1919, 1920))[0] == date(1919, 3, 31)


@pytest.mark.parametrize(("tz", "day"), MIDNIGHT_DAYS, ids=str)
def test_a_local_day_starts_at_its_first_instant(tz: str, day: date) -> None:
    s = datetime.combine(day, time(12), tzinfo=UTC) - timedelta(days=1)
    e = s + timedelta(days=2)
    got = interval_grid(s, e, minutes=1440, tz=tz)
    assert got.to_dicts() == oracle.intervals(s, e, 1440, tz)
    hours = (got["interval_end_utc"] - got["interval_start_utc"]).dt.total_hours()
    assert set(hours) <= {23, 24, 25}
    dates = got["interval_start_local"].dt.date()
    assert dates.is_unique().all()
    assert day in dates
    assert snap_window(s, e, minutes=1440, tz=tz) == (
        got["interval_start_utc"][0],
        got["interval_end_utc"][-1],
    )


@given(
    st.sampled_from(MIDNIGHT_DAYS),
    st.integers(-36 * 60, 36 * 60),
    st.integers(1, 3 * 24 * 60),
    st.sampled_from([15, 60, 1440]),
)
def test_grid_near_a_midnight_change_equals_oracle(
    change: tuple[str, date], shift: int, minutes_long: int, minutes: int
) -> None:
    tz, day = change
    s = datetime.combine(day, time(), tzinfo=UTC) + timedelta(minutes=shift)
    e = s + timedelta(minutes=minutes_long)
    assert interval_grid(s, e, minutes=minutes, tz=tz).to_dicts() == oracle.intervals(
        s, e, minutes, tz
    )


def _python_knows(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@pytest.mark.parametrize("tz", ["localtime", "right/UTC"])
def test_a_zone_only_python_knows_is_refused_naming_it(tz: str) -> None:
    if not _python_knows(tz):
        pytest.skip(f"this system's zone database has no {tz}")
    s, e = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    table = pl.LazyFrame(schema=callvolume.SCHEMA)
    history = pl.LazyFrame(
        schema={"unique_id": pl.String, "ds": pl.Datetime("us"), "y": pl.Float64}
    )
    calls = [
        lambda: interval_grid(s, e, minutes=60, tz=tz),
        lambda: snap_window(s, e, minutes=1440, tz=tz),
        lambda: callvolume.rollup(table, window=(s, e), minutes=60, tz=tz),
        lambda: seasonal.forecast(history, start=s.replace(tzinfo=None), days=1,
                                  interval_minutes=60, tz=tz),
    ]  # fmt: skip
    for call in calls:
        with pytest.raises(ValueError, match=f"^unknown IANA time zone '{tz}'$"):
            call()


EDGES = [
    (datetime(1, 1, 1, tzinfo=UTC), datetime(1, 1, 3, tzinfo=UTC)),
    (datetime(1, 1, 7, 23, tzinfo=UTC), datetime(1, 1, 9, tzinfo=UTC)),
    (datetime(9999, 12, 23, tzinfo=UTC), datetime(9999, 12, 24, 1, tzinfo=UTC)),
    (datetime(9999, 12, 29, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)),
]


@pytest.mark.parametrize(("s", "e"), EDGES)
@pytest.mark.parametrize("tz", ["Etc/GMT-14", "Etc/GMT+12"])  # the widest offsets
def test_a_window_at_the_ends_of_the_calendar_is_a_value_error(
    s: datetime, e: datetime, tz: str
) -> None:
    contacts = pl.LazyFrame(schema=CONTACTS)
    calls = [
        lambda: interval_grid(s, e, minutes=15, tz=tz),
        lambda: snap_window(s, e, minutes=1440, tz=tz),
        lambda: callvolume.build(contacts, window=(s, e), settings=BuildSettings(tz=tz)),
    ]
    for call in calls:
        with pytest.raises(
            ValueError, match=r"^intervals are listed from 0001-01-08 to 9999-12-24"
        ):
            call()


@pytest.mark.parametrize("tz", ["Etc/GMT-14", "Etc/GMT+12"])
def test_a_window_just_inside_the_calendar_is_gridded(tz: str) -> None:
    for s, e in [
        (datetime(1, 1, 8, tzinfo=UTC), datetime(1, 1, 9, tzinfo=UTC)),
        (datetime(9999, 12, 23, tzinfo=UTC), datetime(9999, 12, 24, tzinfo=UTC)),
    ]:
        assert interval_grid(s, e, minutes=1440, tz=tz).height in (1, 2)
        assert interval_grid(s, e, minutes=15, tz=tz).to_dicts() == oracle.intervals(s, e, 15, tz)

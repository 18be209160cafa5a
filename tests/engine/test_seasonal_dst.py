"""The seasonal naive forecast on a local wall clock across DST changes, against a plain-Python
oracle written from the docs (docs/metrics.md, the module's rules): each interval the mean of
the same local interval of the past weeks; a stamp the clock skips is neither forecast nor a
zero of history; a stamp it shows twice is one row for both its intervals (their sum, or for a
``*_max_ms`` series their maximum), worth one interval as history and both as a forecast."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.tables import seasonal

#: (zone, a day near one of its 2026 DST changes)
ZONES = (
    ("America/New_York", date(2026, 3, 8)),  # 02:00 -> 03:00
    ("America/New_York", date(2026, 11, 1)),  # 02:00 -> 01:00
    ("Australia/Lord_Howe", date(2026, 10, 4)),  # 02:00 -> 02:30
    ("Australia/Lord_Howe", date(2026, 4, 5)),  # 02:00 -> 01:30
    ("Europe/Berlin", date(2026, 3, 29)),
    ("UTC", date(2026, 3, 8)),
)
SERIES = ("q|voice|offered", "q|voice|wait_max_ms")


def _instants(stamp: datetime, tz: str) -> list[datetime]:
    """The UTC instants the zone's clock shows ``stamp`` at: none, one or two."""
    zone = ZoneInfo(tz)
    found = set()
    for fold in (0, 1):
        at = stamp.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if at.astimezone(zone).replace(tzinfo=None) == stamp:
            found.add(at)
    return sorted(found)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


def _stamps(first: date, days: int, minutes: int) -> list[datetime]:
    t0 = datetime.combine(first, datetime.min.time())
    return [t0 + timedelta(minutes=minutes * i) for i in range(days * 1440 // minutes)]


def _local_export(
    tz: str, first: date, days: int, minutes: int, seed: int
) -> dict[tuple[str, datetime], float]:
    """Random values per real interval, written as the local format writes them: one row per
    stamp the clock shows, a repeated stamp's intervals merged; about one row in ten left out."""
    rng = random.Random(seed)
    rows: dict[tuple[str, datetime], float] = {}
    for stamp in _stamps(first, days, minutes):
        for uid in SERIES:
            values = [float(rng.randint(0, 40)) for _ in _instants(stamp, tz)]
            if values and rng.random() > 0.1:
                rows[uid, stamp] = max(values) if uid.endswith("_max_ms") else sum(values)
    return rows


def _oracle(
    rows: dict[tuple[str, datetime], float],
    *,
    tz: str,
    start: datetime,
    days: int,
    minutes: int,
    seasons: int,
) -> dict[tuple[str, datetime], float | None]:
    want: dict[tuple[str, datetime], float | None] = {}
    for stamp in _stamps(start.date(), days, minutes):
        n = len(_instants(stamp, tz))
        if n == 0:
            continue  # the clock skips it: no forecast
        for uid in SERIES:
            per_interval = []
            for k in range(1, seasons + 1):
                past = stamp - timedelta(days=7 * k)
                n_past = len(_instants(past, tz))
                if (uid, past) in rows and n_past > 0:
                    y = rows[uid, past]
                    per_interval.append(y if uid.endswith("_max_ms") else y / n_past)
            if not per_interval:
                want[uid, stamp] = None
                continue
            mean = sum(per_interval) / len(per_interval)
            want[uid, stamp] = mean if uid.endswith("_max_ms") else mean * n
    return want


@given(
    zone=st.sampled_from(ZONES),
    minutes=st.sampled_from((15, 30, 60)),
    offset=st.integers(-8, 8),
    days=st.integers(1, 7),
    seasons=st.integers(1, 4),
    seed=st.integers(0, 10_000),
)
def test_the_forecast_on_a_local_clock_is_the_mean_of_the_same_local_intervals(
    *, zone: tuple[str, date], minutes: int, offset: int, days: int, seasons: int, seed: int
) -> None:
    tz, near = zone
    start = datetime.combine(near + timedelta(days=offset), datetime.min.time())
    first = start.date() - timedelta(days=7 * seasons)
    rows = _local_export(tz, first, 7 * seasons + days, minutes, seed)
    history = pl.LazyFrame(
        {"unique_id": [u for u, _ in rows], "ds": [s for _, s in rows], "y": list(rows.values())},
        schema={"unique_id": pl.String, "ds": pl.Datetime("us"), "y": pl.Float64},
    )
    got = seasonal.forecast(
        history, start=start, days=days, interval_minutes=minutes, seasons=seasons, tz=tz
    ).collect()
    want = _oracle(rows, tz=tz, start=start, days=days, minutes=minutes, seasons=seasons)
    assert got.height == len(want)
    for uid, ds, y_hat in got.iter_rows():
        expected = want[uid, ds]
        assert (y_hat is None) == (expected is None), (uid, ds)
        if expected is not None:
            assert y_hat == pytest.approx(expected, rel=1e-12), (uid, ds)


def _constant(tz: str, first: date, days: int) -> pl.LazyFrame:
    """10 contacts in every real quarter-hour, in the local format."""
    rows = {s: 10.0 * len(_instants(s, tz)) for s in _stamps(first, days, 15) if _instants(s, tz)}
    return pl.LazyFrame(
        {"unique_id": "q|voice|offered", "ds": list(rows), "y": list(rows.values())}
    )


@pytest.mark.parametrize(
    ("day", "want_rows", "want_sum"),
    [
        (date(2026, 3, 8), 92, 920.0),  # 02:00-02:45 do not exist that day
        (date(2026, 3, 15), 96, 960.0),  # 03-08's missing hour is not a week of zeros
        (date(2026, 11, 1), 96, 1000.0),  # 100 quarter-hours, 01:xx standing for two each
        (date(2026, 11, 8), 96, 960.0),  # 11-01's merged 01:xx rows are not counted double
    ],
)
def test_a_constant_load_forecasts_each_dst_day_at_its_real_intervals(
    day: date, want_rows: int, want_sum: float
) -> None:
    tz = "America/New_York"
    history = _constant(tz, day - timedelta(days=28), 28)
    start = datetime.combine(day, datetime.min.time())
    got = seasonal.forecast(history, start=start, days=1, interval_minutes=15, tz=tz).collect()
    assert got.height == want_rows
    assert got["y_hat"].sum() == want_sum
    assert got["y_hat"].null_count() == 0


def test_an_unknown_zone_is_refused() -> None:
    history = _constant("UTC", date(2026, 3, 1), 7)
    with pytest.raises(ValueError, match="unknown IANA time zone 'Mars/Base'"):
        seasonal.forecast(history, start=_midnight(date(2026, 3, 8)), days=1, interval_minutes=15,
                          tz="Mars/Base")  # fmt: skip


def test_per_day_sums_of_the_oracle_follow_the_spec() -> None:
    """The oracle's own check (SPEC §4): 92 quarter-hours on a spring-forward day, 100 on a
    fall-back day in New York."""
    counts: dict[date, int] = defaultdict(int)
    for d in (date(2026, 3, 8), date(2026, 11, 1)):
        for s in _stamps(d, 1, 15):
            counts[d] += len(_instants(s, "America/New_York"))
    assert counts == {date(2026, 3, 8): 92, date(2026, 11, 1): 100}


@pytest.mark.parametrize("dtype", [pl.String, pl.Categorical, pl.Int64])
def test_any_type_of_series_id_is_forecast(dtype: pl.DataType) -> None:
    """Integer and categorical ``unique_id`` are common in the forecasting format: reading
    them as text (for the ``_max_ms`` rule) raised ``InvalidOperationError``."""
    t0 = datetime(2026, 9, 7, tzinfo=UTC).replace(tzinfo=None)  # naive wall-clock stamps
    stamps = [t0 + timedelta(minutes=15 * k) for k in range(7 * 96)]
    history = pl.DataFrame(
        {"unique_id": ["7"] * len(stamps), "ds": stamps, "y": [2.0] * len(stamps)}
    )
    history = history.with_columns(pl.col("unique_id").cast(dtype))
    got = seasonal.forecast(
        history.lazy(), start=t0 + timedelta(days=7), days=1, interval_minutes=15
    ).collect()
    assert got.height == 96
    assert got["y_hat"].to_list() == [2.0] * 96

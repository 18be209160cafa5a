"""A roll-up equals a direct build at the coarser length, exactly (SPEC §5), or is refused.

A coarse interval the roll-up's window cuts would hold the contacts of its part in the window
under the whole interval's bounds (a Kathmandu hour of a 09:00-10:00Z window: 3 contacts of
12). So a window that is not whole coarse intervals is refused with a :class:`StoreError`;
``partial=True`` takes the cut edge intervals too, and every whole one is still the direct
build's. Windows and zones are random, DST days (23- and 25-hour local days, Lord Howe's
30-minute change) and 45-minute offsets included.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.demo.callbacks import generate_attempts
from engine.errors import StoreError
from engine.interval import Window, snap_window
from engine.schema import CONTACTS
from engine.settings import BuildSettings
from engine.tables import callback_intervals, callback_metrics, callvolume, retry_outcomes
from engine.tables.callback_requests import requests
from engine.validate.contacts import validate_contacts
from tests import oracle
from tests.strategies import INTERESTING_DAYS, contact_rows

COARSE = (30, 60, 1440)


@st.composite
def windows(draw: st.DrawFn) -> tuple[str, Window, int]:
    """A zone, a window of up to two local days around an interesting day (on quarter-hours,
    on coarse boundaries, or anywhere), and a coarser length."""
    tz, (y, m, d) = draw(st.sampled_from(INTERESTING_DAYS))
    midnight = datetime(y, m, d, tzinfo=ZoneInfo(tz)).astimezone(UTC)
    start = midnight + timedelta(minutes=15 * draw(st.integers(-8, 100)))
    end = start + timedelta(minutes=15 * draw(st.integers(1, 200)))
    if draw(st.booleans()):  # anywhere: to the millisecond
        start += timedelta(milliseconds=draw(st.integers(0, 899_999)))
        end += timedelta(milliseconds=draw(st.integers(0, 899_999)))
    coarse = draw(st.sampled_from(COARSE))
    if draw(st.booleans()):
        start, end = snap_window(start, end, minutes=coarse, tz=tz)
    return tz, (start, end), coarse


def _settings(minutes: int, tz: str) -> BuildSettings:
    """Settings of ``minutes`` (1440 too: local days, which a build's settings refuse)."""
    return BuildSettings(tz=tz).model_copy(update={"interval_minutes": minutes})


def _build(rows: list[dict[str, Any]], window: Window, minutes: int, tz: str) -> pl.LazyFrame:
    settings = _settings(minutes, tz)
    return callvolume.build(pl.DataFrame(rows, schema=CONTACTS).lazy(), window=window,
                            settings=settings)  # fmt: skip


def _whole(frame: pl.DataFrame, window: Window) -> pl.DataFrame:
    inside = (pl.col("interval_start_utc") >= window[0]) & (pl.col("interval_end_utc") <= window[1])
    return frame.filter(inside)


def _same_where_both(
    rolled: pl.DataFrame, direct: pl.DataFrame, keys: tuple[str, ...], schema: dict[str, Any]
) -> None:
    """Every row of ``rolled`` is ``direct``'s row of its key, value for value; ``direct``'s
    other rows (groups seen only where the window cut, outside the finer table) are zeros. The
    names are left out: a queue's name is its latest in the window each was built over."""
    names = [c for c in ("queue_name", "call_target_name") if c in schema]
    want = direct.join(rolled.select(keys), on=keys, maintain_order="left")
    assert rolled.drop(names).equals(want.drop(names))
    others = direct.join(rolled, on=keys, how="anti")
    counts = [c for c, t in schema.items() if t == pl.Int64()]
    assert (others.select(counts).sum_horizontal() == 0).all()


@given(st.data(), windows())
def test_a_rollup_equals_the_direct_build_or_is_refused(data: st.DataObject, case) -> None:
    tz, window, coarse = case
    rows = data.draw(contact_rows(*window))
    fine = _build(rows, window, 15, tz)
    direct = _build(rows, window, coarse, tz).collect()
    aligned = snap_window(*window, minutes=coarse, tz=tz)
    if aligned == window:
        rolled = callvolume.rollup(fine, window=window, minutes=coarse, tz=tz).collect()
        assert rolled.equals(direct)
    else:
        with pytest.raises(StoreError, match=f"not whole {coarse}-minute intervals in {tz}"):
            callvolume.rollup(fine, window=window, minutes=coarse, tz=tz)
        # partial=True: the cut edges too, and every whole interval is the direct build's
        cut = callvolume.rollup(fine, window=window, minutes=coarse, tz=tz, partial=True)
        whole = _whole(cut.collect(), window)
        _same_where_both(whole, _whole(direct, window), callvolume.KEYS, callvolume.SCHEMA)
    # the caller's way to an exact roll-up: a finer table of the whole coarse intervals
    widened = _build(rows, aligned, 15, tz)
    rolled = callvolume.rollup(widened, window=aligned, minutes=coarse, tz=tz).collect()
    assert rolled.equals(direct)


def test_the_unaligned_kathmandu_hour_is_refused_not_labelled_whole() -> None:
    # contacts every 5 minutes 07:00-12:00Z; Kathmandu hours start at hh:15Z
    offered = [datetime(2026, 10, 1, 7, tzinfo=UTC) + timedelta(minutes=5 * i) for i in range(60)]
    rows = [
        {"source": "s", "contact_id": f"c{i}", "segment_no": 1, "channel": "voice",
         "direction": "inbound", "queue_id": "q", "queue_name": "Q", "offered_at": at,
         "answered_at": at, "ended_at": at + timedelta(minutes=1), "outcome": "answered",
         "wait_ms": 1000, "talk_ms": 1, "hold_ms": 0, "acw_ms": 0, "updated_at": offered[-1]}
        for i, at in enumerate(offered)
    ]  # fmt: skip
    tz = "Asia/Kathmandu"
    window = (datetime(2026, 10, 1, 9, tzinfo=UTC), datetime(2026, 10, 1, 10, tzinfo=UTC))
    fine = _build(rows, window, 15, tz)
    with pytest.raises(StoreError, match=r"08:15:00Z \.\. 2026-10-01T10:15:00Z"):
        callvolume.rollup(fine, window=window, minutes=60, tz=tz)
    aligned = snap_window(*window, minutes=60, tz=tz)
    rolled = callvolume.rollup(_build(rows, aligned, 15, tz), window=aligned, minutes=60, tz=tz)
    assert rolled.collect()["offered"].to_list() == [12, 12]
    assert rolled.collect().equals(_build(rows, window, 60, tz).collect())


#: (zone, first local day) of three-day windows: a 25-hour and a 23-hour day, Lord Howe's
#: 30-minute change, a 45-minute offset, a day whose midnight the clock skips.
CALLBACK_DAYS = [
    ("America/New_York", (2026, 10, 31)),
    ("America/New_York", (2026, 3, 7)),
    ("Australia/Lord_Howe", (2026, 10, 3)),
    ("Asia/Kathmandu", (2026, 10, 1)),
    ("America/Santiago", (2026, 9, 5)),  # 09-06: the clock skips midnight
]


@pytest.mark.parametrize(("tz", "day"), CALLBACK_DAYS)
@pytest.mark.parametrize("minutes", [60, 1440])
def test_callback_rollups_equal_the_direct_build_or_are_refused(
    tz: str, day: tuple[int, int, int], minutes: int
) -> None:
    local = datetime(*day, tzinfo=ZoneInfo(tz))
    attempts = generate_attempts(seed=3, start=local.astimezone(UTC) - timedelta(days=1),
                                 days=5, scale=0.2)  # fmt: skip
    reqs = requests(attempts.lazy())
    aligned = (local.astimezone(UTC), (local + timedelta(days=3)).astimezone(UTC))
    utc_days = (datetime(*day, tzinfo=UTC), datetime(*day, tzinfo=UTC) + timedelta(days=3))
    for module in (callback_intervals, retry_outcomes):
        for window in (aligned, utc_days):
            fine = module.build(reqs, window=window, settings=BuildSettings(tz=tz))
            direct = module.build(reqs, window=window, settings=_settings(minutes, tz)).collect()
            if snap_window(*window, minutes=minutes, tz=tz) == window:
                rolled = module.rollup(fine, window=window, minutes=minutes, tz=tz).collect()
                assert rolled.equals(direct), (module.__name__, window)
                continue
            with pytest.raises(StoreError, match=f"not whole {minutes}-minute intervals"):
                module.rollup(fine, window=window, minutes=minutes, tz=tz)
            cut = module.rollup(fine, window=window, minutes=minutes, tz=tz, partial=True)
            whole = _whole(cut.collect(), window)
            assert whole.height > 0
            _same_where_both(whole, _whole(direct, window), module.KEYS, module.SCHEMA)
            edges = cut.collect().join(whole, on=module.KEYS, how="anti")
            assert edges.height > 0  # the cut first and last intervals, on request


def test_rows_outside_the_window_are_not_lumped_into_its_last_interval() -> None:
    start = datetime(2026, 10, 1, tzinfo=UTC)
    attempts = generate_attempts(seed=4, start=start, days=2, scale=0.2)
    reqs = requests(attempts.lazy())
    two_days = (start, start + timedelta(days=2))
    first = (start, start + timedelta(days=1))
    fine = callback_intervals.build(reqs, window=two_days, settings=BuildSettings())
    rolled = callback_intervals.rollup(fine, window=first, minutes=1440, tz="UTC").collect()
    direct = callback_intervals.build(reqs, window=first, settings=_settings(1440, "UTC"))
    assert rolled.equals(direct.collect())


@pytest.mark.parametrize(("tz", "day"), [("America/Santiago", 6), ("America/Havana", 8)])
def test_a_day_whose_midnight_the_clock_skips_is_a_day_of_its_own(tz: str, day: int) -> None:
    # Santiago 2026-09-06 and Havana 2026-03-08 go from 00:00 to 01:00: a 23-hour day
    month = 9 if tz == "America/Santiago" else 3
    first = datetime(2026, month, day - 1, 12, tzinfo=UTC)
    window = snap_window(first, first + timedelta(days=2), minutes=1440, tz=tz)
    at = [first + timedelta(hours=3), first + timedelta(days=1, hours=3)]
    contacts = pl.LazyFrame({"source": "s", "contact_id": ["a", "b"], "segment_no": 1,
                             "channel": "voice", "queue_id": "q", "offered_at": at,
                             "outcome": "open"})  # fmt: skip
    fine = callvolume.build(validate_contacts(contacts)[0], window=window,
                            settings=BuildSettings(tz=tz))  # fmt: skip
    days = callvolume.rollup(fine, window=window, minutes=1440, tz=tz).collect()
    want = oracle.intervals(*window, 1440, tz)  # a day starts at its first instant
    assert days.select(want[0].keys()).to_dicts() == want
    assert days["offered"].to_list() == [1, 1, 0]
    skipped = days.row(1, named=True)
    assert skipped["interval_start_local"] == datetime(2026, month, day, 1)  # noqa: DTZ001 (a wall-clock label)
    assert skipped["interval_end_utc"] - skipped["interval_start_utc"] == timedelta(hours=23)
    reqs = requests(generate_attempts(seed=1, start=window[0], days=1, scale=0.0).lazy())
    listed = callback_metrics.document_intervals(reqs, begin=window[0], end=window[1],
                                                 step="1d", tz=tz)  # fmt: skip
    bounds = [(e["intervalBegin"], e["intervalEnd"]) for e in listed]
    assert bounds == [(_z(d["interval_start_utc"]), _z(d["interval_end_utc"])) for d in want]


def _z(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")

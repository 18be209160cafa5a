"""A roll-up to a grid the table's own grid does not nest in is refused, never mis-bucketed.

A roll-up puts each fine row in the coarse interval its start falls in. That is exact only when
every fine interval lies inside one coarse interval: the coarse length a whole multiple of the
fine one, and every coarse boundary a fine boundary. A 60-minute UTC table rolled up to
Asia/Kolkata hours (which start at hh:30 UTC) put each hour's contacts in the Kolkata hour its
first half lies in; ``minutes=15`` of a 60-minute table put each hour in its first quarter.
Both were returned as if exact. Where the grids nest, the roll-up is a plain sum.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from engine.demo.callbacks import generate_attempts
from engine.errors import StoreError
from engine.interval import Window, snap_window
from engine.schema import CONTACTS
from engine.settings import BuildSettings
from engine.tables import callback_intervals, callvolume, retry_outcomes
from engine.tables.callback_requests import requests
from tests.strategies import contact_rows

ZONES = ("UTC", "Asia/Kolkata", "Asia/Kathmandu", "America/New_York", "Australia/Lord_Howe")
DAY = datetime(2026, 10, 1, tzinfo=UTC)


def _fine(rows: list[dict[str, Any]], window: Window, minutes: int, tz: str) -> pl.LazyFrame:
    settings = BuildSettings(interval_minutes=minutes, tz=tz)  # type: ignore[arg-type]
    contacts = pl.DataFrame(rows, schema=CONTACTS).lazy()
    return callvolume.build(contacts, window=window, settings=settings)


@given(
    st.data(),
    st.sampled_from((15, 30, 60)),
    st.sampled_from(ZONES),
    st.sampled_from((15, 30, 60, 1440)),
    st.sampled_from(ZONES),
)
def test_a_rollup_is_the_oracle_sum_where_the_grids_nest_and_refused_where_not(
    data: st.DataObject, fine_minutes: int, fine_tz: str, minutes: int, tz: str
) -> None:
    hours = data.draw(st.integers(1, 30))
    window = snap_window(DAY, DAY + timedelta(hours=hours), minutes=minutes, tz=tz)
    rows = data.draw(contact_rows(*window, max_size=25))
    fine = _fine(rows, window, fine_minutes, fine_tz)
    rolled = callvolume.rollup(fine, window=window, minutes=minutes, tz=tz)
    coarse = callvolume.rollup_grid(window, minutes=minutes, tz=tz).rows(named=True)
    spans = [(c["interval_start_utc"], c["interval_end_utc"]) for c in coarse]
    straddles = [
        (r["interval_start_utc"], r["interval_end_utc"])
        for r in fine.collect().iter_rows(named=True)
        if window[0] <= r["interval_start_utc"] < window[1]
        and not any(lo <= r["interval_start_utc"] and r["interval_end_utc"] <= hi
                    for lo, hi in spans)
    ]  # fmt: skip
    event(f"straddles={bool(straddles)}")
    if straddles:
        with pytest.raises(StoreError, match=f"{minutes}-minute intervals in {tz}: the table"):
            rolled.collect()
        return
    want: Counter[tuple[datetime, str, str]] = Counter()
    for r in rows:
        if r["direction"] != "inbound":
            continue
        for lo, hi in spans:
            if lo <= r["offered_at"] < hi:
                want[(lo, r["queue_id"], r["channel"])] += 1
    got = rolled.filter(pl.col("offered") > 0).collect()
    keys = zip(got["interval_start_utc"], got["queue_id"], got["channel"], strict=True)
    assert dict(zip(keys, got["offered"], strict=True)) == dict(want)


def test_an_hourly_utc_table_is_not_rolled_up_to_kolkata_hours() -> None:
    """Every UTC hour lies across two Kolkata hours (they start at hh:30 UTC)."""
    tz = "Asia/Kolkata"
    window = snap_window(DAY, DAY + timedelta(days=1), minutes=60, tz=tz)
    at = DAY + timedelta(hours=9, minutes=45)  # in Kolkata's 09:30-10:30Z hour
    row = {"source": "s", "contact_id": "c", "segment_no": 1, "channel": "voice",
           "direction": "inbound", "queue_id": "q", "queue_name": "Q", "offered_at": at,
           "answered_at": at, "ended_at": at + timedelta(minutes=1), "outcome": "answered",
           "wait_ms": 0, "talk_ms": 60_000, "hold_ms": 0, "acw_ms": 0,
           "updated_at": at}  # fmt: skip
    hourly = _fine([row], window, 60, "UTC")
    with pytest.raises(StoreError, match=r"interval 2026-10-01T00:00:00Z \.\. 2026-10-01T01:00"):
        callvolume.rollup(hourly, window=window, minutes=60, tz=tz).collect()
    with pytest.raises(StoreError, match="15-minute intervals in UTC: the table's interval"):
        callvolume.rollup(hourly, window=window, minutes=15, tz="UTC").collect()
    quarters = _fine([row], window, 15, "UTC")  # a finer table nests: the right Kolkata hour
    rolled = callvolume.rollup(quarters, window=window, minutes=60, tz=tz).collect()
    busy = rolled.filter(pl.col("offered") > 0)
    assert busy["interval_start_utc"].to_list() == [DAY + timedelta(hours=9, minutes=30)]


@pytest.mark.parametrize("module", [callback_intervals, retry_outcomes])
def test_callback_tables_refuse_a_grid_that_does_not_nest(module: Any) -> None:
    start = datetime(2026, 10, 1, tzinfo=ZoneInfo("Asia/Kolkata")).astimezone(UTC)
    window = (start, start + timedelta(days=1))
    reqs = requests(generate_attempts(seed=3, start=DAY - timedelta(days=1), days=3).lazy())
    hourly = module.build(reqs, window=window, settings=BuildSettings(interval_minutes=60))
    assert hourly.collect()["requests"].sum() > 0
    with pytest.raises(StoreError, match="60-minute intervals in Asia/Kolkata: the table"):
        module.rollup(hourly, window=window, minutes=60, tz="Asia/Kolkata").collect()
    with pytest.raises(StoreError, match="30-minute intervals in UTC: the table"):
        module.rollup(hourly, window=window, minutes=30, tz="UTC", partial=True).collect()
    daily = module.rollup(hourly, window=window, minutes=1440, tz="Asia/Kolkata")
    with pytest.raises(StoreError, match="1440-minute intervals in Asia/Kolkata"):
        daily.collect()

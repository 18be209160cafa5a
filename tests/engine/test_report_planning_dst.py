"""The report's staffing and forecast-vs-actual days on a local clock with DST, against a
plain-Python oracle from SPEC §4 and docs/metrics.md: the window's last 7 whole local days
(local midnight to local midnight), offered per local day, and the seasonal naive forecast
summed over each day's real intervals (each the mean of the same local interval in up to four
earlier weeks; zero where the store holds no row after its first, none where the clock skips
the stamp), with days of no contacts up to the window's end listed as zeros."""

from __future__ import annotations

import random
import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.demo.contacts import generate_contacts
from engine.pipeline import build as pipeline
from engine.report import planning
from engine.report.build import render
from engine.report.data import compute, open_store
from engine.settings import BuildSettings

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


def test_a_closed_last_day_is_listed_with_no_contacts_but_not_past_the_store() -> None:
    window = (datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC))
    volume = _constant(date(2026, 11, 2), date(2026, 12, 6), "UTC")  # Sunday 12-06 closed
    got = planning.plan_days(volume, None, window=window, tz="UTC", interval=15)
    assert got["day"].to_list() == [date(2026, 11, 30) + timedelta(days=k) for k in range(7)]
    assert got.row(-1) == (date(2026, 12, 6), "voice", 0.0, 960.0, None, None, None)
    # a window reaching past what the store built: zeros up to the store's end only
    wider = (window[0], window[1] + timedelta(days=3))
    got = planning.plan_days(volume, None, window=wider, tz="UTC", interval=15,
                             held_to=window[1])  # fmt: skip
    assert got["day"].to_list() == [date(2026, 12, 3) + timedelta(days=k) for k in range(4)]
    assert got["offered"].to_list() == [960.0, 960.0, 960.0, 0.0]
    # busy rows after it are still read
    got = planning.plan_days(volume, None, window=window, tz="UTC", interval=15,
                             held_to=window[1] - timedelta(days=3))  # fmt: skip
    assert got["day"].to_list()[-1] == date(2026, 12, 5)


def _oracle_plan(
    rows: dict[datetime, int], end: date, tz: str
) -> dict[date, tuple[float, float | None]]:
    """Per local day of the last week before ``end``: offered, and the forecast."""
    zone = ZoneInfo(tz)
    per_stamp: dict[datetime, float] = defaultdict(float)  # local stamp: its intervals' sum
    count: dict[datetime, int] = defaultdict(int)  # how many real intervals it labels
    lo = min(rows)
    at = lo
    while at < _utc(end, tz):
        stamp = at.astimezone(zone).replace(tzinfo=None)
        per_stamp[stamp] += rows.get(at, 0)
        count[stamp] += 1
        at += timedelta(minutes=15)
    want: dict[date, tuple[float, float | None]] = {}
    for day in (end - timedelta(days=k) for k in range(7, 0, -1)):
        offered, fc, held = 0.0, 0.0, False
        for q in _quarters(day, tz):
            stamp = q.astimezone(zone).replace(tzinfo=None)
            offered += rows.get(q, 0)
            past = [stamp - timedelta(days=7 * k) for k in (1, 2, 3, 4)]
            values = [per_stamp[p] / count[p] for p in past if count.get(p)]
            if values:
                held = True
                fc += sum(values) / len(values)
        want[day] = (offered, fc if held else None)
    return want


@given(seed=st.integers(0, 10_000), end=st.sampled_from([date(2026, 3, 9), date(2026, 3, 15),
       date(2026, 3, 18), date(2026, 11, 2), date(2026, 11, 8), date(2026, 11, 12)]),
       weeks=st.integers(1, 5), closed=st.integers(0, 2))  # fmt: skip
def test_plan_days_on_sparse_rows_across_dst_match_the_oracle(
    seed: int, end: date, weeks: int, closed: int
) -> None:
    rng = random.Random(seed)
    first = end - timedelta(days=7 * weeks + 1)
    rows = {
        q: rng.randint(1, 20)
        for k in range((end - first).days - closed)  # the last ``closed`` days: no contacts
        for q in _quarters(first + timedelta(days=k), NY)
        if rng.random() < 0.3
    }
    window = (_utc(first, NY), _utc(end, NY))
    got = planning.plan_days(_volume(list(rows), list(rows.values())), None, window=window,
                             tz=NY, interval=15)  # fmt: skip
    want = _oracle_plan(rows, end, NY)
    assert got["day"].to_list() == list(want)
    for day, _, offered, forecast, *_ in got.iter_rows():
        assert offered == want[day][0]
        if want[day][1] is None:
            assert forecast is None
        else:
            assert forecast == pytest.approx(want[day][1], rel=1e-12, abs=1e-9)


def test_the_report_lists_a_closed_last_day_but_no_day_the_store_did_not_build(
    tmp_path: Path,
) -> None:
    t0 = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday; the build's window is two weeks
    contacts = generate_contacts(start=t0, days=13, scale=0.02)  # Sunday 11-15: closed
    pipeline.build_contacts(contacts.lazy(), settings=BuildSettings(), out_dir=tmp_path,
                            window=(t0, t0 + timedelta(days=14)))  # fmt: skip
    store = open_store(tmp_path)

    def staffing_days(end: datetime | None) -> list[str]:
        page = render(compute(store, end=end), generated_at=t0)
        section = page[page.index('id="staffing-days"') :]
        section = section[: section.index("</table>")]
        return list(dict.fromkeys(re.findall(r"<td>\w{3} (2026-\d\d-\d\d)</td>", section)))

    assert staffing_days(None) == [f"2026-11-{d:02}" for d in range(9, 16)]
    assert staffing_days(t0 + timedelta(days=17)) == [f"2026-11-{d:02}" for d in range(12, 16)]


def _staffing_rows(page: str) -> list[list[str]]:
    """The cells of the page's staffing table, row by row."""
    section = page[page.index('id="staffing-days"') :]
    body = section[section.index("<tbody>") : section.index("</table>")]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in body.split("</tr>")[:-1]]


def test_a_quiet_first_day_of_the_built_window_is_listed_with_no_contacts(
    tmp_path: Path,
) -> None:
    """The store keeps busy rows only, and the section zero-filled its history from the first
    busy interval, not from the start of the window the build recorded in its summary: a
    Saturday with no contacts at the start of the window was left out of its whole local days
    (the counterpart of a closed last day, above)."""
    first = date(2026, 3, 7)  # a Saturday: no contacts until Sunday, the spring-forward day
    window = (_utc(first, NY), _utc(first + timedelta(days=5), NY))
    contacts = generate_contacts(start=_utc(first + timedelta(days=1), NY), days=4, scale=0.02,
                                 time_zone=NY)  # fmt: skip
    pipeline.build_contacts(contacts.lazy(), settings=BuildSettings(tz=NY), out_dir=tmp_path,
                            window=window)  # fmt: skip
    rows = _staffing_rows(render(compute(open_store(tmp_path)), generated_at=window[1]))
    days = list(dict.fromkeys(r[0] for r in rows))
    assert days == [f"{first + timedelta(days=k):%a %Y-%m-%d}" for k in range(5)]
    assert {r[2] for r in rows if r[0] == "Sat 2026-03-07"} == {"0"}


def test_a_quiet_first_week_of_the_built_window_is_history_of_zeros(tmp_path: Path) -> None:
    """One contact a day from Tuesday 10-06 in a window built from Monday 10-05: Monday 11-02's
    four earlier Mondays are a zero and three ones, a forecast of 0.75 (as ``export forecast``
    and :func:`engine.tables.seasonal.forecast` give); the section forecast 1, the quiet Monday
    being no history when the zeros started at the first busy interval."""
    start = datetime(2026, 10, 5, tzinfo=UTC)
    one_a_day = pl.DataFrame(
        {
            "source": "t", "contact_id": [f"c{k}" for k in range(1, 35)], "segment_no": 1,
            "channel": "voice", "direction": "inbound", "queue_id": "q", "queue_name": "Q",
            "offered_at": [start + timedelta(days=k, hours=12) for k in range(1, 35)],
            "outcome": "abandoned", "wait_ms": 1_000, "talk_ms": 0, "hold_ms": 0, "acw_ms": 0,
            "messages": 0, "csat_responses": 0, "csat_score": 0,
            "updated_at": datetime(2026, 11, 20, tzinfo=UTC),
        }
    )  # fmt: skip
    pipeline.build_contacts(one_a_day.lazy(), settings=BuildSettings(), out_dir=tmp_path,
                            window=(start, start + timedelta(days=35)))  # fmt: skip
    rows = _staffing_rows(render(compute(open_store(tmp_path)), generated_at=start))
    assert [r[0] for r in rows] == [f"{date(2026, 11, 2) + timedelta(days=k):%a %Y-%m-%d}"
                                    for k in range(7)]  # fmt: skip
    assert rows[0][1:5] == ["voice", "1", "1", "33.3%"]  # 1 offered against 0.75 forecast
    assert [r[4] for r in rows[1:]] == ["0.0%"] * 6

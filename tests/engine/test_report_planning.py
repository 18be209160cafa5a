"""The report's per-channel tiles and its staffing and forecast-vs-actual numbers, against plain
Python sums of the rows they read (sparse rows: zero-filled before the forecast)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from engine.demo.contacts import generate_contacts
from engine.output import delta
from engine.pipeline import build as pipeline
from engine.report import planning
from engine.report.build import render
from engine.report.data import compute, open_store, span
from engine.report.page import service_table
from engine.report.quality import reconcile_html
from engine.settings import BuildSettings
from engine.tables import staffing

T0 = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
DAYS = 22


def _sparse_volume(seed: int) -> pl.DataFrame:
    """Busy rows only: two queues of voice and one of chat, offered on some intervals."""
    rng = random.Random(seed)
    rows = []
    for i in range(DAYS * 96):
        at = T0 + timedelta(minutes=15 * i)
        for queue, channel in (("q1", "voice"), ("q2", "voice"), ("q3", "chat")):
            if rng.random() < 0.4:
                offered = rng.randint(1, 30)
                answered = rng.randint(0, offered)
                rows.append((at, queue, channel, offered, answered, answered * 200_000))
    return pl.DataFrame(
        rows,
        schema={
            "interval_start_utc": pl.Datetime("us", "UTC"),
            "queue_id": pl.String,
            "channel": pl.String,
            "offered": pl.Int64,
            "answered": pl.Int64,
            "handle_ms": pl.Int64,
        },
        orient="row",
    )


def test_forecast_and_required_agents_per_day_match_plain_sums() -> None:
    volume = _sparse_volume(3)
    need = staffing.build(volume.lazy(), settings=BuildSettings()).collect()
    window = (T0, T0 + timedelta(days=DAYS))
    got = planning.plan_days(volume.lazy(), need.lazy(), window=window, tz="UTC", interval=15)

    daily: dict[tuple[str, object], int] = defaultdict(int)
    for r in volume.iter_rows(named=True):
        daily[r["channel"], r["interval_start_utc"].date()] += r["offered"]
    per_interval: dict[tuple[str, datetime], int] = defaultdict(int)
    for r in need.iter_rows(named=True):
        per_interval[r["channel"], r["interval_start_utc"]] += r["agents_required"]
    first = (window[1] - timedelta(days=7)).date()
    assert got["day"].unique().sort().to_list() == [first + timedelta(days=k) for k in range(7)]
    for r in got.iter_rows(named=True):
        ch, day = r["channel"], r["day"]
        assert r["offered"] == daily[ch, day]
        past = [daily[ch, day - timedelta(days=7 * k)] for k in (1, 2, 3, 4)]
        past = [v for k, v in zip((1, 2, 3, 4), past, strict=True)
                if day - timedelta(days=7 * k) >= T0.date()]  # fmt: skip
        assert r["forecast"] == pytest.approx(sum(past) / len(past))
        agents = [v for (c, at), v in per_interval.items() if c == ch and at.date() == day]
        assert r["agent_hours"] == pytest.approx(sum(agents) / 4)
        assert r["peak_agents"] == max(agents)


@pytest.mark.parametrize(
    ("tz", "interval"),
    [("UTC", 15), ("America/New_York", 15), ("Asia/Kathmandu", 30), ("Asia/Kathmandu", 15)],
)
def test_the_recent_part_of_a_store_plans_as_the_whole_store(tz: str, interval: int) -> None:
    """A nightly report reads the store's recent partitions only: with where they start
    (``history_from``), the forecast sees the zeros the whole store holds there, even across an
    idle stretch (here days 2-12, reaching into the forecast's 4 weeks) and a DST change."""
    days, rng = 45, random.Random(interval)
    local_t0 = T0.replace(tzinfo=ZoneInfo(tz)).astimezone(UTC)  # the grid is the zone's
    rows = [
        (local_t0 + timedelta(minutes=interval * i), ch, rng.randint(1, 9), 0, 0)
        for i in range(days * 1440 // interval)
        if not 2 <= i * interval // 1440 <= 12
        for ch in ("voice", "chat")
        if rng.random() < 0.5
    ]
    names = ["interval_start_utc", "channel", "offered", "answered", "handle_ms"]
    volume = pl.DataFrame(rows, schema=names, orient="row").with_columns(
        pl.col("interval_start_utc").dt.replace_time_zone("UTC").dt.cast_time_unit("us"),
        pl.lit("q").alias("queue_id"),
    )
    window = (local_t0, local_t0 + timedelta(days=days))
    whole = planning.plan_days(volume.lazy(), None, window=window, tz=tz, interval=interval)
    assert whole["forecast"].null_count() == 0
    for cut in (3, 5, 8):
        held_from = T0 + timedelta(days=cut)  # a UTC midnight, as the partitions start
        recent = volume.filter(pl.col("interval_start_utc") >= held_from)
        got = planning.plan_days(
            recent.lazy(), None, window=window, tz=tz, interval=interval, history_from=held_from
        )
        assert got.equals(whole), (tz, interval, cut)
        if cut < 8:  # without it the idle days before the first recent row are "not held"
            missed = planning.plan_days(recent.lazy(), None, window=window, tz=tz,
                                        interval=interval)  # fmt: skip
            assert not missed.equals(whole)


def test_a_nightly_report_reads_the_recent_partitions_and_draws_the_same_page(
    tmp_path: Path,
) -> None:
    settings = BuildSettings(tz="America/New_York")  # 45 days across the November DST change
    contacts = generate_contacts(start=T0 - timedelta(days=30), days=45, scale=0.02)
    pipeline.build_contacts(contacts.lazy(), settings=settings, out_dir=tmp_path)
    need = staffing.build(delta.scan(tmp_path / "store" / "callvolume"), settings=settings)
    delta.commit(tmp_path / "store" / "staffing", need.collect(), by="interval_start_utc",
                 days=None, tag="t")  # fmt: skip
    whole = open_store(tmp_path)
    first, last = span(whole)
    start = max(first, last - timedelta(days=7))
    recent = open_store(tmp_path, last_days=7)
    assert recent.days is not None
    assert recent.days[0] > first.date()  # older partitions were not read
    assert recent.history_from is not None
    want = render(compute(whole, start=start, end=last), generated_at=T0)
    assert render(compute(recent, start=start, end=last), generated_at=T0) == want


def test_a_window_without_a_whole_day_or_history_shows_dashes() -> None:
    volume = _sparse_volume(4).filter(pl.col("interval_start_utc") < T0 + timedelta(days=2))
    got = planning.plan_days(volume.lazy(), None, window=(T0, T0 + timedelta(hours=20)),
                             tz="UTC", interval=15)  # fmt: skip
    assert got.height == 0
    got = planning.plan_days(volume.lazy(), None, window=(T0, T0 + timedelta(days=2)),
                             tz="UTC", interval=15)  # fmt: skip
    assert got["forecast"].null_count() == got.height == 4
    assert got["agent_hours"].null_count() == 4


def test_tiles_give_each_channel_its_own_service_level_and_target(tmp_path: Path) -> None:
    settings = BuildSettings(sl_target={"chat": 0.7})
    contacts = generate_contacts(start=T0, days=1, scale=0.05).lazy()
    pipeline.build_contacts(contacts, settings=settings, out_dir=tmp_path)
    volume = delta.scan(tmp_path / "store" / "callvolume")
    need = staffing.build(volume, settings=settings).collect()
    delta.commit(tmp_path / "store" / "staffing", need, by="interval_start_utc", days=None,
                 tag="t")  # fmt: skip
    data = compute(open_store(tmp_path))
    tiles = planning.channel_totals(
        data.queues, planning.staffing_table(tmp_path), sl_formula=data.sl_formula
    )
    rows = volume.collect()
    for tile in tiles:
        mine = rows.filter(pl.col("channel").cast(pl.String) == tile["channel"])
        within, answered = mine["answered_within_sl"].sum(), mine["answered"].sum()
        abandoned, short = mine["abandoned"].sum(), mine["short_abandoned"].sum()
        assert tile["service_level"] == pytest.approx(within / (answered + abandoned - short))
        assert tile["asa_ms"] == pytest.approx(mine["wait_answered_ms"].sum() / answered)
        assert tile["sl_target"] == (0.7 if tile["channel"] == "chat" else
                                     settings.sl_target[tile["channel"]])  # fmt: skip
        assert tile["threshold_ms"] == settings.threshold_ms("", tile["channel"])
    assert {t["channel"] for t in tiles} == set(rows["channel"].cast(pl.String).unique())
    page = render(data, generated_at=T0)
    for tile in tiles:
        assert f'data-channel="{tile["channel"]}"' in page
    assert "target 70% within 1:00" in page
    assert "Staffing and forecast vs actual" in page


def test_a_build_stores_tiles_hold_the_threshold_and_target_it_was_built_with(
    tmp_path: Path,
) -> None:
    """``build`` makes no staffing table (``run`` does), so the tiles fell back to the default
    threshold and target: "within 0:20" for voice built with 30 s. They are those the build
    recorded in its summary; a ``run`` store's staffing table still gives them."""
    settings = BuildSettings(sl_default_ms={"voice": 30_000}, sl_target={"voice": 0.9})
    contacts = generate_contacts(start=T0, days=1, scale=0.05).lazy()
    pipeline.build_contacts(contacts, settings=settings, out_dir=tmp_path)
    data = compute(open_store(tmp_path))
    assert planning.staffing_table(tmp_path) is None
    page = render(data, generated_at=T0)
    assert "target 90% within 0:30" in page
    assert "target 80% within 1:00" in page  # chat: the defaults, as built
    tiles = planning.channel_totals(data.queues, None, sl_formula=data.sl_formula,
                                    built=data.settings)  # fmt: skip
    for tile in tiles:
        channel = tile["channel"]
        assert tile["threshold_ms"] == settings.threshold_ms("", channel)
        assert tile["sl_target"] == settings.sl_target[channel]
    assert {t["channel"] for t in tiles} >= {"voice", "chat"}


def test_the_reconciliation_reads_as_a_verdict_and_plain_tables() -> None:
    diffs = [{"source": "kore", "interval_start_utc": "2026-11-02T10:00:00Z", "queue_id": "q1",
              "channel": "voice", "field": "offered", "ours": 10, "theirs": 9, "diff": 1,
              "within_tolerance": False, "presence": "both"}] * 201  # fmt: skip
    what = "callback metrics document (seed 000), field by field"
    check = {"source": "mindful", "compares": what,
             "status": "out_of_tolerance", "compared": 54, "differences": 201,
             "out_of_tolerance": 201, "note": ""}  # fmt: skip
    html = reconcile_html({"ok": False, "checks": [check], "differences": diffs})
    assert "differ from a vendor&#x27;s own beyond tolerance" in html
    assert "seed" not in html
    assert "callback metrics document, field by field" in html
    assert '<td class="bad">out of tolerance</td>' in html
    assert "<th>Ours - theirs</th>" in html
    assert html.count("<td>q1</td>") == 200
    assert "The first 200 of 201 differences." in html
    passed = reconcile_html({"ok": True, "checks": [check | {"status": "ok"}], "differences": []})
    assert "agree with the vendors&#x27; own in 1 check(s)." in passed
    assert "No differences." in passed


def test_service_cells_are_coloured_against_their_channels_target(tmp_path: Path) -> None:
    contacts = generate_contacts(start=T0, days=2, scale=0.05).lazy()
    pipeline.build_contacts(contacts, settings=BuildSettings(), out_dir=tmp_path)
    data = compute(open_store(tmp_path))
    targets = {"chat": 0.0, "voice": 1.01, "email": 1.01, "messaging": 1.01, "callback": 1.01}
    html = service_table(data.daily, data.queues, targets)
    chat = pl.col("channel").cast(pl.String) == "chat"
    cells = data.daily.filter(chat)["service_level"].count()
    cells += data.queues.filter(chat)["service_level"].count()
    assert cells > 0
    assert html.count('<td class="good">') == cells


@pytest.mark.parametrize(
    ("tz", "interval", "day"),
    [("America/New_York", 15, datetime(2026, 11, 1, 4, tzinfo=UTC)),  # 25 hours, 01:00 twice
     ("Australia/Lord_Howe", 60, datetime(2026, 10, 3, 13, 30, tzinfo=UTC))],  # 23.5 hours
)  # fmt: skip
def test_agents_of_a_dst_day_are_summed_per_interval_over_its_own_length(
    tz: str, interval: int, day: datetime
) -> None:
    """The fall-back night's two 01:00 intervals were one (their agents added: a peak of 8
    where 5 is right), and every interval counted its nominal length (Lord Howe's 23.5-hour
    day gave 23.0 agent-hours of one agent)."""
    from engine.interval import interval_grid

    zone = ZoneInfo(tz)
    last = day.astimezone(zone).date()
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), zone).astimezone(UTC)
    grid = interval_grid(day - timedelta(days=7), end, minutes=interval, tz=tz)
    rng = random.Random(5)
    agents = [rng.randint(1, 6) for _ in range(grid.height)]
    need = grid.select("interval_start_utc").with_columns(
        queue_id=pl.lit("q"), channel=pl.lit("voice"), offered=pl.lit(1, pl.Int64),
        agents_required=pl.Series(agents), load_erlangs=pl.Series(agents, dtype=pl.Float64) / 2,
    )  # fmt: skip
    volume = need.select("interval_start_utc", "queue_id", "channel", "offered")
    window = (grid["interval_start_utc"][0], grid["interval_end_utc"][-1])
    got = planning.plan_days(volume.lazy(), need.lazy(), window=window, tz=tz, interval=interval)
    hours: dict[object, float] = defaultdict(float)
    peak: dict[object, int] = defaultdict(int)
    for start, end, n in zip(grid["interval_start_utc"], grid["interval_end_utc"], agents,
                             strict=True):  # fmt: skip
        local = start.astimezone(zone).date()
        hours[local] += n * (end - start).total_seconds() / 3600
        peak[local] = max(peak[local], n)
    row = got.filter(pl.col("day") == last).row(0, named=True)
    assert row["agent_hours"] == pytest.approx(hours[last])
    assert row["peak_agents"] == peak[last]
    assert row["load_hours"] == pytest.approx(hours[last] / 2)


def test_the_intraday_chart_follows_the_intervals_across_a_half_hour_jump(tmp_path: Path) -> None:
    """Lord Howe at 60 minutes across its spring-forward (02:00 -> 02:30): the chart's grid
    went on in fixed hours from the first interval, so after the 30-minute interval no point
    fell on an interval: 53 of 143 offered drawn, the rest shown as zeros at :30."""
    from engine.report.interactive import figures

    settings = BuildSettings(tz="Australia/Lord_Howe", interval_minutes=60)
    start = datetime(2026, 10, 3, 13, 30, tzinfo=UTC)  # local midnight, the night of the jump
    stamps = [start + timedelta(minutes=30 * k) for k in range(143)]
    contacts = pl.DataFrame(
        {"source": "u", "contact_id": [f"c{k}" for k in range(143)], "segment_no": 1,
         "channel": "voice", "queue_id": "q", "offered_at": stamps, "outcome": "abandoned"},
    )  # fmt: skip
    pipeline.build_contacts(contacts.lazy(), settings=settings, out_dir=tmp_path)
    data = compute(open_store(tmp_path))
    chart = figures(data, staffing=None, plan=pl.DataFrame())["chart-intraday"]
    drawn = sum(y for trace in chart["data"] for y in trace["y"] if y is not None)
    assert drawn == 143


def test_the_intraday_chart_shows_the_last_seven_local_days_across_a_fall_back(
    tmp_path: Path,
) -> None:
    """A window ending at New York's midnight after the fall-back week: the chart went back
    7 x 24 hours in UTC, so its first day (the 25-hour Sunday) started at 01:00 and lost its
    first hour's contacts; it starts at local midnight now, and every contact of the seven
    local days is drawn."""
    from engine.report.interactive import figures

    settings = BuildSettings(tz="America/New_York", interval_minutes=15)
    sunday = datetime(2026, 11, 1, 4, tzinfo=UTC)  # local midnight, EDT, the fall-back day
    end = datetime(2026, 11, 8, 5, tzinfo=UTC)  # the next Sunday's local midnight, EST
    hours = int((end - sunday).total_seconds() // 3600)  # 169: a week and an hour
    stamps = [sunday + timedelta(hours=h, minutes=7) for h in range(hours)]
    contacts = pl.DataFrame(
        {"source": "u", "contact_id": [f"c{k}" for k in range(hours)], "segment_no": 1,
         "channel": "voice", "queue_id": "q", "offered_at": stamps, "outcome": "abandoned"},
    )  # fmt: skip
    window = (sunday - timedelta(days=7), end)
    pipeline.build_contacts(contacts.lazy(), settings=settings, out_dir=tmp_path, window=window)
    data = compute(open_store(tmp_path), start=window[0], end=end)
    chart = figures(data, staffing=None, plan=pl.DataFrame())["chart-intraday"]
    assert chart["days"][0] == "2026-11-01"
    assert len(chart["days"]) == 7
    drawn = sum(y for trace in chart["data"] for y in trace["y"] if y is not None)
    assert drawn == hours

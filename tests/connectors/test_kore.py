"""The ``kore`` connector against the Kore.ai emulator over real loopback sockets.

Every fault gives exactly the fault-free import; rows changing while paging lose nothing; the
import equals our engine's own ``callvolume.build`` over the same contacts (the emulator
aggregates them independently), and a perturbed vendor row is reported by ``compare_callvolume``.
Auth, secrets, settings and kill-and-resume are in ``test_kore_safety.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.emulator import Fault, Faults, KoreEmulator
from connectors.emulator.server import Request, Response
from connectors.errors import StateError
from connectors.normalise import rebuild
from connectors.source import TimeoutSettings
from connectors.state import StateStore, format_utc
from connectors.vendors.kore.client import KORE, KoreSettings
from engine.pipeline.kore import import_kore, reconcile_kore
from engine.settings import BuildSettings
from engine.tables.callvolume import build
from engine.tables.compare import compare_callvolume
from tests.connectors.kore_support import (
    CONTACTS,
    DAY,
    KEYS,
    NOW,
    as_served,
    expected,
    imported,
    sync,
)


@pytest.fixture
def emu() -> Iterator[KoreEmulator]:
    with KoreEmulator(CONTACTS, rate_limit=None) as e:
        yield e


def test_clean_sync_imports_every_row(emu: KoreEmulator, tmp_path: Path) -> None:
    report = sync(emu, tmp_path)
    assert report.ok, report.error
    assert (report.rejected, report.retries, report.throttled) == ({}, 0, 0)
    rows = imported(tmp_path)
    assert rows["source"].unique().to_list() == ["kore"]
    assert rows.select(KEYS).is_unique().all()
    assert_frame_equal(as_served(rows, emu), expected(emu))
    state = StateStore(tmp_path / "state").get("kore", "callvolume")
    assert state is not None
    assert state.cursor == min(expected(emu)["interval_end_utc"].max(), NOW)


def test_import_equals_our_engine_and_a_perturbed_row_is_reported(
    emu: KoreEmulator, tmp_path: Path
) -> None:
    window = (DAY, NOW.replace(hour=0, minute=0) + timedelta(days=1))
    ours = build(CONTACTS.lazy(), window=window, settings=BuildSettings())
    assert sync(emu, tmp_path).ok
    theirs = imported(tmp_path)
    assert compare_callvolume(ours, theirs.lazy(), tolerance=0).collect().height == 0
    # field for field on the rows Kore.ai serves (it leaves out empty intervals)
    shared = [c for c in theirs.columns if theirs[c].null_count() == 0 and c != "source"]
    mine = ours.collect().join(theirs.select(KEYS), on=KEYS, how="semi").sort(KEYS)
    assert_frame_equal(
        theirs.select(shared).sort(KEYS),
        mine.select(shared).cast(dict(theirs.select(shared).schema)),
    )
    at = theirs.filter(pl.col("answered") > 1).row(0, named=True)
    emu.perturb(at["interval_start_utc"], at["queue_id"], at["channel"], answeredContacts=-1)
    assert sync(emu, tmp_path / "again").ok
    found = compare_callvolume(ours, imported(tmp_path / "again").lazy(), tolerance=0).collect()
    assert found.select("queue_id", "field", "ours", "theirs", "presence").rows() == [
        (at["queue_id"], "answered", at["answered"], at["answered"] - 1, "both")
    ]


def test_import_writes_the_store_and_reconcile_writes_the_differences(
    emu: KoreEmulator, tmp_path: Path
) -> None:
    assert sync(emu, tmp_path).ok
    row = expected(emu).row(0, named=True)
    emu.override(row["interval_start_utc"], row["queue_id"], row["channel"], source="rtm")
    assert sync(emu, tmp_path / "bad").ok
    out = tmp_path / "out"
    done = import_kore(KoreSettings(), landing_root=tmp_path / "bad" / "landing", out_dir=out)
    assert done.quarantine["reason"].to_list() == ["unknown_channel"]
    assert (out / "quarantine" / "callvolume_kore.csv").is_file()
    stored = pl.read_delta(str(out / "store" / "callvolume_kore")).drop("date", strict=False)
    assert_frame_equal(stored.sort(KEYS), done.rows.sort(KEYS), check_dtypes=False)
    window = (DAY, NOW.replace(hour=0, minute=0) + timedelta(days=1))
    ours = build(CONTACTS.lazy(), window=window, settings=BuildSettings())
    found = reconcile_kore(ours, done.rows, out_dir=out)
    assert set(found["presence"]) == {"ours_only"}  # the quarantined row is missing
    assert set(found["queue_id"]) == {row["queue_id"]}
    assert pl.read_csv(out / "reconcile" / "callvolume_kore.csv").height == found.height


@pytest.mark.parametrize(
    "faults",
    [
        Faults(schedule={1: Fault.THROTTLE, 2: Fault.THROTTLE, 5: Fault.THROTTLE}),
        Faults(schedule={1: Fault.THROTTLE_BARE, 3: Fault.THROTTLE_BARE}),
        Faults(schedule={2: Fault.SERVER_ERROR, 3: Fault.SERVER_ERROR}),
        Faults(schedule={1: Fault.UNAVAILABLE, 4: Fault.UNAVAILABLE}),
        Faults(schedule={2: Fault.SLOW}, slow_s=1.0),
        Faults(schedule={2: Fault.DROP, 6: Fault.DROP}),
        Faults(schedule={1: Fault.TRUNCATE, 3: Fault.TRUNCATE}),
        Faults(unknown_keys=True),
        Faults(rates={Fault.SERVER_ERROR: 0.15, Fault.DROP: 0.1, Fault.TRUNCATE: 0.1}),
    ],
    ids=["429", "429-bare", "500", "503", "slow", "drop", "truncate", "unknown-keys", "mixed"],
)
def test_every_fault_gives_the_fault_free_result(
    emu: KoreEmulator, tmp_path: Path, faults: Faults
) -> None:
    emu.faults = faults
    report = sync(emu, tmp_path, timeouts=TimeoutSettings(read=0.3))
    assert report.ok, report.error
    assert report.retries == len(faults.schedule) or not faults.schedule
    assert_frame_equal(as_served(imported(tmp_path), emu), expected(emu))


def test_rows_changing_while_paging_converge_on_the_next_run(
    emu: KoreEmulator, tmp_path: Path
) -> None:
    today = NOW.replace(hour=0, minute=0)
    pages = sync(emu, tmp_path / "clean", per_page=2, start=today).pages
    first = expected(emu).filter(pl.col("interval_start_utc") >= today).row(0, named=True)
    assert expected(emu).filter(pl.col("interval_start_utc") >= today).height >= 3
    start = first["interval_start_utc"]
    inbound = CONTACTS.filter(pl.col("direction") == "inbound")
    added = inbound.head(1).with_columns(  # a new queue sorting first in that interval
        contact_id=pl.lit("late-1"), queue_id=pl.lit("aaa-new"), offered_at=pl.lit(start)
    )
    changed = inbound.filter(
        pl.col("queue_id") == first["queue_id"],
        pl.col("offered_at").is_between(start, start + timedelta(minutes=15), closed="left"),
    ).head(1)
    changed = changed.with_columns(csat_responses=pl.col("csat_responses") + 1)

    def between_pages(n: int) -> None:
        if n == 2 * pages:  # before the last page of the next run: both rows are behind it
            emu.upsert_contacts(pl.concat([added, changed]))

    emu.add_hook(between_pages)
    report = sync(emu, tmp_path, per_page=2, start=today)
    assert report.ok, report.error
    assert emu.errors == []
    after_first = as_served(imported(tmp_path), emu)
    final = expected(emu).filter(pl.col("interval_start_utc") >= today)
    stale = [(start, "aaa-new"), (start, first["queue_id"])]
    differ = final.join(after_first, on=KEYS, how="left").filter(
        pl.col("csat_responses") != pl.col("csat_responses_right").fill_null(-1)
    )
    assert sorted(differ.select("interval_start_utc", "queue_id").rows()) == sorted(stale)
    assert after_first.height == final.height - 1  # only the added row is not read yet
    assert sync(emu, tmp_path, now=NOW + timedelta(minutes=5), per_page=2, start=today).ok
    assert_frame_equal(as_served(imported(tmp_path), emu), final)


@pytest.mark.parametrize("offset", [50, -50])
def test_a_total_count_that_lies_costs_at_most_an_empty_page_a_window(
    tmp_path: Path, offset: int
) -> None:
    """Under ``hasMore: true`` a short total is not followed; over ``hasMore: false`` a long one
    is asked past once: the page after is empty, and ends the window."""
    with KoreEmulator(CONTACTS, rate_limit=None) as honest:
        assert sync(honest, tmp_path / "honest").ok
        pages = honest.stats.admitted
    with KoreEmulator(CONTACTS, rate_limit=None, total_count_offset=offset) as liar:
        past: list[int] = []  # the empty pages asked for after a hasMore: false

        def watch(n: int, request: Request, response: Response) -> Response:
            body = response.payload if isinstance(response.payload, dict) else {}
            if json.loads(request.body)["skip"] and body.get("CallVolumeUpdate") == []:
                past.append(n)
            return response

        liar.add_rewrite(watch)
        report = sync(liar, tmp_path / "liar")
        assert report.ok, report.error
        assert liar.stats.admitted == report.pages == pages + len(past)
        assert bool(past) == (offset > 0)
        assert_frame_equal(as_served(imported(tmp_path / "liar"), liar), expected(liar))


def test_a_has_more_false_short_of_the_total_count_is_asked_past(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server says ``hasMore: false`` after every page while ``totalCount`` (right) says
    more. The sync stopped after each window's first page with exit 0, and the cursor moved
    past the windows: their other rows were lost for good. The page after is asked for; its
    rows go on, and the disagreement is still reported."""

    def lie(n: int, request: Request, response: Response) -> Response:
        body = response.payload
        if isinstance(body, dict) and body.get("hasMore") is True:
            return Response(200, {**body, "hasMore": False}, response.headers)
        return response

    with KoreEmulator(CONTACTS, rate_limit=None) as emu:
        emu.add_rewrite(lie)
        report = sync(emu, tmp_path)
        assert report.ok, report.error
        assert_frame_equal(as_served(imported(tmp_path), emu), expected(emu))
    assert "totalCount" in caplog.text
    assert "disagrees with hasMore=False" in caplog.text


def test_idempotent_resync(emu: KoreEmulator, tmp_path: Path) -> None:
    assert sync(emu, tmp_path).ok
    first = imported(tmp_path)
    cursor = StateStore(tmp_path / "state").get("kore", "callvolume")
    again = sync(emu, tmp_path, now=NOW + timedelta(minutes=1))
    assert again.ok
    assert cursor is not None
    assert again.started_from == format_utc(cursor.cursor - timedelta(hours=3))  # the lookback
    assert again.cursor == format_utc(cursor.cursor)  # nothing new: the cursor stays
    assert_frame_equal(imported(tmp_path), first)


def test_a_sync_by_a_clock_a_year_fast_is_refused_once_the_clock_is_right(
    emu: KoreEmulator, tmp_path: Path
) -> None:
    """A window-tailed stream commits the end of the windows it read: the sync's clock. A sync
    run while the clock was a year fast commits a cursor a year ahead; once the clock is set
    right, resuming from it would read windows that have not come yet (nothing, every night).
    That sync is refused; moved back to when the clock was last right, it reads again."""
    assert sync(emu, tmp_path).ok
    good = StateStore(tmp_path / "state").get("kore", "callvolume")
    assert good is not None
    assert sync(emu, tmp_path, now=NOW + timedelta(days=365)).ok
    with pytest.raises(StateError, match=r"kore/callvolume: its cursor 2027-.* ahead of the clock"):
        sync(emu, tmp_path, now=NOW + timedelta(hours=1))
    StateStore(tmp_path / "state").rewind("kore", "callvolume", good.cursor, lookback=good.lookback)
    again = sync(emu, tmp_path, now=NOW + timedelta(hours=1))
    assert again.ok
    assert again.started_from == format_utc(good.cursor - timedelta(hours=3))


def test_the_lookback_picks_up_late_changes_and_stops_at_its_bound(
    emu: KoreEmulator, tmp_path: Path
) -> None:
    hourly = {"window_minutes": 60, "lookback_minutes": 180}
    assert sync(emu, tmp_path, **hourly).ok
    inbound = CONTACTS.filter(pl.col("direction") == "inbound")
    recent = inbound.filter(pl.col("offered_at").is_between(NOW - timedelta(hours=2), NOW))
    old = inbound.filter(pl.col("offered_at") < NOW - timedelta(hours=5)).tail(1)
    change = pl.concat([recent.tail(1), old]).with_columns(csat_responses=1, csat_score=5)
    emu.upsert_contacts(change)
    later = NOW + timedelta(minutes=15)
    assert sync(emu, tmp_path, now=later, **hourly).ok
    got, want = as_served(imported(tmp_path), emu), expected(emu, until=later)
    differ = got.join(want, on=KEYS).filter(pl.col("csat_score") != pl.col("csat_score_right"))
    stale = old.select(pl.col("offered_at").dt.truncate("15m"), "queue_id").row(0)
    assert differ.select("interval_start_utc", "queue_id").rows() == [stale]  # beyond lookback


def test_rate_limit_is_respected_at_test_speed(tmp_path: Path) -> None:
    with KoreEmulator(CONTACTS, rate_limit=4, rate_window_s=1.0) as emu:
        fast = {"rate_limit_per_s": 4.0, "rate_limit_burst": 4, "rate_limit_period_s": 1.0}
        report = sync(emu, tmp_path, per_page=40, rate_limit_margin_s=0.05, **fast)
        assert report.ok, report.error
        assert report.pages >= 8
        assert (emu.stats.rate_limited_429, report.throttled) == (0, 0)
        assert_frame_equal(as_served(imported(tmp_path), emu), expected(emu))
    margin = KoreSettings().rate_limit_margin_s
    assert KoreSettings().limiter().windows == ((60, 60 + margin), (60, 60 + margin))


def test_bad_rows_are_quarantined_with_their_payload(emu: KoreEmulator, tmp_path: Path) -> None:
    rows = expected(emu).head(3).rows(named=True)
    emu.override(
        rows[0]["interval_start_utc"], rows[0]["queue_id"], rows[0]["channel"], source="rtm"
    )
    emu.override(
        rows[1]["interval_start_utc"], rows[1]["queue_id"], rows[1]["channel"], offeredContacts="7"
    )
    emu.override(
        rows[2]["interval_start_utc"], rows[2]["queue_id"], rows[2]["channel"], holdDuration=-5
    )
    report = sync(emu, tmp_path)
    assert report.ok
    assert report.rejected == {"wrong_type": 1}  # the string count is set aside at landing
    out = rebuild(KORE, tmp_path / "landing", KoreSettings())
    quarantine = out.quarantine.collect().sort("reason")
    assert quarantine["reason"].to_list() == ["negative_value", "unknown_channel", "wrong_type"]
    assert set(quarantine["table"]) == {"callvolume_kore"}
    assert json.loads(quarantine["raw"][2])["offeredContacts"] == "7"
    assert_frame_equal(as_served(out.rows.collect(), emu), expected(emu))
    channel = str(rows[0]["channel"])
    mapped = rebuild(KORE, tmp_path / "landing", KoreSettings(channel_map={"rtm": channel}))
    assert sorted(mapped.quarantine.collect()["reason"]) == ["negative_value", "wrong_type"]


def test_seconds_unit(tmp_path: Path) -> None:
    with KoreEmulator(CONTACTS, rate_limit=None, unit="s") as emu:
        assert sync(emu, tmp_path, duration_unit="s").ok
        rows = imported(tmp_path, duration_unit="s")
        assert_frame_equal(as_served(rows, emu), expected(emu))
        assert (rows["talk_ms"] % 1000 == 0).all()

"""The paging invariants hold for every vendor: each emulator is made to lie the way its paging
kind can, and the stream stops with the invariant's name, its cursor not past what was landed.

UJET (cursor tail) is covered in ``test_sync_ujet.py`` and ``test_paging_invariants.py``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.emulator import DixaEmulator, KoreEmulator, MindfulEmulator
from connectors.emulator.server import Request, Response
from connectors.landing import scan_landed
from connectors.state import StateStore, format_utc
from connectors.sync import SyncReport, sync_source
from connectors.vendors.dixa.client import DIXA
from connectors.vendors.mindful.client import MINDFUL
from tests.connectors import dixa_support as dixa
from tests.connectors import kore_support as kore
from tests.connectors import mindful_support as mindful
from tests.connectors.sync_support import sync_into

HOUR = timedelta(hours=1)


def body(response: Response) -> dict[str, Any]:
    assert isinstance(response.payload, dict)
    return response.payload


def test_kore_has_more_on_an_empty_page(tmp_path: Path) -> None:
    def lie(n: int, request: Request, response: Response) -> Response:
        if n != 3:
            return response
        return Response(200, {**body(response), "CallVolumeUpdate": [], "hasMore": True})

    with KoreEmulator(kore.CONTACTS, rate_limit=None) as emu:
        emu.add_rewrite(lie)
        report = kore.sync(emu, tmp_path, per_page=5)
        requests = emu.stats.admitted
    assert (report.error or "").startswith(
        "paging invariant has_more_without_rows violated: page 3: no rows, but hasMore"
    )
    assert requests == 3
    state = StateStore(tmp_path / "state").get("kore", "callvolume")
    assert state is None or state.cursor <= kore.DAY  # not past the window being paged


def dixa_sync(emu: DixaEmulator, root: Path) -> SyncReport:
    (report,) = sync_source(
        DIXA,
        dixa.make_settings(emu, per_page=5),
        landing_root=root / "landing",
        state_root=root / "state",
        sleep=lambda _: None,
    )
    return report


def test_dixa_empty_page_with_a_next_key(tmp_path: Path) -> None:
    def lie(n: int, request: Request, response: Response) -> Response:
        if request.method != "POST" or n != 3:
            return response
        return Response(200, {**body(response), "data": []})

    with dixa.emulator() as emu:
        emu.add_rewrite(lie)
        report = dixa_sync(emu, tmp_path)
    assert (report.error or "").startswith(
        "paging invariant empty_page_claims_more violated: page 2: no records, but a next page key"
    )


def test_dixa_the_same_page_under_new_keys(tmp_path: Path) -> None:
    """Fresh keys defeat the loop guard; the records, all read already, do not."""
    first: list[Response] = []

    def stuck(n: int, request: Request, response: Response) -> Response:
        if request.method != "POST":
            return response
        first.append(response)
        return Response(200, {**body(first[0]), "meta": {"next": f"key-{n}"}})

    with dixa.emulator() as emu:
        emu.add_rewrite(stuck)
        report = dixa_sync(emu, tmp_path)
        requests = emu.stats.admitted
    assert (report.error or "").startswith("paging invariant repeated_page violated: page 2: ")
    assert requests == 3  # the catalogue, then two pages: the second only repeats the first


@pytest.mark.parametrize("next_key", ["kept", "dropped"])
def test_dixa_a_page_that_repeats_the_one_before_once(tmp_path: Path, next_key: str) -> None:
    """The window's second page comes back with the first page's records, once: with the real
    next key after it (its own records never sent), or with none (the rest of the window never
    sent). One such page passed (the guard waited for a second in a row): exit 0, the cursor
    past the window, 10 or 19 conversations missing. It stops the stream before it lands."""
    pages: list[Response] = []

    def again(n: int, request: Request, response: Response) -> Response:
        if request.method != "POST" or not body(response).get("data"):
            return response
        pages.append(response)
        if len(pages) != 2:
            return response
        repeated = {**body(response), "data": body(pages[0])["data"]}
        if next_key == "dropped":
            repeated["meta"] = {}
        return Response(200, repeated, response.headers)

    with dixa.emulator() as emu:
        emu.add_rewrite(again)
        report = dixa_sync(emu, tmp_path)
    assert (report.error or "").startswith("paging invariant repeated_page violated: page 2: ")
    state = StateStore(tmp_path / "state").get("dixa", "conversations")
    assert state is None  # nothing committed past the window being paged


def test_dixa_records_of_another_period_stop_the_stream(tmp_path: Path) -> None:
    """The vendor answers a window with records stamped a year before it (its period
    filter's bug). They landed, the window was committed as synced and its own conversations
    were never sent: all of the day missing, exit 0. A record outside the window asked
    for is a paging violation: nothing of that window lands, the cursor stays before it."""

    def elsewhere(n: int, request: Request, response: Response) -> Response:
        records = body(response).get("data") if request.method == "POST" else None
        if not records:
            return response
        moved = [
            r | {"primaryTimestampField": r["primaryTimestampField"] | {"timestamp": earlier}}
            for r in records
            if (at := r["primaryTimestampField"]["timestamp"])
            and (earlier := f"{int(at[:4]) - 1}{at[4:]}")
        ]
        return Response(200, {**body(response), "data": moved}, response.headers)

    with dixa.emulator() as emu:
        emu.add_rewrite(elsewhere)
        report = dixa_sync(emu, tmp_path)
    assert (report.error or "").startswith(
        "paging invariant record_outside_window violated: page 1: a record at "
    )
    assert StateStore(tmp_path / "state").get("dixa", "conversations") is None


def test_mindful_every_hour_the_same_records(tmp_path: Path) -> None:
    served: list[Response] = []
    late = format_utc(mindful.END + timedelta(days=1))  # lives through every hour: none outside

    def stuck(n: int, request: Request, response: Response) -> Response:
        if "/data/historical/" not in request.path:
            return response
        if not served and (records := body(response)["data"]):
            # the first hour with records, served for every later hour
            served.append(Response(200, {"data": [r | {"endedAt": late} for r in records]}))
        return served[0] if served else response

    with MindfulEmulator(mindful.small_attempts(), rate_limit_per_s=None) as emu:
        emu.add_rewrite(stuck)
        (report,) = sync_source(
            MINDFUL,
            mindful.settings_for(emu),
            landing_root=tmp_path / "landing",
            state_root=tmp_path / "state",
            sleep=lambda _: None,
        )
    assert report.pages >= 2
    assert (report.error or "").startswith("paging invariant repeated_page violated: page ")
    state = StateStore(tmp_path / "state").get("mindful", "attempts")
    assert state is not None
    assert state.cursor <= mindful.START + timedelta(hours=report.pages - 1)


def a_year_before(stamp: Any) -> Any:
    """An ISO instant moved one year back (anything else as it is)."""
    return f"{int(stamp[:4]) - 1}{stamp[4:]}" if isinstance(stamp, str) else stamp


def test_kore_rows_of_another_period_stop_the_stream(tmp_path: Path) -> None:
    """Kore.ai answers each window with rows of a year before it (its filter's bug): they
    landed and the window was committed (372 rows of another year, exit 0), its own rows never
    read. A row whose interval does not meet the window asked for stops the stream."""
    ends = ("intervalStartTimeStamp", "intervalEndTimeStamp")

    def elsewhere(n: int, request: Request, response: Response) -> Response:
        if request.method != "POST" or not (rows := body(response).get("CallVolumeUpdate")):
            return response
        moved = [r | {k: a_year_before(r[k]) for k in ends} for r in rows]
        return Response(200, {**body(response), "CallVolumeUpdate": moved})

    with KoreEmulator(kore.CONTACTS, rate_limit=None) as emu:
        emu.add_rewrite(elsewhere)
        report = kore.sync(emu, tmp_path)
    assert (report.error or "").startswith(
        "paging invariant record_outside_window violated: page 1: a record at 2025-10-01T"
    )
    assert report.landed == 0
    state = StateStore(tmp_path / "state").get("kore", "callvolume")
    assert state is None or state.cursor <= kore.DAY  # the window is read again next sync


def mindful_sync(emu: MindfulEmulator, root: Path, **overrides: object) -> SyncReport:
    (report,) = sync_into(root, MINDFUL, mindful.settings_for(emu, **overrides))
    return report


def test_mindful_records_of_another_hour_stop_the_stream(tmp_path: Path) -> None:
    """Every hour file answered with records of a year before (402 landed, the cursor moved
    on): a record whose whole life lies outside the hour asked for stops the stream."""
    stamps = ("createdAt", "estimatedFor", "processedAt", "endedAt")

    def elsewhere(n: int, request: Request, response: Response) -> Response:
        if "/data/historical/" not in request.path or not (records := body(response)["data"]):
            return response
        return Response(
            200, {"data": [r | {k: a_year_before(r[k]) for k in stamps} for r in records]}
        )

    with MindfulEmulator(mindful.small_attempts(), rate_limit_per_s=None) as emu:
        emu.add_rewrite(elsewhere)
        report = mindful_sync(emu, tmp_path)
    assert re.fullmatch(
        r"paging invariant record_outside_window violated: page \d+: none of the \d+ records "
        r"met the window \[2026-10-01T\S+, 2026-10-01T\S+\): one at 2025-10-01T\S+ to "
        r"2025-10-01T\S+, 7 days late allowed \(sources\.mindful\.available_within_days\) "
        r"\(http\S+\)",
        report.error or "",
    ), report.error
    assert report.landed == 0
    state = StateStore(tmp_path / "state").get("mindful", "attempts")
    assert state is None or state.cursor <= mindful.START + timedelta(hours=report.pages)


@pytest.mark.parametrize("ended", [timedelta(minutes=10), timedelta(hours=-5)])
def test_mindful_a_record_created_before_its_hour_still_lands(
    tmp_path: Path, ended: timedelta
) -> None:
    """An hour file may hold a record created days before it and ended in it (a scheduled
    callback), or one ended five hours before it and made available then ("the historical data
    available" in the hour, seed 001): it lands and the sync goes on."""
    hour = mindful.START + timedelta(hours=5)
    with MindfulEmulator(mindful.small_attempts(), rate_limit_per_s=None) as emu:
        old = emu.records()[0] | {"id": "old-1", "originalId": "old-1", "processedAt": None}
        old |= {"createdAt": format_utc(hour - timedelta(days=2)), "estimatedFor": None}
        old |= {"endedAt": format_utc(hour + ended)}
        emu.add_raw_records([old], hour=hour)
        report = mindful_sync(emu, tmp_path)
    assert report.ok, report.error
    landed = scan_landed(tmp_path / "landing", "mindful", "attempts").collect()
    assert "old-1" in landed["record_id"].to_list()


@pytest.mark.parametrize("before", [timedelta(hours=7), timedelta(days=3)])
def test_mindful_a_record_served_long_after_it_ended_lands(
    tmp_path: Path, before: timedelta
) -> None:
    """An hour holds the data *available* in it, however late (seed 001): a record that ended
    seven hours (three days) before the hour it is served in, among that hour's own records,
    is landed. It stopped the stream, the cursor stayed, and every later sync stopped on the
    same hour; both syncs are ok now (the second reads the hour again)."""
    hour = mindful.START + timedelta(hours=21)
    with MindfulEmulator(mindful.small_attempts(), rate_limit_per_s=None) as emu:
        own = emu.hour(hour)
        assert own  # the hour has records of its own
        ended = hour - before
        late = emu.records()[0] | {"id": "late-1", "originalId": "late-1", "processedAt": None}
        late |= {"createdAt": format_utc(ended - timedelta(minutes=9)), "estimatedFor": None}
        late |= {"endedAt": format_utc(ended)}
        emu.add_raw_records([late], hour=hour)
        first = mindful_sync(emu, tmp_path)
        second = mindful_sync(emu, tmp_path, lookback_minutes=12 * 60)  # reads the hour again
    assert first.ok, first.error
    assert second.ok, second.error
    assert second.pages >= 9  # hours 21 .. 29 read again
    landed = scan_landed(tmp_path / "landing", "mindful", "attempts").collect()
    assert {"late-1", *(r["id"] for r in own)} <= set(landed["record_id"].to_list())


def test_mindful_an_hour_of_older_data_only_names_the_setting_that_admits_it(
    tmp_path: Path,
) -> None:
    """An hour whose only record ended ten days before it is taken for another period's (a
    record may be served seven days late): the stream stops and says which setting allows more.
    It stopped every night the same way with no setting to move it on; raised, the record
    lands."""
    hour = mindful.START + timedelta(hours=5)
    with MindfulEmulator(mindful.small_attempts(), rate_limit_per_s=None) as emu:
        assert not emu.hour(hour)  # nothing else is available in that hour
        ended = hour - timedelta(days=10)
        old = emu.records()[0] | {"id": "old-10d", "originalId": "old-10d", "processedAt": None}
        old |= {"createdAt": format_utc(ended - timedelta(minutes=9)), "estimatedFor": None}
        old |= {"endedAt": format_utc(ended)}
        emu.add_raw_records([old], hour=hour)
        stopped = mindful_sync(emu, tmp_path)
        admitted = mindful_sync(emu, tmp_path, available_within_days=12)
    assert (stopped.error or "").startswith("paging invariant record_outside_window"), stopped
    assert ", 7 days late allowed (sources.mindful.available_within_days) (http" in (
        stopped.error or ""
    )
    assert admitted.ok, admitted.error
    landed = scan_landed(tmp_path / "landing", "mindful", "attempts").collect()
    assert "old-10d" in landed["record_id"].to_list()


def test_mindful_a_record_ending_at_the_end_of_time_is_no_internal_error(tmp_path: Path) -> None:
    """A record whose ``endedAt`` is 9999-12-30: the hour's check added the seven days a record
    may be late to it (``OverflowError``, an internal error, every night on the same hour, the
    later sources of the run never synced). It meets its hour and lands (the canonical rules
    judge its times)."""
    hour = mindful.START + timedelta(hours=5)
    with MindfulEmulator(mindful.small_attempts(), rate_limit_per_s=None) as emu:
        odd = emu.records()[0] | {"id": "eot-1", "originalId": "eot-1", "processedAt": None}
        odd |= {"createdAt": format_utc(hour + timedelta(minutes=3)), "estimatedFor": None}
        odd |= {"endedAt": "9999-12-30T00:00:00Z"}
        emu.add_raw_records([odd], hour=hour)
        report = mindful_sync(emu, tmp_path)
    assert report.ok, report.error
    landed = scan_landed(tmp_path / "landing", "mindful", "attempts").collect()
    assert "eot-1" in landed["record_id"].to_list()


def test_mindful_a_record_created_after_its_hour_stops_the_stream(tmp_path: Path) -> None:
    """No record can be available before it exists: one created an hour after the hour it is
    served in (among the hour's own records) is another period's, and stops the stream with
    its real instants in the message."""
    hour = mindful.START + timedelta(hours=5)
    created = hour + 2 * HOUR
    with MindfulEmulator(mindful.small_attempts(), rate_limit_per_s=None) as emu:
        early = emu.records()[0] | {"id": "early-1", "originalId": "early-1"}
        early |= {"createdAt": format_utc(created), "estimatedFor": None, "processedAt": None}
        early |= {"endedAt": format_utc(created + timedelta(minutes=3))}
        emu.add_raw_records([early], hour=hour)
        report = mindful_sync(emu, tmp_path)
    assert (report.error or "").startswith(
        "paging invariant record_outside_window violated: page 6: a record at "
        f"{format_utc(created)} to {format_utc(created + timedelta(minutes=3))}, after the "
        f"window [{format_utc(hour)}, {format_utc(hour + HOUR)})"
    )
    landed = scan_landed(tmp_path / "landing", "mindful", "attempts").collect()
    assert "early-1" not in landed["record_id"].to_list()
    state = StateStore(tmp_path / "state").get("mindful", "attempts")
    assert state is None or state.cursor <= hour

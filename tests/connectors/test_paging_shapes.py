"""Malformed paging answers stop the stream with a named error, never a silent early end.

Each case runs a sync against a real emulator on loopback whose answers go wrong from its
second window on, then a second sync with the server behaving. The first sync must end with a
named error in its report, its committed cursor no later than the start of the window it broke
in (no row the server holds behind the cursor unseen); the second must land everything.

* Dixa: a next page key that is a JSON number or object (it ended the window, exit 0, with the
  rest of its pages never read);
* Kore.ai: ``hasMore`` sent as ``"true"`` or ``1`` without ``totalCount`` (read as false: each
  window ended after its first page);
* Kore.ai: an unstable order that serves a row of the window's first page again on its second,
  in place of a row never served, while ``totalCount`` and ``hasMore`` stay right, or while
  ``totalCount`` falls;
* Kore.ai: a ``totalCount`` that is not a count (negative, a fraction, a boolean, a word), or
  that falls from page to page, without ``hasMore``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from polars.testing import assert_frame_equal

from connectors.emulator import KoreEmulator
from connectors.emulator.server import Request, Response
from connectors.landing import scan_landed
from connectors.paging import Page, PageNumberPaginator, Paginator, TimeWindowPaginator
from connectors.retry import ApiRequest, TimeWindow
from connectors.source import Source, Stream
from connectors.state import StateStore, format_utc, parse_utc
from connectors.sync import SyncReport, sync_source, sync_stream
from connectors.vendors.dixa.client import DIXA
from connectors.vendors.ujet.client import UJET
from tests.connectors import kore_support as kore
from tests.connectors import ujet_support as ujet
from tests.connectors.dixa_support import emulator, make_settings, synced

Rewrite = Callable[[int, Request, Response], Response]


class FromSecondWindow:
    """Passes answers through ``change`` from the second window asked for on (while ``on``),
    and remembers the start of the first window it changed an answer in."""

    def __init__(self, start_of: Callable[[dict[str, Any]], str], change: Rewrite) -> None:
        self.start_of, self.change = start_of, change
        self.on, self.first_window = True, ""
        self.broken_at: datetime | None = None

    def __call__(self, n: int, request: Request, response: Response) -> Response:
        if not self.on or request.method != "POST" or not isinstance(response.payload, dict):
            return response
        start = self.start_of(json.loads(request.body))
        self.first_window = self.first_window or start
        if start == self.first_window:
            return response
        changed = self.change(n, request, response)
        if changed is not response and self.broken_at is None:
            self.broken_at = parse_utc(start)
        return changed


def assert_stopped_behind(
    report: SyncReport,
    state_root: Path,
    source: str,
    stream: str,
    broken_at: datetime | None,
    *needles: str,
) -> None:
    """The report names the error on one line; the cursor is not past the broken window."""
    assert not report.ok
    assert report.error is not None
    assert "\n" not in report.error
    for needle in needles:
        assert needle in report.error, report.error
    assert broken_at is not None, "the server never misbehaved"
    state = StateStore(state_root).get(source, stream)
    assert state is not None, "the first window was never committed"
    assert state.cursor <= broken_at


@pytest.mark.parametrize("kind", ["number", "object"])
def test_dixa_a_page_key_that_is_not_a_string_stops_the_stream(tmp_path: Path, kind: str) -> None:
    def key(n: int, request: Request, response: Response) -> Response:
        body: dict[str, Any] = response.payload  # type: ignore[assignment]
        if not isinstance((body.get("meta") or {}).get("next"), str):
            return response
        bad = 1000 + n if kind == "number" else {"pageKey": str(n)}
        return Response(200, {"data": body["data"], "meta": {"next": bad}}, response.headers)

    rewrite = FromSecondWindow(lambda body: body["periodFilter"]["start"], key)
    with emulator() as emu:
        emu.add_rewrite(rewrite)

        def once() -> SyncReport:
            (report,) = sync_source(
                DIXA,
                make_settings(emu, per_page=5),
                landing_root=tmp_path / "landing",
                state_root=tmp_path / "state",
                sleep=lambda _: None,
            )
            return report

        report = once()
        needle = f"the next page key at 'meta.next' is a JSON {kind}, not a string"
        assert_stopped_behind(
            report, tmp_path / "state", "dixa", "conversations", rewrite.broken_at, needle
        )
        rewrite.on = False
        again = once()
        assert again.ok, again.error
        assert_frame_equal(synced(emu, tmp_path / "landing"), emu.expected_contacts())


def kore_window(body: dict[str, Any]) -> str:
    return str(body["fromTimeStamp"])


def kore_round(tmp_path: Path, rewrite: FromSecondWindow, *needles: str) -> None:
    """A sync that breaks in the second window, then one with the server behaving."""
    with KoreEmulator(kore.CONTACTS, rate_limit=None) as emu:
        emu.add_rewrite(rewrite)
        report = kore.sync(emu, tmp_path)
        state = tmp_path / "state"
        assert_stopped_behind(report, state, "kore", "callvolume", rewrite.broken_at, *needles)
        rewrite.on = False
        again = kore.sync(emu, tmp_path)
        assert again.ok, again.error
        assert_frame_equal(kore.as_served(kore.imported(tmp_path), emu), kore.expected(emu))


@pytest.mark.parametrize(("kind", "yes", "no"), [("string", "true", "false"), ("number", 1, 0)])
def test_kore_a_has_more_that_is_not_a_boolean_stops_the_stream(
    tmp_path: Path, kind: str, yes: object, no: object
) -> None:
    def has_more(n: int, request: Request, response: Response) -> Response:
        body: dict[str, Any] = response.payload  # type: ignore[assignment]
        more = yes if body["hasMore"] else no  # and no totalCount to fall back on
        rows = body["CallVolumeUpdate"]
        return Response(200, {"hasMore": more, "CallVolumeUpdate": rows}, response.headers)

    rewrite = FromSecondWindow(kore_window, has_more)
    kore_round(tmp_path, rewrite, f"hasMore is a JSON {kind}, not true or false")


def first_row_again(first: dict[str, Any], sent: dict[str, Any], rows: list[Any]) -> list[Any]:
    """``rows`` of a window's page, the second page's first row replaced (once) by the first
    page's first row, kept in ``first``: a row served at two offsets in place of another."""
    rows = list(rows)
    if sent["skip"] == 0 and rows:
        first.setdefault("row", rows[0])
    if sent["skip"] == sent["limit"] and "row" in first and "lost" not in first:
        first["lost"], rows[0] = rows[0]["_id"], first["row"]
    return rows


def test_kore_a_row_served_twice_in_place_of_another_stops_the_stream(tmp_path: Path) -> None:
    first: dict[str, Any] = {}

    def unstable(n: int, request: Request, response: Response) -> Response:
        body: dict[str, Any] = response.payload  # type: ignore[assignment]
        rows = first_row_again(first, json.loads(request.body), body["CallVolumeUpdate"])
        return Response(200, body | {"CallVolumeUpdate": rows}, response.headers)

    rewrite = FromSecondWindow(kore_window, unstable)
    kore_round(tmp_path, rewrite, "paging invariant total_gap violated", "1 skipped")


def without_has_more(total: Callable[[int, dict[str, Any]], object]) -> Rewrite:
    """Answers without ``hasMore``, their ``totalCount`` replaced by ``total(it, sent)``."""

    def change(n: int, request: Request, response: Response) -> Response:
        body: dict[str, Any] = response.payload  # type: ignore[assignment]
        said = total(body["totalCount"], json.loads(request.body))
        rows = body["CallVolumeUpdate"]
        return Response(200, {"CallVolumeUpdate": rows, "totalCount": said}, response.headers)

    return change


@pytest.mark.parametrize(
    ("bad", "kind"),
    [
        (-1, "negative"),  # ended each window at its first page: its other rows lost, exit 0
        (200.5, "a JSON number with a decimal point"),
        (True, "a JSON boolean"),
        ("many", "a JSON string"),
    ],
)
def test_kore_a_total_count_that_is_not_a_count_stops_the_stream(
    tmp_path: Path, bad: object, kind: str
) -> None:
    """Read as absent (a fraction, a boolean) it turned off the checks that need it; read as
    a number (negative) it ended a window without ``hasMore`` at its first page."""
    rewrite = FromSecondWindow(kore_window, without_has_more(lambda _, __: bad))
    kore_round(tmp_path, rewrite, f"totalCount is {kind}: a count of rows is a whole number")


def test_kore_a_total_count_that_falls_while_paging_stops_the_stream(tmp_path: Path) -> None:
    """Without ``hasMore``, a ``totalCount`` that falls by 12 rows a page ended the window short
    of its rows (they were never read, the window committed, exit 0)."""

    def falling(total: int, sent: dict[str, Any]) -> int:
        return int(total - 12 * sent["skip"] // sent["limit"])

    rewrite = FromSecondWindow(kore_window, without_has_more(falling))
    kore_round(tmp_path, rewrite, "paging invariant total_gap violated", "then")


def test_kore_a_row_served_twice_under_a_changing_total_stops_the_stream(tmp_path: Path) -> None:
    """A ``totalCount`` that changed from page to page turned off the distinct-row check: a row
    served at two offsets in place of another was lost with exit 0. A total that fell excuses
    no row read twice (only one that grew does: rows added before the offset)."""
    first: dict[str, Any] = {}

    def unstable(n: int, request: Request, response: Response) -> Response:
        body: dict[str, Any] = response.payload  # type: ignore[assignment]
        sent = json.loads(request.body)
        rows = first_row_again(first, sent, body["CallVolumeUpdate"])
        total = body["totalCount"] - sent["skip"] // sent["limit"]  # one less each page
        return Response(
            200, body | {"CallVolumeUpdate": rows, "totalCount": total}, response.headers
        )

    rewrite = FromSecondWindow(kore_window, unstable)
    kore_round(tmp_path, rewrite, "paging invariant total_gap violated", "1 skipped")


def ujet_by_page_number(per: int) -> tuple[Source, Stream]:
    """UJET's calls paged by ``page``/``per`` in 6-hour windows of ``updated_at`` (no stream of
    ours pages so today): the cursor is a window's start until its last page, then its end."""
    pages = PageNumberPaginator()

    def plan(start: datetime, settings: Any, now: datetime) -> tuple[ApiRequest, Paginator]:
        def render(w: TimeWindow) -> ApiRequest:
            to = format_utc(w.end - timedelta(milliseconds=1))  # UJET's bounds are inclusive
            params = {"updated_at[from]": format_utc(w.start), "updated_at[to]": to}
            params |= {"sort_column": "id", "sort_direction": "ASC", "page": "1", "per": str(per)}
            return ApiRequest("GET", "calls", params=params)

        walker = TimeWindowPaginator(end=now, step=timedelta(hours=6), render=render, inner=pages)
        return walker.first_request(start), walker

    def page_cursor(page: Page, latest: datetime | None, started: datetime) -> datetime | None:
        window = page.request.window
        assert window is not None
        return window.start if pages.next_request(page) is not None else window.end

    stream = replace(UJET.streams[0], paging="page_number", plan=plan, page_cursor=page_cursor)
    return replace(UJET, streams=(stream,)), stream


def test_ujet_a_record_served_at_two_pages_in_place_of_another_stops_the_stream(
    tmp_path: Path,
) -> None:
    """Page 2 of a window serves page 1's first record again in place of one never served:
    ``Total`` and every page's count stay right, so the window ended with a record lost and
    was committed (exit 0). The distinct records of a page-number window must make up its
    ``Total``; the window is not committed, and the next sync reads it all."""
    first: dict[str, Any] = {}
    on: dict[str, datetime | None] = {"broken_at": None}

    def unstable(n: int, request: Request, response: Response) -> Response:
        rows, page = response.payload, request.query.get("page", ["1"])[0]
        start = request.query.get("updated_at[from]", [""])[0]
        if "off" in on or not isinstance(rows, list) or not rows or start == format_utc(ujet.START):
            return response
        if page == "1":
            first[start] = rows[0]
        if page != "2" or start not in first or on["broken_at"] is not None:
            return response
        on["broken_at"] = parse_utc(start)
        return Response(200, [first[start], *rows[1:]], response.headers)

    source, stream = ujet_by_page_number(per=10)
    with ujet.emulator(ujet.small_contacts()) as emu:
        emu.add_rewrite(unstable)

        def once() -> SyncReport:
            settings = ujet.settings_for(emu, start=ujet.START)
            with source.client(settings, None) as client:
                return sync_stream(
                    source,
                    stream,
                    settings,
                    client=client,
                    landing_root=tmp_path / "landing",
                    state=StateStore(tmp_path / "state"),
                    limiter=settings.limiter(),
                    sleep=lambda _: None,
                    now=lambda: ujet.START + timedelta(days=2),
                )

        report = once()
        needles = ("paging invariant total_gap violated", "Total said", "1 skipped")
        assert_stopped_behind(
            report, tmp_path / "state", "ujet", "calls", on["broken_at"], *needles
        )
        on["off"] = None
        again = once()
        assert again.ok, again.error
        landed = scan_landed(tmp_path / "landing", "ujet", "calls").collect()
        served = {f"{r['id']}" for r in emu.records("calls")}
        assert set(landed["record_id"].to_list()) == served


def test_kore_a_total_count_of_5000_digits_stops_the_stream(tmp_path: Path) -> None:
    """Its digits as a string: ``int()`` refused them (over 4,300 digits), a traceback."""
    rewrite = FromSecondWindow(kore_window, without_has_more(lambda _, __: "9" * 5000))
    kore_round(tmp_path, rewrite, "a number of 5000 digits where a count belongs")


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("Total", "9" * 5000),
        ("Per-Page", "9" * 5000),
        ("Link", "<https://x.test/calls?page=2&per=" + "9" * 5000 + '>; rel="next"'),
        ("Total", "9" * 20),  # no count of records either
    ],
)
def test_ujet_a_count_header_of_too_many_digits_stops_that_stream_only(
    tmp_path: Path, header: str, value: str
) -> None:
    """A ``Total``, ``Per-Page`` or ``Link`` ``per`` of 5,000 digits was Python's ``ValueError:
    Exceeds the limit (4300 digits)``: a traceback, and the source's other streams never
    synced. It is that stream's one line now; the chats still sync."""

    def huge(n: int, request: Request, response: Response) -> Response:
        if not request.path.endswith("/calls") or response.status != 200:
            return response
        kept = {k: v for k, v in response.headers.items() if header != "Link" or k != "Per-Page"}
        return replace(response, headers=kept | {header: value})  # Per-Page is read before Link

    with ujet.emulator(ujet.small_contacts(scale=0.02)) as emu:
        emu.add_rewrite(huge)
        calls, chats = ujet.sync(tmp_path, ujet.settings_for(emu))
    digits = len(value) if header != "Link" else 5000
    assert calls.error == f"a number of {digits} digits where a count belongs"
    assert chats.ok, chats.error
    assert chats.landed > 0

"""The UJET sync against an emulator whose answers are rewritten the way a vendor can go wrong
inside a well-formed reply: stamps that exist in no UTC calendar, bodies nested past any
parser, two contents of one record in one page, a server that caps ``per`` below what was asked.
Each ends in a clear error, a quarantine row or every record: never a traceback or a silent loss.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.emulator import UjetEmulator
from connectors.emulator.server import Request, Response
from connectors.landing import scan_landed
from connectors.sync import SyncReport
from connectors.vendors.ujet.client import UJET
from engine.pipeline.sources import canonical_source
from tests.connectors import ujet_support as sup

Rewrite = Callable[[int, Request, Response], Response]


@pytest.fixture(scope="module")
def contacts() -> pl.DataFrame:
    return sup.small_contacts(scale=0.02)


@pytest.fixture(scope="module")
def reference(contacts: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """The contacts a fault-free sync rebuilds (checked against the emulator's truth)."""
    root = tmp_path_factory.mktemp("reference")
    with sup.emulator(contacts) as emu:
        assert all(r.ok for r in sync(emu, root))
        truth = emu.expected_contacts()
    rebuilt = sup.synced(root / "landing")
    assert_frame_equal(rebuilt, truth)
    return rebuilt


def sync(emu: UjetEmulator, root: Path, rewrite: Rewrite | None = None) -> list[SyncReport]:
    if rewrite is not None:
        emu.add_rewrite(rewrite)
    return sup.sync(root, sup.settings_for(emu))


def records_of(response: Response) -> list[dict[str, Any]]:
    """A copy of a page's records (the emulator may send them pre-encoded)."""
    if response.payload is not None:
        return copy.deepcopy(response.payload)  # type: ignore[return-value]
    return json.loads(response.body or b"[]")  # type: ignore[no-any-return]


def first_calls_page(change: Callable[[list[dict[str, Any]]], None]) -> Rewrite:
    """A rewrite that applies ``change`` to the records of the first page of calls."""
    done: list[int] = []

    def rewrite(n: int, request: Request, response: Response) -> Response:
        if done or not request.path.endswith("/calls") or response.status != 200:
            return response
        done.append(n)
        rows = records_of(response)
        change(rows)
        return Response(200, rows, response.headers)

    return rewrite


# -- a stamp with no UTC date --------------------------------------------------------------------


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_stamp_with_no_utc_date_is_read_like_any_unparseable_one(
    contacts: pl.DataFrame, tmp_path: Path, stamp: str
) -> None:
    """Valid ISO 8601 whose UTC instant is in year 0 or 10000 escaped the sync as an
    OverflowError traceback (from the tail's order check, the record's key): it now goes
    exactly where a stamp of ``garbage`` goes."""
    outcome: dict[str, tuple[Any, ...]] = {}
    restamped: list[str] = []
    for n, value in enumerate(["garbage", stamp]):

        def restamp(rows: list[dict[str, Any]], value: str = value) -> None:
            rows[0]["updated_at"] = value
            restamped.append(str(rows[0]["id"]))

        with sup.emulator(contacts) as emu:
            calls, chats = sync(emu, tmp_path / str(n), first_calls_page(restamp))
        landed = scan_landed(tmp_path / str(n) / "landing", "ujet", "calls").collect()
        error = None if calls.error is None else calls.error.partition(" (http")[0]
        stamps = landed.filter(pl.col("record_id") == restamped[n])["updated_at"].to_list()
        outcome[value] = (error, calls.landed, calls.pages, stamps, chats.ok)
    assert outcome[stamp] == outcome["garbage"]
    assert outcome[stamp][3] == [None]  # landed, its stamp unknown


# -- a body nested past any parser ---------------------------------------------------------------


@pytest.mark.parametrize("depth", [1_000, 5_000])
def test_a_page_nested_too_deep_is_a_fatal_error_fetched_once(
    contacts: pl.DataFrame, tmp_path: Path, depth: int
) -> None:
    """The first call of a page has an unknown key nested ``depth`` levels deep (JSON sets no
    limit). Past orjson's 1,024 levels ``json.loads`` raised RecursionError, and at 1,000,
    which orjson reads, the landing's JSON writer did: a traceback out of the sync."""

    def nest(n: int, request: Request, response: Response) -> Response:
        if n > 1 or not request.path.endswith("/calls"):
            return response
        body = json.dumps(records_of(response), separators=(",", ":")).encode()
        deep = b'{"x_extra":' + b"[" * depth + b"]" * depth + b","
        return Response(200, None, response.headers, b"[" + deep + body[2:])

    with sup.emulator(contacts) as emu:
        calls, chats = sync(emu, tmp_path, nest)
        asked = emu.stats.by_path["/manager/api/v1/calls"]
    assert (calls.error or "").startswith("HTTP 200: body nested deeper than 254 levels (")
    assert "/manager/api/v1/calls?" in (calls.error or "")
    assert asked == 1  # not retried: the same body would come again
    assert (calls.pages, calls.landed) == (0, 0)
    assert chats.ok


# -- two contents of one record in one page ------------------------------------------------------


def test_two_contents_of_a_call_in_one_page_are_quarantined_as_across_syncs(
    contacts: pl.DataFrame, tmp_path: Path
) -> None:
    """The same call twice in one page, one ``updated_at``, another queue wait: the later copy
    won silently. As when the two come in two syncs, both are quarantined as
    ``conflicting_duplicate`` (no copy is likelier to be right); an identical copy is one row."""
    twin: list[str] = []

    def conflict(rows: list[dict[str, Any]]) -> None:
        i = next(i for i, r in enumerate(rows) if r.get("queue_durations"))
        other = copy.deepcopy(rows[i])
        other["queue_durations"][0]["queue_duration"] = 999
        rows[i + 1 : i + 1] = [other, copy.deepcopy(rows[0])]  # and a harmless identical copy
        twin.append(f"call-{rows[i]['id']}")

    with sup.emulator(contacts) as emu:
        reports = sync(emu, tmp_path, first_calls_page(conflict))
    assert [r.error for r in reports] == [None, None]
    rows, quarantine = (f.collect() for f in canonical_source(UJET, tmp_path / "landing")[:2])
    assert rows.filter(pl.col("contact_id") == twin[0]).height == 0
    reasons = quarantine.filter(pl.col("record_id") == twin[0])["reason"].to_list()
    assert reasons == ["conflicting_duplicate"] * 2
    assert quarantine.height == 2  # the identical copy is not a conflict


# -- a server that caps ``per`` ------------------------------------------------------------------


def capped(emu: UjetEmulator, cap: int, keep: tuple[str, ...]) -> Rewrite:
    """The server serves at most ``cap`` records a page, whatever ``per`` asks, and sends only
    the paging headers in ``keep`` (of ``Total``, ``Per-Page`` and ``Link``)."""

    def rewrite(n: int, request: Request, response: Response) -> Response:
        if response.status != 200 or not request.path.endswith(("/calls", "/chats")):
            return response
        if int(request.query.get("per", ["25"])[-1]) > cap:
            response = emu.route(replace(request, query={**request.query, "per": [str(cap)]}))
        paging = ("Total", "Per-Page", "Link")
        headers = {k: v for k, v in response.headers.items() if k not in paging or k in keep}
        return replace(response, headers=headers)

    return rewrite


@pytest.mark.parametrize(
    "keep",
    [("Per-Page", "Link"), ("Link",), ("Per-Page",), ("Total", "Per-Page", "Link")],
    ids=["Per-Page and Link", "Link only", "Per-Page only", "Total, Per-Page and Link"],
)
def test_a_server_that_caps_per_is_paged_by_what_it_says(
    contacts: pl.DataFrame, reference: pl.DataFrame, tmp_path: Path, keep: tuple[str, ...]
) -> None:
    """Asked for 25 a page, the server sends 20 and says so (``Per-Page: 20``, a ``Link``
    rel="next"). The tail took the short page as the end: one page, exit 0, most calls
    missing (or, with ``Total``, a total_mismatch). It pages on by the server's page size."""
    with sup.emulator(contacts) as emu:
        reports = sync(emu, tmp_path, capped(emu, 20, keep))
    assert [r.error for r in reports] == [None, None]
    assert reports[0].pages > 1
    assert_frame_equal(sup.synced(tmp_path / "landing"), reference)


def test_a_short_page_the_server_says_nothing_about_is_the_end(
    contacts: pl.DataFrame, tmp_path: Path
) -> None:
    """Without ``Per-Page``, ``Link`` or ``Total``, a short page is the end, as before."""
    with sup.emulator(contacts) as emu:
        calls, _ = sync(emu, tmp_path, capped(emu, 20, ()))
    assert (calls.ok, calls.pages, calls.records) == (True, 1, 20)


# -- one record's stamp unreadable ---------------------------------------------------------------


def test_one_record_whose_stamp_cannot_be_read_is_quarantined_not_the_stream_stopped(
    contacts: pl.DataFrame, reference: pl.DataFrame, tmp_path: Path
) -> None:
    """A call whose ``updated_at`` is ``garbage``. The tail cannot place it between two cursors,
    and counted it as skipped when ``Total`` fell past it: ``total_gap``, the stream stopped,
    exit 2, on every sync (the vendor sends it again each night). It lands, its stamp unknown,
    and the rebuild quarantines it (``unparsable_timestamp``); every other call is synced.
    With every stamp readable the check stays exact."""
    broken: list[str] = []

    def garble(rows: list[dict[str, Any]]) -> None:
        rows[0]["updated_at"] = "garbage"
        broken.append(f"call-{rows[0]['id']}")

    with sup.emulator(contacts) as emu:
        reports = sync(emu, tmp_path, first_calls_page(garble))  # pages of 25: cursors move
    assert all(r.ok for r in reports), [r.error for r in reports]
    _, quarantine = canonical_source(UJET, tmp_path / "landing")
    reasons = quarantine.collect().select("record_id", "reason").unique().rows()
    assert reasons == [(broken[0], "unparsable_timestamp")]
    kept = reference.filter(pl.col("contact_id") != broken[0])
    assert_frame_equal(sup.synced(tmp_path / "landing"), kept)


@pytest.mark.parametrize(("refused", "pages"), [(1, 0), (3, 2)])
def test_a_404_says_leave_the_stream_out_only_for_its_first_request(
    tmp_path: Path, refused: int, pages: int
) -> None:
    """A 404 after two pages had landed still said "if this tenant has no calls, leave the
    stream out": the stream is there, a page of it was not found."""
    seen: list[int] = []

    def gone(n: int, request: Request, response: Response) -> Response:
        if request.path.endswith("/calls"):
            seen.append(n)
            if len(seen) == refused:
                return Response(404, {"error": "not found"})
        return response

    with sup.emulator(sup.small_contacts(scale=0.02)) as emu:
        emu.add_rewrite(gone)
        calls, chats = sup.sync(tmp_path, sup.settings_for(emu))
    assert calls.pages == pages
    assert (calls.error or "").startswith("unexpected HTTP status 404 (")
    first = "; if this tenant has no calls, leave the stream out: sources.ujet.streams"
    later = "; the page after 2 pages of calls was not found"
    assert (calls.error or "").endswith(later if pages else first)
    assert chats.ok

"""Paginators (pure), their termination, and the iterate_pages driver over MockTransport."""

from __future__ import annotations

import base64
import doctest
import itertools
import json
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import connectors.paging.driver
import connectors.paging.paginator
from connectors.errors import (
    MaxPagesError,
    PageInvariantError,
    PaginationError,
    PaginationLoopError,
    RepeatedPageError,
    ResponseShapeError,
)
from connectors.http import make_client
from connectors.paging import (
    CursorTailPaginator,
    Page,
    PageKeyPaginator,
    PageNumberPaginator,
    Paginator,
    SkipLimitPaginator,
    TimeWindowPaginator,
    extract_records,
    iterate_pages,
    parse_link_header,
)
from connectors.retry import ApiRequest, ApiResponse, RetryPolicy, TimeWindow
from connectors.state import format_utc

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def page(
    request: ApiRequest,
    records: list[Any],
    body: Any = None,
    headers: dict[str, str] | None = None,
    page_no: int = 1,
) -> Page:
    response = ApiResponse(200, httpx.Headers(headers or {}), body, "https://x.test/", T0)
    return Page(request, response, records, page_no)


def walk(
    paginator: Paginator, first: ApiRequest, serve: Callable[[ApiRequest], Page]
) -> list[Page]:
    """Drive a paginator without HTTP (with a hard stop so a bug cannot hang the suite)."""
    pages, request = [], first
    for _ in range(10_000):
        current = serve(request)
        pages.append(current)
        nxt = paginator.next_request(current)
        if nxt is None:
            return pages
        request = nxt
    raise AssertionError("paginator did not terminate")


# -- helpers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            '<https://x.test/calls?page=2&per=100>; rel="next", '
            '<https://x.test/calls?page=5>; rel="last"',
            {"next": "https://x.test/calls?page=2&per=100", "last": "https://x.test/calls?page=5"},
        ),
        ("<a?page=1>; rel=prev, <b?page=3>; rel=next", {"prev": "a?page=1", "next": "b?page=3"}),
        ('<a>; title="rel=next"; rel="first last"', {"first": "a", "last": "a"}),
        ('<a>; REL="Next"', {"next": "a"}),
        ("", {}),
        (None, {}),
        ("nonsense", {}),
    ],
)
def test_parse_link_header(header: str | None, expected: dict[str, str]) -> None:
    assert parse_link_header(header) == expected


@pytest.mark.parametrize(
    ("body", "path", "expected"),
    [
        ([{"id": 1}], None, [{"id": 1}]),
        ([], "", []),
        ({"data": [1, 2]}, "data", [1, 2]),
        (
            {"CallVolumeUpdate": [{"_id": "a"}], "hasMore": False},
            "CallVolumeUpdate",
            [{"_id": "a"}],
        ),
        ({"a": {"b": [3]}}, "a.b", [3]),
        ({"data": None}, "data", []),
        (None, None, []),
    ],
)
def test_extract_records(body: Any, path: str | None, expected: list[Any]) -> None:
    assert extract_records(body, path) == expected


@pytest.mark.parametrize(
    ("body", "path"),
    [({"error": "x"}, "data"), ({"data": {"id": 1}}, "data"), ({"data": []}, None), ([1], "data")],
)
def test_extract_records_is_loud_about_the_wrong_shape(body: Any, path: str | None) -> None:
    with pytest.raises(ResponseShapeError):
        extract_records(body, path)


# -- page number (UJET) ----------------------------------------------------------------------------


def test_page_number_follows_link_next_taking_only_page_params() -> None:
    request = ApiRequest(url="calls", params={"page": 1, "per": 100, "sort_column": "updated_at"})
    link = '<https://elsewhere.test/calls?page=2&per=100&sort_column=id&x=1>; rel="next"'
    nxt = PageNumberPaginator().next_request(page(request, [1], headers={"Link": link}))
    assert nxt is not None
    assert nxt.url == "calls"  # never the link's host or path
    assert nxt.params == {"page": "2", "per": "100", "sort_column": "updated_at"}


def test_page_number_stops_when_link_has_no_next() -> None:
    request = ApiRequest(url="calls", params={"page": 5, "per": 100})
    last = page(
        request,
        [1],
        headers={"Link": '<https://x.test/calls?page=1>; rel="first"', "Total": "1000"},
    )
    assert PageNumberPaginator().next_request(last) is None


def test_page_number_refuses_a_next_link_without_a_page() -> None:
    request = ApiRequest(url="calls", params={"page": 1})
    odd = page(request, [1], headers={"Link": '<https://x.test/calls?cursor=abc>; rel="next"'})
    with pytest.raises(PaginationError, match="has no 'page' parameter"):
        PageNumberPaginator().next_request(odd)


@pytest.mark.parametrize(
    ("params", "headers", "n", "expected"),
    [
        ({"page": 1, "per": 100}, {"Total": "250", "Per-Page": "100"}, 100, 2),
        ({"page": 2, "per": 100}, {"Total": "250", "Per-Page": "100"}, 100, 3),
        ({"page": 3, "per": 100}, {"Total": "250", "Per-Page": "100"}, 50, None),
        ({"page": "2", "per": "100"}, {"Total": "200"}, 100, None),
        ({"per": 10}, {}, 10, 2),  # no headers: a full page means maybe more
        ({"page": 4, "per": 10}, {}, 7, None),  # a short page is the last
        ({}, {}, 3, 2),
    ],
)
def test_page_number_without_link(
    params: dict[str, Any], headers: dict[str, str], n: int, expected: int | None
) -> None:
    nxt = PageNumberPaginator().next_request(
        page(ApiRequest(url="c", params=params), [0] * n, headers=headers)
    )
    assert (None if nxt is None else nxt.params["page"]) == expected


def test_page_number_stops_on_an_empty_page() -> None:
    request = ApiRequest(url="c", params={"page": 3})
    assert PageNumberPaginator().next_request(page(request, [], headers={"Total": "9999"})) is None


def ujet_server(total: int, per: int) -> Callable[[ApiRequest], Page]:
    def serve(request: ApiRequest) -> Page:
        number, size = int(request.params.get("page", 1)), int(request.params.get("per", per))
        rows = list(range(total))[(number - 1) * size : number * size]
        links = [f'<https://x.test/calls?page={math.ceil(total / size)}&per={size}>; rel="last"']
        if number * size < total:
            links.append(f'<https://x.test/calls?page={number + 1}&per={size}>; rel="next"')
        headers = {"Total": str(total), "Per-Page": str(size), "Link": ", ".join(links)}
        return page(request, rows, headers=headers)

    return serve


@given(total=st.integers(0, 400), per=st.integers(1, 100), link=st.booleans())
def test_page_number_terminates_and_reads_everything_once(total: int, per: int, link: bool) -> None:
    serve = ujet_server(total, per)

    def maybe_without_link(request: ApiRequest) -> Page:
        served = serve(request)
        if link:
            return served
        headers = {k: v for k, v in served.response.headers.items() if k.lower() != "link"}
        return page(request, served.records, headers=headers)

    pages = walk(
        PageNumberPaginator(),
        ApiRequest(url="calls", params={"page": 1, "per": per}),
        maybe_without_link,
    )
    assert [r for p in pages for r in p.records] == list(range(total))
    assert len(pages) == max(1, math.ceil(total / per))


# -- skip/limit (Kore.ai) --------------------------------------------------------------------------


def kore_server(
    total: int, cap: int | None = None, flags: tuple[bool, bool] = (True, True)
) -> Callable[[ApiRequest], Page]:
    has_more_flag, total_flag = flags

    def serve(request: ApiRequest) -> Page:
        skip, limit = request.body["skip"], request.body["limit"]
        rows = list(range(total))[skip : skip + min(limit, cap or limit)]
        body: dict[str, Any] = {"CallVolumeUpdate": rows}
        if has_more_flag:
            body["hasMore"] = skip + len(rows) < total
        if total_flag:
            body["totalCount"] = total
        return page(request, rows, body=body)

    return serve


@given(
    total=st.integers(0, 300),
    limit=st.integers(1, 60),
    cap=st.one_of(st.none(), st.integers(1, 60)),
    flags=st.sampled_from([(True, True), (True, False), (False, True), (False, False)]),
)
def test_skip_limit_terminates_and_reads_everything_once(
    total: int, limit: int, cap: int | None, flags: tuple[bool, bool]
) -> None:
    if flags == (False, False):
        cap = None  # with neither hasMore nor totalCount, only a short page can mean the end
    first = ApiRequest("POST", "callvolume", body={"orgId": "o-1", "skip": 0, "limit": limit})
    pages = walk(SkipLimitPaginator(), first, kore_server(total, cap, flags))
    assert [r for p in pages for r in p.records] == list(range(total))
    assert all(p.request.body["orgId"] == "o-1" for p in pages)


def test_skip_limit_follows_has_more_but_asks_past_a_false_one_short_of_the_total() -> None:
    """``hasMore: false`` with ``totalCount`` saying more: one of them lies, and stopping
    lost the rows after for good (the cursor moves past the window). The next page is asked
    for: its rows go on, an empty one ends it."""
    request = ApiRequest("POST", "cv", body={"skip": 0, "limit": 2})
    paginator = SkipLimitPaginator()
    nxt = paginator.next_request(page(request, [1, 2], body={"hasMore": True, "totalCount": 2}))
    assert nxt is not None
    assert nxt.body == {"skip": 2, "limit": 2}
    nxt = paginator.next_request(page(request, [1, 2], body={"hasMore": False, "totalCount": 99}))
    assert nxt is not None
    assert nxt.body == {"skip": 2, "limit": 2}
    after = ApiRequest("POST", "cv", body={"skip": 2, "limit": 2})
    empty = {"hasMore": False, "totalCount": 99}
    assert paginator.next_request(page(after, [], body=empty)) is None
    ended = {"hasMore": False, "totalCount": 2}
    assert paginator.next_request(page(request, [1, 2], body=ended)) is None
    assert paginator.next_request(page(request, [1, 2], body={"hasMore": False})) is None


@pytest.mark.parametrize("lie", ["hasMore", "totalCount"])
def test_skip_limit_reads_every_row_whichever_of_has_more_and_total_lies(lie: str) -> None:
    rows, limit = list(range(7)), 2

    def serve(request: ApiRequest) -> Page:
        skip = request.body["skip"]
        served = rows[skip : skip + limit]
        body = {"hasMore": skip + len(served) < len(rows), "totalCount": len(rows)}
        if lie == "hasMore":
            body["hasMore"] = False
        else:
            body["totalCount"] = len(rows) + 50
        return page(request, served, body=body)

    first = ApiRequest("POST", "cv", body={"skip": 0, "limit": limit})
    pages = walk(SkipLimitPaginator(), first, serve)
    assert [r for p in pages for r in p.records] == rows
    assert len(pages) == (4 if lie == "hasMore" else 5)  # and an empty one, if the total lied


def test_skip_limit_in_query_params() -> None:
    request = ApiRequest(url="cv", params={"offset": 0, "count": 2})
    paginator = SkipLimitPaginator(skip_key="offset", limit_key="count", location="params")
    nxt = paginator.next_request(page(request, [1, 2], body={"hasMore": True}))
    assert nxt is not None
    assert nxt.params == {"offset": 2, "count": 2}


# -- opaque page key (Dixa) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"data": [1], "meta": {"next": "a2V5LTI="}}, "a2V5LTI="),
        ({"data": [1], "next": "k2"}, "k2"),
        ({"data": [1], "pageKey": "k3"}, "k3"),
        ({"data": [1], "meta": {"next": "/v1/analytics/records?pageKey=k4&pageLimit=2"}}, "k4"),
        ({"data": [1], "meta": {"next": "https://dev.dixa.io/v1/x?pageKey=k5"}}, "k5"),
        ({"data": [1], "meta": {"next": None}}, None),
        ({"data": [1], "meta": {"next": ""}}, None),
        ({"data": [1], "meta": {"next": "  "}}, None),
        ({"data": [1], "meta": {}}, None),
        ({"data": [1]}, None),
    ],
)
def test_page_key(body: dict[str, Any], expected: str | None) -> None:
    request = ApiRequest("POST", "v1/analytics/records", params={"pageLimit": 2}, body={"id": "x"})
    nxt = PageKeyPaginator().next_request(page(request, body["data"], body=body))
    assert (None if nxt is None else nxt.params["pageKey"]) == expected
    if nxt is not None:
        assert nxt.body == {"id": "x"}
        assert nxt.params["pageLimit"] == 2


@pytest.mark.parametrize("key", [5, {"k": 1}, ["k"], True])
def test_a_page_key_that_is_no_string_is_a_shape_error(key: object) -> None:
    """Once read as no key: the window ended at its first page, committed with rows unread."""
    request = ApiRequest("POST", "v1/analytics/records", params={"pageLimit": 2})
    for records in ([1], []):
        body = {"data": records, "meta": {"next": key}}
        with pytest.raises(ResponseShapeError, match=r"next page key at 'meta\.next' is a JSON"):
            PageKeyPaginator().next_request(page(request, records, body=body))


def dixa_server(total: int, limit: int, top_level: bool) -> Callable[[ApiRequest], Page]:
    def serve(request: ApiRequest) -> Page:
        key = request.params.get("pageKey")
        offset = int(base64.b64decode(str(key)).decode()) if key else 0
        rows = list(range(total))[offset : offset + limit]
        nxt = (
            base64.b64encode(str(offset + limit).encode()).decode()
            if offset + limit < total
            else None
        )
        body = {"data": rows, "next": nxt} if top_level else {"data": rows, "meta": {"next": nxt}}
        return page(request, rows, body=body)

    return serve


@given(total=st.integers(0, 300), limit=st.integers(1, 50), top_level=st.booleans())
def test_page_key_terminates_and_reads_everything_once(
    total: int, limit: int, top_level: bool
) -> None:
    pages = walk(
        PageKeyPaginator(), ApiRequest("POST", "records"), dixa_server(total, limit, top_level)
    )
    assert [r for p in pages for r in p.records] == list(range(total))


# -- time windows (Mindful) ------------------------------------------------------------------------


def mindful_render(window: TimeWindow) -> ApiRequest:
    return ApiRequest(url=f"v2/data/historical/{window.end:%Y%m%d}/{window.end:%H}")


def test_hourly_windows_are_aligned_and_stop_at_the_end() -> None:
    hourly = TimeWindowPaginator(
        end=T0 + timedelta(hours=3, minutes=10), step=timedelta(hours=1), render=mindful_render
    )
    first = hourly.first_request(T0 - timedelta(minutes=20))
    assert first.window == TimeWindow(T0 - timedelta(hours=1), T0)
    pages = walk(hourly, first, lambda r: page(r, []))
    assert [p.request.url for p in pages] == [
        "v2/data/historical/20261001/00",
        "v2/data/historical/20261001/01",
        "v2/data/historical/20261001/02",
        "v2/data/historical/20261001/03",
        "v2/data/historical/20261001/04",
    ]


def test_window_ending_exactly_at_end_is_the_last() -> None:
    hourly = TimeWindowPaginator(
        end=T0 + timedelta(hours=2), step=timedelta(hours=1), render=mindful_render
    )
    pages = walk(hourly, hourly.first_request(T0), lambda r: page(r, []))
    assert [p.request.window for p in pages] == [
        TimeWindow(T0, T0 + timedelta(hours=1)),
        TimeWindow(T0 + timedelta(hours=1), T0 + timedelta(hours=2)),
    ]


def test_windows_with_inner_paging() -> None:
    def render(window: TimeWindow) -> ApiRequest:
        body = {
            "fromTimeStamp": format_utc(window.start),
            "toTimeStamp": format_utc(window.end),
            "skip": 0,
            "limit": 2,
        }
        return ApiRequest("POST", "callvolume", body=body)

    daily = TimeWindowPaginator(
        end=T0 + timedelta(days=2),
        step=timedelta(days=1),
        render=render,
        inner=SkipLimitPaginator(),
    )
    pages = walk(daily, daily.first_request(T0), kore_server(5))
    assert [(p.request.body["fromTimeStamp"][:10], p.request.body["skip"]) for p in pages] == [
        ("2026-10-01", 0),
        ("2026-10-01", 2),
        ("2026-10-01", 4),
        ("2026-10-02", 0),
        ("2026-10-02", 2),
        ("2026-10-02", 4),
    ]


def test_windows_need_aware_times_and_a_window() -> None:
    hourly = TimeWindowPaginator(end=T0, step=timedelta(hours=1), render=mindful_render)
    with pytest.raises(ValueError, match="naive"):
        hourly.first_request(datetime(2026, 10, 1))  # noqa: DTZ001 - the point of the test
    with pytest.raises(PaginationError):
        hourly.next_request(page(ApiRequest(url="x"), []))


@given(
    start=st.datetimes(
        min_value=datetime(2020, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive; tz below
        max_value=datetime(2030, 1, 1),  # noqa: DTZ001 - idem
        timezones=st.just(UTC),
    ),
    span=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)),
    step=st.sampled_from([timedelta(minutes=15), timedelta(hours=1), timedelta(days=1)]),
)
def test_windows_cover_start_to_end_without_gaps(
    start: datetime, span: timedelta, step: timedelta
) -> None:
    paginator = TimeWindowPaginator(
        end=start + span, step=step, render=lambda w: ApiRequest(url="w")
    )
    windows = [
        p.request.window
        for p in walk(paginator, paginator.first_request(start), lambda r: page(r, []))
    ]
    assert all(w is not None for w in windows)
    assert windows[0] is not None
    assert windows[0].start <= start < windows[0].end
    for a, b in itertools.pairwise(windows):
        assert a is not None
        assert b is not None
        assert a.end == b.start
    last = windows[-1]
    assert last is not None
    assert last.end >= start + span
    assert len(windows) == 1 or last.start < start + span


# -- updated_at tail (UJET) ------------------------------------------------------------------------


def tail_server(
    stamps: list[datetime], per: int, inclusive: bool, cap: int | None = None, says: str = ""
) -> Callable[[ApiRequest], Page]:
    """A tail over ``stamps``, ``per`` a page, or ``cap`` when it is lower; ``says`` how, in
    ``Per-Page`` (``"Per-Page"``), a ``Link`` rel="next" (``"Link"``), or not at all."""
    rows = sorted(
        (
            {"id": i, "updated_at": format_utc(s, timespec="microseconds")}
            for i, s in enumerate(stamps)
        ),
        key=lambda r: (r["updated_at"], r["id"]),
    )

    def serve(request: ApiRequest) -> Page:
        since = request.params.get("updated_at[from]")
        number = int(request.params.get("page", 1))
        cut = datetime.fromisoformat(str(since)) if since else None
        kept = [
            r
            for r in rows
            if cut is None
            or (
                datetime.fromisoformat(r["updated_at"]) >= cut
                if inclusive
                else datetime.fromisoformat(r["updated_at"]) > cut
            )
        ]
        size = min(per, cap or per)
        headers = {"Per-Page": str(size)} if says == "Per-Page" else {}
        if says == "Link" and number * size < len(kept):
            headers["Link"] = f'<https://x.test/calls?page={number + 1}&per={size}>; rel="next"'
        return page(request, kept[(number - 1) * size : number * size], headers=headers)

    return serve


def test_tail_moves_the_cursor_and_restarts_at_page_one() -> None:
    request = ApiRequest(url="calls", params={"per": 2, "page": 1, "sort_column": "updated_at"})
    records = [
        {"updated_at": "2026-10-01T00:00:01.000Z"},
        {"updated_at": "2026-10-01T00:00:05.500Z"},
    ]
    nxt = CursorTailPaginator().next_request(page(request, records))
    assert nxt is not None
    assert nxt.params == {
        "per": 2,
        "page": "1",
        "sort_column": "updated_at",
        "updated_at[from]": "2026-10-01T00:00:05.499Z",
    }


def test_tail_pages_through_a_tie() -> None:
    request = ApiRequest(
        url="calls", params={"per": 2, "page": 1, "updated_at[from]": "2026-10-01T00:00:04.999Z"}
    )
    tie = [{"updated_at": "2026-10-01T00:00:05.000Z"}] * 2
    nxt = CursorTailPaginator().next_request(page(request, tie))
    assert nxt is not None
    assert nxt.params["page"] == 2
    assert nxt.params["updated_at[from]"] == "2026-10-01T00:00:04.999Z"


def test_tail_stops_on_a_short_page() -> None:
    request = ApiRequest(url="calls", params={"per": 100})
    assert (
        CursorTailPaginator().next_request(page(request, [{"updated_at": "2026-10-01T00:00:00Z"}]))
        is None
    )
    assert CursorTailPaginator().next_request(page(request, [])) is None


@settings(deadline=None)
@given(
    offsets=st.lists(st.integers(0, 5_000), max_size=120),
    per=st.integers(1, 15),
    inclusive=st.booleans(),
    micro=st.booleans(),
)
def test_tail_terminates_and_misses_nothing(
    offsets: list[int], per: int, inclusive: bool, micro: bool
) -> None:
    unit = timedelta(microseconds=137) if micro else timedelta(milliseconds=1)
    stamps = [T0 + o * unit for o in offsets]
    first = ApiRequest(url="calls", params={"per": per, "page": 1})
    pages = walk(CursorTailPaginator(), first, tail_server(stamps, per, inclusive))
    assert {r["id"] for p in pages for r in p.records} == set(range(len(stamps)))
    keys = [json.dumps(sorted(p.request.params.items())) for p in pages]
    assert len(keys) == len(set(keys))  # never the same request twice: the loop guard stays quiet


@settings(deadline=None)
@given(
    offsets=st.lists(st.integers(0, 2_000), min_size=1, max_size=80),
    per=st.integers(2, 15),
    cap=st.integers(1, 14),
    says=st.sampled_from(["Per-Page", "Link"]),
)
def test_tail_over_a_server_that_caps_per_misses_nothing(
    offsets: list[int], per: int, cap: int, says: str
) -> None:
    """A server that sends fewer than ``per`` a page, and says so in ``Per-Page`` or a ``Link``
    rel="next": its short pages are not the end (they were: the rest was missed, exit 0)."""
    stamps = [T0 + o * timedelta(milliseconds=1) for o in offsets]
    first = ApiRequest(url="calls", params={"per": per, "page": 1})
    pages = walk(CursorTailPaginator(), first, tail_server(stamps, per, True, cap, says))
    assert {r["id"] for p in pages for r in p.records} == set(range(len(stamps)))


def test_tail_page_size_is_the_servers() -> None:
    tail, request = CursorTailPaginator(), ApiRequest(url="calls", params={"per": 25})
    link = '<https://x.test/calls?page=2&per=20>; rel="next"'
    assert tail.page_size(page(request, [], headers={"Per-Page": "20"})) == 20
    assert tail.page_size(page(request, [], headers={"Link": link})) == 20
    assert tail.page_size(page(request, [], headers={"Per-Page": "0", "Link": "junk"})) == 25
    assert tail.page_size(page(ApiRequest(url="calls"), [])) is None
    one = [{"updated_at": "2026-10-01T00:00:00Z"}]
    assert not tail.ends(page(request, one, headers={"Link": link.replace("per=20", "per=25")}))
    assert tail.ends(page(request, one, headers={"Per-Page": "20"}))  # short of it, no next


def test_an_empty_tail_page_with_a_link_to_more_is_a_violation() -> None:
    """An empty page has no record to move the cursor by: a ``Link`` rel="next" on it
    contradicts it (it ended the stream silently)."""
    link = '<https://x.test/calls?page=2&per=25>; rel="next"'
    request = ApiRequest(url="calls", params={"per": 25, "page": 1})
    with pytest.raises(PageInvariantError, match=r'empty_page_claims_more.*Link rel="next"'):
        CursorTailPaginator().check(page(request, [], headers={"Link": link}))


# -- the driver ------------------------------------------------------------------------------------


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return make_client("https://api.test/v1", transport=httpx.MockTransport(handler))


def test_iterate_pages_ujet_over_http_with_a_429_midway() -> None:
    data = [{"id": i} for i in range(7)]
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        if len(calls) == 2:
            return httpx.Response(429, headers={"Retry-After": "1"})
        number, per = int(request.url.params["page"]), int(request.url.params["per"])
        link = (
            f'<https://api.test/v1/calls?page={number + 1}&per={per}>; rel="next"'
            if number * per < 7
            else ""
        )
        return httpx.Response(
            200, json=data[(number - 1) * per : number * per], headers={"Total": "7", "Link": link}
        )

    sleeps: list[float] = []
    pages = list(
        iterate_pages(
            client_for(handler),
            ApiRequest(url="calls", params={"page": 1, "per": 3}),
            PageNumberPaginator(),
            retry=RetryPolicy(sleep=sleeps.append),
        )
    )
    assert [p.page_no for p in pages] == [1, 2, 3]
    assert [r["id"] for p in pages for r in p.records] == list(range(7))
    assert sleeps == [1.0]
    assert len(calls) == 4


def test_iterate_pages_mindful_hours() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        hour = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(200, json={"data": [{"id": f"cb-{hour}"}]})

    hourly = TimeWindowPaginator(
        end=T0 + timedelta(hours=3), step=timedelta(hours=1), render=mindful_render
    )
    pages = iterate_pages(
        client_for(handler), hourly.first_request(T0), hourly, records_path="data"
    )
    assert [r["id"] for p in pages for r in p.records] == ["cb-01", "cb-02", "cb-03"]


def test_loop_guard_stops_a_server_that_repeats_its_page_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [1], "meta": {"next": "same-key"}})

    pages = iterate_pages(
        client_for(handler), ApiRequest("POST", "records"), PageKeyPaginator(), records_path="data"
    )
    with pytest.raises(PaginationLoopError, match="after page 2"):
        list(pages)


def test_loop_guard_catches_a_cycle_not_only_a_repeat() -> None:
    keys = iter(["a", "b", "a"])

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [1], "next": next(keys)})

    with pytest.raises(PaginationLoopError):
        list(
            iterate_pages(
                client_for(handler), ApiRequest(url="r"), PageKeyPaginator(), records_path="data"
            )
        )


def test_max_pages_guard() -> None:
    counter = iter(range(10**6))

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [1], "next": f"k{next(counter)}"})

    pages = iterate_pages(
        client_for(handler),
        ApiRequest(url="r"),
        PageKeyPaginator(),
        records_path="data",
        max_pages=5,
    )
    seen: list[int] = []
    with pytest.raises(MaxPagesError, match="max_pages=5"):
        seen.extend(p.page_no for p in pages)
    assert seen == [1, 2, 3, 4, 5]


def test_pages_are_yielded_before_the_next_request() -> None:
    """A consumer that lands page n before page n + 1 is fetched: the crash-safety order."""
    fetched: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        skip = json.loads(request.content)["skip"]
        fetched.append(skip)
        return httpx.Response(200, json={"CallVolumeUpdate": [skip], "hasMore": skip < 2})

    first = ApiRequest("POST", "callvolume", body={"skip": 0, "limit": 1})
    for p in iterate_pages(
        client_for(handler), first, SkipLimitPaginator(), records_path="CallVolumeUpdate"
    ):
        assert fetched[-1] == p.records[0]


@settings(deadline=None)
@given(
    kind=st.sampled_from(["number", "skip", "key", "tail"]),
    replies=st.lists(
        st.fixed_dictionaries(
            {
                "n": st.integers(0, 3),
                "hasMore": st.sampled_from([True, False, None]),
                "next": st.sampled_from([None, "", "a", "b", "c"]),
                "link": st.sampled_from([None, 1, 2, 3]),
                "stamp": st.integers(0, 3),
            }
        ),
        min_size=1,
        max_size=40,
    ),
)
def test_the_guards_stop_any_server(kind: str, replies: list[dict[str, Any]]) -> None:
    """Whatever an adversarial server answers, iterate_pages ends: normally or with a guard."""
    queue = itertools.cycle(replies)

    def handler(request: httpx.Request) -> httpx.Response:
        reply = next(queue)
        rows = [
            {"id": i, "updated_at": format_utc(T0 + timedelta(seconds=reply["stamp"]))}
            for i in range(reply["n"])
        ]
        headers = (
            {"Link": f'<https://api.test/v1/x?page={reply["link"]}>; rel="next"'}
            if reply["link"]
            else {}
        )
        body = {"data": rows, "hasMore": reply["hasMore"], "next": reply["next"]}
        return httpx.Response(200, json=body, headers=headers)

    paginators: dict[str, tuple[Paginator, ApiRequest]] = {
        "number": (PageNumberPaginator(), ApiRequest(url="x", params={"page": 1, "per": 2})),
        "skip": (SkipLimitPaginator(), ApiRequest("POST", "x", body={"skip": 0, "limit": 2})),
        "key": (PageKeyPaginator(), ApiRequest(url="x")),
        "tail": (CursorTailPaginator(), ApiRequest(url="x", params={"per": 2, "page": 1})),
    }
    paginator, first = paginators[kind]
    fetched = 0
    try:
        for _ in iterate_pages(
            client_for(handler), first, paginator, records_path="data", max_pages=30
        ):
            fetched += 1
    except PaginationError:
        pass
    assert fetched <= 30


# -- the paging invariants -------------------------------------------------------------------------


def by_id(record: Any) -> Any:
    rid = record.get("id") if isinstance(record, dict) else None
    return None if rid is None else (rid, record.get("updated_at"))


def at(ms: int) -> str:
    return format_utc(T0 + timedelta(milliseconds=ms))


def tail_http(
    answer: Callable[[int, datetime, int, int], tuple[list[dict[str, Any]], int]],
) -> tuple[httpx.Client, list[str]]:
    """A tail server: ``answer(n, cursor, page, per) -> (rows, Total)`` for the n-th request."""
    urls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        urls.append(str(request.url))
        params = request.url.params
        cursor = datetime.fromisoformat(params["updated_at[from]"])
        rows, total = answer(len(urls), cursor, int(params["page"]), int(params["per"]))
        return httpx.Response(200, json=rows, headers={"Total": str(total)})

    return client_for(handler), urls


def honest(
    rows: list[dict[str, Any]],
) -> Callable[[int, datetime, int, int], tuple[list[dict[str, Any]], int]]:
    def answer(n: int, cursor: datetime, number: int, per: int) -> tuple[list[Any], int]:
        kept = sorted(
            (r for r in rows if datetime.fromisoformat(r["updated_at"]) >= cursor),
            key=lambda r: (r["updated_at"], str(r.get("id"))),
        )
        return kept[(number - 1) * per : number * per], len(kept)

    return answer


def tail_pages(client: httpx.Client, per: int = 2) -> Iterator[Page]:
    first = ApiRequest(url="calls", params={"updated_at[from]": at(-1000), "per": per, "page": 1})
    return iterate_pages(client, first, CursorTailPaginator(), identity=by_id)


ROWS = [{"id": i, "updated_at": at(10 * i)} for i in range(1, 8)]


def test_an_honest_tail_passes_every_invariant_even_with_ties_wider_than_a_page() -> None:
    tie = [{"id": i, "updated_at": at(0)} for i in range(5)] + [{"id": 9, "updated_at": at(1)}]
    keyless = [*ROWS[:3], {"updated_at": at(35)}, {"id": None, "updated_at": at(36)}]
    for rows in (ROWS, tie, keyless):
        client, _ = tail_http(honest(rows))
        got = {r.get("id") for p in tail_pages(client) for r in p.records}
        assert got == {r.get("id") for r in rows}


@pytest.mark.parametrize(
    ("name", "lie", "invariant"),
    [
        ("unsorted after 2 pages", lambda n, rows: rows[::-1] if n > 2 else rows, "cursor_order"),
        (
            "before the cursor",
            lambda n, rows: [{"id": 0, "updated_at": at(-5)}, *rows] if n == 3 else rows,
            "cursor_start",
        ),
        (
            "empty page, Total says more",
            lambda n, rows: [] if n == 3 else rows,
            "empty_page_claims_more",
        ),
        (
            "short page, Total says more",
            lambda n, rows: rows[:1] if n == 3 else rows,
            "total_mismatch",
        ),
    ],
)
def test_a_tail_page_that_breaks_an_invariant_is_not_yielded(
    name: str, lie: Callable[[int, list[Any]], list[Any]], invariant: str
) -> None:
    truth = honest(ROWS)

    def answer(n: int, cursor: datetime, number: int, per: int) -> tuple[list[Any], int]:
        rows, total = truth(n, cursor, number, per)
        return lie(n, rows), total

    client, urls = tail_http(answer)
    yielded: list[Page] = []
    with pytest.raises(PageInvariantError, match=f"paging invariant {invariant} violated: page 3"):
        yielded.extend(tail_pages(client))
    assert len(yielded) == 2
    assert len(urls) == 3


def test_a_tail_that_skips_a_record_is_caught_by_total_across_the_cursor_move() -> None:
    """Page 2 is sorted and starts at its cursor but hides record 3: only Total can tell."""
    truth = honest(ROWS)

    def answer(n: int, cursor: datetime, number: int, per: int) -> tuple[list[Any], int]:
        rows, total = truth(n, cursor, number, per + 1)
        return ([r for r in rows if r["id"] != 3] if n == 2 else rows[:per]), total

    client, _ = tail_http(answer)
    yielded: list[Page] = []
    with pytest.raises(PageInvariantError, match="total_gap violated: page 3: Total fell by 2"):
        yielded.extend(tail_pages(client))
    assert [r["id"] for p in yielded for r in p.records] == [1, 2, 2, 4]


def test_a_tail_page_repeated_for_page_2_3_is_stopped_at_the_second_repeat() -> None:
    same = [{"id": i, "updated_at": at(0)} for i in range(2)]  # one instant: the tail pages on
    client, urls = tail_http(lambda n, cursor, number, per: (same, 10))
    with pytest.raises(RepeatedPageError, match="repeated_page violated: page 4"):
        list(tail_pages(client))
    assert len(urls) == 4  # first, its re-read at the moved cursor, then two repeats


def test_page_number_repeats_are_stopped() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[{"id": 1}, {"id": 2}], headers={"Total": "1000"})

    first = ApiRequest(url="calls", params={"page": 1, "per": 2})
    pages = iterate_pages(client_for(handler), first, PageNumberPaginator(), identity=by_id)
    with pytest.raises(RepeatedPageError, match="page 2: every record of it was read"):
        list(pages)  # the first page that only repeats: its records would be landed as new
    without = iterate_pages(client_for(handler), first, PageNumberPaginator(), max_pages=50)
    with pytest.raises(MaxPagesError):  # without an identity only the max-pages guard is left
        list(without)


@pytest.mark.parametrize(
    ("kind", "body", "invariant"),
    [
        ("skip", {"rows": [], "hasMore": True}, "has_more_without_rows"),
        ("skip", {"rows": [], "totalCount": 9}, "empty_page_claims_more"),
        ("key", {"rows": [], "next": "k2"}, "empty_page_claims_more"),
    ],
)
def test_empty_pages_that_claim_more(kind: str, body: dict[str, Any], invariant: str) -> None:
    client = client_for(lambda request: httpx.Response(200, json=body))
    paginator: Paginator = SkipLimitPaginator() if kind == "skip" else PageKeyPaginator()
    first = ApiRequest("POST", "x", body={"skip": 0, "limit": 5})
    with pytest.raises(PageInvariantError, match=f"{invariant} violated: page 1"):
        list(iterate_pages(client, first, paginator, records_path="rows"))


def test_an_empty_page_with_a_next_link_is_a_lie() -> None:
    link = '<https://api.test/v1/x?page=2>; rel="next"'
    client = client_for(lambda request: httpx.Response(200, json=[], headers={"Link": link}))
    first = ApiRequest(url="x", params={"page": 1, "per": 5})
    with pytest.raises(PageInvariantError, match="empty_page_claims_more"):
        list(iterate_pages(client, first, PageNumberPaginator()))


def test_a_total_count_that_disagrees_with_has_more_is_reported_once_not_fatal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        skip = json.loads(request.content)["skip"]
        rows = [skip] if skip <= 3 else []
        return httpx.Response(200, json={"rows": rows, "hasMore": skip < 3, "totalCount": 50})

    first = ApiRequest("POST", "callvolume", body={"skip": 0, "limit": 1})
    pages = iterate_pages(client_for(handler), first, SkipLimitPaginator(), records_path="rows")
    assert [p.records for p in pages] == [[0], [1], [2], [3], []]  # the empty page ends it
    notes = [r.getMessage() for r in caplog.records if "disagrees with hasMore" in r.getMessage()]
    assert len(notes) == 1
    assert "totalCount 50 disagrees with hasMore=False after 4 rows (the page after" in notes[0]


@pytest.mark.parametrize("module", [connectors.paging.paginator, connectors.paging.driver])
def test_docstring_examples_run(module: object) -> None:
    result = doctest.testmod(module)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0

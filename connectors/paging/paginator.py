"""Pure paginators for the paging kinds, each with the invariants of a single page.

A paginator's ``next_request(page)`` derives the next request from the last :class:`Page`
(request sent, response status/headers/JSON, records), or returns ``None`` at the end; no I/O,
no hidden state. It never takes a host from a response, only page parameters, so credentials
cannot follow a link elsewhere. Its ``check(page)`` raises
:class:`~connectors.errors.PageInvariantError` when the page breaks a rule of its kind (see
:mod:`connectors.paging`) and returns a note for a disagreement that is only reported. Records
sit at a dotted JSON path (``None``: the body is the list): a missing key or a non-list is a
:class:`~connectors.errors.ResponseShapeError` (loud beats silently empty); ``null`` is an
empty page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import httpx

from connectors.errors import PageInvariantError, PaginationError
from connectors.errors import ResponseShapeError as ShapeError
from connectors.paging.values import as_int, dotted, extract_records, parse_link_header
from connectors.paging.values import json_type as _json_type
from connectors.retry import ApiRequest, ApiResponse, TimeWindow
from connectors.state import format_utc, parse_utc

__all__ = [
    "CursorTailPaginator",
    "Page",
    "PageKeyPaginator",
    "PageNumberPaginator",
    "Paginator",
    "SkipLimitPaginator",
    "TimeWindowPaginator",
    "as_int",
    "extract_records",
    "parse_link_header",
    "violation",
]


@dataclass(frozen=True)
class Page:
    """One fetched page: the request sent, its response, its records, its 1-based number."""

    request: ApiRequest
    response: ApiResponse
    records: list[Any]
    page_no: int


class Paginator(Protocol):
    """Derives the next request from the last page (the request sent, response, records)."""

    def next_request(self, page: Page) -> ApiRequest | None: ...  # pragma: no cover - protocol


def violation(invariant: str, page: Page, detail: str) -> PageInvariantError:
    """The error of ``page`` breaking ``invariant``: one line with the page number and URL."""
    return PageInvariantError(invariant, f"page {page.page_no}: {detail}", url=page.response.url)


def _check_total(page: Page, page_param: str, per: int | None, total_header: str) -> None:
    """``Total`` against what arrived on a ``page``/``per`` page (one response: it is exact)."""
    total = as_int(page.response.headers.get(total_header))
    if total is None or per is None:
        return
    before, n = ((as_int(page.request.params.get(page_param)) or 1) - 1) * per, len(page.records)
    if n == 0 and total > before:
        detail = f"no records, but {total_header}: {total} promises {total - before} more"
        raise violation("empty_page_claims_more", page, detail)
    if (n < per and total != before + n) or total < before + n:
        detail = f"records {before + 1}-{before + n} arrived, but {total_header} says {total}"
        raise violation("total_mismatch", page, detail)


@dataclass(frozen=True)
class PageNumberPaginator:
    """``page``/``per`` paging driven by ``Link``, ``Total``/``Per-Page``, or a short page."""

    page_param: str = "page"
    per_param: str = "per"
    total_header: str = "Total"
    per_page_header: str = "Per-Page"

    def next_request(self, page: Page) -> ApiRequest | None:
        """The next page, or ``None`` after the last (an empty page is always the last)."""
        request, headers, records = page.request, page.response.headers, page.records
        if not records:
            return None
        if "Link" in headers:  # only the page parameters of rel="next"; none: the last page
            link = parse_link_header(headers["Link"]).get("next")
            query = httpx.URL(link or "").params
            if link is not None and self.page_param not in query:
                raise PaginationError(f'Link rel="next" has no {self.page_param!r} parameter')
            nxt = {k: v for k, v in query.items() if k in (self.page_param, self.per_param)}
            return request.with_params(**nxt) if link is not None else None
        number = as_int(request.params.get(self.page_param)) or 1
        per = as_int(headers.get(self.per_page_header))
        per = per or as_int(request.params.get(self.per_param)) or len(records)
        total = as_int(headers.get(self.total_header))
        more = number * per < total if total is not None else len(records) >= per
        return request.with_params(**{self.page_param: number + 1}) if more else None

    def check(self, page: Page) -> str | None:
        """``Total`` agrees with what arrived; an empty page has no ``Link`` rel="next"."""
        headers = page.response.headers
        if not page.records and parse_link_header(headers.get("Link")).get("next"):
            raise violation("empty_page_claims_more", page, 'no records, but a Link rel="next"')
        per = as_int(headers.get(self.per_page_header))
        per = per or as_int(page.request.params.get(self.per_param))
        _check_total(page, self.page_param, per, self.total_header)
        return None


@dataclass(frozen=True)
class SkipLimitPaginator:
    """``skip``/``limit`` paging with ``hasMore`` and ``totalCount`` in the response body."""

    skip_key: str = "skip"
    limit_key: str = "limit"
    has_more_key: str = "hasMore"
    total_key: str = "totalCount"
    location: Literal["body", "params"] = "body"

    def next_request(self, page: Page) -> ApiRequest | None:
        """Advance ``skip`` by the records received, while the server says there are more.

        ``hasMore: false`` short of ``totalCount`` is asked past all the same: one of the two
        lies, and only the next page tells which. Its rows (``hasMore`` lied) go on; an empty
        page (``totalCount`` lied) ends it. Stopping would lose the rows after for good: the
        sync's cursor moves past them.
        """
        skip, limit, has_more, total = self.said(page)
        request, n = page.request, len(page.records)
        ended = skip + n >= total if total is not None else limit is not None and n < limit
        more = has_more is True or (not ended and (has_more is None or total is not None))
        if n == 0 or not more:
            return None
        nxt = {self.skip_key: skip + n}
        return request.with_body(**nxt) if self.location == "body" else request.with_params(**nxt)

    def said(self, page: Page) -> tuple[int, int | None, bool | None, int | None]:
        """``skip``, ``limit`` sent, ``hasMore``, ``totalCount`` answered (``None``: absent). A
        ``hasMore`` not boolean nor null (``"true"``, ``1``) is a ``ResponseShapeError``: read as
        false, it ended the window at its first page, the window committed with rows unread. So
        is a ``totalCount`` not null nor a count (a whole number >= 0, or its digits as a string):
        a negative one ended a window without ``hasMore`` at its first page; a fraction or a
        boolean, read as absent, turned off the checks that need it (``total_gap``)."""
        sent = (page.request.body or {}) if self.location == "body" else page.request.params
        body = page.response.body if isinstance(page.response.body, dict) else {}
        has_more, said_total = body.get(self.has_more_key), body.get(self.total_key)
        total, where = as_int(said_total), f"page {page.page_no}"
        if has_more is not None and type(has_more) is not bool:
            detail = f"{self.has_more_key} is {_json_type(has_more)}, not true or false"
            raise ShapeError(f"{where}: {detail}", url=page.response.url)
        if said_total is not None and (total is None or total < 0):
            kind = "negative" if total is not None else _json_type(said_total)
            kind = "a JSON number with a decimal point" if type(said_total) is float else kind
            detail = f"{self.total_key} is {kind}: a count of rows is a whole number >= 0"
            raise ShapeError(f"{where}: {detail}", url=page.response.url)
        skip, limit = as_int(sent.get(self.skip_key)) or 0, as_int(sent.get(self.limit_key))
        return skip, limit, has_more, total

    def check(self, page: Page) -> str | None:
        """A boolean ``hasMore`` (:meth:`said`), none on an empty page, nor (without it) an empty
        page short of the total; a total that disagrees with ``hasMore`` is only reported
        (:meth:`next_request` says which is followed)."""
        skip, _, has_more, total = self.said(page)
        n = len(page.records)
        if n == 0 and has_more is True:
            raise violation("has_more_without_rows", page, f"no rows, but {self.has_more_key}")
        if n == 0 and has_more is None and total is not None and total > skip:
            detail = f"no rows at {self.skip_key}={skip}, but {self.total_key}: {total}"
            raise violation("empty_page_claims_more", page, detail)
        if total is not None and isinstance(has_more, bool) and has_more != (skip + n < total):
            then = (  # the same for the empty page that may follow: one note for both
                f"following {self.has_more_key}"
                if has_more
                else "the page after is asked for: its rows go on, none end it"
            )
            return (
                f"{self.total_key} {total} disagrees with {self.has_more_key}={has_more} "
                f"after {skip + n} rows ({then})"
            )
        return None


@dataclass(frozen=True)
class PageKeyPaginator:
    """An opaque next-page key from the first of ``next_paths`` holding one, sent as ``param``."""

    param: str = "pageKey"
    next_paths: tuple[str, ...] = ("meta.next", "next", "pageKey")

    def key(self, page: Page) -> str | None:
        """The first non-blank string at ``next_paths`` (``None``: none). Anything else but null
        there (a number, an object) is a :class:`~connectors.errors.ResponseShapeError`: skipped,
        it ended the window with the rest unread, and the window was committed as synced."""
        for path in self.next_paths:
            key = dotted(page.response.body, path)
            if isinstance(key, str) and key.strip():
                return key.strip()
            if key is not None and not isinstance(key, str):
                detail = f"the next page key at {path!r} is {_json_type(key)}, not a string"
                raise ShapeError(f"page {page.page_no}: {detail}", url=page.response.url)
        return None

    def next_request(self, page: Page) -> ApiRequest | None:
        """Send the key back (:meth:`key`); stop when it is absent, null or empty."""
        if (key := self.key(page)) is None:
            return None
        if key.startswith(("http://", "https://", "/")) or "?" in key:
            key = httpx.URL(key).params.get(self.param) or key  # a next URL: take its key only
        return page.request.with_params(**{self.param: key})

    def check(self, page: Page) -> str | None:
        """A well-formed key (:meth:`key`); an empty page must be the last (no next key)."""
        if self.key(page) is not None and not page.records:
            raise violation("empty_page_claims_more", page, "no records, but a next page key")
        return None


_Stamp = Callable[[Any], datetime | tuple[datetime, datetime] | None]


@dataclass(frozen=True)
class TimeWindowPaginator:
    """Aligned windows of ``step`` from a start up to ``end``; ``render`` builds each request.

    Windows are ``[k * step, (k + 1) * step)`` from the Unix epoch (hours start on the hour); the
    last contains ``end - 1 µs``. With ``inner``, each window is paged by it before moving on.

    Example:
        >>> hourly = TimeWindowPaginator(
        ...     end=datetime(2026, 10, 1, 2, tzinfo=UTC), step=timedelta(hours=1),
        ...     render=lambda w: ApiRequest(url=f"v2/data/historical/{w.end:%Y%m%d/%H}"))
        >>> hourly.first_request(datetime(2026, 10, 1, 0, 30, tzinfo=UTC)).url
        'v2/data/historical/20261001/01'
    """

    end: datetime
    step: timedelta
    render: Callable[[TimeWindow], ApiRequest]
    inner: Paginator | None = None
    #: Where a record's instant is, when the vendor selects records by it: a record outside
    #: its page's window (``[start, end]``) is then a violation (``record_outside_window``).
    #: A span ``(earliest, latest)`` (a record selected by one of several instants, or an
    #: interval) is outside when it does not meet the window at all.
    stamp: _Stamp | None = None
    #: How long after its last instant a record may still be served: it meets a window that
    #: starts up to ``late`` after its span ends (data made available after the fact); the
    #: setting that sets it, named when a page of older data stops the stream.
    late: timedelta = timedelta(0)
    late_setting: str = ""
    #: Hold the page, not each record, to the window: it stops only when none of its stamped
    #: records meets the window, or when one starts after the window's end (plus ``skew``),
    #: which no data available in the window can; the other records land (late, but real).
    page_meets_window: bool = False
    #: With ``page_meets_window``: how far after the window's end a record may start (the
    #: vendor's clock against ours) before it is taken for another period's.
    skew: timedelta = timedelta(0)

    def first_request(self, start: datetime) -> ApiRequest:
        """The request for the window containing ``start``."""
        if start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("naive datetime: windows need timezone-aware instants")
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return self._at(epoch + (start - epoch) // self.step * self.step)

    def next_request(self, page: Page) -> ApiRequest | None:
        """Page inside the window with ``inner``, then move to the next window until ``end``."""
        nxt = None if self.inner is None else self.inner.next_request(page)
        if nxt is not None:
            return nxt
        if (window := page.request.window) is None:
            raise PaginationError("time-window request without a window: use first_request")
        return None if window.end >= self.end else self._at(window.end)

    def check(self, page: Page) -> str | None:
        """The inner paginator's invariants, and with ``stamp`` the records in the window asked
        for (each of them, or with ``page_meets_window`` at least one and none after it): a
        vendor that answers for another period (its filter's bug) would have its records
        landed and the window committed as synced, its own records never sent."""
        if self.stamp is not None and page.request.window is not None:
            self._check_stamps(page, page.request.window, self.stamp)
        check = getattr(self.inner, "check", None)
        return None if check is None else check(page)

    def _check_stamps(self, page: Page, window: TimeWindow, stamp: _Stamp) -> None:
        asked = f"the window [{format_utc(window.start)}, {format_utc(window.end)})"
        stamps = [at for at in map(stamp, page.records) if at is not None]
        spans = [at if isinstance(at, tuple) else (at, at) for at in stamps]
        for first, last in spans:
            after = first > window.end + self.skew
            if after or not (self.page_meets_window or self._meets(first, last, window)):
                detail = f"a record {_span(first, last)}, {'after' if after else 'outside'}"
                raise violation("record_outside_window", page, f"{detail} {asked}")
        if self.page_meets_window and spans and not any(self._meets(*s, window) for s in spans):
            detail = f"none of the {len(spans)} records met {asked}: one {_span(*min(spans))}"
            if self.late_setting and max(last for _, last in spans) < window.start:
                late = self.late / timedelta(days=1)
                detail += f", {late:g} days late allowed ({self.late_setting})"
            raise violation("record_outside_window", page, detail)

    def _meets(self, first: datetime, last: datetime, window: TimeWindow) -> bool:
        return last >= window.start - self.late and first <= window.end  # no year-9999 overflow

    def _at(self, start: datetime) -> ApiRequest:
        window = TimeWindow(start, start + self.step)
        return replace(self.render(window), window=window)


def _span(first: datetime, last: datetime) -> str:
    """``at FIRST`` or ``at FIRST to LAST``: a record's own instants, as it was served."""
    return f"at {format_utc(first)}" + ("" if first == last else f" to {format_utc(last)}")


@dataclass(frozen=True)
class CursorTailPaginator:
    """Tail by a ``[from]`` cursor over records sorted by ``field`` ascending (UJET).

    A full page moves the cursor to the latest ``field`` on it minus ``overlap`` (a boundary instant
    shared with the next page is read again, never skipped) and restarts at page 1; when that does
    not advance the cursor (a page of one instant), it asks for the next page. A short or empty page
    is the end (:meth:`ends`). Full is by the page size the server says it used (:meth:`page_size`:
    ``Per-Page``, its ``Link``), not the ``per`` asked (UJET caps it at 100, a server may cap
    lower): a page short of ``per`` but not of that, or with a ``Link`` rel="next", has more after
    it; taken as the end, the sync would stop after one page with exit 0, the cursor a page further
    each night. :meth:`check` holds each page to the order asked for (``Total`` is checked across
    cursor moves by :func:`iterate_pages`).
    """

    cursor_param: str = "updated_at[from]"
    field: str = "updated_at"
    page_param: str = "page"
    per_param: str = "per"
    overlap: timedelta = timedelta(milliseconds=1)
    total_header: str = "Total"
    per_page_header: str = "Per-Page"

    def page_size(self, page: Page) -> int | None:
        """The page size the server used: its ``Per-Page``, else the ``per`` of its ``Link``
        (rel="next", else "last"), else the ``per`` asked (``None``: none of them).

        Example:
            >>> asked = ApiRequest("GET", "calls", params={"per": 25})
            >>> at, headers = datetime(2026, 10, 1, tzinfo=UTC), httpx.Headers({"Per-Page": "20"})
            >>> said = ApiResponse(200, headers, [], "https://u.test/calls", at)
            >>> CursorTailPaginator().page_size(Page(asked, said, [], 1))
            20
        """
        headers = page.response.headers
        links = parse_link_header(headers.get("Link"))
        linked = links.get("next") or links.get("last")
        per = as_int(headers.get(self.per_page_header))
        per = per or (as_int(httpx.URL(linked).params.get(self.per_param)) if linked else None)
        return per or as_int(page.request.params.get(self.per_param))

    def ends(self, page: Page) -> bool:
        """Whether ``page`` is the last: empty, or short of :meth:`page_size` without a
        ``Link`` rel="next" (with one, the server says there is more)."""
        if not page.records:
            return True
        per = self.page_size(page)
        short = per is not None and len(page.records) < per
        return short and not parse_link_header(page.response.headers.get("Link")).get("next")

    def stamp(self, record: Any) -> datetime | None:
        """A record's cursor field as an aware instant (``None``: absent or not an instant)."""
        return parse_utc(record.get(self.field)) if isinstance(record, dict) else None

    def check(self, page: Page) -> str | None:
        """Non-decreasing in ``field``, none before the requested cursor, ``Total`` agrees, no
        ``Link`` rel="next" on an empty page (no record to move the cursor by)."""
        if not page.records and parse_link_header(page.response.headers.get("Link")).get("next"):
            raise violation("empty_page_claims_more", page, 'no records, but a Link rel="next"')
        asked = parse_utc(page.request.params.get(self.cursor_param))
        previous: datetime | None = None
        for at in filter(None, map(self.stamp, page.records)):
            if asked is not None and at < asked:
                detail = f"{self.field} {format_utc(at)} is before {self.cursor_param}"
                raise violation("cursor_start", page, f"{detail}={format_utc(asked)}")
            if previous is not None and at < previous:
                detail = f"{self.field} goes back from {format_utc(previous)} to {format_utc(at)}"
                raise violation("cursor_order", page, f"{detail} (ascending was asked)")
            previous = at
        _check_total(page, self.page_param, self.page_size(page), self.total_header)
        return None

    def next_request(self, page: Page) -> ApiRequest | None:
        """The next tail request, or ``None`` at the end (:meth:`ends`)."""
        request, records = page.request, page.records
        if self.ends(page):
            return None
        latest = max(filter(None, map(self.stamp, records)), default=None)
        current = parse_utc(request.params.get(self.cursor_param))
        if latest is not None:
            cursor = format_utc(latest - self.overlap)
            moved = parse_utc(cursor)  # compare what is sent: formatting truncates to ms
            if current is None or (moved is not None and moved > current):
                return request.with_params(**{self.cursor_param: cursor, self.page_param: "1"})
        number = as_int(request.params.get(self.page_param)) or 1
        return request.with_params(**{self.page_param: number + 1})

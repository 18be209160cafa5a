"""Pure paginators for the four paging kinds, and one driver that walks them with guards.

A paginator's ``next_request(page)`` derives the next request from the last :class:`Page`
(request sent, response status/headers/JSON, records), or returns ``None`` at the end; no I/O,
no hidden state. It never takes a host from a response, only page parameters, so credentials
cannot follow a link elsewhere. :func:`iterate_pages` yields each page before asking for the
next, raises :class:`~connectors.errors.PaginationLoopError` when any earlier request of the run
comes again (the same token, page or URL twice) and :class:`~connectors.errors.MaxPagesError`
past ``max_pages``. Records sit at a dotted JSON path (``None``: the body is the list): a
missing key or a non-list is a :class:`~connectors.errors.ResponseShapeError` (loud beats
silently empty); ``null`` is an empty page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import httpx

from connectors.errors import MaxPagesError, PaginationError, PaginationLoopError
from connectors.errors import ResponseShapeError as ShapeError
from connectors.ratelimit import RateLimiter
from connectors.retry import ApiRequest, ApiResponse, RetryPolicy, TimeWindow, send_json
from connectors.state import format_utc, parse_utc

__all__ = [
    "CursorTailPaginator",
    "Page",
    "PageKeyPaginator",
    "PageNumberPaginator",
    "Paginator",
    "SkipLimitPaginator",
    "TimeWindowPaginator",
    "extract_records",
    "iterate_pages",
    "parse_link_header",
]

_LINK = re.compile(r"""<([^>]*)>[^<]*?;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""", re.I)


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


def _int(value: object) -> int | None:
    if isinstance(value, str):
        return int(value) if value.strip().isdecimal() else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _path(body: Any, path: str) -> Any:
    for key in path.split(".") if path else ():
        body = body.get(key) if isinstance(body, dict) else None
    return body


def parse_link_header(value: str | None) -> dict[str, str]:
    """Map each ``rel`` of an RFC 8288 ``Link`` header to its URL.

    Example:
        >>> parse_link_header('<https://x.test/c?page=2>; rel="next", <…?page=9>; rel="last"')
        {'next': 'https://x.test/c?page=2', 'last': '…?page=9'}
    """
    links: dict[str, str] = {}
    for match in _LINK.finditer(value or ""):
        for rel in (match.group(2) or match.group(3)).lower().split():
            links.setdefault(rel, match.group(1).strip())
    return links


def extract_records(body: Any, path: str | None) -> list[Any]:
    """The records of a page at a dotted path (``None`` or ``""``: the body is the list).

    Example:
        >>> extract_records({"data": [{"id": 1}]}, "data")
        [{'id': 1}]
    """
    value = body
    for key in path.split(".") if path else ():
        if not isinstance(value, dict) or key not in value:
            raise ShapeError(f"response has no records at {path!r}")
        value = value[key]
    if value is not None and not isinstance(value, list):
        raise ShapeError(f"records at {path or 'top level'!r} are not a list")
    return value or []


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
        number = _int(request.params.get(self.page_param)) or 1
        per = _int(headers.get(self.per_page_header))
        per = per or _int(request.params.get(self.per_param)) or len(records)
        total = _int(headers.get(self.total_header))
        more = number * per < total if total is not None else len(records) >= per
        return request.with_params(**{self.page_param: number + 1}) if more else None


@dataclass(frozen=True)
class SkipLimitPaginator:
    """``skip``/``limit`` paging with ``hasMore`` and ``totalCount`` in the response body."""

    skip_key: str = "skip"
    limit_key: str = "limit"
    has_more_key: str = "hasMore"
    total_key: str = "totalCount"
    location: Literal["body", "params"] = "body"

    def next_request(self, page: Page) -> ApiRequest | None:
        """Advance ``skip`` by the records received, while the server says there are more."""
        request, records, body = page.request, page.records, page.response.body
        sent = (request.body or {}) if self.location == "body" else request.params
        skip, limit = _int(sent.get(self.skip_key)) or 0, _int(sent.get(self.limit_key))
        body = body if isinstance(body, dict) else {}
        has_more, total = body.get(self.has_more_key), _int(body.get(self.total_key))
        n = len(records)
        ended = skip + n >= total if total is not None else limit is not None and n < limit
        if n == 0 or has_more is False or (has_more is not True and ended):
            return None
        nxt = {self.skip_key: skip + n}
        return request.with_body(**nxt) if self.location == "body" else request.with_params(**nxt)


@dataclass(frozen=True)
class PageKeyPaginator:
    """An opaque next-page key from the first of ``next_paths`` holding one, sent as ``param``."""

    param: str = "pageKey"
    next_paths: tuple[str, ...] = ("meta.next", "next", "pageKey")

    def next_request(self, page: Page) -> ApiRequest | None:
        """Send the key back; stop when it is absent, null or empty."""
        request, keys = page.request, (_path(page.response.body, p) for p in self.next_paths)
        key = next((k.strip() for k in keys if isinstance(k, str) and k.strip()), None)
        if key is None:
            return None
        if key.startswith(("http://", "https://", "/")) or "?" in key:
            key = httpx.URL(key).params.get(self.param) or key  # a next URL: take its key only
        return request.with_params(**{self.param: key})


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

    def _at(self, start: datetime) -> ApiRequest:
        window = TimeWindow(start, start + self.step)
        return replace(self.render(window), window=window)


@dataclass(frozen=True)
class CursorTailPaginator:
    """Tail by a ``[from]`` cursor over records sorted by ``field`` ascending (UJET).

    A full page moves the cursor to the latest ``field`` on it minus ``overlap`` (so a boundary
    instant shared with the next page is read again, never skipped) and restarts at page 1; when
    that does not advance the cursor (a page of one instant), it asks for the next page instead.
    A short or empty page is the end.
    """

    cursor_param: str = "updated_at[from]"
    field: str = "updated_at"
    page_param: str = "page"
    per_param: str = "per"
    overlap: timedelta = timedelta(milliseconds=1)

    def next_request(self, page: Page) -> ApiRequest | None:
        """The next tail request, or ``None`` at the end."""
        request, records = page.request, page.records
        per = _int(request.params.get(self.per_param))
        if not records or (per is not None and len(records) < per):
            return None
        stamps = [parse_utc(r.get(self.field)) for r in records if isinstance(r, dict)]
        latest = max((s for s in stamps if s is not None), default=None)
        current = parse_utc(request.params.get(self.cursor_param))
        if latest is not None:
            cursor = format_utc(latest - self.overlap)
            moved = parse_utc(cursor)  # compare what is sent: formatting truncates to ms
            if current is None or (moved is not None and moved > current):
                return request.with_params(**{self.cursor_param: cursor, self.page_param: "1"})
        number = _int(request.params.get(self.page_param)) or 1
        return request.with_params(**{self.page_param: number + 1})


def _fingerprint(request: ApiRequest) -> str:
    window = None if request.window is None else [w.isoformat() for w in request.window]
    parts = [request.method.upper(), request.url, sorted(request.params.items()), request.body]
    return json.dumps([*parts, window], sort_keys=True, default=str)


def iterate_pages(
    client: httpx.Client,
    first_request: ApiRequest,
    paginator: Paginator,
    *,
    records_path: str | None = None,
    limiter: RateLimiter | None = None,
    retry: RetryPolicy | None = None,
    max_pages: int = 10_000,
) -> Iterator[Page]:
    """Fetch pages until the paginator says stop; yield each before asking for the next.

    Example:
        >>> from connectors.http import make_client
        >>> def kore(r: httpx.Request) -> httpx.Response:
        ...     skip = json.loads(r.content)["skip"]
        ...     return httpx.Response(200, json={"rows": [skip], "hasMore": skip < 2})
        >>> client = make_client("https://k.test", transport=httpx.MockTransport(kore))
        >>> first = ApiRequest("POST", "callvolume", body={"skip": 0, "limit": 1})
        >>> pages = iterate_pages(client, first, SkipLimitPaginator(), records_path="rows")
        >>> [p.records for p in pages]
        [[0], [1], [2]]

    Raises:
        PaginationLoopError: The paginator repeated a request of this run.
        MaxPagesError: More than ``max_pages`` pages.
    """
    seen: set[str] = set()
    request: ApiRequest | None = first_request
    page_no = 0
    while request is not None:
        key = _fingerprint(request)
        if key in seen:
            raise PaginationLoopError(f"paginator repeated a request after page {page_no}")
        if page_no >= max_pages:
            raise MaxPagesError(f"stream has more than max_pages={max_pages} pages")
        seen.add(key)
        response = send_json(client, request, limiter=limiter, retry=retry)
        page_no += 1
        page = Page(request, response, extract_records(response.body, records_path), page_no)
        yield page
        request = paginator.next_request(page)

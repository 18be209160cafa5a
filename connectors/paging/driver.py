"""The driver of the paginators: :func:`iterate_pages`, with the guards of a whole run.

It checks every page (its paginator's ``check``, then the invariants that span pages: repeated
pages, a tail's ``Total`` across cursor moves, a skip/limit or page-number window's distinct
records against its ``totalCount`` or ``Total``) before it yields it, so a page that breaks a
rule is never landed, and yields each page before asking for the next.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from connectors.errors import MaxPagesError, PaginationLoopError, RepeatedPageError
from connectors.http import DEFAULT_MAX_BYTES
from connectors.paging.paginator import (
    CursorTailPaginator,
    Page,
    PageNumberPaginator,
    Paginator,
    SkipLimitPaginator,
    TimeWindowPaginator,
    as_int,
    extract_records,
    violation,
)
from connectors.ratelimit import RateLimiter
from connectors.retry import ApiRequest, RetryPolicy, send_json
from connectors.state import format_utc, parse_utc

__all__ = ["iterate_pages"]

_log = logging.getLogger(__name__)


def _fingerprint(request: ApiRequest) -> str:
    window = None if request.window is None else [w.isoformat() for w in request.window]
    parts = [request.method.upper(), request.url, sorted(request.params.items()), request.body]
    return json.dumps([*parts, window], sort_keys=True, default=str)


@dataclass
class _Guard:
    """The invariants of one run that span pages: repeats, ``Total`` across tail cursors, and
    the distinct records of a skip/limit or page-number window against its total."""

    paginator: Paginator
    identity: Callable[[Any], Hashable | None] | None
    #: The records read in the run (not for a tail, which holds those read under its current
    #: cursor only, see :meth:`_tail`: a first sync's 300K keys are ~40 MB).
    seen: set[Hashable] = field(default_factory=set)
    repeats: int = 0
    noted: set[str] = field(default_factory=set)
    #: The tail's current cursor, its first page's ``Total`` and the records read under it.
    anchor: tuple[datetime | None, int | None, dict[Hashable, datetime | None]] | None = None
    #: Not a tail: the time window being paged (``None``: none) and the records read in it.
    chain: tuple[Any, set[Hashable]] | None = None
    #: Skip/limit and page number: the window being paged, its first page's total (``None``:
    #: absent on a page so far), the records read in it and their distinct identities.
    span: tuple[Any, int | None, int, set[Hashable]] | None = None

    def admit(self, page: Page) -> None:
        """Raise :class:`PageInvariantError` if ``page`` breaks an invariant, else remember it."""
        check = getattr(self.paginator, "check", None)
        note = None if check is None else check(page)
        if note is not None and note not in self.noted:
            self.noted.add(note)
            _log.warning("page %d: %s (%s)", page.page_no, note, page.response.url)
        seen: set[Hashable] = self.seen
        if isinstance(self.paginator, CursorTailPaginator):
            seen = self._tail(self.paginator, page)
        self._repeat(page, seen)
        self._span(page)

    def _key(self, record: Any) -> Hashable:
        """The record's identity, else its content (a record without an id still counts)."""
        key = None if self.identity is None else self.identity(record)
        return json.dumps(record, sort_keys=True, default=str) if key is None else key

    def _tail(self, tail: CursorTailPaginator, page: Page) -> set[Hashable]:
        """Check ``Total`` across a cursor move; the records read under this page's cursor."""
        asked = parse_utc(page.request.params.get(tail.cursor_param))
        total = as_int(page.response.headers.get(tail.total_header))
        read = {self._key(r): tail.stamp(r) for r in page.records}
        under: set[Hashable] = set()
        if self.anchor is not None and self.anchor[0] == asked:  # the next page of one cursor
            under = set(self.anchor[2])
            self.anchor[2].update(read)
            self._tail_end(tail, page, total)
            return under
        if self.anchor is not None and asked is not None:
            cursor, before, earlier = self.anchor
            if before is not None and total is not None and (cursor is None or cursor < asked):
                # a record whose stamp cannot be read may lie anywhere: taken as in between (it
                # is quarantined downstream), lest one bad stamp stop the stream every night
                between = sum(
                    at is None or cursor is None or cursor <= at < asked for at in earlier.values()
                )
                if (skipped := before - total - between) > 0:
                    since = "the start" if cursor is None else format_utc(cursor)
                    detail = (
                        f"{tail.total_header} fell by {before - total} from {since} to "
                        f"{format_utc(asked)}, but {between} records in between were read: "
                        f"{skipped} skipped"
                    )
                    raise violation("total_gap", page, detail)
        self.anchor = (asked, total, read)
        self._tail_end(tail, page, total)
        return under

    def _tail_end(self, tail: CursorTailPaginator, page: Page, total: int | None) -> None:
        """At the tail's end, the distinct records read under its cursor make up ``Total`` (the
        pages of one cursor overlap only when others were skipped, e.g. a tie sorted anew)."""
        if self.anchor is None or total is None or not tail.ends(page):
            return
        if (skipped := total - len(self.anchor[2])) > 0:
            detail = (
                f"the tail ends with {len(self.anchor[2])} distinct records read from this "
                f"cursor, but {tail.total_header} says {total}: {skipped} skipped"
            )
            raise violation("total_gap", page, detail)

    def _span(self, page: Page) -> None:
        """At the last page of a skip/limit or page-number window (the run's, without windows)
        whose every page said a total (``totalCount``, ``Total``), the distinct records read
        number at least the smaller of its first total and the records read less its growth
        (its last total minus its first): a record served at two offsets or pages (an unstable
        order) took the place of one never served, and a total that fell ended a window short
        of its records; committing the window would lose them (``total_gap``). Growth excuses
        as many records read twice (one added before the offset shifts the later ones by one);
        a total that lies low or high (followed as the paginator says) still needs the records
        read distinct."""
        pages: Paginator | None = self.paginator
        pages = pages.inner if isinstance(pages, TimeWindowPaginator) else pages
        if isinstance(pages, SkipLimitPaginator):
            total, name = pages.said(page)[3], pages.total_key
        elif isinstance(pages, PageNumberPaginator):
            total, name = as_int(page.response.headers.get(pages.total_header)), pages.total_header
        else:
            return
        window = page.request.window
        if self.span is None or self.span[0] != window:
            self.span = (window, total, 0, set())
        _, first, read, keys = self.span
        keys.update(map(self._key, page.records))
        read += len(page.records)
        self.span = (window, None if total is None else first, read, keys)
        if first is None or total is None or pages.next_request(page) is not None:
            return
        if (skipped := min(first, read - (total - first)) - len(keys)) > 0:
            said = f"{first} throughout" if total == first else f"{first}, then {total}"
            detail = (
                f"the window ends with {len(keys)} distinct records of {read} read, but "
                f"{name} said {said}: {skipped} skipped"
            )
            raise violation("total_gap", page, detail)

    def _repeat(self, page: Page, seen: set[Hashable]) -> None:
        if self.identity is None or not page.records:
            self.repeats = 0
            return
        keys = [self.identity(r) for r in page.records]
        if seen is self.seen:
            self._in_chain(page, keys)
        if any(k is None for k in keys) or not seen.issuperset(keys):
            self.repeats = 0
        else:
            self.repeats += 1
            if self.repeats >= 2:
                detail = f"page {page.page_no}: a second page in a row of records read already"
                raise RepeatedPageError("repeated_page", detail, url=page.response.url)
        if seen is self.seen:  # a tail checks against its cursor's records: kept in anchor
            self.seen.update(k for k in keys if k is not None)

    def _in_chain(self, page: Page, keys: list[Hashable | None]) -> None:
        """A page after the first of one chain (a time window's pages, or the run's when it
        has no windows) whose records were all read in that chain already is a repeat: a page
        key, number or offset that came back to a page read (records read in an earlier
        window may come again in the next one's first page: a record that moved)."""
        window = page.request.window
        if self.chain is None or self.chain[0] != window:
            self.chain = (window, set())
        read = self.chain[1]
        if read and None not in keys and read.issuperset(keys):
            detail = f"page {page.page_no}: every record of it was read on a page before it"
            raise RepeatedPageError("repeated_page", detail, url=page.response.url)
        read.update(k for k in keys if k is not None)


def iterate_pages(
    client: httpx.Client,
    first_request: ApiRequest,
    paginator: Paginator,
    *,
    records_path: str | None = None,
    limiter: RateLimiter | None = None,
    retry: RetryPolicy | None = None,
    max_pages: int = 10_000,
    max_bytes: int = DEFAULT_MAX_BYTES,
    identity: Callable[[Any], Hashable | None] | None = None,
) -> Iterator[Page]:
    """Fetch pages until the paginator says stop; check each, yield it, then ask for the next.

    ``identity`` maps a record to what makes it the same record (its id and cursor value), or
    ``None`` when it has none; without it, repeated pages are not detected. Bodies are read up
    to ``max_bytes`` each.

    Example:
        >>> from connectors.http import make_client
        >>> from connectors.paging import SkipLimitPaginator
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
        PageInvariantError: A page broke an invariant of its kind (module docstring); it is
            not yielded. :class:`RepeatedPageError` for the second repeated page in a row.
        ResponseTooLargeError: A body over ``max_bytes``.
    """
    seen: set[str] = set()
    guard = _Guard(paginator, identity)
    request: ApiRequest | None = first_request
    page_no = 0
    while request is not None:
        key = _fingerprint(request)
        if key in seen:
            raise PaginationLoopError(f"paginator repeated a request after page {page_no}")
        if page_no >= max_pages:
            raise MaxPagesError(f"stream has more than max_pages={max_pages} pages")
        seen.add(key)
        response = send_json(client, request, limiter=limiter, retry=retry, max_bytes=max_bytes)
        page_no += 1
        page = Page(request, response, extract_records(response.body, records_path), page_no)
        guard.admit(page)
        yield page
        request = paginator.next_request(page)

"""Paging: pure paginators for the paging kinds, and one driver that walks them with guards.

:mod:`connectors.paging.paginator` holds the paginators and the invariants of one page,
:mod:`connectors.paging.driver` the driver, :func:`iterate_pages`, and the guards of a run.

A paginator's ``next_request(page)`` derives the next request from the last :class:`Page`
(request sent, response status/headers/JSON, records), or returns ``None`` at the end; no I/O,
no hidden state. It never takes a host from a response, only page parameters, so credentials
cannot follow a link elsewhere. Its ``check(page)`` raises
:class:`~connectors.errors.PageInvariantError` when the page breaks a rule of its kind (below)
and returns a note for a disagreement that is only reported (logged once per stream).

:func:`iterate_pages` checks every page before it yields it, so a page that breaks a rule is
never landed, and yields each page before asking for the next. It raises
:class:`~connectors.errors.PaginationLoopError` when any earlier request of the run comes again
(the same token, page or URL twice), :class:`~connectors.errors.MaxPagesError` past
``max_pages``, and, given an ``identity`` of records, :class:`~connectors.errors.RepeatedPageError`
for a page whose records were all read already on an earlier page of its time window (of the
run, without windows), or the second page in a row whose records were all seen in the run; for
a cursor tail, the second in a row seen under the same cursor, as each move of the cursor
re-reads its boundary instant, which can fill pages when more records than ``per`` share it.
The invariants, by kind (``invariant`` name):

* cursor tail: each page non-decreasing in the cursor field (``cursor_order``) and at or after
  the requested cursor (``cursor_start``); when the cursor moves from ``C`` to ``C'``, ``Total``
  must not fall by more than the records read in ``[C, C')``, and at the end the distinct
  records read from the last cursor make up its ``Total`` (``total_gap``: records skipped);
* cursor tail and page number: ``Total`` agrees with what arrived (``total_mismatch``: the last
  page ends where ``Total`` says, no page goes past it); an empty page with more to come by
  ``Total`` or ``Link`` (``empty_page_claims_more``);
* page number: at a window's last page (the run's, without windows), when every page said a
  ``Total``, the distinct records read make it up, as for skip/limit below (``total_gap``: a
  record served at two pages in place of another, each page's count right);
* skip/limit: ``hasMore`` on a page with no rows (``has_more_without_rows``); without
  ``hasMore``, an empty page short of ``totalCount`` (``empty_page_claims_more``); a
  ``totalCount`` that disagrees with ``hasMore`` is reported, and ``hasMore: false`` short of
  ``totalCount`` asked past all the same (an empty next page ends it); a ``hasMore`` that is
  not a boolean, or a ``totalCount`` that is not a count of rows (a whole number >= 0, or its
  digits as a string), is a ``ResponseShapeError``; at a window's last page, when every page
  said a ``totalCount``, fewer distinct rows than its first total, or than the rows read less
  the total's growth (last minus first) (``total_gap``: a row served at two offsets in place of
  another, or a falling total that ended the window short);
* page key: an empty page with a next key (``empty_page_claims_more``); a key that is present
  but not a string is a ``ResponseShapeError`` (never "no next page");
* time windows: the inner paginator's invariants in each window; given where a record's
  instant is (Dixa's ``primaryTimestampField``), every record inside its window, or given its
  span (Kore.ai's interval), every span meeting its window (``record_outside_window``); with
  ``page_meets_window`` (Mindful: ``createdAt`` to ``endedAt``, seven days ``late`` allowed)
  only a page none of whose records meets the window, or a record starting after it, stops.

A count read from a header or as digits (``Total``, ``Per-Page``, a ``Link``'s ``per``, a
``totalCount`` string) of more than 19 digits is a ``ResponseShapeError``
(:func:`~connectors.wire.digits.as_int`).

Records sit at a dotted JSON path (``None``: the body is the list): a missing key or a non-list
is a :class:`~connectors.errors.ResponseShapeError` (loud beats silently empty); ``null`` is an
empty page.
"""

from connectors.paging.driver import iterate_pages
from connectors.paging.paginator import (
    CursorTailPaginator,
    Page,
    PageKeyPaginator,
    PageNumberPaginator,
    Paginator,
    SkipLimitPaginator,
    TimeWindowPaginator,
    extract_records,
    parse_link_header,
)
from connectors.paging.values import as_int

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
    "iterate_pages",
    "parse_link_header",
]

"""The sync loop: pull every stream of a source page by page, land each page, then commit state.

For each stream, in declaration order::

    repair_landing (a lost or damaged landing file: the cursor rewound to its range's start)
      -> state (cursor - lookback, or the configured start)
      -> first request -> iterate_pages (rate limiter before every attempt, retry policy,
         guards: loop, max pages, body size, the paging invariants of every page)
      -> per page: StateStore.commit(the page before's cursor) -> prepare + shape check
         (misfits are quarantined) -> land_page (the file and its manifest entry with the
         page's cursor range, durable) -> merged with the sync's pages before it once they
         make a batch (:mod:`connectors.landing.batch`); the last page's cursor is committed
         at the end

State is committed only after the page it covers is durable, so a crash or a kill at any point
re-reads at most the pages after the last commit (plus the lookback), and the landing store's
de-duplication by primary key makes the re-read harmless; a landing file lost since is fetched
again (:mod:`connectors.landing.check`). A page's cursor is committed once the next page has
passed the paging invariants (or the stream ended): when a page breaks one
(:class:`~connectors.errors.PageInvariantError`, e.g. ``Total`` shows that the page before
skipped records), the page before keeps its data but not its cursor, so the committed cursor
never moves past records that were not seen. One rate limiter (a
:class:`~connectors.retry.SequentialLimiter`) is shared by all streams of a source (vendors
limit per tenant). A :class:`SyncReport` per stream counts pages, records, retries and
429s and carries the one-line error of a stream that failed and what was ``repaired``;
``progress`` is called after every landed page.

Example:
    ``reports = sync_source(UJET, settings, landing_root=Path("data/landing"),
    state_root=Path("data/state"))``
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from connectors.errors import (
    ConnectorError,
    PageInvariantError,
    RateLimitedError,
    RetriableError,
    advice,
    name_source,
)
from connectors.landing import PiiScrubber, RecordKey, Span, land_page, landed_files
from connectors.landing.batch import Batching, PageBatch
from connectors.landing.check import repair_landing
from connectors.normalise import land_rejected, screen
from connectors.paging import CursorTailPaginator, Page, Paginator, as_int, iterate_pages
from connectors.ratelimit import RateLimiter
from connectors.retry import ApiRequest, SequentialLimiter
from connectors.source import Source, SourceSettings, Stream
from connectors.state import AHEAD, StateStore, format_utc, parse_utc
from engine import clock, killpoint
from engine.clock import sleep as clock_sleep

__all__ = [
    "Progress",
    "SequentialLimiter",
    "SyncReport",
    "first_request",
    "sync_source",
    "sync_stream",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """Reported after each landed page; ``total_hint`` estimates the stream's records (the
    vendor's ``Total`` header plus what came before), or is ``None``."""

    source: str
    stream: str
    pages: int
    records: int
    total_hint: int | None


@dataclass
class SyncReport:
    """What one stream's sync did (names, counts and instants only: no secret, no content)."""

    source: str
    stream: str
    started_from: str
    cursor: str | None = None
    pages: int = 0
    records: int = 0
    landed: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    throttled: int = 0
    seconds: float = 0.0
    error: str | None = None
    #: What was lost or damaged in the landing store and how it was repaired, one line each.
    repaired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No error."""
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-able dict."""
        return asdict(self)


def first_request(
    stream: Stream, start: datetime, settings: SourceSettings, now: datetime
) -> tuple[ApiRequest, Paginator]:
    """The first request of a stream's sync from ``start``, and its paginator: the stream's own
    ``plan`` when it declares one, else the built-in ``cursor_tail`` plan.

    Example:
        >>> from datetime import UTC
        >>> from connectors.vendors.ujet.client import UJET, UjetSettings
        >>> at = datetime(2026, 1, 1, tzinfo=UTC)
        >>> request, _ = first_request(UJET.streams[0], at, UjetSettings(), at)
        >>> request.params["updated_at[from]"], request.params["per"]
        ('2026-01-01T00:00:00.000Z', 100)
    """
    if stream.plan is not None:
        return stream.plan(start, settings, now)
    if stream.paging != "cursor_tail":
        msg = f"stream {stream.name!r}: paging {stream.paging!r} needs a plan in its declaration"
        raise NotImplementedError(msg)
    per = settings.per_page
    params = {**stream.params, stream.cursor_param: format_utc(start), "per": per, "page": 1}
    paginator = CursorTailPaginator(cursor_param=stream.cursor_param, field=stream.cursor_field)
    return ApiRequest("GET", stream.path, params=params), paginator


@dataclass
class _Run:
    """The per-stream pieces of one sync."""

    source: Source
    stream: Stream
    settings: SourceSettings
    landing_root: Path
    state: StateStore
    scrubber: PiiScrubber
    batch_id: str
    report: SyncReport
    started: datetime
    now: Callable[[], datetime]
    start: datetime
    batch: PageBatch
    committed: datetime | None = None
    latest: datetime | None = None
    base: int = 0
    pending: datetime | None = None  # the cursor of the last page landed, not yet committed
    ahead: bool = False  # a record landed was stamped ahead of the clock (said once)
    landed: bool = False  # records of the stream are in the landing store (kept in its state)

    def span(self, page: Page) -> Span:
        """The page's cursor range: where a sync reads it again (its window's start, the cursor
        it was asked from, or the sync's start) and its window's end (else its records')."""
        window, param = page.request.window, self.stream.cursor_param
        if window is not None:
            return Span(window.start, window.end, self.committed)
        asked = parse_utc(page.request.params.get(param)) if param else None
        return Span(asked or self.start, None, self.committed)

    def land(self, page: Page) -> None:
        """Commit the page before (this one passed the paging invariants), then land this one
        durably and quarantine its misfits; its cursor is committed with the next page."""
        self.commit()
        source, stream, report, at = self.source.name, self.stream.name, self.report, self.now()
        records, rejected = screen(self.stream, page.records, self.scrubber)
        landed = land_page(
            self.landing_root,
            source,
            stream,
            records,
            key=self.stream.record_key
            or RecordKey(self.stream.primary_key, self.stream.cursor_field),
            scrubber=self.scrubber,
            fetched_at=at,
            batch_id=self.batch_id,
            page_no=page.page_no,
            record_dtype=self.stream.landed_dtype,
            span=self.span(page),
        )
        killpoint.reached("sync.page_landed")
        self.batch.add(landed.path, landed.rows)  # a long sync's pages merged in batches
        rejected += landed.rejected
        if rejected:
            land_rejected(self.landing_root, source, stream, rejected, batch_id=self.batch_id,
                          fetched_at=at)  # fmt: skip
        if landed.max_updated_at is not None:
            self.latest = max(self.latest or landed.max_updated_at, landed.max_updated_at)
        cursor = self.latest
        if self.stream.page_cursor is not None:
            cursor = self.stream.page_cursor(page, self.latest, self.started)
        elif cursor is not None and cursor > self.started:
            cursor = self._held(cursor)
        if str(page.request.params.get("page", "1")) == "1":
            self.base = report.records  # a fresh cursor request: Total counts from here
        report.pages += 1
        report.records += len(page.records)
        report.landed += landed.rows
        report.rejected = dict(Counter(report.rejected) + Counter(r.reason for r in rejected))
        self.pending = cursor

    def _held(self, latest: datetime) -> datetime:
        """The cursor when a record landed changed after this sync started: the sync's start.
        A record changed while the sync ran is fetched again by the next one (de-duplicated);
        one stamped ahead of the clock (the vendor's clock or data is off, or ours) would,
        as the cursor, have every later sync ask for changes after it and miss all of them.
        That one is also said, once, when it is over :data:`AHEAD` ahead of now."""
        now = self.now()
        if latest > now + AHEAD and not self.ahead:
            self.ahead = True
            fields = {"event": "sync.cursor_ahead", "source": self.source.name,
                      "stream": self.stream.name, "latest": format_utc(latest),
                      "now": format_utc(now)}  # fmt: skip
            _log.warning(
                "sync %s/%s: a record's %s (%s) is ahead of the clock (%s): the cursor is "
                "held at the sync's start; check the source's clock",
                self.source.name,
                self.stream.name,
                self.stream.cursor_field,
                fields["latest"],
                fields["now"],
                extra={"fields": fields},
            )
        return self.started

    def commit(self) -> None:
        """Commit the cursor of the last page landed, if it is not committed yet."""
        cursor, self.pending = self.pending, None
        if cursor is not None:
            held = self.state.commit(
                self.source.name, self.stream.name, cursor, lookback=self.settings.lookback,
                landed=self.landed or self.report.landed > 0,
            )  # fmt: skip
            self.committed = held.cursor
            killpoint.reached("sync.cursor_committed")

    def total_hint(self, page: Page) -> int | None:
        """What the vendor's ``Total`` header says the stream holds, if it sent one."""
        total = as_int(page.response.headers.get("Total"), strict=False)  # progress: never fatal
        return None if total is None else self.base + total


def _repair(
    source: Source, stream: Stream, settings: SourceSettings, *, root: Path, state: StateStore
) -> list[str]:
    """:func:`~connectors.landing.check.repair_landing` for a stream, logged; raises its errors."""
    tail = stream.plan is None and stream.paging == "cursor_tail" and stream.record_key is None
    initial, names = settings.initial_cursor(clock.now()), (source.name, stream.name)
    done = repair_landing(
        root, state, *names, lookback=settings.lookback, initial=initial, by_updated_at=tail
    )
    for line in done:
        _log.warning("repaired %s", line)
    return done


def sync_stream(
    source: Source,
    stream: Stream,
    settings: SourceSettings,
    *,
    client: httpx.Client,
    landing_root: Path,
    state: StateStore,
    limiter: RateLimiter,
    sleep: Callable[[float], None] = clock_sleep,
    progress: Callable[[Progress], None] | None = None,
    now: Callable[[], datetime] = clock.now,
    repaired: list[str] | None = None,
    batching: Batching | None = None,
) -> SyncReport:
    """Sync one stream (see the module docstring); a connector error ends it in ``report.error``.

    Everything landed before the error stays committed; the next sync resumes from there.
    ``repaired``: what the landing store's repair did already (``None``: it is done here, first;
    it raises :class:`StateError` and :class:`LandingError` as :func:`sync_source` does).
    ``batching``: when the pages landed are merged (:mod:`connectors.landing.batch`).
    """
    if not isinstance(limiter, SequentialLimiter):
        limiter = SequentialLimiter(limiter)
    began, started = time.perf_counter(), now()
    if repaired is None:
        repaired = _repair(source, stream, settings, root=landing_root, state=state)
    lookback, initial = settings.lookback, settings.initial_cursor(started)
    start = state.resume_from(
        source.name, stream.name, lookback=lookback, initial=initial, now=started
    )
    report = SyncReport(source.name, stream.name, format_utc(start), repaired=repaired)

    def on_retry(attempt: int, delay: float, error: RetriableError) -> None:
        limiter.done()
        report.retries += 1
        report.throttled += isinstance(error, RateLimitedError)

    run = _Run(
        source=source,
        stream=stream,
        settings=settings,
        landing_root=landing_root,
        state=state,
        scrubber=PiiScrubber(stream.pii_drop, stream.pii_hash, settings.pii_hash_secret),
        batch_id=f"{started:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        report=report,
        started=started,
        now=now,
        start=start,
        batch=PageBatch(
            landing_root, source.name, stream.name, batching or Batching(), stream.landed_dtype
        ),
        committed=None if (held := state.get(source.name, stream.name)) is None else held.cursor,
        landed=bool(landed_files(landing_root, source.name, stream.name)),
    )
    request, paginator = first_request(stream, start, settings, started)
    try:
        try:
            for page in iterate_pages(
                client,
                request,
                paginator,
                records_path=stream.records_path,
                limiter=limiter,
                retry=settings.retry_policy(sleep=sleep, on_retry=on_retry),
                max_pages=settings.max_pages,
                max_bytes=settings.max_page_bytes,
                identity=stream.identity,
            ):
                limiter.done()
                run.land(page)
                if progress is not None:
                    hint = run.total_hint(page)
                    progress(Progress(source.name, stream.name, report.pages, report.records, hint))
            run.batch.finish()
        except PageInvariantError:
            run.pending = None  # the page before may have moved past records this one exposed
            raise
        finally:
            run.commit()
    except ConnectorError as exc:
        report.error = str(exc) + advice(exc, source=source.name, stream=stream.name,
                                         settings=settings, pages=report.pages)  # fmt: skip
        failed = {"event": "sync.failed", "source": source.name, "stream": stream.name,
                  "error": str(exc)}  # fmt: skip
        _log.error("sync %s/%s failed: %s", source.name, stream.name, exc, extra={"fields": failed})
    committed = state.get(source.name, stream.name)
    report.cursor = None if committed is None else format_utc(committed.cursor)
    report.seconds = round(time.perf_counter() - began, 3)
    fields = {"event": "sync.stream", **report.to_dict()}  # a JSON log line's fields
    _log.info("sync %s/%s: %s", source.name, stream.name, fields, extra={"fields": fields})
    return report


def sync_source(
    source: Source,
    settings: SourceSettings,
    *,
    landing_root: Path,
    state_root: Path,
    streams: Sequence[str] | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = clock_sleep,
    progress: Callable[[Progress], None] | None = None,
    batching: Batching | None = None,
) -> list[SyncReport]:
    """Sync the streams of ``source`` (all, or those named), one report per stream.

    A stream that fails does not stop the next one (its error is in its report). Before any
    request, every stream's landing files are checked against their manifest and what was lost
    is repaired (:func:`connectors.landing.check.repair_landing`, ``repaired`` in the reports).

    Raises:
        ConfigError: An unknown stream name, or settings the client cannot be built from.
        StateError: a state file is unreadable, or lost while landed files depend on it.
        LandingError: a landing file is lost and its range is unknown.
    """
    source = source.configured(settings)
    chosen = [source.stream(name) for name in streams] if streams else list(source.streams)
    state = StateStore(state_root)
    limiter = SequentialLimiter(
        settings.limiter(), anchored=settings.rate_limit_anchor == "response"
    )
    repairs = [_repair(source, s, settings, root=landing_root, state=state) for s in chosen]
    with source.client(settings, transport) as client:
        try:
            if source.preflight is not None:
                source.preflight(settings, client, limiter, settings.retry_policy(sleep=sleep))
        except ConnectorError as exc:
            name_source(exc, source.name, settings)
            raise
        return [
            sync_stream(
                source,
                stream,
                settings,
                client=client,
                landing_root=landing_root,
                state=state,
                limiter=limiter,
                sleep=sleep,
                progress=progress,
                repaired=repaired,
                batching=batching,
            )
            for stream, repaired in zip(chosen, repairs, strict=True)
        ]

"""The Dixa analytics API emulator (seed 004): catalogues, metrics and records on loopback.

Records are rendered from canonical contact segments; the mapping the ``dixa`` connector inverts
is documented in :mod:`connectors.emulator.dixa.record`, and :meth:`DixaEmulator.expected_contacts`
returns what a correct connector must rebuild.

HTTP behaviour (paths under :attr:`DixaEmulator.base_url`, the origin, like ``https://dev.dixa.io``):

* ``GET /v1/analytics/records`` and ``GET /v1/analytics/metrics``: the catalogues
  (:mod:`~connectors.emulator.dixa.catalogue`); ``GET /v1/analytics/records/{id}`` and
  ``/metrics/{id}``: one entry; ``GET /v1/analytics/filter/{attribute}``: the values seen.
* ``POST /v1/analytics/records``: unaggregated records of ``id`` whose primary timestamp is in the
  period (or whose csid is in ``csidFilter``), matching ``filters``, ordered by primary timestamp
  then key; ``POST /v1/analytics/metrics``: ``Count`` / ``Percentage`` aggregates
  (:mod:`~connectors.emulator.dixa.query` parses the bodies).
* Lists page by ``pageLimit`` (default 100, 1..300) and an opaque ``pageKey`` (an offset bound to
  the query). The next key is at ``meta.next`` (``next_key="meta"``), at ``meta.next`` as a
  relative URL (``"meta_url"``), or top-level ``pageKey`` (``"top"``); absent on the last page.
* ``Authorization: <API token>`` (no scheme); anything else gets 401. 10 requests/s per token with
  bursts of 4 (at most 4 in any 0.4 s and 10 in any 1 s), else 429 (``Retry-After`` only when
  switched on: Dixa documents none), plus the fault switches of :mod:`connectors.emulator.fault`.
* ``unknown_type`` adds a field of an unknown ``_type`` to every conversation record; records
  change while paging when a hook calls :meth:`~DixaEmulator.update_records` or
  :meth:`~DixaEmulator.add_contacts` (an insertion before the page offset shifts later records).

Example:
    >>> import httpx
    >>> with DixaEmulator(rate_limit_per_s=None) as emu:
    ...     r = httpx.get(f"{emu.base_url}/v1/analytics/records", headers=emu.headers)
    ...     [entry["id"] for entry in r.json()["data"]]
    ['ratings', 'closed_conversations', 'conversations']
"""

from __future__ import annotations

import hmac
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

import polars as pl

from connectors.emulator.dixa import data
from connectors.emulator.dixa.catalogue import METRICS, RECORDS
from connectors.emulator.dixa.query import (
    BadRequestError,
    Query,
    checksum,
    decode_key,
    encode_key,
    page_limit,
    parse_body,
)
from connectors.emulator.fault import Faults, RateLimiter
from connectors.emulator.server import EmulatorServer, Request, Response
from engine.clock import now

__all__ = ["DEFAULT_PAGE_LIMIT", "BurstLimiter", "DixaEmulator", "NextKey"]

DEFAULT_PAGE_LIMIT = 100
NextKey = Literal["meta", "meta_url", "top"]
_PREFIX = "/v1/analytics"


class BurstLimiter(RateLimiter):
    """At most ``burst`` admitted per key in any ``burst / per_s`` seconds and ``floor(per_s)``
    in any second (Dixa: 10/s with bursts of 4).

    Example:
        >>> limiter = BurstLimiter(10, 4, clock=lambda: 0.0)
        >>> [limiter.admit("t") is None for _ in range(5)]
        [True, True, True, True, False]
    """

    def __init__(
        self, per_s: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(per_s, clock=clock)
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.windows = ((burst, burst / per_s), (self.capacity, self.window_s))

    def admit(self, key: str) -> float | None:
        """Admit one request for ``key``: ``None`` if admitted, else seconds until a slot frees."""
        longest = max(length for _, length in self.windows)
        with self._lock:
            now = self._clock()
            times = self._admitted.setdefault(key, deque())
            while times and times[0] <= now - longest:
                times.popleft()
            waits = [
                times[-count] + length - now
                for count, length in self.windows
                if len(times) >= count and times[-count] > now - length
            ]
            if waits:
                return max(waits)
            times.append(now)
            return None


class DixaEmulator(EmulatorServer):
    """The Dixa analytics endpoints, served from canonical contact segments.

    Args:
        contacts: canonical segments (:data:`engine.schema.CONTACTS`; absent optional columns
            default); every canonical channel is served; ``source`` is ignored.
        token: the API token accepted in ``Authorization``.
        rate_limit_per_s: requests per second per token (``None``: unlimited).
        rate_limit_burst: most requests back to back.
        rate_limit_retry_after: send ``Retry-After`` on rate-limit 429s.
        faults: fault switches (changeable later through :attr:`faults`).
        seed: seed of faults, unknown keys and record decorations.
        port: port on 127.0.0.1 (0: a free one).
        next_key: where the next page key goes (see the module docstring).
        unknown_type: add a field of an unknown ``_type`` to conversation records.
        default_page_limit: page size when ``pageLimit`` is absent.
        clock: the emulated "now" (presets, ``touch``); default: the wall clock, UTC.
    """

    def __init__(
        self,
        contacts: pl.DataFrame | None = None,
        *,
        token: str = "emu-dixa-token",  # noqa: S107 - the local emulator's fake credential
        rate_limit_per_s: float | None = 10.0,
        rate_limit_burst: int = 4,
        rate_limit_retry_after: bool = False,
        faults: Faults | None = None,
        seed: int = 0,
        port: int = 0,
        next_key: NextKey = "meta",
        unknown_type: bool = False,
        default_page_limit: int = DEFAULT_PAGE_LIMIT,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(
            port=port,
            rate_limit_per_s=None,
            rate_limit_retry_after=rate_limit_retry_after,
            faults=faults,
            seed=seed,
        )
        self.set_rate_limit(rate_limit_per_s, burst=rate_limit_burst)
        self.token = token
        self.next_key: NextKey = next_key
        self.default_page_limit = default_page_limit
        self.clock = clock or now
        self.store = data.Store(seed=seed, unknown_type=unknown_type)
        if contacts is not None and contacts.height:
            self.store.add(contacts, now=None)

    def set_rate_limit(self, per_s: float | None, *, burst: int = 4) -> None:
        """Replace the limiter (``None``: unlimited); its windows start empty."""
        self._limiter = BurstLimiter(per_s, burst) if per_s else None

    @property
    def base_url(self) -> str:
        """The connector's base URL (``http://127.0.0.1:PORT``, like ``https://dev.dixa.io``)."""
        return self.origin

    @property
    def headers(self) -> dict[str, str]:
        """The auth header a client sends."""
        return {"Authorization": self.token}

    @property
    def unknown_type(self) -> bool:
        """Whether conversation records carry a field of an unknown ``_type``."""
        return self.store.unknown_type

    @unknown_type.setter
    def unknown_type(self, value: bool) -> None:
        self.store.set_unknown_type(value)

    # -- data ---------------------------------------------------------------------------------
    def expected_contacts(self) -> pl.DataFrame:
        """The canonical segments a correct connector rebuilds from what is served now."""
        return self.store.expected()

    def records(self, record_id: str) -> list[dict[str, Any]]:
        """Every served record of ``record_id`` in serving order (do not modify them)."""
        return [e.record for e in self.store.entries(record_id)]

    def canonical_id(self, contact_id: str) -> str:
        """The served contact id (csid) of an input contact id (or of a served one)."""
        return self.store.canonical_id(contact_id)

    def add_contacts(self, contacts: pl.DataFrame, *, touch: bool = True) -> list[str]:
        """Add contacts while serving (``touch``: ``updated_at`` = the clock's now).

        Returns:
            Their served contact ids, in input id order.
        """
        return self.store.add(contacts, now=self.clock() if touch else None)

    def update_records(
        self, contact_ids: Iterable[str], *, segment_no: int | None = None, **changes: Any
    ) -> None:
        """Change canonical columns of contacts (all segments, or one) and bump ``updated_at``.

        ``updated_at`` is ``changes["updated_at"]`` if given, else the clock's now; identity
        columns cannot change.

        Example:
            ``emu.update_records(["100001"], outcome="answered", answered_at=t, talk_ms=60_000)``
        """
        changes.setdefault("updated_at", self.clock())
        self.store.update(contact_ids, segment_no=segment_no, changes=changes)

    def add_raw_records(self, record_id: str, records: Iterable[dict[str, Any]]) -> None:
        """Serve raw records as given (bad data); those without a valid primary timestamp are
        only served to a ``csidFilter`` query naming their ``csid``."""
        self.store.add_raw(record_id, records)

    # -- HTTP ---------------------------------------------------------------------------------
    def authenticate(self, request: Request) -> str | None:
        """The exact API token in ``Authorization``; the tenant is ``token``."""
        given = request.headers.get("authorization", "").encode()
        return "token" if hmac.compare_digest(given, self.token.encode()) else None

    def unauthorized(self) -> Response:
        """401 without echoing anything."""
        return Response(401, {"message": "Unauthorized"})

    def route(self, request: Request) -> Response:
        """Dispatch the analytics endpoints."""
        path = request.path.rstrip("/")
        if not path.startswith(_PREFIX + "/"):
            return Response(404, {"message": "Not Found"})
        parts = path[len(_PREFIX) + 1 :].split("/")
        try:
            if parts[0] in ("records", "metrics") and len(parts) <= 2:
                return self._analytics(request, parts[0], parts[1] if len(parts) == 2 else None)
            if parts[0] == "filter" and len(parts) == 2 and request.method == "GET":
                values = self.store.filter_values(parts[1])
                return self._page(request, values, checksum(request.path))
        except BadRequestError as exc:
            return Response(400, {"message": str(exc)})
        return Response(404, {"message": "Not Found"})

    def _analytics(self, request: Request, kind: str, item: str | None) -> Response:
        catalogue = RECORDS if kind == "records" else METRICS
        if request.method == "GET" and item is None:
            return self._page(request, catalogue, checksum(request.path))
        if request.method == "GET":
            entry = next((e for e in catalogue if e["id"] == item), None)
            if entry is None:
                raise BadRequestError("Invalid value extracted from request context")
            return Response(200, {"data": entry})
        if request.method != "POST" or item is not None:
            return Response(405, {"message": "Method Not Allowed"})
        query = parse_body(request.body, now=self.clock())
        if all(e["id"] != query.id for e in catalogue):
            raise BadRequestError("Invalid value for: body (id)")
        if kind == "metrics":
            return Response(200, {"data": self._metric(query)})
        rows = [e.record for e in self.store.select(query)]
        return self._page(request, rows, query.checksum)

    def _metric(self, query: Query) -> dict[str, Any]:
        entry = next(m for m in METRICS if m["id"] == query.id)
        known = [a["measure"] for a in entry["aggregations"]]
        wanted = list(query.aggregations) or known
        if any(a not in known for a in wanted):
            raise BadRequestError("Invalid value for: body (aggregations)")
        rows = self.store.select(Query(**{**vars(query), "id": entry["relatedRecordIds"][0]}))
        aggregates = []
        for measure in wanted:
            if measure == "Count":
                value: float = len(rows)
                kind = "LongAggregateValue"
            else:
                scores = [e.attrs.get("rating_score", frozenset({"0"})) for e in rows]
                happy = sum(int(next(iter(s))) >= 4 for s in scores)
                value, kind = (100.0 * happy / len(rows) if rows else 0.0), "DoubleAggregateValue"
            aggregates.append({"value": value, "measure": measure, "_type": kind})
        return {"id": query.id, "aggregates": aggregates}

    def _page(self, request: Request, items: list[Any], bound: str) -> Response:
        limit = page_limit(request.query, self.default_page_limit)
        key = (request.query.get("pageKey") or [""])[-1]
        offset = 0
        if key:
            offset, keyed_limit = decode_key(key, bound)
            limit = limit or keyed_limit
        limit = limit or self.default_page_limit
        body: dict[str, Any] = {"data": items[offset : offset + limit]}
        if offset + limit < len(items):
            nxt = encode_key(offset + limit, limit, bound)
            if self.next_key == "top":
                body["pageKey"] = nxt
            else:
                url = f"{request.path}?pageKey={quote(nxt, safe='')}"
                body["meta"] = {"next": nxt if self.next_key == "meta" else url}
        return Response(200, body)

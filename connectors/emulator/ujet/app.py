"""The UJET Manager API emulator (seed 002): ``GET /calls`` and ``GET /chats`` on loopback.

Records are rendered from canonical contact segments; the field-by-field mapping, which the
``ujet`` connector inverts, is documented in :mod:`connectors.emulator.ujet.record`, and
:meth:`UjetEmulator.expected_contacts` returns what a correct connector must rebuild.

HTTP behaviour:

* Paths ``/manager/api/v1/calls`` and ``/manager/api/v1/chats`` (the seed's base URL, which
  :attr:`UjetEmulator.base_url` points at), also accepted without the prefix. Bodies are bare JSON
  arrays of records, as in the seed.
* HTTP Basic auth with the configured key and secret; anything else gets 401 (no echo).
* ``page`` (1-based) and ``per`` (default 25, capped at 100); headers ``Total``, ``Per-Page`` and
  ``Link`` with ``rel="first"``/``"prev"`` (after page 1) and ``rel="next"``/``"last"`` (before
  the last page): absolute URLs on the emulator that keep every other parameter.
* Filters: ``<field>[from]`` / ``<field>[to]`` on any top-level field, inclusive (``*_at`` fields
  take ISO 8601 instants, naive meaning UTC; others numbers); ``id[]``, ``agent_id[]``,
  ``end_user_id[]``, ``call_status[]`` / ``chat_status[]``, ``call_type[]`` (display names or the
  seed's class names such as ``IvrCall``), ``chat_type[]``, ``call_fail_reason[]`` /
  ``chat_fail_reason[]``, ``verified[]``, ``lang[]``, ``support_number[]``. Unknown parameters are
  ignored.
* ``sort_column`` (any top-level scalar field, default ``id``) and ``sort_direction`` ``ASC`` /
  ``DESC``; ties break on ``id`` in the same direction; nulls last ascending, first descending.
* A malformed ``page``, ``per``, bound or sort gives 400.
* Pages are answered from the records kept sorted per sort column (rebuilt after a change), by
  binary search for a range on the sort column: the same answer as scanning every record, in
  microseconds rather than tens of milliseconds per page (:mod:`~connectors.emulator.ujet.query`).

Example:
    >>> import httpx
    >>> with UjetEmulator(rate_limit_per_s=None, extra_outbound=2) as emu:
    ...     r = httpx.get(f"{emu.base_url}/calls", auth=emu.auth)
    ...     r.headers["Total"], r.json()[0]["call_type"]
    ('2', 'Voice Outbound')
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import polars as pl

from connectors.emulator.fault import Faults
from connectors.emulator.server import EmulatorServer, Request, Response, basic_auth_tenant
from connectors.emulator.ujet.query import (
    BadRequestError,
    SortedView,
    answer,
    int_param,
    sort_column,
)
from connectors.emulator.ujet.record import (
    Contact,
    IdAllocator,
    conform,
    extra_calls,
    normalise,
)
from engine.clock import now
from engine.schema import CONTACTS, empty_contacts

__all__ = ["API_PREFIX", "DEFAULT_PER", "MAX_PER", "UjetEmulator"]

API_PREFIX = "/manager/api/v1"
DEFAULT_PER = 25
MAX_PER = 100
Record = dict[str, Any]

_IMMUTABLE = {"source", "contact_id", "segment_no", "channel", "direction"}


class UjetEmulator(EmulatorServer):
    """The UJET calls and chats endpoints, served from canonical contact segments.

    Args:
        contacts: canonical segments (``engine.schema.CONTACTS``; absent optional columns
            default), voice and chat only; ``source`` is ignored.
        username: the API key accepted by Basic auth (also the rate-limit tenant).
        password: the API secret.
        rate_limit_per_s: requests per second per tenant (``None``: unlimited).
        rate_limit_retry_after: send ``Retry-After`` on rate-limit 429s.
        faults: fault switches (changeable later through :attr:`faults`).
        seed: seed of faults, unknown keys and record decorations.
        port: port on 127.0.0.1 (0: a free one).
        extra_menu_abandons: calls abandoned in the IVR menu, never queued (no segment).
        extra_outbound: outbound agent dial-outs, never queued (no segment).
        clock: the emulated "now" used by mutations (default: the wall clock, UTC).
        default_per: page size when ``per`` is absent.
    """

    def __init__(
        self,
        contacts: pl.DataFrame | None = None,
        *,
        username: str = "emu-key",
        password: str = "emu-secret",  # noqa: S107 - the local emulator's fake credential
        rate_limit_per_s: float | None = 1.0,
        rate_limit_retry_after: bool = True,
        faults: Faults | None = None,
        seed: int = 0,
        port: int = 0,
        extra_menu_abandons: int = 0,
        extra_outbound: int = 0,
        clock: Callable[[], datetime] | None = None,
        default_per: int = DEFAULT_PER,
    ) -> None:
        super().__init__(
            port=port,
            rate_limit_per_s=rate_limit_per_s,
            rate_limit_retry_after=rate_limit_retry_after,
            faults=faults,
            seed=seed,
        )
        self.auth = (username, password)
        self.clock = clock or now
        self.default_per = default_per
        self._store = threading.RLock()
        self._ids = IdAllocator()
        self._contacts: dict[str, Contact] = {}
        self._aliases: dict[str, str] = {}
        self._records: dict[str, dict[int, Record]] = {"calls": {}, "chats": {}}
        self._version = dict.fromkeys(self._records, 0)  # bumped by every change of the records
        self._views: dict[tuple[str, str], tuple[int, SortedView]] = {}
        # endpoint -> id -> (the record served, its compact JSON): encoded once, not per request
        self._encoded: dict[str, dict[int, tuple[Record, bytes]]] = {"calls": {}, "chats": {}}
        if contacts is not None and contacts.height:
            self._add(contacts, touch=False)
        if extra_menu_abandons or extra_outbound:
            offered = [s["offered_at"] for c in self._contacts.values() for s in c.segments]
            end = max(offered, default=self.clock())
            start = min(offered, default=end - timedelta(days=1))
            for call in extra_calls(
                self._ids,
                menu_abandons=extra_menu_abandons,
                outbound=extra_outbound,
                start=start,
                end=end,
                seed=seed,
            ):
                self._store_record("calls", call["id"], call)
        for endpoint in self._records:  # indexed up front, like a real API: the tail order
            self._view(endpoint, "updated_at")

    @property
    def base_url(self) -> str:
        """The connector's base URL: ``http://127.0.0.1:PORT/manager/api/v1``."""
        return self.origin + API_PREFIX

    # -- data ---------------------------------------------------------------------------------
    def expected_contacts(self) -> pl.DataFrame:
        """The canonical segments a correct connector rebuilds from what is served right now."""
        with self._store:
            rows = [s for c in self._contacts.values() for s in c.segments]
        if not rows:
            return empty_contacts()
        return pl.DataFrame(rows, schema=CONTACTS).sort("contact_id", "segment_no")

    def records(self, endpoint: str) -> list[Record]:
        """The stored records of ``calls`` or ``chats`` (by id; do not modify them)."""
        with self._store:
            return [self._records[endpoint][k] for k in sorted(self._records[endpoint])]

    def canonical_id(self, contact_id: str) -> str:
        """The served canonical id of a contact given by its input id (or its served id)."""
        with self._store:
            return self._aliases[contact_id]

    def add_contacts(self, contacts: pl.DataFrame, *, touch: bool = True) -> list[str]:
        """Add new contacts while serving; ``touch`` stamps them ``updated_at`` = now.

        Returns:
            Their canonical contact ids, in input id order.
        """
        return self._add(contacts, touch=touch)

    def update_records(
        self, contact_ids: Iterable[str], *, segment_no: int | None = None, **changes: Any
    ) -> None:
        """Change canonical columns of contacts (all segments, or one) and bump ``updated_at``.

        ``contact_ids`` are input or served ids; ``segment_no`` is a served (1-based) number;
        identity, channel and direction cannot change. The contact is normalised again (see
        :mod:`~connectors.emulator.ujet.record`) and its record re-rendered, with
        ``updated_at`` = ``changes["updated_at"]`` if given, else the clock's now.

        Example:
            ``emu.update_records(["call-7"], outcome="answered", answered_at=t, talk_ms=60_000)``
        """
        if bad := (set(changes) - set(CONTACTS)) | (set(changes) & _IMMUTABLE):
            raise ValueError(f"cannot change {sorted(bad)}")
        with self._store:
            updated = changes.pop("updated_at", None) or self.clock()
            if "queue_id" in changes:
                self._ids.claim_menus([(changes["queue_id"], changes.get("queue_name"))])
            for cid in contact_ids:
                contact = self._contacts[self._aliases[cid]]
                rows = [
                    s | (changes if segment_no in (None, s["segment_no"]) else {})
                    for s in contact.segments
                ]
                rows = [r | {"updated_at": updated} for r in rows]
                self._put(
                    normalise(
                        rows, endpoint=contact.endpoint, ujet_id=contact.ujet_id, ids=self._ids
                    )
                )

    def replace_raw_record(self, endpoint: str, record: Record) -> None:
        """Serve ``record`` exactly as given in place of the stored ``calls`` or ``chats`` record
        of its ``id`` (to test what a vendor could send: extra fields, PII where no path names
        it); :meth:`expected_contacts` is unchanged. An ``id`` not served is a ``KeyError``."""
        with self._store:
            if record["id"] not in self._records[endpoint]:
                raise KeyError(f"no {endpoint} record {record['id']!r} is served")
            self._store_record(endpoint, record["id"], record)

    def _add(self, contacts: pl.DataFrame, *, touch: bool) -> list[str]:
        all_rows = conform(contacts).to_dicts()
        by_contact: dict[str, list[Record]] = {}
        for row in all_rows:
            by_contact.setdefault(row["contact_id"], []).append(row)
        channels = {}
        for cid, rows in by_contact.items():
            kinds = {(r["channel"], r["direction"]) for r in rows}
            if len(kinds) > 1 or ("chat", "outbound") in kinds:
                raise ValueError(f"contact {cid!r}: one channel and direction (no outbound chat)")
            channels[cid] = rows[0]["channel"]
        with self._store:
            if taken := sorted(set(by_contact) & set(self._aliases)):
                raise ValueError(f"contacts already served: {taken[:5]}")
            claimed = self._ids.claim_contacts(channels)
            self._ids.claim_menus((r["queue_id"], r["queue_name"]) for r in all_rows)
            now = {"updated_at": self.clock()} if touch else {}
            for cid, (endpoint, rid) in sorted(claimed.items()):
                rows = [r | now for r in by_contact[cid]]
                contact = normalise(rows, endpoint=endpoint, ujet_id=rid, ids=self._ids)
                self._put(contact)
                self._aliases[cid] = contact.contact_id
            return [self._aliases[cid] for cid in sorted(claimed)]

    def _put(self, contact: Contact) -> None:
        self._contacts[contact.contact_id] = contact
        self._aliases[contact.contact_id] = contact.contact_id
        self._store_record(contact.endpoint, contact.ujet_id, contact.render(self.seed))

    def _store_record(self, endpoint: str, key: int, record: Record) -> None:
        """Serve ``record`` as ``key`` (replacing the one served as such), with its JSON."""
        self._records[endpoint][key] = record
        encoded = json.dumps(record, separators=(",", ":")).encode()
        self._encoded[endpoint][key] = (record, encoded)
        self._version[endpoint] += 1

    # -- HTTP ---------------------------------------------------------------------------------
    def authenticate(self, request: Request) -> str | None:
        """Basic auth with the configured key and secret; the key is the tenant."""
        return basic_auth_tenant(request, dict([self.auth]))

    def unauthorized(self) -> Response:
        """401 with a Basic challenge."""
        challenge = {"WWW-Authenticate": 'Basic realm="UJET Manager API"'}
        return Response(401, {"message": "Unauthorized"}, challenge)

    def route(self, request: Request) -> Response:
        """``GET /calls`` and ``GET /chats``: filter, sort, page."""
        path = request.path.rstrip("/").removeprefix(API_PREFIX)
        endpoint = path.removeprefix("/")
        if endpoint not in self._records:
            return Response(404, {"message": "Not Found"})
        if request.method != "GET":
            return Response(405, {"message": "Method Not Allowed"})
        try:
            page = int_param(request.query, "page", 1)
            per = min(int_param(request.query, "per", self.default_per), MAX_PER)
            records, view = self._view(endpoint, sort_column(request.query))
            rows, total = answer(records, view, request.query, page, per)
        except BadRequestError as exc:
            return Response(400, {"message": str(exc)})
        last = max(1, -(-total // per))
        headers = {"Total": str(total), "Per-Page": str(per)}
        if link := self._link(request, page, per, last):
            headers["Link"] = link
        return Response(200, rows, headers, self._body(endpoint, rows))

    def _body(self, endpoint: str, rows: list[Record]) -> bytes:
        """``rows`` as compact JSON: each record's stored encoding, unless a change replaced it
        since the page was selected (then that record is encoded now)."""
        stored = self._encoded[endpoint]
        parts = []
        for r in rows:
            entry = stored.get(r["id"])
            if entry is not None and entry[0] is r:
                parts.append(entry[1])
            else:
                parts.append(json.dumps(r, separators=(",", ":")).encode())
        return b"[" + b",".join(parts) + b"]"

    def _view(self, endpoint: str, column: str) -> tuple[list[Record], SortedView | None]:
        """The endpoint's records and their view sorted by ``column`` (see ``ujet_query``).

        A view is built once per version of the records (the first request after a change pays
        the sort) and is ``None`` when the column cannot be indexed: the request is then answered
        by scanning, as every request was before.
        """
        with self._store:
            version, cached = self._version[endpoint], self._views.get((endpoint, column))
            if cached is not None and cached[0] == version:
                return [], cached[1]
            records = list(self._records[endpoint].values())
        view = SortedView.build(records, column)
        if view is not None:
            with self._store:
                if self._version[endpoint] == version:
                    self._views[(endpoint, column)] = (version, view)
        return records, view

    def _link(self, request: Request, page: int, per: int, last: int) -> str:
        rels = [("first", 1), ("prev", min(page - 1, last))] if page > 1 else []
        rels += [("next", page + 1), ("last", last)] if page < last else []
        keep = [
            (k, v)
            for k, v in parse_qsl(request.raw_query, keep_blank_values=True)
            if k not in {"page", "per"}
        ]
        base = f"{self.origin}{request.path}?"
        return ", ".join(
            f'<{base}{urlencode([*keep, ("page", p), ("per", per)])}>; rel="{rel}"'
            for rel, p in rels
        )

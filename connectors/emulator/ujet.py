"""The UJET Manager API emulator (seed 002): ``GET /calls`` and ``GET /chats`` on loopback.

Records are rendered from canonical contact segments; the field-by-field mapping, which the
``ujet`` connector inverts, is documented in :mod:`connectors.emulator.ujet_record`, and
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

Example:
    >>> import httpx
    >>> with UjetEmulator(rate_limit_per_s=None, extra_outbound=2) as emu:
    ...     r = httpx.get(f"{emu.base_url}/calls", auth=emu.auth)
    ...     r.headers["Total"], r.json()[0]["call_type"]
    ('2', 'Voice Outbound')
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import polars as pl

from connectors.emulator.fault import Faults
from connectors.emulator.server import EmulatorServer, Request, Response, basic_auth_tenant
from connectors.emulator.ujet_record import (
    ENDPOINTS,
    Contact,
    IdAllocator,
    conform,
    extra_calls,
    normalise,
)
from connectors.emulator.ujet_render import iso
from engine.schema import CONTACTS, empty_contacts

__all__ = ["API_PREFIX", "DEFAULT_PER", "MAX_PER", "UjetEmulator", "main"]

API_PREFIX = "/manager/api/v1"
DEFAULT_PER = 25
MAX_PER = 100
Record = dict[str, Any]

_RANGE = re.compile(r"([a-z_]+)\[(from|to)\]")
_OFFSET = re.compile(r" (\d\d:?\d\d)$")  # a "+hh:mm" offset whose "+" became a space in the query
_IMMUTABLE = {"source", "contact_id", "segment_no", "channel", "direction"}
_CALL_TYPES = {
    "ivrcall": "voice inbound (ivr)",
    "incomingcallapp": "voice inbound (app)",
    "incomingcallweb": "voice callback (web)",
    "scheduledcallapp": "voice scheduled (app)",
    "scheduledcallweb": "voice scheduled (web)",
    "outboundcall": "voice outbound",
}
_LISTS: Mapping[str, Callable[[Record], object]] = {
    "id[]": lambda r: r["id"],
    "agent_id[]": lambda r: (r["agent_info"] or {}).get("id"),
    "end_user_id[]": lambda r: r["end_user"]["id"],
    "call_status[]": lambda r: r["status"],
    "chat_status[]": lambda r: r["status"],
    "call_type[]": lambda r: r.get("call_type"),
    "chat_type[]": lambda r: r.get("chat_type"),
    "call_fail_reason[]": lambda r: r["fail_reason"],
    "chat_fail_reason[]": lambda r: r["fail_reason"],
    "verified[]": lambda r: r["verified"],
    "lang[]": lambda r: r["lang"],
    "support_number[]": lambda r: r.get("support_number"),
}


class _BadRequestError(ValueError):
    """A malformed query parameter (answered with 400)."""


def _text(value: object) -> str:
    return "null" if value is None else str(value).lower()


def _int_param(query: Mapping[str, list[str]], name: str, default: int) -> int:
    raw = query.get(name, [str(default)])[-1] or str(default)
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise _BadRequestError(f"{name} must be a positive integer")
    return int(raw)


def _instant(raw: str, *, ceil: bool) -> str:
    """A bound as a record-style timestamp string (records have millisecond precision)."""
    try:
        ts = datetime.fromisoformat(_OFFSET.sub(r"+\1", raw.strip()))
    except ValueError:
        raise _BadRequestError(f"not an ISO 8601 time: {raw!r}") from None
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    if ceil and ts.microsecond % 1000:
        ts += timedelta(microseconds=1000 - ts.microsecond % 1000)
    return str(iso(ts))


def _filtered(records: list[Record], query: Mapping[str, list[str]]) -> list[Record]:
    for key, values in query.items():
        if key in _LISTS:
            wanted = {_CALL_TYPES.get(v.lower(), v.lower()) for v in values}
            get = _LISTS[key]
            records = [r for r in records if _text(get(r)) in wanted]
        elif match := _RANGE.fullmatch(key):
            name, lower = match[1], match[2] == "from"
            bound: object
            kind: tuple[type, ...]
            if name.endswith("_at"):
                bound, kind = _instant(values[-1], ceil=lower), (str,)
            else:
                try:
                    bound, kind = float(values[-1]), (int, float)
                except ValueError:
                    raise _BadRequestError(f"{key} must be a number") from None
            records = [
                r
                for r in records
                if isinstance(r.get(name), kind)
                and not isinstance(r[name], bool)
                and (r[name] >= bound if lower else r[name] <= bound)
            ]
    return records


def _sorted(records: list[Record], query: Mapping[str, list[str]]) -> list[Record]:
    column = query.get("sort_column", ["id"])[-1] or "id"
    direction = (query.get("sort_direction", ["ASC"])[-1] or "ASC").upper()
    if direction not in {"ASC", "DESC"}:
        raise _BadRequestError("sort_direction must be ASC or DESC")
    if records and (column not in records[0] or isinstance(records[0][column], dict | list)):
        raise _BadRequestError(f"cannot sort by {column!r}")
    present = [r for r in records if r.get(column) is not None]
    absent = [r for r in records if r.get(column) is None]
    present.sort(key=lambda r: (r[column], r["id"]), reverse=direction == "DESC")
    absent.sort(key=lambda r: r["id"], reverse=direction == "DESC")
    return present + absent if direction == "ASC" else absent + present


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
        self.clock = clock or (lambda: datetime.now(UTC))
        self.default_per = default_per
        self._store = threading.RLock()
        self._ids = IdAllocator()
        self._contacts: dict[str, Contact] = {}
        self._aliases: dict[str, str] = {}
        self._records: dict[str, dict[int, Record]] = {"calls": {}, "chats": {}}
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
                self._records["calls"][call["id"]] = call

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
        :mod:`~connectors.emulator.ujet_record`) and its record re-rendered, with
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
        self._records[contact.endpoint][contact.ujet_id] = contact.render(self.seed)

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
            page = _int_param(request.query, "page", 1)
            per = min(_int_param(request.query, "per", self.default_per), MAX_PER)
            with self._store:
                records = list(self._records[endpoint].values())
            records = _sorted(_filtered(records, request.query), request.query)
        except _BadRequestError as exc:
            return Response(400, {"message": str(exc)})
        last = max(1, -(-len(records) // per))
        headers = {"Total": str(len(records)), "Per-Page": str(per)}
        if link := self._link(request, page, per, last):
            headers["Link"] = link
        return Response(200, records[(page - 1) * per : page * per], headers)

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


def main(argv: Sequence[str] | None = None) -> None:
    """Serve generated data until Ctrl-C (``python -m connectors.emulator.ujet --days 1``)."""
    parser = argparse.ArgumentParser(prog="python -m connectors.emulator.ujet")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--rate-limit", type=float, default=1.0, help="requests/s per tenant")
    parser.add_argument("--username", default="emu-key")
    parser.add_argument("--password", default="emu-secret")
    args = parser.parse_args(argv)
    # imported lazily: serving the emulator must not depend on the engine's data generator
    generate = importlib.import_module("engine.synthetic").generate_contacts
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start -= timedelta(days=args.days)
    frame = generate(seed=args.seed, start=start, days=args.days, scale=args.scale, source="ujet")
    channel, direction = pl.col("channel").cast(pl.String), pl.col("direction").cast(pl.String)
    frame = frame.filter(
        channel.is_in(list(ENDPOINTS)) & ~((channel == "chat") & (direction == "outbound"))
    )
    emulator = UjetEmulator(
        frame,
        username=args.username,
        password=args.password,
        rate_limit_per_s=args.rate_limit,
        port=args.port,
        seed=args.seed,
        extra_menu_abandons=max(1, frame.height // 50),
        extra_outbound=max(1, frame.height // 50),
    )
    with emulator:
        print(f"UJET emulator: {emulator.base_url}/calls and /chats, user {args.username!r}")
        print(f"{frame.height} segments; Ctrl-C to stop")
        with contextlib.suppress(KeyboardInterrupt):
            while True:  # short sleeps: SIGINT may land on a server thread, not this one
                time.sleep(0.5)


if __name__ == "__main__":
    main()

"""The Kore.ai Contact Volume API emulator (seed 003): ``POST …/callvolume`` on loopback.

Rows are the vendor's own aggregate of canonical contacts, computed independently of the engine
by :mod:`connectors.emulator.kore.volume`; :meth:`KoreEmulator.expected_callvolume` returns what a
correct connector imports, and :meth:`KoreEmulator.perturb` seeds a discrepancy for
reconciliation tests.

HTTP behaviour:

* ``POST /agentassist/api/public/analytics/account/{accountId}/callvolume`` with a JSON body
  ``orgId`` (required, must be the configured org: else 400), ``toTimeStamp`` (required),
  ``fromTimeStamp`` (optional: from the first record), ``skip`` (default 0), ``limit`` (default
  100, capped at 1000). A row is selected when ``from <= intervalStartTimeStamp < to``. Rows are
  ordered by interval start, queue id and channel. Another account id gives 404, another method
  405, a malformed body 400.
* ``auth: <JWT>`` header: HS256 signed with the configured secret, with an ``appId`` claim equal
  to the configured app id and, when present, an ``exp`` in the future; anything else gets 401
  (nothing of the token is echoed).
* Response ``{"hasMore", "CallVolumeUpdate": [...], "totalCount"}`` exactly as the seed;
  ``total_count_offset`` makes ``totalCount`` lie (``hasMore`` stays true to the data).
* 60 requests per 60 s per account (a sliding window; both numbers configurable), answered 429
  with ``Retry-After`` beyond it; the fault switches of :mod:`connectors.emulator.fault`.
* Rows change while paging when a hook (:meth:`add_hook`) calls :meth:`upsert_contacts`: changed
  rows bump ``__v``, new rows shift the later ones by one position.

Example:
    >>> import httpx
    >>> with KoreEmulator(rate_limit=None) as emu:
    ...     body = {"orgId": emu.org_id, "toTimeStamp": "2030-01-01T00:00:00Z"}
    ...     r = httpx.post(emu.url, json=body, headers={"auth": emu.token()})
    ...     r.status_code, r.json()
    (200, {'hasMore': False, 'CallVolumeUpdate': [], 'totalCount': 0})
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import polars as pl

from connectors.emulator.fault import Faults, RateLimiter
from connectors.emulator.kore.jwt import sign_hs256, verify_hs256
from connectors.emulator.kore.store import VolumeStore
from connectors.emulator.kore.volume import DurationUnit
from connectors.emulator.server import EmulatorServer, Request, Response
from engine.clock import now

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "KoreEmulator", "WindowLimiter"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_PATH = re.compile(r"/agentassist/api/public/analytics/account/([^/]+)/callvolume/?")


class _BadRequestError(ValueError):
    """A malformed body (answered with 400)."""


class WindowLimiter(RateLimiter):
    """At most ``requests`` admitted per key in any sliding window of ``window_s`` seconds.

    Example:
        >>> limiter = WindowLimiter(2, 60.0, clock=lambda: 0.0)
        >>> [limiter.admit("acc") for _ in range(3)]
        [None, None, 60.0]
    """

    def __init__(
        self, requests: int, window_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if requests < 1 or not window_s > 0:
            raise ValueError("a window limit needs requests >= 1 and window_s > 0")
        super().__init__(requests / window_s, clock=clock)
        self.capacity, self.window_s = requests, window_s


def _instant(body: dict[str, Any], name: str) -> datetime | None:
    raw = body.get(name)
    if raw is None:
        return None
    try:
        ts = datetime.fromisoformat(str(raw).strip())
    except ValueError:
        raise _BadRequestError(f"{name} is not an ISO 8601 time") from None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _count(body: dict[str, Any], name: str, default: int, minimum: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _BadRequestError(f"{name} must be an integer >= {minimum}")
    return value


class KoreEmulator(VolumeStore, EmulatorServer):
    """The Contact Volume endpoint of one account, served from canonical contacts.

    Args:
        contacts: canonical segments (:data:`engine.schema.CONTACTS`); outbound ones are ignored.
        account_id: the account id of the path (also the rate-limit tenant).
        org_id: the organisation id the body must name.
        app_id: the ``appId`` claim the JWT must carry.
        secret: the HS256 secret (the emulator's fake credential).
        rate_limit: requests per ``rate_window_s`` per account (``None``: unlimited).
        rate_window_s: the rate-limit window in seconds.
        rate_limit_retry_after: send ``Retry-After`` on rate-limit 429s.
        faults: fault switches (changeable later through :attr:`faults`).
        seed: seed of faults and unknown keys.
        port: port on 127.0.0.1 (0: a free one).
        unit: duration unit of the served fields, ``ms`` (default) or ``s``.
        interval_minutes: interval length.
        total_count_offset: added to ``totalCount`` (a lying server; a count: never below 0).
        clock: "now" for the JWT ``exp`` check (default: the wall clock).
    """

    def __init__(
        self,
        contacts: pl.DataFrame | None = None,
        *,
        account_id: str = "636f5b36bcf8a8c7101e0001",
        org_id: str = "o-01aedac2-26fb-5bdb-bb0f-f71292ca0001",
        app_id: str = "cs-cac474a3-0aa9-5c6b-b306-3263a3a50001",
        secret: str = "emu-kore-secret",  # noqa: S107 - the local emulator's fake credential
        rate_limit: int | None = 60,
        rate_window_s: float = 60.0,
        rate_limit_retry_after: bool = True,
        faults: Faults | None = None,
        seed: int = 0,
        port: int = 0,
        unit: DurationUnit = "ms",
        interval_minutes: int = 15,
        total_count_offset: int = 0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(
            port=port,
            rate_limit_per_s=None,
            rate_limit_retry_after=rate_limit_retry_after,
            faults=faults,
            seed=seed,
        )
        self.set_rate_window(rate_limit, rate_window_s)
        self.account_id, self.org_id, self.app_id = account_id, org_id, app_id
        self.secret = secret
        self.total_count_offset = total_count_offset
        self.clock = clock or now
        self.init_store(contacts, org_id=org_id, unit=unit, interval_minutes=interval_minutes)

    def set_rate_window(self, requests: int | None, window_s: float = 60.0) -> None:
        """Replace the limiter: ``requests`` per ``window_s`` per account (``None``: none)."""
        self._limiter = WindowLimiter(requests, window_s) if requests else None

    @property
    def base_url(self) -> str:
        """The connector's base URL (the origin: the path carries the account)."""
        return self.origin

    @property
    def path(self) -> str:
        """The endpoint path of the configured account."""
        return f"/agentassist/api/public/analytics/account/{self.account_id}/callvolume"

    @property
    def url(self) -> str:
        """The full endpoint URL."""
        return self.origin + self.path

    def token(self, *, exp: datetime | None = None, app_id: str | None = None) -> str:
        """A valid ``auth`` JWT for tests and the demo (``exp``: optional expiry claim)."""
        claims: dict[str, Any] = {"appId": app_id or self.app_id}
        if exp is not None:
            claims["exp"] = int(exp.timestamp())
        return sign_hs256(claims, self.secret)

    # -- HTTP ---------------------------------------------------------------------------------
    def authenticate(self, request: Request) -> str | None:
        """A valid ``auth`` JWT for the configured app; the tenant is the path's account."""
        claims = verify_hs256(request.headers.get("auth", ""), self.secret)
        if claims is None or claims.get("appId") != self.app_id:
            return None
        exp = claims.get("exp")
        if exp is not None and (
            isinstance(exp, bool)
            or not isinstance(exp, int | float)
            or exp <= self.clock().timestamp()
        ):
            return None
        match = _PATH.fullmatch(request.path)
        return match[1] if match else self.app_id

    def unauthorized(self) -> Response:
        """401 without any detail about the token."""
        return Response(401, {"errors": [{"msg": "Unauthorized", "code": 401}]})

    def route(self, request: Request) -> Response:
        """``POST …/account/{accountId}/callvolume``: select, order, page."""
        match = _PATH.fullmatch(request.path)
        if match is None or match[1] != self.account_id:
            return Response(404, {"errors": [{"msg": "Not Found", "code": 404}]})
        if request.method != "POST":
            return Response(405, {"errors": [{"msg": "Method Not Allowed", "code": 405}]})
        try:
            body = json.loads(request.body or b"null")
            if not isinstance(body, dict):
                raise _BadRequestError("the body must be a JSON object")
            if body.get("orgId") != self.org_id:
                raise _BadRequestError("orgId is missing or unknown")
            to = _instant(body, "toTimeStamp")
            if to is None:
                raise _BadRequestError("toTimeStamp is required")
            since = _instant(body, "fromTimeStamp")
            skip = _count(body, "skip", 0, 0)
            limit = min(_count(body, "limit", DEFAULT_LIMIT, 1), MAX_LIMIT)
        except (_BadRequestError, ValueError) as exc:
            return Response(400, {"errors": [{"msg": str(exc), "code": 400}]})
        with self._store:
            selected = [
                doc
                for key, doc in self._served
                if (since is None or key[0] >= since) and key[0] < to
            ]
        page = selected[skip : skip + limit]
        return Response(
            200,
            {
                "hasMore": skip + len(page) < len(selected),
                "CallVolumeUpdate": page,
                "totalCount": max(0, len(selected) + self.total_count_offset),
            },
        )

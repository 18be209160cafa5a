"""The Mindful API emulator (seeds 000 and 001): hourly historical records, metrics, OAuth2.

Records are rendered from canonical callback attempts; the field-by-field mapping, which the
``mindful`` connector inverts, is in :mod:`connectors.emulator.mindful.render`, the served data
and its mutations in :mod:`connectors.emulator.mindful.store`, and
:meth:`MindfulEmulator.expected_attempts` returns what a correct connector must rebuild.

HTTP behaviour:

* ``POST /oauth2/token`` (Mindful's auth endpoint is ``https://auth.getmindful.com/oauth2/token``):
  OAuth2 client credentials, sent as HTTP Basic or as ``client_id``/``client_secret`` in the form
  body, with ``grant_type=client_credentials`` (else 400 ``unsupported_grant_type``). Answers
  ``{"access_token", "token_type": "Bearer", "expires_in"}``; tokens live ``token_lifetime_s``
  (default 3600; ``expires_in`` is that, rounded down to a whole second, at least 1).
* Every other route needs ``Authorization: Bearer <token>``: an unexpired issued token or the
  configured ``static_token``; anything else gets 401 (never echoed).
* ``GET /v2/data/historical/{YYYYMMDD}/{HH}`` -> ``{"data": [records]}``: the records whose
  ``createdAt`` is in ``[D + HH - 1 h, D + HH h)``, ordered by ``createdAt`` then ``id``. Per the
  seed ("04" is 3:00-4:00 UTC on the given date), ``HH`` runs ``01`` … ``24`` for the 24 hours of
  date ``D``; ``00`` follows the same rule and means the previous day's last hour (the same file
  as ``{D-1}/24``). Anything else under ``/v2/data/historical/`` (a bad date, an hour above 24, a
  missing or extra segment) is 400. A record created at exactly ``HH:00:00.000`` is in hour
  ``HH+1``'s file.
* ``GET /v2/callback/historical/metrics`` with ``timeBegin``/``timeEnd`` (required;
  ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM:SSZ``), ``callTargetId`` (one id or a comma-separated
  list), ``firstPartyCalled`` (``agent``/``customer``), ``sourceType`` (``digital``/``voice``),
  ``type`` (``asap``/``scheduled``): the seed-000 document, computed independently of the engine
  (:mod:`connectors.emulator.mindful.metrics`). Bad parameters are 400.
* Rate limits per client and endpoint group, as Mindful documents them per IP: 100 requests/s
  for the historical data (and the token endpoint), 10/s for the metrics; over them, 429.
* The shared fault switches (:class:`~connectors.emulator.fault.Faults`) apply to every route.

Example:
    >>> import httpx
    >>> with MindfulEmulator(rate_limit_per_s=None, static_token="t0k") as emu:
    ...     r = httpx.get(f"{emu.base_url}/v2/data/historical/20230608/13",
    ...                   headers={"Authorization": "Bearer t0k"})
    ...     r.json()
    {'data': []}
"""

from __future__ import annotations

import hmac
import math
import re
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import polars as pl

from connectors.emulator.fault import Faults, RateLimiter
from connectors.emulator.mindful.metrics import FILTERS, parse_bound
from connectors.emulator.mindful.store import MindfulStore
from connectors.emulator.server import EmulatorServer, Request, Response, basic_auth_tenant

__all__ = ["DATA_PREFIX", "METRICS_PATH", "TOKEN_PATH", "MindfulEmulator", "hour_path"]

TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a URL path, not a password
DATA_PREFIX = "/v2/data/historical/"
METRICS_PATH = "/v2/callback/historical/metrics"
Record = dict[str, Any]
_HOUR = timedelta(hours=1)
_HOUR_PATH = re.compile(r"(\d{8})/(\d{2})")


def hour_path(window_start: datetime) -> str:
    """The canonical path of the hour ``[start, start + 1 h)`` (``HH`` in ``01`` … ``24``).

    Example:
        >>> hour_path(datetime(2023, 6, 8, 23, tzinfo=UTC))
        '/v2/data/historical/20230608/24'
    """
    start = window_start.astimezone(UTC)
    return f"{DATA_PREFIX}{start:%Y%m%d}/{start.hour + 1:02d}"


def _window(tail: str) -> datetime:
    """The start of the hour a ``{YYYYMMDD}/{HH}`` path names; ``ValueError`` if malformed."""
    match = _HOUR_PATH.fullmatch(tail)
    if match is None or int(match[2]) > 24:
        raise ValueError("expected /v2/data/historical/{YYYYMMDD}/{HH} with HH in 00..24")
    day = datetime.strptime(match[1], "%Y%m%d").replace(tzinfo=UTC)
    return day + int(match[2]) * _HOUR - _HOUR


class _EndpointLimiter(RateLimiter):
    """One sliding-window limiter per endpoint group (the tenant key ends in ``:<group>``)."""

    def __init__(self, limits: Mapping[str, float | None]) -> None:
        super().__init__(1.0)
        self._groups = {g: RateLimiter(r) for g, r in limits.items() if r}

    def admit(self, key: str) -> float | None:
        """Admit under the key's group limiter (unlimited groups always pass)."""
        limiter = self._groups.get(key.rsplit(":", 1)[-1])
        return None if limiter is None else limiter.admit(key)


class MindfulEmulator(EmulatorServer, MindfulStore):
    """Mindful's historical data, metrics and token endpoints, served from canonical attempts.

    Args:
        attempts: canonical callback attempts (``engine.schema.CALLBACK_ATTEMPTS``; absent
            optional columns are null); ``source`` is ignored.
        client_id: the OAuth2 client id accepted by the token endpoint.
        client_secret: its secret.
        static_token: a bearer token accepted forever (Mindful's static-token mode), or ``None``.
        token_lifetime_s: lifetime of issued tokens in seconds.
        rate_limit_per_s: historical-data (and token) requests per second per client.
        metrics_rate_limit_per_s: metrics requests per second per client.
        rate_limit_retry_after: send ``Retry-After`` on rate-limit 429s.
        faults: fault switches (changeable later through :attr:`faults`).
        seed: seed of faults, unknown keys, phone numbers and record decorations.
        port: port on 127.0.0.1 (0: a free one).
        extra_holds: non-callback records (callers who chose to hold) spread over the
            attempts' time range.
        token_clock: monotonic clock of token expiry (injectable for tests).
    """

    def __init__(
        self,
        attempts: pl.DataFrame | None = None,
        *,
        client_id: str = "emu-client",
        client_secret: str = "emu-secret",  # noqa: S107 - the local emulator's fake credential
        static_token: str | None = None,
        token_lifetime_s: float = 3600.0,
        rate_limit_per_s: float | None = 100.0,
        metrics_rate_limit_per_s: float | None = 10.0,
        rate_limit_retry_after: bool = True,
        faults: Faults | None = None,
        seed: int = 0,
        port: int = 0,
        extra_holds: int = 0,
        token_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        EmulatorServer.__init__(
            self,
            port=port,
            rate_limit_per_s=None,
            rate_limit_retry_after=rate_limit_retry_after,
            faults=faults,
            seed=seed,
        )
        self.set_rate_limit(rate_limit_per_s, metrics_per_s=metrics_rate_limit_per_s)
        self.client_id, self.client_secret = client_id, client_secret
        self.static_token = static_token
        self.token_lifetime_s = token_lifetime_s
        self._token_clock = token_clock
        self._tokens: dict[str, tuple[str, float]] = {}
        self._issued: list[str] = []
        MindfulStore.__init__(self, seed=seed)
        if attempts is not None and attempts.height:
            self.add_attempts(attempts)
            if extra_holds:
                self.add_holds(extra_holds)

    @property
    def base_url(self) -> str:
        """The connector's base URL (``https://api.getmindful.com`` at the vendor)."""
        return self.origin

    @property
    def token_url(self) -> str:
        """The token endpoint (``https://auth.getmindful.com/oauth2/token`` at the vendor)."""
        return self.origin + TOKEN_PATH

    def set_rate_limit(self, per_s: float | None, *, metrics_per_s: float | None = 10.0) -> None:
        """Replace the limiters (``None`` disables one); their windows start empty."""
        self._limiter = _EndpointLimiter({"data": per_s, "token": per_s, "metrics": metrics_per_s})

    # -- tokens -------------------------------------------------------------------------------
    @property
    def issued_tokens(self) -> tuple[str, ...]:
        """Every token issued so far, expired or not (for leak checks in tests)."""
        with self._lock:
            return tuple(self._issued)

    @property
    def tokens_issued(self) -> int:
        """How many tokens were issued."""
        return len(self.issued_tokens)

    def revoke_tokens(self) -> None:
        """Forget every issued token (the next request with one gets 401)."""
        with self._lock:
            self._tokens.clear()

    def _issue(self, client: str) -> Response:
        token, now = secrets.token_urlsafe(24), self._token_clock()
        with self._lock:
            self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
            self._tokens[token] = (client, now + self.token_lifetime_s)
            self._issued.append(token)
        lifetime = max(1, math.floor(self.token_lifetime_s))
        return Response(
            200, {"access_token": token, "token_type": "Bearer", "expires_in": lifetime}
        )

    def _client(self, request: Request) -> str | None:
        expected = {self.client_id: self.client_secret}
        if "authorization" in request.headers:
            return basic_auth_tenant(request, expected)
        form = parse_qs(request.body.decode("utf-8", "replace"))
        client, secret = (form.get(k, [""])[-1] for k in ("client_id", "client_secret"))
        ok = client == self.client_id and hmac.compare_digest(
            secret.encode(), self.client_secret.encode()
        )
        return client if ok else None

    def _bearer_owner(self, request: Request) -> str | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        if self.static_token and hmac.compare_digest(token.encode(), self.static_token.encode()):
            return "static"
        with self._lock:
            client, expires = self._tokens.get(token, (None, 0.0))
        return client if client is not None and self._token_clock() < expires else None

    # -- HTTP ---------------------------------------------------------------------------------
    def authenticate(self, request: Request) -> str | None:
        """Client credentials on the token route, a bearer token elsewhere; the tenant is
        ``<client>:<endpoint group>`` (the rate-limit key)."""
        path = request.path.rstrip("/")
        if path == TOKEN_PATH:
            client = self._client(request)
            return None if client is None else f"{client}:token"
        owner = self._bearer_owner(request)
        group = "metrics" if path == METRICS_PATH else "data"
        return None if owner is None else f"{owner}:{group}"

    def unauthorized(self) -> Response:
        """401 with a Bearer challenge (never echoes what it was given)."""
        challenge = {"WWW-Authenticate": 'Bearer realm="Mindful API", error="invalid_token"'}
        return Response(401, {"error": "unauthorized"}, challenge)

    def route(self, request: Request) -> Response:
        """The token, historical data and metrics routes."""
        path = request.path.rstrip("/")
        if path not in (TOKEN_PATH, METRICS_PATH) and not path.startswith(DATA_PREFIX):
            return Response(404, {"error": "Not Found"})
        if request.method != ("POST" if path == TOKEN_PATH else "GET"):
            return Response(405, {"error": "Method Not Allowed"})
        try:
            if path == TOKEN_PATH:
                return self._token(request)
            if path == METRICS_PATH:
                return Response(200, self._metrics(request.query))
            return Response(200, {"data": self.hour(_window(path.removeprefix(DATA_PREFIX)))})
        except ValueError as exc:
            return Response(400, {"error": "Bad Request", "message": str(exc)})

    def _token(self, request: Request) -> Response:
        grant = parse_qs(request.body.decode("utf-8", "replace")).get("grant_type", [""])[-1]
        if grant != "client_credentials":
            return Response(400, {"error": "unsupported_grant_type"})
        return self._issue(self.client_id)

    def _metrics(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        params = {k: v[-1] for k, v in query.items()}
        if "timeBegin" not in params or "timeEnd" not in params:
            raise ValueError("timeBegin and timeEnd are required")
        begin, end = parse_bound(params["timeBegin"]), parse_bound(params["timeEnd"])
        if end <= begin:
            raise ValueError("timeEnd must be after timeBegin")
        filters: dict[str, str | None] = {"callTargetId": params.get("callTargetId")}
        for name, allowed in FILTERS.items():
            value = params.get(name)
            if value is not None and value.lower() not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")
            filters[name] = None if value is None else value.lower()
        return self.metrics(begin, end, **filters)

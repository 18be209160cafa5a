"""Credentials and the per-client rate limit of ``serve``.

* :meth:`Guard.kore_client`: the ``auth`` header is an HS256 JWT (PyJWT, ``alg`` pinned, so
  ``none`` and key-confusion tokens are refused) signed with the secret of the app its ``appId``
  claim names; an ``exp`` claim, when present, must be in the future and an ``nbf`` claim in
  the past (by :mod:`engine.clock`), both finite numbers (``10**400`` or ``Infinity`` is
  refused: no instant).
* :meth:`Guard.bearer_client`: ``Authorization: Bearer <token>`` is a configured static token
  (compared in constant time with every one of them) or an unexpired token of
  :meth:`Guard.issue` (OAuth2 client credentials, secrets compared in constant time).
* :meth:`Guard.admit`: a sliding one-minute window per client; ``None`` admits, else the seconds
  to wait (the ``Retry-After``). Once a window, the clients without a request in the last one
  are forgotten, so a stream of new addresses (any ``X-Forwarded-For`` from a trusted proxy)
  holds memory for one window, not for the life of the process.
* :func:`behind_proxies`: who a caller without a credential is: its connecting address, or
  from a ``[serve] trusted_proxies`` proxy the client its ``X-Forwarded-For`` names.

A refused credential gives ``None`` and nothing else: the caller answers a bare 401.

Example:
    >>> from engine.serve.settings import ServeSettings
    >>> g = Guard(ServeSettings(tokens=("t0k",), rate_limit_per_minute=1), monotonic=lambda: 0.0)
    >>> g.bearer_client("Bearer t0k"), g.bearer_client("Bearer guess")
    ('token:0', None)
    >>> g.admit("token:0"), g.admit("token:0")
    (None, 60)
"""

from __future__ import annotations

import hmac
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import jwt
from jwt.types import Options
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from engine import clock
from engine.serve.settings import ServeSettings

__all__ = ["Guard", "behind_proxies"]

_WINDOW_S = 60.0
#: Times are checked on the process clock (:mod:`engine.clock`), not PyJWT's wall clock.
_NO_TIME: Options = {"verify_exp": False, "verify_iat": False, "verify_nbf": False}


def _current(claims: dict[str, object]) -> bool:
    """``exp`` (when present) is a number in the future, ``nbf`` (when present) in the past;
    a time that is no finite float (``10**400``, ``Infinity``, ``NaN``) is no time at all."""
    at = clock.now().timestamp()
    times: dict[str, float] = {}
    for name in ("exp", "nbf"):
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        try:
            times[name] = float(value)
        except OverflowError:  # an int past the largest float
            return False
        if not math.isfinite(times[name]):
            return False
    return at < times.get("exp", math.inf) and times.get("nbf", -math.inf) <= at


class Guard:
    """Checks credentials, issues tokens and limits the rate (thread-safe)."""

    def __init__(
        self, settings: ServeSettings, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._issued: dict[str, tuple[str, float]] = {}
        self._hits: dict[str, deque[float]] = {}
        self._prune_at = monotonic() + _WINDOW_S

    def kore_client(self, header: str | None) -> str | None:
        """``app:<appId>`` of a valid ``auth`` JWT, else ``None``."""
        if not header:
            return None
        try:
            claims = jwt.decode(header.strip(), options={"verify_signature": False})
            app_id = claims.get("appId")
            secret = self.settings.kore_apps.get(app_id) if isinstance(app_id, str) else None
            key = secret.get_secret_value() if secret is not None else secrets.token_hex(32)
            verified = jwt.decode(header.strip(), key, algorithms=["HS256"], options=_NO_TIME)
        except jwt.PyJWTError:
            return None
        if secret is None or verified.get("appId") != app_id or not _current(verified):
            return None
        return f"app:{app_id}"

    def bearer_client(self, header: str | None) -> str | None:
        """``token:<n>`` or ``client:<id>`` of a valid ``Authorization`` header, else ``None``."""
        scheme, _, token = (header or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        found = None
        for n, known in enumerate(self.settings.tokens):
            if hmac.compare_digest(token.encode(), known.get_secret_value().encode()):
                found = f"token:{n}"
        if found is not None:
            return found
        with self._lock:
            issued = self._issued.get(token)
        if issued is not None and self._monotonic() < issued[1]:
            return f"client:{issued[0]}"
        return None

    def issue(self, client_id: str, client_secret: str) -> str | None:
        """A new token for valid client credentials (lives ``token_lifetime_s``), else ``None``."""
        known = self.settings.oauth_clients.get(client_id)
        expected = known.get_secret_value() if known is not None else secrets.token_hex(32)
        if not hmac.compare_digest(client_secret.encode(), expected.encode()) or known is None:
            return None
        token = secrets.token_urlsafe(32)
        now = self._monotonic()
        with self._lock:
            self._issued = {t: v for t, v in self._issued.items() if v[1] > now}
            self._issued[token] = (client_id, now + self.settings.token_lifetime_s)
        return token

    def admit(self, client: str) -> int | None:
        """Count one request of ``client``: ``None`` if within the limit, else Retry-After (s)."""
        now = self._monotonic()
        with self._lock:
            if now >= self._prune_at:  # once a window: each client's entry costs O(1) amortised
                self._hits = {c: h for c, h in self._hits.items() if h and h[-1] > now - _WINDOW_S}
                self._prune_at = now + _WINDOW_S
            hits = self._hits.setdefault(client, deque())
            while hits and hits[0] <= now - _WINDOW_S:
                hits.popleft()
            if len(hits) >= self.settings.rate_limit_per_minute:
                return max(1, math.ceil(hits[0] + _WINDOW_S - now))
            hits.append(now)
            return None


def behind_proxies(app: ASGIApp, settings: ServeSettings) -> ASGIApp:
    """``app`` as it is with no ``trusted_proxies`` (no header is trusted: a client is its
    connecting address); else behind uvicorn's ``ProxyHeadersMiddleware`` trusting those
    addresses and networks: a request from one of them has as its client the address its
    ``X-Forwarded-For`` names (the nearest one, from the right, that is no trusted proxy) and
    as its scheme ``X-Forwarded-Proto``'s. A request from any other address keeps its own."""
    if not settings.trusted_proxies:
        return app
    trusted = [str(network) for network in settings.trusted_proxies]
    return cast("ASGIApp", ProxyHeadersMiddleware(cast("Any", app), trusted))  # uvicorn's types

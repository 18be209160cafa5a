"""Kore.ai's ``auth: <JWT>`` header: an HS256 token with an ``appId`` claim, made with the stdlib.

Kore.ai authenticates public API calls with a JSON Web Token signed with the app's client secret
(HS256, RFC 7515/7519) carrying the app id in ``appId``. :class:`KoreJwtAuth` signs a fresh token
with a short ``exp`` (default 5 minutes), re-uses it until ``margin`` seconds before expiry, signs
a new one after a 401 and resends once. The secret is a ``SecretStr`` read only while signing; the
token itself is never logged (httpx does not log headers, and neither do we).

Example:
    >>> auth = KoreJwtAuth("cs-1", SecretStr("s3cret"), clock=lambda: 1_700_000_000.0)
    >>> token = auth.token().get_secret_value()
    >>> decode_claims(token)
    {'appId': 'cs-1', 'exp': 1700000300, 'iat': 1700000000}
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Generator
from typing import Any

import httpx
from pydantic import SecretStr

from engine.clock import unix_seconds

__all__ = ["KoreJwtAuth", "decode_claims", "sign_jwt"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_jwt(claims: dict[str, Any], secret: SecretStr) -> SecretStr:
    """A compact HS256 JWS over ``claims`` (keys sorted), as a secret value.

    Example:
        >>> sign_jwt({"appId": "a"}, SecretStr("k")).get_secret_value().count(".")
        2
    """
    header = _b64url(b'{"alg":"HS256","typ":"JWT"}')
    payload = _b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    key = secret.get_secret_value().encode()
    signature = hmac.new(key, f"{header}.{payload}".encode("ascii"), hashlib.sha256).digest()
    return SecretStr(f"{header}.{payload}.{_b64url(signature)}")


def decode_claims(token: str) -> dict[str, Any]:
    """The claims of a compact JWS, **unverified** (for tests and diagnostics only).

    Example:
        >>> decode_claims(sign_jwt({"appId": "a"}, SecretStr("k")).get_secret_value())
        {'appId': 'a'}
    """
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


class KoreJwtAuth(httpx.Auth):
    """Sets ``auth: <JWT>`` on every request; signs a new token before expiry and after a 401.

    Args:
        app_id: The ``appId`` claim.
        secret: The app's client secret (the HS256 key).
        lifetime_s: Seconds between ``iat`` and ``exp``.
        margin_s: Sign a new token this many seconds before ``exp``.
        header: The header name (Kore.ai: ``auth``).
        clock: Wall clock in Unix seconds (``exp`` is an absolute time).
    """

    def __init__(
        self,
        app_id: str,
        secret: SecretStr,
        *,
        lifetime_s: int = 300,
        margin_s: float = 30.0,
        header: str = "auth",
        clock: Callable[[], float] = unix_seconds,
    ) -> None:
        if lifetime_s < 1:
            raise ValueError("lifetime_s must be at least 1 second")
        self._app_id, self._secret, self._lifetime = app_id, secret, lifetime_s
        self._margin, self._header, self._clock = min(margin_s, lifetime_s / 2), header, clock
        self._lock = threading.Lock()
        self._token: SecretStr | None = None
        self._renew_at = 0.0

    def token(self) -> SecretStr:
        """The current token, signed anew when it is due."""
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._renew_at:
                issued = int(now)
                claims = {"appId": self._app_id, "iat": issued, "exp": issued + self._lifetime}
                self._token = sign_jwt(claims, self._secret)
                self._renew_at = issued + self._lifetime - self._margin
            return self._token

    def invalidate(self) -> None:
        """Forget the current token (the next request signs a new one)."""
        with self._lock:
            self._token = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send with the current token; after a 401, sign a new one and resend once."""
        request.headers[self._header] = self.token().get_secret_value()
        response = yield request
        if response.status_code == 401:
            self.invalidate()
            request.headers[self._header] = self.token().get_secret_value()
            yield request

    def __repr__(self) -> str:
        return f"KoreJwtAuth(app_id={self._app_id!r}, secret=SecretStr('**********'))"

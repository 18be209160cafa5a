"""The one HTTP client of the connectors: URL policy, auth, timeouts, one classified send.

:func:`make_client` builds every vendor's :class:`Client`: HTTPS required unless the host is
loopback (``127.0.0.0/8``, ``::1``, ``localhost``), connect/read/write/pool timeouts, a User-Agent,
no redirects. Auth flows read ``SecretStr`` credentials at request time and never log them:
:func:`basic_auth` (UJET), :class:`HeaderAuth` (Kore.ai's ``auth: <JWT>``, a static bearer),
:class:`BearerAuth` over a :class:`TokenProvider` such as :class:`OAuth2ClientCredentials`
(Mindful: refreshed ``margin`` seconds before expiry, and once more after a 401); a credential
that is not a valid header value (a line break, NUL, whitespace at either end) is refused unsent,
by an ``AuthError`` naming the header, not the value. :func:`send_request` sends under the URL
policy (:func:`~connectors.errors.require_secure_url`) (never off its origin), classifies every
failure, reads a successful body up to a cap (:data:`DEFAULT_MAX_BYTES`); :func:`parse_json`
(:mod:`connectors.wire.jsonbody`) parses it. Limits, retries, requests as data:
:mod:`connectors.retry`.

Example:
    >>> client = make_client("https://x.test/api/v1", setting="ujet.base_url")
    >>> str(client.base_url), client.headers["User-Agent"].startswith("wfm-intervals/")
    ('https://x.test/api/v1/', True)
"""

from __future__ import annotations

import base64
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal, Protocol

import httpx
from pydantic import SecretStr

from connectors.errors import (
    AuthError,
    FatalError,
    InsecureURLError,
    ResponseShapeError,
    TransportError,
    UnexpectedStatusError,
    error_for_status,
    require_secure_url,
)
from connectors.wire.body import ACCEPT_ENCODING, read_capped
from connectors.wire.deadline import Deadline, held_to, watch
from connectors.wire.jsonbody import parse_json
from connectors.wire.proxy import proxy_options, tls_context

__all__ = [
    "DEFAULT_MAX_BYTES",
    "USER_AGENT",
    "BearerAuth",
    "Client",
    "ConnectFailedError",
    "HeaderAuth",
    "OAuth2ClientCredentials",
    "Timeouts",
    "TokenProvider",
    "basic_auth",
    "make_client",
    "parse_json",
    "send_request",
    "tls_context",
    "unsendable",
]

try:
    USER_AGENT = f"wfm-intervals/{version('wfm-intervals')}"
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    USER_AGENT = "wfm-intervals/0"

#: The default cap on one response body (decoded), in bytes: 20 MiB.
DEFAULT_MAX_BYTES = 20 * 2**20

#: JSON, in only the codings the body reader decodes.
_ASKED = {"Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING}

#: What a header value may not hold (h11 refuses it, quoting the value), and the reason given.
_UNSENDABLE = (
    (re.compile(r"[\r\n]"), "it contains a line break"),
    (re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"), "it contains a control character"),
    (re.compile(r"\A[ \t]|[ \t]\Z"), "it begins or ends with whitespace"),
    (re.compile(r"[\ud800-\udfff]"), "it is not valid text"),  # undecodable bytes of an env var
)


def unsendable(value: str) -> str | None:
    """Why ``value`` cannot be sent as an HTTP header value, or ``None``; never the value.

    Example:
        >>> unsendable("tok\\n"), unsendable(" tok"), unsendable("Bearer tok")
        ('it contains a line break', 'it begins or ends with whitespace', None)
    """
    return next((why for pattern, why in _UNSENDABLE if pattern.search(value)), None)


def _refuse_credential(header: str, secret: str, prefix: str) -> None:
    """Raise ``AuthError`` naming ``header`` if ``secret`` or ``prefix + secret`` is unsendable."""
    if why := unsendable(secret) or unsendable(prefix + secret):
        raise AuthError(f"{header} header: the credential is not a valid HTTP header value ({why})")


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed to connect, read a chunk, write a chunk, wait for a pooled connection,
    and for a whole request (``total``: a body trickled a byte per read timeout never ends)."""

    connect: float = 10.0
    read: float = 60.0
    write: float = 30.0
    pool: float = 10.0
    total: float = 300.0

    def to_httpx(self) -> httpx.Timeout:
        """The equivalent ``httpx.Timeout``."""
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


class Client(httpx.Client):
    """An ``httpx.Client`` that carries ``timeouts.total``, the whole request's deadline."""

    def __init__(self, *, total: float, **options: Any) -> None:
        super().__init__(**options)
        self.total = total
        watch(self)


class HeaderAuth(httpx.Auth):
    """A static secret in one header, e.g. ``HeaderAuth("auth", jwt)`` for Kore.ai, or
    ``HeaderAuth("Authorization", token, scheme="Bearer")`` for a static bearer token."""

    def __init__(self, header: str, value: SecretStr, *, scheme: str = "") -> None:
        self._header, self._prefix, self._value = header, f"{scheme} " if scheme else "", value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set the configured header (an ``AuthError`` if it cannot be sent)."""
        _refuse_credential(self._header, secret := self._value.get_secret_value(), self._prefix)
        request.headers[self._header] = self._prefix + secret
        yield request


def basic_auth(username: str, password: SecretStr) -> HeaderAuth:
    """HTTP Basic auth (UJET): ``Authorization: Basic base64(username:password)``."""
    pair = f"{username}:{password.get_secret_value()}".encode()
    return HeaderAuth("Authorization", SecretStr(base64.b64encode(pair).decode()), scheme="Basic")


class TokenProvider(Protocol):
    """Hands out a bearer token; ``invalidate`` makes the next call fetch a fresh one."""

    def token(self) -> SecretStr: ...  # pragma: no cover - protocol

    def invalidate(self) -> None: ...  # pragma: no cover - protocol


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer`` from a :class:`TokenProvider`; after a 401 it refreshes once."""

    def __init__(self, provider: TokenProvider) -> None:
        self._provider = provider

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Send with the current token; after a 401, invalidate it and resend once. A token that
        is not a valid header value is an :class:`~connectors.errors.AuthError`, nothing sent."""
        request.headers["Authorization"] = self._bearer()
        response = yield request
        if response.status_code == 401:
            self._provider.invalidate()
            request.headers["Authorization"] = self._bearer()
            yield request

    def _bearer(self) -> str:
        _refuse_credential("Authorization", token := self._provider.token().get_secret_value(), "")
        return f"Bearer {token}"


class OAuth2ClientCredentials:
    """OAuth2 client-credentials token provider, refreshing ``margin`` seconds before expiry.

    Thread-safe. The exchange is classified like any call (5xx, 429 and transport errors are
    retriable); a refusal (400/401/403/other 4xx) or a reply without a token is an
    :class:`~connectors.errors.AuthError`, a token that is not a valid header value (never quoted) a
    :class:`~connectors.errors.ResponseShapeError`. ``client_auth`` sends the client credentials as
    HTTP Basic (RFC 6749's preference) or in the form body.

    Example:
        >>> auth = BearerAuth(OAuth2ClientCredentials("https://id.test/t", "app", SecretStr("s")))
    """

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        *,
        scope: str | None = None,
        margin: float = 60.0,
        client_auth: Literal["basic", "body"] = "basic",
        setting: str = "token_url",
        timeouts: Timeouts | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = require_secure_url(token_url, setting=setting)
        self._id, self._secret, self._scope, self._margin = client_id, client_secret, scope, margin
        self._client_auth, self._timeouts = client_auth, timeouts or Timeouts()
        self._transport, self._clock = transport, clock
        self._lock = threading.Lock()
        self._token: SecretStr | None = None
        self._refresh_at = 0.0

    def token(self) -> SecretStr:
        """The cached token, or a fresh one when it is due for refresh."""
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._token, lifetime = self._exchange()
                self._refresh_at = self._clock() + lifetime - min(self._margin, lifetime / 2)
            return self._token

    def invalidate(self) -> None:
        """Drop the cached token."""
        with self._lock:
            self._token = None

    def _exchange(self) -> tuple[SecretStr, float]:
        form = {"grant_type": "client_credentials"}
        form |= {"scope": self._scope} if self._scope else {}
        auth: httpx.Auth | None = basic_auth(self._id, self._secret)
        if self._client_auth == "body":
            form |= {"client_id": self._id, "client_secret": self._secret.get_secret_value()}
            auth = None
        headers = {"User-Agent": USER_AGENT, **_ASKED}
        with Client(
            total=self._timeouts.total,
            timeout=self._timeouts.to_httpx(),
            headers=headers,
            transport=self._transport,
            verify=tls_context(),
            **proxy_options(self._url, self._transport),
        ) as client:
            request = client.build_request("POST", self._url, data=form)
            try:
                body = parse_json(send_request(client, request, auth=auth))
            except (AuthError, UnexpectedStatusError) as exc:
                raise AuthError(f"token exchange refused: {exc}") from exc
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError("token exchange returned no access_token", url=self._url)
        if why := unsendable(token):
            why = f"token exchange: the access_token returned is not a valid header value ({why})"
            raise ResponseShapeError(why, url=self._url)  # the vendor's fault, not the secret's
        try:
            lifetime = float(body.get("expires_in", 3600))
        except (TypeError, ValueError):
            lifetime = 3600.0
        return SecretStr(token), max(lifetime, 0.0) if math.isfinite(lifetime) else 3600.0


class ConnectFailedError(TransportError):
    """No connection was made: the host refused it, was unreachable, or its name did not resolve.

    Retriable (a restarting server comes back), but such failures rarely heal within seconds, so
    :class:`~connectors.retry.RetryPolicy` gives them a budget of their own
    (``max_connect_attempts``), and none at all when ``dns`` is true: a name that does not
    resolve is a configuration problem, not a transient one.

    Example:
        >>> ConnectFailedError("cannot resolve host", dns=True).dns
        True
    """

    def __init__(self, message: str, *, dns: bool = False, url: str | httpx.URL | None = None):
        super().__init__(message, url=url)
        self.dns = dns


def _is_dns_failure(exc: BaseException) -> bool:
    """Whether ``exc`` or anything in its cause/context chain is a name-resolution failure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, socket.gaierror):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def make_client(
    base_url: str,
    *,
    setting: str = "base_url",
    auth: httpx.Auth | None = None,
    timeouts: Timeouts | None = None,
    user_agent: str = USER_AGENT,
    headers: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Client:
    """Build the :class:`Client` for one connector (checks the URL policy first).

    Args:
        base_url: The vendor's base URL.
        setting: The configuration key of ``base_url`` for error messages, e.g. ``ujet.base_url``.
        auth: An auth flow of this module, or ``None``.
        timeouts: Connect/read/write/pool timeouts (default :class:`Timeouts`).
        user_agent: The User-Agent header.
        headers: Extra non-secret headers.
        transport: A custom transport (``httpx.MockTransport`` in unit tests).

    Example:
        >>> client = make_client("http://localhost:8080", auth=HeaderAuth("auth", SecretStr("j")))
        >>> client.timeout.read
        60.0
    """
    timeouts, url = timeouts or Timeouts(), require_secure_url(base_url, setting=setting)
    return Client(
        total=timeouts.total,
        base_url=url,
        auth=auth,
        timeout=timeouts.to_httpx(),
        headers={"User-Agent": user_agent, **_ASKED, **(headers or {})},
        transport=transport,
        follow_redirects=False,
        verify=tls_context(),
        **proxy_options(url, transport),
    )


def send_request(
    client: httpx.Client,
    request: httpx.Request,
    *,
    auth: httpx.Auth | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> httpx.Response:
    """Send one built request under the URL policy, classify the outcome, read the body capped.

    The URL must pass :func:`~connectors.errors.require_secure_url` and, when the client has a
    base URL, keep its origin, so credentials never follow a URL to another host. The response
    is streamed: an error status is raised without reading its body, and a successful body is
    read and decoded step by step until it ends or passes ``max_bytes``, so no more than the cap
    (plus one step of :mod:`connectors.wire.body`) is ever held, whatever its
    ``Content-Encoding``; a ``Content-Length`` over the cap fails before reading.
    No message quotes a request header: one that cannot be sent fails naming it, not retried.
    The whole request, from sending to the body's last byte, is held to the client's
    ``timeouts.total`` (:mod:`connectors.wire.deadline`: every wait at the socket is cut to it).

    Raises:
        TransportError: Timeouts (``timeouts.total`` too), refused or dropped connections,
            protocol errors.
        FatalError: A header that cannot be sent (``AuthError`` if an auth flow's), or a request
            the HTTP library refuses (``LocalProtocolError``: its text may quote a header).
        ResponseTooLargeError: The body is larger than ``max_bytes`` (fatal: not retried).
        ResponseShapeError: A ``Content-Encoding`` not read here, or more than two codings.
        ConnectorError: What :func:`~connectors.errors.error_for_status` makes of a non-2xx.

    Example:
        >>> ok = httpx.MockTransport(lambda request: httpx.Response(204))
        >>> client = make_client("https://x.test", transport=ok)
        >>> send_request(client, client.build_request("GET", "a"))
        <Response [204 No Content]>
    """
    if not isinstance(client, Client):  # only it carries the total a whole request is held to
        raise TypeError("send_request needs a connectors.http.Client (make_client builds one)")
    deadline = Deadline(time.monotonic() + client.total, client.total)
    target = require_secure_url(request.url, setting="request URL")
    if client.base_url.host and _origin(target) != _origin(client.base_url):
        raise InsecureURLError("request URL leaves the base URL's origin", url=target)
    for name, value in request.headers.raw:
        if why := unsendable(value.decode("latin-1")):
            msg = f"{name.decode('latin-1')} header: not a valid HTTP header value ({why})"
            raise FatalError(msg, url=request.url)
    with held_to(deadline):  # every connect, read and write ends by it (not only the body's)
        return _send(client, request, auth, max_bytes, deadline)


def _send(
    client: Client,
    request: httpx.Request,
    auth: httpx.Auth | None,
    max_bytes: int,
    deadline: Deadline,
) -> httpx.Response:
    try:
        default = httpx.USE_CLIENT_DEFAULT  # auth=None would drop the client's own
        response = client.send(request, stream=True, auth=default if auth is None else auth)
    except httpx.TimeoutException as exc:
        raise deadline.timed_out(exc, request.url) from exc
    except httpx.ConnectError as exc:
        if _is_dns_failure(exc):
            msg = f"cannot resolve host {request.url.host!r}"
            raise ConnectFailedError(msg, dns=True, url=request.url) from exc
        raise ConnectFailedError(f"ConnectError: {exc}", url=request.url) from exc
    except httpx.LocalProtocolError:  # its text may quote a header value: withheld, chain too
        msg = "the HTTP library refused to send the request (LocalProtocolError, detail withheld)"
        raise FatalError(msg, url=request.url) from None
    except httpx.RequestError as exc:
        raise TransportError(f"{type(exc).__name__}: {exc}", url=request.url) from exc
    try:
        error = error_for_status(response.status_code, response.headers, url=request.url)
        if error is not None:
            raise error
        read_capped(response, max_bytes, deadline=deadline)
    finally:
        response.close()
    return response


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)
